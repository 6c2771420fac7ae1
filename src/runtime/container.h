// File: container.h
//
// Creating and destroying sandboxes. A sandbox lives in a bundle directory:
//
//   <bundle>/spec.json    the RuntimeSpec (written by the caller)
//   <bundle>/state.json   what the runtime created (written by CreateSandbox)
//   <bundle>/init.sock    sbx-init's socket (the only way in)
//   <bundle>/disk.img     the writable layer's image (loop kind)
//   <bundle>/rootfs, disk mount points, used only inside the sandbox's mount namespace
//
// CreateSandbox must run in a single-threaded process (sbx-runtime): it clones the sandbox's
// first process, which sets everything up and execs sbx-init as PID 1. It returns once sbx-init
// runs, and on any failure leaves nothing behind. The life of a sandbox, in order:
//
//   host:  validate spec -> cgroup with limits -> writable layer (image + loop device)
//          -> user namespace for idmapped layers (when the layers are another range's)
//          -> listening socket -> sealed copy of sbx-init ->
//          clone(NEWNS|NEWPID|NEWUTS|NEWIPC|NEWNET)
//          -> child into the cgroup, oom_score_adj -> "go"
//   child: private mounts -> idmapped layers -> writable fs -> overlay rootfs (xino) ->
//          pivot_root -> /proc, /dev, /sys, /etc files, mounted files, masked and read-only
//          paths -> hostname, loopback, rlimits -> unshare(NEWCGROUP) -> effective ids of the
//          sandbox's root -> unshare(NEWUSER) -> "mapped?"
//   host:  uid_map/gid_map -> "go"
//   child: setresuid/gid 0 -> the user namespace's limits -> capabilities -> no_new_privs
//          -> seccomp -> stdio, umask 022 -> execveat(sbx-init)
//
// Every namespace but the user namespace is created while the child is still real root, so the
// sandbox's root user owns none of them: it cannot mount, configure the network or change the
// hostname even before seccomp says so. The user namespace itself belongs to the sandbox's root
// host user, so the kernel charges the sandbox's per-user counters to it.

#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/runtime/cgroup/cgroup_driver.h"
#include "src/runtime/spec.h"

namespace sbx::runtime {

struct CreateOptions {
  std::string bundle_dir;
  std::string init_path;  // the sbx-init binary
  // A sealed copy of sbx-init made once with SealedCopyOfInit, reused for every create; -1 to
  // copy `init_path` for this create.
  int init_fd = -1;
  // The compiled seccomp program (seccomp_policy.h); empty: the default policy, compiled once per
  // process.
  std::string seccomp_bpf;
  std::string disk_pool_dir;  // pre-formatted writable-layer images (optional)
  // Where the writable layer's image lives (default: the bundle). It should be on a disk-backed
  // filesystem on the same filesystem as the pool, not on a tmpfs /run.
  std::string disk_dir;
  // A writable layer prepared ahead: a detached mount (fsmount) of a formatted filesystem and the
  // image file behind it (deleted when the sandbox is destroyed). -1: make one now.
  int writable_mount_fd = -1;
  std::string writable_image;
};

struct SandboxState {
  std::string id;
  pid_t init_pid = 0;            // host pid of sbx-init
  uint64_t init_start_time = 0;  // from /proc/<pid>/stat, to detect pid reuse
  std::string socket_path;
  std::string loop_device;
  std::string disk_image;
  int64_t created_unix_ns = 0;
};

std::string StateToJson(const SandboxState& state);
Result<SandboxState> StateFromJson(const std::string& json);
Result<SandboxState> ReadState(const std::string& bundle_dir);

// A sealed in-memory copy of the sbx-init binary, executed as PID 1 of sandboxes.
Result<UniqueFd> SealedCopyOfInit(const std::string& path);

Result<SandboxState> CreateSandbox(const RuntimeSpec& spec, const CreateOptions& options,
                                   CgroupDriver& cgroups);

// Stops a sandbox: everything in its cgroup is killed, its cgroup removed and its bundle
// directory deleted. Idempotent: a half-created or already destroyed sandbox is fine.
Status DestroySandbox(const std::string& id, const std::string& bundle_dir, CgroupDriver& cgroups);

// True if the process `pid` still exists and started at `start_time` (not a recycled pid).
bool ProcessAlive(pid_t pid, uint64_t start_time);
// 0 when there is no such process, or (unless `include_zombies`) when it has exited.
uint64_t ProcessStartTime(pid_t pid, bool include_zombies = false);

}  // namespace sbx::runtime
