// File: helper.h
//
// The runtime helper: a small, single-threaded process (`sbx-runtime serve`) that the
// multi-threaded daemon starts once and asks to create sandboxes, so that no create pays for a
// process start, and the daemon never clones anything itself. The helper is the clone parent
// of the sandboxes it creates and reaps their init processes when they end.
//
// The helpers are also the one writer of sandboxes' cgroup limits: a sandbox made ahead of time
// gets its user's limits from them too, so limits are set in one place, by one process image.
//
// Protocol, over a socketpair, framed like the sbx-init protocol (agent/connection.h):
//   kCreateRequest {bundle, disk_pool_dir, disk_dir}  ->  kCreateReply {state_json | error}
//   kSetLimitsRequest {name, limits}                  ->  kSetLimitsReply {error?}

#pragma once

#include <string>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/runtime/cgroup/cgroup_driver.h"
#include "src/runtime/container.h"

namespace sbx::runtime {

inline constexpr uint8_t kCreateRequest = 100;
inline constexpr uint8_t kCreateReply = 101;
inline constexpr uint8_t kSetLimitsRequest = 102;
inline constexpr uint8_t kSetLimitsReply = 103;

struct HelperCreateRequest {
  std::string bundle_dir;
  std::string disk_pool_dir;
  std::string disk_dir;
  std::string writable_image;  // with a prepared writable mount, sent as a descriptor
  int writable_mount_fd = -1;  // not encoded: travels as SCM_RIGHTS
  std::string Encode() const;
  static Result<HelperCreateRequest> Decode(std::string_view payload);
};

struct HelperSetLimitsRequest {
  std::string name;  // the sandbox's cgroup
  CgroupLimits limits;
  std::string Encode() const;
  static Result<HelperSetLimitsRequest> Decode(std::string_view payload);
};

// Serves create and set-limits requests on `fd` until it closes. `init_fd` and `seccomp_bpf` are
// reused for every sandbox.
int ServeHelper(int fd, int init_fd, const std::string& seccomp_bpf, CgroupDriver& cgroups);

// Client side: sends one request and waits for the reply.
Result<SandboxState> HelperCreate(int fd, const HelperCreateRequest& request, int timeout_ms);
Status HelperSetLimits(int fd, const HelperSetLimitsRequest& request, int timeout_ms);

}  // namespace sbx::runtime
