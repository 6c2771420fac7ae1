// File: runtime_helpers.h
//
// A small pool of `sbx-runtime serve` processes (runtime/helper.h) that create sandboxes for the
// daemon and set their cgroup limits: started once with posix_spawn, each handed the sealed
// sbx-init copy and the compiled seccomp program, each serving one request at a time. A helper
// that dies or hangs is replaced.

#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/runtime/container.h"
#include "src/runtime/helper.h"
#include "src/sys/process.h"

namespace sbx::daemon {

class RuntimeHelpers {
 public:
  RuntimeHelpers(std::string runtime_binary, std::string cgroup_parent, int init_fd, int seccomp_fd,
                 int count);
  ~RuntimeHelpers();
  Status Start();
  Result<runtime::SandboxState> Create(const runtime::HelperCreateRequest& request, int timeout_ms);
  Status SetLimits(const std::string& name, const runtime::CgroupLimits& limits, int timeout_ms);

 private:
  struct Helper {
    sys::ChildProcess process;
    UniqueFd socket;
    bool busy = false;
  };
  Status Spawn(Helper& helper);
  // Runs `call` on the socket of an idle helper (waiting for one), replacing the helper when the
  // call found it dead or hung.
  template <typename T>
  T WithHelper(const std::function<T(int socket)>& call);
  std::string runtime_binary_;
  std::string cgroup_parent_;
  int init_fd_;
  int seccomp_fd_;
  std::mutex mu_;
  std::condition_variable idle_;
  std::vector<Helper> helpers_;
};

}  // namespace sbx::daemon
