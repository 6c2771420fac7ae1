// File: exec_sessions.h
//
// The processes the host runs in the sandbox (kExecStart), one per connection: started with pipes
// or a terminal, stdin from the host's frames, stdout and stderr back as kOutput frames, and kExit
// once the process has exited and its output is drained. Closing the connection kills the
// session's process tree, and so does its timeout.
//
// Every stream is bounded: output the host does not read stops being read from the process (the
// pipe fills and the writer blocks); stdin the process does not read stops being read from the
// host.

#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string_view>

#include "src/agent/connection.h"
#include "src/agent/init/server_loop.h"
#include "src/agent/protocol.h"

namespace sbx::agent {

class ExecSessions {
 public:
  // `config` is the sandbox's (its user, environment and working directory are the defaults of
  // every session); `null_fd` is /dev/null, the stdin of a session without one.
  ExecSessions(ServerLoop& loop, const InitConfig& config, int null_fd);
  ExecSessions(const ExecSessions&) = delete;
  ExecSessions& operator=(const ExecSessions&) = delete;
  ~ExecSessions();

  // kExecStart on a new connection: starts the process and answers kExecStarted, or kError.
  void Start(Conn& conn, std::string_view payload);
  // A frame from the host on a session's connection: stdin, resize, signal, kill.
  void OnFrame(Conn& conn, const Frame& frame);
  // The host's end is readable again below the high-water mark: resume reading output.
  void OnConnDrained(Conn& conn);
  // The host hung up on a session: its process tree is killed.
  void Kill(uint64_t exec_id);
  // The session's connection is closed: its output has nowhere to go any more.
  void Detach(uint64_t exec_id);

  // Epoll events on a session's descriptors.
  void OnOutput(uint64_t exec_id, bool is_stderr);
  void OnStdinWritable(uint64_t exec_id);

  // A reaped child. Returns false when it is not a session's process.
  bool OnExit(pid_t pid, int status);
  // The earliest timeout or drain deadline (CLOCK_MONOTONIC ms), -1 for none.
  int64_t NextDeadline() const;
  void RunTimers(int64_t now_ms);

 private:
  struct Exec;

  Exec* Find(uint64_t id);
  void WriteStdin(Exec& exec);
  void MaybeFinish(Exec& exec);
  void Finish(uint64_t id);
  void SetPaused(Exec& exec, bool paused);
  void UpdateEvents(Exec& exec);
  // Queues output on the session's connection without sending it yet.
  void QueueOutput(const Exec& exec, bool is_stderr, std::string data);
  void ClosePipe(UniqueFd& fd);

  ServerLoop& loop_;
  const InitConfig& config_;
  int null_fd_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Exec>> execs_;
  std::map<pid_t, uint64_t> exec_by_pid_;
};

}  // namespace sbx::agent
