// File: file_ops.h
//
// The file operations the host asks of sbx-init, one per connection: a read streamed back in
// chunks as the host takes them (kFileRead), a write streamed in and committed atomically
// (kFileWrite), and the one-answer operations (kStat, kListDir, kMkdir, kSymlink, kReadlink).
// Paths are the host's, relative ones against the sandbox's working directory, and resolve inside
// the sandbox's root (files.h); what is created is owned by the sandbox's user.

#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "src/agent/connection.h"
#include "src/agent/init/server_loop.h"
#include "src/agent/protocol.h"

namespace sbx::agent {

class FileOps {
 public:
  // `config` is the sandbox's (working directory, user); `root_fd` its root (O_PATH).
  FileOps(ServerLoop& loop, const InitConfig& config, int root_fd);
  FileOps(const FileOps&) = delete;
  FileOps& operator=(const FileOps&) = delete;

  // Whether `type` is a request this class answers.
  static bool Handles(MsgType type);
  // The first frame of a connection, a request of a type Handles() accepts.
  void Start(Conn& conn, const Frame& frame);
  // A further frame from the host on a kFileWrite connection: kFileData or kFileEnd. False for
  // any other frame, which has no place in a write: the connection is to be closed.
  bool OnFrame(Conn& conn, const Frame& frame);
  // The host's end of a kFileRead connection drained: read on.
  void OnConnDrained(Conn& conn);

 private:
  // A request that names a path, and that path made absolute.
  template <typename Request>
  struct Resolved {
    Request request;
    std::string path;
  };
  // Decodes the request and resolves its path; on failure, answers the error and ends the
  // connection.
  template <typename Request>
  std::optional<Resolved<Request>> Resolve(Conn& conn, std::string_view payload);

  void StartRead(Conn& conn, std::string_view payload);
  void PumpRead(Conn& conn);
  void StartWrite(Conn& conn, std::string_view payload);
  void Stat(Conn& conn, std::string_view payload);
  void ListDir(Conn& conn, std::string_view payload);
  void Mkdir(Conn& conn, std::string_view payload);
  void Symlink(Conn& conn, std::string_view payload);
  void Readlink(Conn& conn, std::string_view payload);

  ServerLoop& loop_;
  const InitConfig& config_;
  int root_fd_;
};

}  // namespace sbx::agent
