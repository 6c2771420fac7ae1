#include "src/daemon/services/system_service.h"

#include <sys/statvfs.h>

#include "src/daemon/services/status_mapping.h"
#include "src/daemon/version.h"
#include "src/sys/features.h"

namespace sbx::daemon {

grpc::Status SystemService::GetInfo(grpc::ServerContext* context, const ::sbx::v1::GetInfoRequest*,
                                    ::sbx::v1::GetInfoResponse* response) {
  auto caller = auth_->Identify(*context);
  if (!caller) return ToGrpcStatus(caller.error());
  response->set_version(kVersion);
  response->set_runner_id(manager_->runner_id());
  for (const auto& [name, feature] : sys::ProbeAll()) {
    auto* check = response->add_checks();
    check->set_name(name);
    check->set_ok(feature.available);
    check->set_detail(feature.detail);
  }
  Capacity c = manager_->GetCapacity();
  response->set_capacity_cpu_millicores(static_cast<int64_t>(c.cpu_millis));
  response->set_capacity_memory_bytes(static_cast<int64_t>(c.memory_bytes));
  response->set_allocated_cpu_millicores(static_cast<int64_t>(c.allocated_cpu_millis));
  response->set_allocated_memory_bytes(static_cast<int64_t>(c.allocated_memory_bytes));
  response->set_running_sandboxes(c.running);
  struct statvfs fs {};
  if (statvfs(manager_->config().state_dir.c_str(), &fs) == 0) {
    response->set_disk_free_bytes(static_cast<int64_t>(fs.f_bavail * fs.f_frsize));
  }
  response->set_cgroup_version(cgroup_version_);
  if (caller->is_operator) {
    const Config& config = manager_->config();
    auto* effective = response->mutable_config();
    for (const auto& m : config.registry_mirrors) effective->add_registry_mirrors(m);
    for (const auto& r : config.insecure_registries) effective->add_insecure_registries(r);
    effective->set_state_dir(config.state_dir);
    effective->set_network(config.network);
    effective->set_default_lifetime_seconds(config.default_lifetime_seconds);
    effective->set_max_lifetime_seconds(config.max_lifetime_seconds);
    effective->set_files_retention_seconds(config.files_retention_seconds);
    effective->set_present(true);
  }
  return grpc::Status::OK;
}

}  // namespace sbx::daemon
