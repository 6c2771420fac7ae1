// File: api_listener.h
//
// The sockets sbxd serves its API on. sbxd owns them and accepts on them itself, instead of
// leaving that to gRPC, so that it decides who gets a connection:
//
//   * the addresses are sbxd's alone (sys::ListenTcp, sys::ListenUnixExclusive): sbxd refuses to
//     start when another process holds or shares one;
//   * connections are counted (connection_limiter.h): TCP ones up to `tcp_max_connections`, and
//     `tcp_max_connections_per_client` from one client host; TCP connections never take more
//     than half of sbxd's descriptor limit and unix-socket ones more than a quarter, so the rest
//     stays for the sandboxes and for the other socket. A connection over a limit is accepted and
//     closed at once;
//   * running out of descriptors anyway sheds the pending connection and pauses that socket for
//     a moment (sys::Acceptor) instead of ending it.
//
// Accepted connections are handed to gRPC: unix-socket ones to the local server, TCP ones to the
// remote server (api_server.h), which own them from then on.
//
//   SBX_ASSIGN_OR_RETURN(auto listener, ApiListener::Listen(options));   // binds now
//   ... build the gRPC servers, each with an external connection acceptor ...
//   listener->Start(local_acceptor, remote_acceptor);
//   ...
//   listener->Stop();

#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/server_builder.h>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/daemon/connection_limiter.h"
#include "src/sys/listener.h"

namespace sbx::daemon {

class ApiListener {
 public:
  using GrpcAcceptor = grpc::experimental::ExternalConnectionAcceptor;

  struct Options {
    std::string unix_path;
    mode_t unix_mode = 0660;
    gid_t unix_gid = static_cast<gid_t>(-1);
    std::string tcp_address;  // "host:port"; empty: no TCP
    size_t tcp_max_connections = 0;
    size_t tcp_max_connections_per_client = 0;
  };

  // Binds the addresses now: sbxd fails to start rather than share them.
  static Result<std::unique_ptr<ApiListener>> Listen(const Options& options);
  ~ApiListener();

  // Starts accepting: unix-socket connections go to `local`, TCP ones to `remote` (which may be
  // null when there is no TCP address).
  void Start(GrpcAcceptor* local, GrpcAcceptor* remote);
  // Stops accepting and closes the listening sockets; connections already handed over stay.
  void Stop();

  int tcp_port() const { return tcp_port_; }
  const ConnectionLimits& limits() const { return limits_; }
  ConnectionCounts Counts() const;

 private:
  struct Socket {
    UniqueFd fd;
    ConnectionKind kind;
    int64_t paused_until_ms = 0;  // after running out of descriptors
  };

  ApiListener(std::vector<Socket> sockets, int tcp_port, ConnectionLimits limits, UniqueFd wake);
  void Loop();
  void AcceptAll(Socket& socket);

  std::vector<Socket> sockets_;
  int tcp_port_;
  ConnectionLimits limits_;
  sys::Acceptor acceptor_;
  UniqueFd wake_;
  GrpcAcceptor* local_ = nullptr;
  GrpcAcceptor* remote_ = nullptr;
  mutable std::mutex mu_;
  ConnectionLimiter limiter_;  // guarded by mu_
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  int64_t last_exhausted_log_ms_ = 0;
  int64_t last_refused_log_ms_ = 0;
};

}  // namespace sbx::daemon
