#include "src/daemon/services/lifetime_service.h"

#include "src/daemon/services/sandbox_proto.h"
#include "src/daemon/services/status_mapping.h"

namespace sbx::daemon {

grpc::Status LifetimeService::ExtendLifetime(grpc::ServerContext* context,
                                             const ::sbx::v1::ExtendLifetimeRequest* request,
                                             ::sbx::v1::ExtendLifetimeResponse* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return ToGrpcStatus(tenant.error());
  if (request->sandbox_id().empty()) return ToGrpcStatus(FieldError("sandbox_id", "required"));
  if (request->seconds() <= 0) {
    return ToGrpcStatus(FieldError("seconds", "must be positive"));
  }
  auto record = manager_->ExtendLifetime(*tenant, request->sandbox_id(), request->seconds());
  if (!record) return ToGrpcStatus(record.error());
  response->set_max_lifetime_seconds(record->lifetime_seconds);
  *response->mutable_expire_time() = ToTimestamp(record->deadline_ns);
  return grpc::Status::OK;
}

}  // namespace sbx::daemon
