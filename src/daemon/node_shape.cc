#include "src/daemon/node_shape.h"

#include <unistd.h>

#include <algorithm>

#include "src/base/quantity.h"
#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::daemon {

namespace {

// sbx-init's own grace when it enforces the lifetime while sbxd is away.
constexpr int64_t kStopGraceMs = 10000;

}  // namespace

NodeShape NodeShapeFromConfig(const Config& config) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  uint64_t all_cpus = static_cast<uint64_t>(cpus > 0 ? cpus : 1) * 1000;
  uint64_t most_memory = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) *
                         static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) / 10 * 9;
  NodeShape node;
  node.cpu_millis = config.capacity_cpu == "auto"
                        ? all_cpus
                        : ParseCpuMillis(config.capacity_cpu).value_or(all_cpus);
  node.memory_bytes = config.capacity_memory == "auto"
                          ? most_memory
                          : ParseBytes(config.capacity_memory).value_or(most_memory);
  node.default_cpu_millis = ParseCpuMillis(config.default_cpu).value_or(2000);
  node.default_memory_bytes = ParseBytes(config.default_memory).value_or(2ull << 30);
  node.default_disk_bytes = ParseBytes(config.default_disk).value_or(10ull << 30);
  node.default_disk_request_bytes =
      std::min(node.default_disk_bytes, ParseBytes(config.default_disk_request).value_or(0));
  node.default_cpu_request_millis = ParseCpuMillis(config.default_cpu_request).value_or(0);
  node.default_memory_request_bytes = ParseBytes(config.default_memory_request).value_or(0);
  node.memory_reserve_bytes = ParseBytes(config.memory_reserve).value_or(1ull << 30);
  node.disk_reserve_bytes = ParseBytes(config.disk_reserve).value_or(2ull << 30);
  if (config.capacity_disk != "auto") {
    node.disk_bytes = ParseBytes(config.capacity_disk).value_or(0);
  } else if (auto space = sys::SpaceOf(config.state_dir)) {
    node.disk_bytes = space->total_bytes - std::min(space->total_bytes, node.disk_reserve_bytes);
  } else {
    // Not made yet (a parser checking a request's quantities): disk is not what it checks.
    node.disk_bytes = UINT64_MAX;
  }
  return node;
}

SandboxResources ResourcesFor(const CreateRequest& request, const NodeShape& node) {
  SandboxResources r;
  r.cpu_limit_millis = request.cpu_limit_millis     ? request.cpu_limit_millis
                       : request.cpu_request_millis ? request.cpu_request_millis
                                                    : node.default_cpu_millis;
  r.memory_limit_bytes = request.memory_limit_bytes     ? request.memory_limit_bytes
                         : request.memory_request_bytes ? request.memory_request_bytes
                                                        : node.default_memory_bytes;
  r.cpu_request_millis =
      request.cpu_request_millis ? request.cpu_request_millis : node.default_cpu_request_millis;
  r.memory_request_bytes = request.memory_request_bytes ? request.memory_request_bytes
                                                        : node.default_memory_request_bytes;
  return r;
}

Status CheckDiskReserve(const std::string& state_dir, const NodeShape& node) {
  SBX_ASSIGN_OR_RETURN(sys::FilesystemSpace space, sys::SpaceOf(state_dir));
  if (space.available_bytes >= node.disk_reserve_bytes) return Ok();
  return Error::ResourceExhausted(
             "the node's disk is nearly full: " + FormatBytes(space.available_bytes) + " free, " +
             FormatBytes(node.disk_reserve_bytes) + " kept in reserve")
      .WithReason("CWSANDBOX_RUNNER_CAPACITY_EXHAUSTED")
      .WithMetadata("resource", "disk");
}

AdmissionLimits AdmissionLimitsFromConfig(const Config& config, const NodeShape& node) {
  AdmissionLimits limits;
  limits.cpu_millis = node.cpu_millis;
  limits.memory_bytes = node.memory_bytes;
  limits.disk_bytes = node.disk_bytes;
  limits.memory_reserve_bytes = node.memory_reserve_bytes;
  limits.default_quota = config.default_max_sandboxes;
  for (const auto& key : config.api_keys) {
    if (key.max_sandboxes > 0) limits.tenant_quotas[key.tenant] = key.max_sandboxes;
  }
  return limits;
}

SpecDefaults SpecDefaultsFromConfig(const Config& config, const NodeShape& node) {
  SpecDefaults defaults;
  defaults.loop_writable_layer = config.writable_layer != "tmpfs";
  defaults.disk_bytes = node.default_disk_bytes;
  defaults.pids = config.default_pids;
  defaults.layers_id_map = {config.id_map_uid, config.id_map_gid, config.id_map_size};
  defaults.stop_grace_ms = kStopGraceMs;
  return defaults;
}

WarmOptions WarmOptionsFromConfig(const Config& config, const NodeShape& node) {
  WarmOptions options;
  options.per_image = config.warm_pool_size;
  options.max_images = config.warm_pool_images;
  options.idle_ns = static_cast<int64_t>(config.warm_pool_idle_seconds) * 1000000000;
  options.refill_delay_ms = config.warm_pool_refill_delay_ms;
  options.cpu_limit_millis = node.default_cpu_millis;
  options.memory_limit_bytes = node.default_memory_bytes;
  return options;
}

}  // namespace sbx::daemon
