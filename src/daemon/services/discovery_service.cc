#include "src/daemon/services/discovery_service.h"

#include "src/base/clock.h"
#include "src/daemon/services/status_mapping.h"

namespace sbx::daemon {

namespace v1 = ::coreweave::sandbox::v1;

v1::AvailableRunner DiscoveryService::Self() {
  if (started_ns_ == 0) started_ns_ = WallNanos();
  Capacity c = manager_->GetCapacity();
  v1::AvailableRunner r;
  r.set_runner_id(manager_->runner_id());
  r.set_runner_group_id("sbx");
  r.set_healthy(true);
  auto* caps = r.mutable_capabilities();
  caps->set_max_cpu_millicores(static_cast<int64_t>(c.cpu_millis));
  caps->set_max_memory_bytes(static_cast<int64_t>(c.memory_bytes));
#if defined(__x86_64__)
  caps->add_supported_architectures("amd64");
#elif defined(__aarch64__)
  caps->add_supported_architectures("arm64");
#endif
  caps->set_supports_privileged(false);
  auto* res = r.mutable_resources();
  res->set_available_cpu_millicores(static_cast<int64_t>(c.cpu_millis - c.allocated_cpu_millis));
  res->set_available_memory_bytes(static_cast<int64_t>(c.memory_bytes - c.allocated_memory_bytes));
  res->set_running_sandboxes(c.running);
  r.mutable_connected_at()->set_seconds(started_ns_ / 1000000000);
  return r;
}

grpc::Status DiscoveryService::ListAvailableRunners(grpc::ServerContext* context,
                                                    const v1::ListAvailableRunnersRequest*,
                                                    v1::ListAvailableRunnersResponse* response) {
  if (auto tenant = auth_->Tenant(*context); !tenant) return ToGrpcStatus(tenant.error());
  *response->add_runners() = Self();
  return grpc::Status::OK;
}

grpc::Status DiscoveryService::GetAvailableRunner(grpc::ServerContext* context,
                                                  const v1::GetAvailableRunnerRequest* request,
                                                  v1::AvailableRunner* response) {
  if (auto tenant = auth_->Tenant(*context); !tenant) return ToGrpcStatus(tenant.error());
  if (request->runner_id() != manager_->runner_id()) {
    return ToGrpcStatus(Error::NotFound("runner " + request->runner_id() + " not found")
                            .WithReason("CWSANDBOX_RUNNER_NOT_FOUND"));
  }
  *response = Self();
  return grpc::Status::OK;
}

}  // namespace sbx::daemon
