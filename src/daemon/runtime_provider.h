// File: runtime_provider.h
//
// The runtime port: everything the sandbox manager asks of the machine for one sandbox, beside
// ImageProvider (images) and NetworkProvider (networks). A provider makes a sandbox from a plan
// (spec_builder.h), changes its limits, reads its statistics, talks to its sbx-init about the
// main process, and removes it; and it says what is left on the machine after a restart. The
// manager touches no cgroup, disk image, bundle or helper process itself.
//
// HelperRuntime (helper_runtime.h) is the real one: long-lived `sbx-runtime serve` helpers, a pool
// of prepared writable layers, the cgroup driver, and each sandbox's sbx-init socket. Tests of the
// manager use a fake.

#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "src/agent/protocol.h"
#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/runtime/cgroup/cgroup_driver.h"
#include "src/runtime/spec.h"

namespace sbx::daemon {

// A sandbox as its spec and the content of its mounted files: what the runtime needs to make it.
// `spec.files[i].source` is left empty; the provider stores `file_contents[i]` where it wants.
struct SandboxPlan {
  runtime::RuntimeSpec spec;
  std::vector<std::string> file_contents;
};

// How to reach a sandbox the runtime made. Recorded in the store, so a restarted daemon finds it.
struct RuntimeSandbox {
  std::string id;
  std::string bundle;
  std::string socket_path;
  pid_t init_pid = 0;
  uint64_t init_start_time = 0;
};

// The output of a sandbox's main process, as saved chunks and the offset of the first byte.
struct SavedLogs {
  std::string chunks;
  uint64_t start_offset = 0;
};

class RuntimeProvider {
 public:
  virtual ~RuntimeProvider() = default;

  // Makes the sandbox and starts its sbx-init; on failure nothing of it is left.
  virtual Result<RuntimeSandbox> Create(const SandboxPlan& plan) = 0;
  // Removes everything of sandbox `id` from the machine: its processes, cgroup, bundle and
  // writable layer. Whatever is already gone is skipped, so a removal that a crash interrupted
  // can simply be repeated.
  virtual Status Destroy(const std::string& id) = 0;
  // The sandbox ended and keeps its files: every process but its sbx-init is killed, no other
  // can start (a pids limit of one) and sbx-init gets the lowest CPU weight. sbx-init serves file
  // requests until Destroy. An error (sbx-init is gone, a process would not die) leaves the
  // sandbox to be destroyed.
  virtual Status KeepOnlyFiles(const RuntimeSandbox& sandbox) = 0;
  // Changes the limits of a sandbox that runs (a warm one gets its user's).
  virtual Status SetLimits(const std::string& id, const runtime::CgroupLimits& limits) = 0;
  virtual Result<runtime::CgroupStats> Stats(const std::string& id) = 0;
  // How full the writable layer of a running sandbox is.
  struct DiskUsage {
    uint64_t used_bytes = 0;
    uint64_t total_bytes = 0;
  };
  virtual Result<DiskUsage> WritableLayerUsage(const RuntimeSandbox& sandbox) {
    (void)sandbox;
    return Error::Unimplemented("this runtime does not report disk usage");
  }
  // Whether the sandbox's sbx-init still runs (the same process, not a reused pid).
  virtual bool Alive(const RuntimeSandbox& sandbox) = 0;
  // The ids of every sandbox of which something is left on the machine.
  virtual std::vector<std::string> Leftovers() = 0;
  // Removes what the provider keeps for all sandboxes, once none is left (at a graceful stop).
  virtual void RemoveSharedState() = 0;

  // The sandbox's sbx-init, about the main process.
  virtual Status StartMain(const RuntimeSandbox& sandbox, const agent::InitConfig& main) = 0;
  virtual Result<agent::StatusReply> MainStatus(const RuntimeSandbox& sandbox) = 0;
  virtual Status SignalMain(const RuntimeSandbox& sandbox, int signal) = 0;
  // A new lifetime deadline (Unix ns) for sbx-init to enforce while sbxd is away.
  virtual Status SetDeadline(const RuntimeSandbox& sandbox, int64_t deadline_unix_ns) = 0;
  // Waits until the main process exits or the deadline (monotonic ms) passes.
  virtual Result<agent::StatusReply> WaitMain(const RuntimeSandbox& sandbox,
                                              int64_t deadline_ms) = 0;
  // The exit was recorded: sbx-init may forget it (and exit once the sandbox is idle).
  virtual Status AckExit(const RuntimeSandbox& sandbox) = 0;
  virtual Result<SavedLogs> ReadLogs(const RuntimeSandbox& sandbox) = 0;
  // A descriptor that becomes readable when the main process exits or sbx-init goes away.
  virtual Result<UniqueFd> WatchMain(const RuntimeSandbox& sandbox) = 0;
};

}  // namespace sbx::daemon
