// File: init_server.h
//
// InitServer is sbx-init: PID 1 of a sandbox. It starts the main process (at once, or when the
// host sends kStartMain to a sandbox made ahead of time) and keeps its output in a bounded ring,
// reaps every process (orphans included), forwards the host's signals to the
// main process, records the main exit until the host acknowledges it, and serves the sbx-init
// protocol (protocol.h) on the listening socket it inherited: execs, files and logs.
//
// It is a single-threaded epoll loop. Every stream is bounded: output that the host does not read
// stops being read from the process (the pipe fills and the writer blocks), stdin that the
// process does not read stops being read from the host.

#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "src/agent/connection.h"
#include "src/agent/init/files.h"
#include "src/agent/init/log_ring.h"
#include "src/agent/protocol.h"
#include "src/base/unique_fd.h"

namespace sbx::agent {

inline constexpr uint32_t kInitVersion = 1;

class InitServer {
 public:
  InitServer(InitConfig config, UniqueFd listen_fd);
  InitServer(const InitServer&) = delete;
  InitServer& operator=(const InitServer&) = delete;
  ~InitServer();

  // Runs until the host acknowledged the main process's exit; returns the exit code for sbx-init.
  int Run();

 private:
  struct Conn;
  struct Exec;

  Status Setup();
  void SetLifetimeDeadline();  // from config_.deadline_unix_ns
  void Loop();
  void Dispatch(uint64_t key, uint32_t events);
  int NextTimeout() const;
  void RunTimers();

  // Connections.
  void Accept();
  void OnConnReadable(Conn& conn);
  void OnConnWritable(Conn& conn);
  void HandleFrame(Conn& conn, Frame frame);
  void HandleRequest(Conn& conn, Frame frame);
  void Send(Conn& conn, MsgType type, const std::string& payload);
  void SendError(Conn& conn, const Error& error);
  void Flush(Conn& conn);
  void UpdateConnEvents(Conn& conn);
  void CloseConn(uint64_t id);
  void CloseAfterFlush(Conn& conn);

  // Execs.
  void StartExec(Conn& conn, const ExecStart& request);
  void OnExecOutput(Exec& exec, bool is_stderr);
  void OnExecStdinWritable(Exec& exec);
  void WriteExecStdin(Exec& exec);
  void MaybeFinishExec(Exec& exec);
  void FinishExec(uint64_t id);
  void PauseExec(Exec& exec, bool paused);
  void UpdateExecEvents(Exec& exec);

  // Files.
  void StartFileRead(Conn& conn, const FileRead& request);
  void PumpFileRead(Conn& conn);
  void StartFileWrite(Conn& conn, const FileWrite& request);
  // kMkdir, kSymlink and kReadlink: one request, one answer.
  void HandleLinkOrDirectory(Conn& conn, const Frame& frame);

  // Main process and logs.
  void StartMain();
  void OnMainOutput(bool is_stderr);
  void OnMainExit(int status);
  void SignalMain(int sig);
  StatusReply BuildStatus() const;
  void PumpLogs(Conn& conn);
  void NotifyMainWaiters();

  void OnSignal();
  void Reap();

  Status Register(int fd, uint64_t key, uint32_t events);
  void Modify(int fd, uint64_t key, uint32_t events);
  void Unregister(int fd);

  InitConfig config_;
  UniqueFd listen_fd_;
  UniqueFd epoll_fd_;
  UniqueFd signal_fd_;
  UniqueFd root_fd_;
  UniqueFd null_fd_;
  LogRing logs_;

  struct MainState {
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
  } main_;
  int64_t lifetime_deadline_ms_ = -1;

  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::map<uint64_t, std::unique_ptr<Exec>> execs_;
  std::map<pid_t, uint64_t> exec_by_pid_;
  bool exit_requested_ = false;
};

}  // namespace sbx::agent
