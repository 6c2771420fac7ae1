// File: connection_limiter.h
//
// How many API connections sbxd holds open: unix-socket connections, TCP connections, and TCP
// connections from any one client host, each up to a limit. Admitting a connection records it;
// it counts until the descriptor it came on is closed, which the limiter learns by asking
// `still_open` (the connection's descriptor belongs to gRPC once handed over, so nothing tells
// sbxd when it closes). Counts are refreshed lazily, when a limit is reached, and by Sweep().
//
//   ConnectionLimiter limiter({.local = 4096, .remote = 1024, .per_host = 256}, StillOpen);
//   if (!limiter.Admit(ConnectionKind::kRemote, "203.0.113.7", fd, inode)) close(fd);
//
// Thread-compatible: one accept loop uses it (Counts may be read from elsewhere under the
// caller's own lock).

#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace sbx::daemon {

enum class ConnectionKind { kLocal, kRemote };

struct ConnectionLimits {
  size_t local = 0;     // unix-socket connections
  size_t remote = 0;    // TCP connections
  size_t per_host = 0;  // TCP connections from one client address
};

struct ConnectionCounts {
  size_t local = 0;
  size_t remote = 0;
  size_t refused_local = 0;   // since start
  size_t refused_remote = 0;  // since start
};

class ConnectionLimiter {
 public:
  // Whether descriptor `fd` is still the connection admitted as `identity`.
  using StillOpen = std::function<bool(int fd, uint64_t identity)>;

  ConnectionLimiter(ConnectionLimits limits, StillOpen still_open)
      : limits_(limits), still_open_(std::move(still_open)) {}

  // Records the new connection on `fd` and returns true when it fits the limits; false (nothing
  // recorded) when it does not, after forgetting connections closed meanwhile. A connection
  // recorded earlier on the same descriptor number is closed by definition and is forgotten.
  bool Admit(ConnectionKind kind, const std::string& host, int fd, uint64_t identity);

  // Forgets every connection whose descriptor has been closed.
  void Sweep();

  ConnectionCounts Counts() const;
  const ConnectionLimits& limits() const { return limits_; }

 private:
  struct Connection {
    ConnectionKind kind;
    std::string host;
    uint64_t identity;
  };
  bool Fits(ConnectionKind kind, const std::string& host) const;
  void Forget(std::map<int, Connection>::iterator it);

  ConnectionLimits limits_;
  StillOpen still_open_;
  std::map<int, Connection> by_fd_;
  std::map<std::string, size_t> per_host_;
  size_t local_ = 0;
  size_t remote_ = 0;
  size_t refused_local_ = 0;
  size_t refused_remote_ = 0;
};

}  // namespace sbx::daemon
