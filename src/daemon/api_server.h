// File: api_server.h
//
// sbxd's API: two gRPC servers on the sockets of an ApiListener (api_listener.h).
//
//   * The local server answers on the unix socket. Callers are trusted by the socket's file
//     permissions (auth.h, ApiSide::kLocal).
//   * The remote server answers on TCP. A request's API key is checked on its metadata before
//     its body is read (api_key_credentials.h); TLS when `tls_cert` and `tls_key` are set; a
//     connection that has not finished its handshake (TLS and HTTP/2 settings) within
//     `tcp_handshake_timeout_seconds`, or that carries no call for `tcp_idle_timeout_seconds`, is
//     closed; keepalive pings find peers that went away.
//
// Each server has its own instances of the services, bound to its side's Authenticator, so a TCP
// caller can never pass for a local one. Both accept messages of at most `max_file_bytes` plus
// 4 MiB: a WriteFile of the largest file, the largest request of any method, with room for its
// envelope and for a write a little over the limit to get CWSANDBOX_FILE_TOO_LARGE (gRPC bounds
// messages per server, not per method). A larger message is refused as it arrives, once that much
// of it has been buffered. Every call goes through the call-scope interceptor (call_scope.h).

#pragma once

#include <memory>
#include <string>

#include "src/base/result.h"
#include "src/daemon/byte_budget.h"
#include "src/daemon/config.h"
#include "src/daemon/connection_limiter.h"
#include "src/daemon/image_store_provider.h"
#include "src/daemon/metrics.h"
#include "src/daemon/sandbox_manager.h"
#include "src/net/network_provider.h"

namespace sbx::daemon {

struct ApiDependencies {
  SandboxManager* manager = nullptr;
  ImageStoreProvider* images = nullptr;
  Metrics* metrics = nullptr;
  net::NetworkProvider* network = nullptr;
  ByteBudget* response_memory = nullptr;
  std::string cgroup_version;
};

// The largest message either server receives.
int MaxRequestBytes(const Config& config);

class ApiServer {
 public:
  // Binds the unix socket, and the TCP address when configured: first thing at start, so that
  // sbxd refuses to start, before it touches any state, when another process holds them.
  static Result<std::unique_ptr<ApiServer>> Bind(const Config& config);
  virtual ~ApiServer() = default;
  // Starts both gRPC servers and accepting connections.
  virtual Status Serve(const ApiDependencies& deps) = 0;
  // Stops accepting connections; running calls get a few seconds to finish.
  virtual void Shutdown() = 0;
  // The TCP port bound (any free one when the configuration says 0), or 0 without TCP.
  virtual int tcp_port() const = 0;
  virtual ConnectionLimits connection_limits() const = 0;
  virtual ConnectionCounts connections() const = 0;
};

}  // namespace sbx::daemon
