// File: client.h
//
// AgentClient is the host side of the sbx-init protocol: one connection per operation to the
// sandbox's socket. Every answer is validated (frame size, message shape, totals) because the
// sandbox is untrusted, and every call has a deadline.
//
//   AgentClient agent(bundle.socket_path());
//   SBX_ASSIGN_OR_RETURN(auto exec, agent.StartExec(request, 5000));
//   while (true) {
//     SBX_ASSIGN_OR_RETURN(auto event, exec.Next(deadline));
//     if (event.kind == ExecEvent::kExit) break;
//     ...
//   }

#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "src/agent/connection.h"
#include "src/agent/protocol.h"
#include "src/base/result.h"

namespace sbx::agent {

struct ExecEvent {
  enum Kind { kOutput, kExit };
  Kind kind = kOutput;
  Output output;
  ExitInfo exit;
};

class ExecStream {
 public:
  ExecStream() = default;
  ExecStream(Connection connection, int64_t pid) : conn_(std::move(connection)), pid_(pid) {}

  // The next output chunk or the exit; kDeadlineExceeded when nothing arrives in time (the exec
  // keeps running), kUnavailable if sbx-init went away.
  Result<ExecEvent> Next(int64_t deadline_ms);
  Status WriteStdin(std::string_view data, int64_t deadline_ms);
  Status CloseStdin();
  Status Resize(uint32_t rows, uint32_t cols);
  Status Signal(int sig);
  // Kills the exec's whole process tree; the stream then ends with its exit.
  Status Kill();

  int fd() const { return conn_.fd(); }
  bool HasBuffered() const { return conn_.HasBuffered(); }
  int64_t pid() const { return pid_; }
  bool finished() const { return finished_; }

 private:
  Connection conn_;
  int64_t pid_ = 0;
  bool finished_ = false;
};

class AgentClient {
 public:
  explicit AgentClient(std::string socket_path, int connect_timeout_ms = 5000)
      : socket_path_(std::move(socket_path)), connect_timeout_ms_(connect_timeout_ms) {}

  const std::string& socket_path() const { return socket_path_; }

  Result<StatusReply> GetStatus(int timeout_ms = 5000);
  // Blocks until the main process has exited (or the deadline passes: kDeadlineExceeded).
  Result<StatusReply> WaitMain(int64_t deadline_ms);
  Status AckExit(int timeout_ms = 5000);
  Status SignalMain(int sig, int timeout_ms = 5000);
  // The main process's new lifetime deadline (Unix ns; 0: none).
  Status SetDeadline(int64_t deadline_unix_ns, int timeout_ms = 5000);
  // Starts the main process of a sandbox created with InitConfig.await_start.
  Status StartMain(const InitConfig& config, int timeout_ms = 5000);

  Result<ExecStream> StartExec(const ExecStart& request, int timeout_ms = 10000);

  Result<FileInfo> Stat(const std::string& path, int timeout_ms = 10000);
  Result<DirEntries> ListDir(const std::string& path, int timeout_ms = 10000);
  // Creates the directory `path` (and missing parents when `make_parents`); an existing one is
  // kept as it is. Returns what is at `path` afterwards without following a final symlink, so the
  // caller can tell a directory from a link to one. Older sbx-init versions answer
  // kInvalidArgument.
  Result<FileInfo> MakeDirectory(const std::string& path, uint32_t mode, bool make_parents,
                                 int timeout_ms = 10000);
  // Creates or atomically replaces the symbolic link `path` -> `target`.
  Status MakeSymlink(const std::string& path, const std::string& target, bool make_parents,
                     int timeout_ms = 10000);
  Result<std::string> ReadSymlink(const std::string& path, int timeout_ms = 10000);

  // Streams a file's content to `sink` in chunks. Fails with kResourceExhausted (reason
  // CWSANDBOX_FILE_TOO_LARGE) if the file is larger than `max_bytes` (0: no limit). `on_info`,
  // when given, sees the file's metadata before any content arrives (to make room for it); an
  // error from it ends the read.
  Status ReadFile(const std::string& path, uint64_t max_bytes,
                  const std::function<Status(std::string_view)>& sink, FileInfo* info,
                  int timeout_ms = 60000,
                  const std::function<Status(const FileInfo&)>& on_info = {});
  Result<std::string> ReadFileToString(const std::string& path, uint64_t max_bytes,
                                       int timeout_ms = 60000);

  // Writes a file atomically: `next` returns successive chunks and an empty view at the end.
  Status WriteFile(const std::string& path, uint32_t mode,
                   const std::function<Result<std::string_view>()>& next, int timeout_ms = 60000);
  Status WriteFileFromString(const std::string& path, std::string_view content,
                             uint32_t mode = 0644, int timeout_ms = 60000);

  // Replays (and with follow, tails) the main process's output from `request.offset`. The sink
  // returns false to stop. `end` receives the final position.
  Status StreamLogs(const LogsRequest& request, const std::function<bool(const LogChunk&)>& sink,
                    LogEnd* end, int64_t deadline_ms);

 private:
  Result<Connection> Open(MsgType type, std::string_view payload, int timeout_ms);
  std::string socket_path_;
  int connect_timeout_ms_;
};

// Turns a kError frame into an Error; any other unexpected frame into kInternal.
Error UnexpectedFrame(const Frame& frame, std::string_view while_doing);

}  // namespace sbx::agent
