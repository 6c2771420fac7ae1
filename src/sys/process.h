// File: process.h
//
// Starting and owning child processes without fork(): the daemon is multi-threaded and large, so
// children are started with posix_spawn (vfork + exec under the hood). ChildProcess owns a pid and
// its pidfd; if it is destroyed before being waited for, it kills and reaps the child.

#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::sys {

// The shell's convention for how a process ended, the one rule every part of sbx reports: its
// exit code, or 128 + the signal that killed it.
inline int ShellExitCode(bool signaled, int exit_code, int signal) {
  return signaled ? 128 + signal : exit_code;
}

struct ExitStatus {
  int exit_code = -1;  // valid when !signaled
  int signal = 0;      // valid when signaled
  bool signaled = false;

  int ShellCode() const { return ShellExitCode(signaled, exit_code, signal); }
  std::string ToString() const;
};

ExitStatus DecodeWaitStatus(int status);

class ChildProcess {
 public:
  ChildProcess() = default;
  ChildProcess(pid_t pid, UniqueFd pidfd) : pid_(pid), pidfd_(std::move(pidfd)) {}
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  bool valid() const { return pid_ > 0; }

  // Waits for the child to exit; `timeout_ms` < 0 waits forever. kDeadlineExceeded on timeout.
  Result<ExitStatus> Wait(int timeout_ms = -1);
  Status Signal(int sig);
  // Gives up ownership: the destructor will neither kill nor reap.
  pid_t Release();

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
};

struct SpawnOptions {
  std::vector<std::string> argv;
  // Full environment of the child; inherits nothing from the caller.
  std::vector<std::string> env;
  // Child fd number -> caller fd. Every other descriptor is closed in the child, including ones
  // the caller inherited without CLOEXEC.
  // stdin/stdout/stderr default to /dev/null unless listed.
  std::map<int, int> fds;
  bool new_session = false;
};

Result<ChildProcess> Spawn(const SpawnOptions& options);

// Runs a command to completion, capturing stdout and stderr (each capped at 1 MiB).
struct CommandResult {
  ExitStatus status;
  std::string out;
  std::string err;
};
// `extra_fds` maps further child descriptors (3 and up) to the caller's.
Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 const std::vector<std::string>& env = {}, int timeout_ms = -1,
                                 const std::map<int, int>& extra_fds = {});

Result<UniqueFd> PidfdOpen(pid_t pid);

// Sets the calling thread's nice value (Linux keeps one per thread); processes it spawns inherit
// it. Background work that refills pools runs at kBackgroundNice, so that it takes CPU time the
// creates it serves do not need. Raising priority again needs CAP_SYS_NICE.
inline constexpr int kBackgroundNice = 19;
Status SetThreadNice(int nice);

// Whom the kernel's OOM killer takes first (oom_score_adj, from -1000 to 1000): a sandbox's
// processes before anything of the host, and they cannot lower their score; sbxd and the runtime
// helpers it starts last (-1000 would exempt them, and a leaking daemon should still be
// stoppable). sbx-init sits low as well (runtime/container.cc), so that it lives to report an OOM
// kill in its sandbox.
inline constexpr int kSandboxOomScoreAdj = 1000;
inline constexpr int kDaemonOomScoreAdj = -999;

}  // namespace sbx::sys
