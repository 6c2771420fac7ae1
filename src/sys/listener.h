// File: listener.h
//
// Listening sockets a server owns alone, and accepting on them without ever stopping.
//
// Exclusive: a TCP address is bound without SO_REUSEPORT, so no other process can bind the same
// address beside it (the kernel would split new connections between the two), and binding fails
// when another socket already listens there. A unix socket path that a live server answers on is
// refused instead of being unlinked from under it. Every descriptor is CLOEXEC.
//
//   SBX_ASSIGN_OR_RETURN(TcpListener tcp, ListenTcp("0.0.0.0:7443"));
//   Acceptor acceptor;
//   auto conn = acceptor.Accept(tcp.fds[0].get(), &peer);  // non-blocking, CLOEXEC

#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::sys {

struct TcpListener {
  std::vector<UniqueFd> fds;  // one per address the host resolves to (e.g. ::1 and 127.0.0.1)
  int port = 0;               // the port bound (the one chosen when the address asked for 0)
};

// Listens on "host:port" ("0.0.0.0:7443", "[::1]:0", "localhost:7443", ":7443" for every
// address). Every address the host resolves to must be bound, or none is: kUnavailable
// (EADDRINUSE) when any is taken. Listening sockets are non-blocking.
Result<TcpListener> ListenTcp(const std::string& address, int backlog = 1024);

// Listens on the unix socket `path` with the file mode `mode` and group `gid` (-1: unchanged),
// both set before the socket accepts anything. A stale socket file is replaced; one that a
// process still listens on is kUnavailable (EADDRINUSE). The socket is non-blocking.
Result<UniqueFd> ListenUnixExclusive(const std::string& path, mode_t mode, gid_t gid = -1,
                                     int backlog = 1024);

// "1.2.3.4" or "::1" for an inet peer, "unix" for a unix one.
std::string PeerHost(const sockaddr_storage& peer);

// Accepts connections and survives the process running out of descriptors. When accept fails
// with EMFILE or ENFILE the connection stays in the kernel's queue, and a server that keeps
// polling spins, while one that stops polling never accepts again. Instead, a descriptor held in
// reserve is released for a moment to accept the pending connection and close it at once, so the
// client sees the refusal and the queue drains; the caller backs off and tries again later.
class Acceptor {
 public:
  // Opens the reserve descriptor (and again at each Accept, until it can).
  Acceptor();

  // A connection (non-blocking, CLOEXEC), or: kUnavailable with EAGAIN when none is pending;
  // kResourceExhausted when descriptors ran out (one pending connection was shed); other errors
  // as accept4 reports them (e.g. ECONNABORTED), all of which leave the listener usable.
  Result<UniqueFd> Accept(int listen_fd, sockaddr_storage* peer = nullptr);

 private:
  UniqueFd reserve_;
};

}  // namespace sbx::sys
