// File: server_loop.h
//
// The narrow interface between sbx-init's event loop (init_server.h) and the concerns it serves:
// exec sessions (exec_sessions.h), file operations (file_ops.h) and the main process with its logs
// (main_process.h). The loop owns the epoll set and the host's connections; a concern watches its
// own descriptors through it and answers on a connection by sending frames. Each host connection
// is one operation, and `Conn` says which one it became after its first frame.

#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "src/agent/connection.h"
#include "src/agent/init/files.h"
#include "src/agent/protocol.h"
#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::agent {

// Output queued for the host beyond this stops reading from its source (a process's pipe, a file,
// the log ring) until the host has read it.
inline constexpr size_t kOutHighWater = 256u << 10;

// Epoll keys: the top byte says what the descriptor is, the rest is the owning object's id.
enum class WatchKind : uint64_t {
  kListen = 1,
  kSignal = 2,
  kConn = 3,
  kExecOut = 4,
  kExecErr = 5,
  kExecIn = 6,
  kMainOut = 7,
  kMainErr = 8,
};

inline uint64_t WatchKey(WatchKind kind, uint64_t id) {
  return (static_cast<uint64_t>(kind) << 56) | id;
}
inline WatchKind WatchKindOf(uint64_t key) { return static_cast<WatchKind>(key >> 56); }
inline uint64_t WatchIdOf(uint64_t key) { return key & ((1ull << 56) - 1); }

// One connection from the host and the operation it carries.
struct Conn {
  enum class Kind { kNew, kExec, kFileRead, kFileWrite, kLogs, kWaitMain, kDone };
  uint64_t id = 0;
  UniqueFd fd;
  FrameBuffer in;
  std::string out;  // encoded frames; out_pos of them already sent
  size_t out_pos = 0;
  Kind kind = Kind::kNew;
  bool close_after_flush = false;
  bool read_paused = false;
  uint32_t events = 0;
  // kExec: the session it drives (0 once the session has ended).
  uint64_t exec_id = 0;
  // kFileRead: the file being streamed; kFileWrite: the replacement being written.
  UniqueFd file;
  std::unique_ptr<PendingWrite> write;
  // kLogs: the next offset to send, and whether to wait for more output.
  uint64_t log_offset = 0;
  bool log_follow = false;

  size_t pending() const { return out.size() - out_pos; }
};

class ServerLoop {
 public:
  virtual ~ServerLoop() = default;

  virtual Status Watch(int fd, uint64_t key, uint32_t events) = 0;
  virtual void Rewatch(int fd, uint64_t key, uint32_t events) = 0;
  virtual void Unwatch(int fd) = 0;

  // The open connection with this id, or null once it is closed. Any call below may close a
  // connection (the host went away, or it was finishing): callers look it up again afterwards.
  Conn* FindConn(uint64_t id) {
    auto it = conns_.find(id);
    return it == conns_.end() ? nullptr : it->second.get();
  }
  // Ids of the open connections of these kinds, in the order they were accepted.
  std::vector<uint64_t> ConnsOfKind(std::initializer_list<Conn::Kind> kinds) const {
    std::vector<uint64_t> ids;
    for (const auto& [id, conn] : conns_) {
      for (Conn::Kind kind : kinds) {
        if (conn->kind == kind) ids.push_back(id);
      }
    }
    return ids;
  }

  // Queues a frame and sends what the socket takes now.
  virtual void Send(Conn& conn, MsgType type, std::string_view payload) = 0;
  // Sends what is queued, then closes: the connection takes no further frames.
  virtual void CloseAfterFlush(Conn& conn) = 0;
  // Stops or resumes reading frames from the host (backpressure on its stdin).
  virtual void PauseReading(Conn& conn) = 0;
  virtual void ResumeReading(Conn& conn) = 0;

  void SendError(Conn& conn, const Error& error) {
    Send(conn, MsgType::kError, ErrorReply::FromError(error).Encode());
  }
  // The answer to a request that ends the connection: an error.
  void Fail(Conn& conn, const Error& error) {
    SendError(conn, error);
    if (Conn* open = FindConn(conn.id)) CloseAfterFlush(*open);
  }
  // The answer to a request that ends the connection: one frame.
  void Reply(Conn& conn, MsgType type, std::string_view payload) {
    Send(conn, type, payload);
    if (Conn* open = FindConn(conn.id)) CloseAfterFlush(*open);
  }

 protected:
  // The open connections, by id (ids are never reused).
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;
};

}  // namespace sbx::agent
