#include "src/daemon/services/usage_service.h"

#include "src/daemon/services/sandbox_proto.h"
#include "src/daemon/services/status_mapping.h"

namespace sbx::daemon {

grpc::Status UsageService::GetUsage(grpc::ServerContext* context,
                                    const ::sbx::v1::GetUsageRequest* request,
                                    ::sbx::v1::SandboxUsage* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return ToGrpcStatus(tenant.error());
  if (request->sandbox_id().empty()) return ToGrpcStatus(FieldError("sandbox_id", "required"));
  auto usage = manager_->Usage(*tenant, request->sandbox_id());
  if (!usage) return ToGrpcStatus(usage.error());
  response->set_sandbox_id(request->sandbox_id());
  response->set_cpu_millicores(static_cast<int64_t>(usage->cpu_millicores));
  response->set_cpu_usage_ns(static_cast<int64_t>(usage->cpu_usage_ns));
  response->set_memory_bytes(static_cast<int64_t>(usage->memory_bytes));
  response->set_memory_limit_bytes(static_cast<int64_t>(usage->memory_limit_bytes));
  response->set_pids(static_cast<int64_t>(usage->pids));
  response->set_disk_used_bytes(static_cast<int64_t>(usage->disk_used_bytes));
  response->set_disk_total_bytes(static_cast<int64_t>(usage->disk_total_bytes));
  *response->mutable_read_time() = ToTimestamp(usage->read_ns);
  return grpc::Status::OK;
}

}  // namespace sbx::daemon
