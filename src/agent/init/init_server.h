// File: init_server.h
//
// InitServer is sbx-init: PID 1 of a sandbox. It serves the sbx-init protocol (protocol.h) on the
// listening socket it inherited, one operation per connection, and reaps every process (orphans
// included). It is a single-threaded epoll loop: this file accepts connections, reads their
// frames, sends what is queued on them, and hands each operation to the concern that serves it:
//
//   exec_sessions.h  kExecStart: a process with its stdin, output and exit
//   file_ops.h       kFileRead, kFileWrite, kStat, kListDir, kMkdir, kSymlink, kReadlink
//   main_process.h   kStatus, kWaitMain, kAckExit, kSignalMain, kStartMain, kLogs; the main
//                    process, its output ring, its lifetime, and the host's signals
//
// They reach the loop only through ServerLoop (server_loop.h). Every stream is bounded: output
// the host does not read stops being read from its source, and stdin the process does not read
// stops being read from the host.

#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "src/agent/init/exec_sessions.h"
#include "src/agent/init/file_ops.h"
#include "src/agent/init/main_process.h"
#include "src/agent/init/server_loop.h"
#include "src/agent/protocol.h"
#include "src/base/unique_fd.h"

namespace sbx::agent {

class InitServer : private ServerLoop {
 public:
  InitServer(InitConfig config, UniqueFd listen_fd);
  InitServer(const InitServer&) = delete;
  InitServer& operator=(const InitServer&) = delete;
  ~InitServer() override;

  // Runs until the host acknowledged the main process's exit; returns the exit code for sbx-init.
  int Run();

 private:
  Status Setup();
  void Loop();
  void Dispatch(uint64_t key, uint32_t events);
  int NextTimeout() const;
  void RunTimers();

  void Accept();
  void OnConnReadable(Conn& conn);
  void OnConnWritable(Conn& conn);
  void HandleFrame(Conn& conn, Frame frame);
  void HandleRequest(Conn& conn, const Frame& frame);
  void Flush(Conn& conn);
  void UpdateConnEvents(Conn& conn);
  void CloseConn(uint64_t id);

  void OnSignal();
  void Reap();

  // ServerLoop
  Status Watch(int fd, uint64_t key, uint32_t events) override;
  void Rewatch(int fd, uint64_t key, uint32_t events) override;
  void Unwatch(int fd) override;
  void Send(Conn& conn, MsgType type, std::string_view payload) override;
  void CloseAfterFlush(Conn& conn) override;
  void PauseReading(Conn& conn) override;
  void ResumeReading(Conn& conn) override;

  InitConfig initial_config_;  // handed to main_ once set up
  UniqueFd listen_fd_;
  UniqueFd epoll_fd_;
  UniqueFd signal_fd_;
  UniqueFd root_fd_;
  UniqueFd null_fd_;

  uint64_t next_conn_id_ = 1;
  // Made by Setup(), in this order: the others take their defaults from the main process's
  // configuration.
  std::unique_ptr<MainProcess> main_;
  std::unique_ptr<ExecSessions> execs_;
  std::unique_ptr<FileOps> files_;
};

}  // namespace sbx::agent
