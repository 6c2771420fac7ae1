// File: main_process.h
//
// The sandbox's main process as sbx-init keeps it: started at once, or when the host sends
// kStartMain to a sandbox made ahead of time; its output kept in a bounded ring (log_ring.h) and
// served to kLogs readers, following it if asked; the host's signals forwarded to it; its lifetime
// enforced (SIGTERM at the deadline, SIGKILL after the grace period); and its exit recorded and
// reported (kStatus, kWaitMain) until the host acknowledges it (kAckExit), which ends sbx-init.
// When the main process exits, everything else in the sandbox is killed.
//
// It also holds the sandbox's configuration, whose user, environment and working directory are
// the defaults of exec sessions and file operations.

#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "src/agent/connection.h"
#include "src/agent/init/log_ring.h"
#include "src/agent/init/server_loop.h"
#include "src/agent/init/spawn.h"
#include "src/agent/protocol.h"
#include "src/base/unique_fd.h"

namespace sbx::agent {

inline constexpr uint32_t kInitVersion = 1;

class MainProcess {
 public:
  // `null_fd` is /dev/null, the main process's stdin.
  MainProcess(ServerLoop& loop, InitConfig config, int null_fd);
  MainProcess(const MainProcess&) = delete;
  MainProcess& operator=(const MainProcess&) = delete;
  ~MainProcess();

  const InitConfig& config() const { return config_; }
  // Starts the configured main process unless the sandbox awaits kStartMain. A configuration
  // without a command keeps the sandbox idle until it is told to stop.
  void StartUnlessAwaited();
  // The host acknowledged the exit: sbx-init's work is done.
  bool exit_acknowledged() const { return state_.acknowledged; }

  // Whether `type` is a request this class answers.
  static bool Handles(MsgType type);
  // The first frame of a connection, a request of a type Handles() accepts.
  void Start(Conn& conn, const Frame& frame);
  // The host's end of a kLogs connection drained: send on.
  void OnConnDrained(Conn& conn);

  // Epoll events on the main process's output pipes.
  void OnOutput(bool is_stderr);
  // A reaped child. Returns false when it is not the main process.
  bool OnExit(pid_t pid, int status);
  // A signal the host sent sbx-init itself.
  void Signal(int sig);
  // The lifetime or the kill deadline (CLOCK_MONOTONIC ms), -1 for none.
  int64_t NextDeadline() const;
  void RunTimers(int64_t now_ms);

  StatusReply BuildStatus() const;

 private:
  void StartProcess();
  void SetLifetimeDeadline();  // from config_.deadline_unix_ns
  void Exited(int status);
  void StartMain(Conn& conn, std::string_view payload);
  void PumpLogs(Conn& conn);
  void NotifyWaiters();
  // One read of an output pipe into the log ring; the pipe is closed at its end.
  PipeRead ReadOutputOnce(bool is_stderr);

  ServerLoop& loop_;
  InitConfig config_;
  int null_fd_;
  LogRing logs_;
  struct State {
    pid_t pid = 0;
    bool idle = false;
    bool running = false;
    bool exited = false;
    ExitInfo exit;
    int64_t started_ns = 0;
    int64_t exited_ns = 0;
    std::string start_error;
    UniqueFd out;
    UniqueFd err;
    bool acknowledged = false;
    bool lifetime_exceeded = false;
    int64_t kill_deadline_ms = -1;
  } state_;
  int64_t lifetime_deadline_ms_ = -1;
};

}  // namespace sbx::agent
