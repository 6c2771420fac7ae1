// File: http_server.h
//
// A minimal HTTP/1.0 server for the Prometheus endpoint: GET /metrics answers with the
// registry's text; anything else is 404. One thread, one request per connection, bounded reads.

#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::daemon {

class HttpServer {
 public:
  using Handler = std::function<std::string()>;
  ~HttpServer();
  // `address` is "host:port"; port 0 picks a free port (see port()).
  Status Start(const std::string& address, Handler metrics);
  void Stop();
  int port() const { return port_; }

 private:
  void Serve();
  UniqueFd listen_fd_;
  UniqueFd stop_fd_;
  Handler handler_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace sbx::daemon
