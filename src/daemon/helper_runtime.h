// File: helper_runtime.h
//
// The runtime port as sbxd runs it: sandboxes are made by long-lived `sbx-runtime serve` helpers
// (runtime_helpers.h), which are also the one writer of every sandbox's cgroup limits; writable
// layers come prepared from a pool (disk_pool.h); bundles live in `<run_dir>/sandboxes/<id>`,
// writable layer images in `<state_dir>/disks`; the main process is reached through each
// sandbox's sbx-init socket.

#pragma once

#include <memory>
#include <string>

#include "src/daemon/disk_pool.h"
#include "src/daemon/runtime_helpers.h"
#include "src/daemon/runtime_provider.h"
#include "src/runtime/cgroup/cgroup_driver.h"

namespace sbx::daemon {

struct HelperRuntimeOptions {
  std::string runtime_binary;  // sbx-runtime
  std::string init_binary;     // sbx-init
  std::string run_dir;
  std::string state_dir;
  std::string cgroup_parent;
  int helpers = 4;
  bool loop_writable_layers = true;  // else tmpfs
  int disk_pool_size = 8;            // loop layers prepared ahead of time
  runtime::DiskFormat disk_format;   // of the pooled layers
};

class HelperRuntime : public RuntimeProvider {
 public:
  HelperRuntime(HelperRuntimeOptions options, runtime::CgroupDriver* cgroups);
  ~HelperRuntime() override;
  HelperRuntime(const HelperRuntime&) = delete;
  HelperRuntime& operator=(const HelperRuntime&) = delete;

  // Seals a copy of sbx-init, compiles the seccomp policy, starts the helpers and the disk pool.
  Status Start();
  // Stops the helpers and the disk pool; sandboxes keep running.
  void Stop();

  Result<RuntimeSandbox> Create(const SandboxPlan& plan) override;
  Status Destroy(const std::string& id) override;
  Status KeepOnlyFiles(const RuntimeSandbox& sandbox) override;
  Status SetLimits(const std::string& id, const runtime::CgroupLimits& limits) override;
  Result<runtime::CgroupStats> Stats(const std::string& id) override;
  Result<DiskUsage> WritableLayerUsage(const RuntimeSandbox& sandbox) override;
  bool Alive(const RuntimeSandbox& sandbox) override;
  std::vector<std::string> Leftovers() override;
  void RemoveSharedState() override;

  Status StartMain(const RuntimeSandbox& sandbox, const agent::InitConfig& main) override;
  Result<agent::StatusReply> MainStatus(const RuntimeSandbox& sandbox) override;
  Status SignalMain(const RuntimeSandbox& sandbox, int signal) override;
  Status SetDeadline(const RuntimeSandbox& sandbox, int64_t deadline_unix_ns) override;
  Result<agent::StatusReply> WaitMain(const RuntimeSandbox& sandbox, int64_t deadline_ms) override;
  Status AckExit(const RuntimeSandbox& sandbox) override;
  Result<SavedLogs> ReadLogs(const RuntimeSandbox& sandbox) override;
  Result<UniqueFd> WatchMain(const RuntimeSandbox& sandbox) override;

 private:
  std::string BundleDir(const std::string& id) const;
  std::string DisksDir() const;
  std::string PoolDir() const;
  // Writes spec.json and the mounted files' contents into a new bundle directory.
  Result<std::string> WriteBundle(const SandboxPlan& plan);

  HelperRuntimeOptions options_;
  runtime::CgroupDriver* cgroups_;
  UniqueFd init_copy_;        // sealed sbx-init, handed to every helper
  UniqueFd seccomp_program_;  // the compiled seccomp policy, likewise
  std::unique_ptr<RuntimeHelpers> helpers_;
  std::unique_ptr<DiskPool> disks_;
};

}  // namespace sbx::daemon
