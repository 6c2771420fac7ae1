#include "src/daemon/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "src/base/strings.h"
#include "src/sys/listener.h"

namespace sbx::daemon {

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start(const std::string& address, Handler metrics) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos)
    return Error::InvalidArgument("metrics address must be host:port");
  std::string host = address.substr(0, colon);
  auto port = ParseUint64(address.substr(colon + 1));
  if (!port || *port > 65535)
    return Error::InvalidArgument("bad metrics port in " + Quote(address));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(*port));
  if (inet_pton(AF_INET, host.empty() ? "0.0.0.0" : host.c_str(), &addr.sin_addr) != 1) {
    return Error::InvalidArgument("bad metrics host in " + Quote(address));
  }
  listen_fd_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listen_fd_) return Error::Errno("socket");
  int one = 1;
  setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // JUSTIFICATION: sockaddr_in is the documented argument type of bind(2).
  if (bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Error::Errno("bind metrics " + address);
  }
  if (listen(listen_fd_.get(), 16) != 0) return Error::Errno("listen");
  socklen_t len = sizeof addr;
  getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  stop_fd_.reset(eventfd(0, EFD_CLOEXEC));
  handler_ = std::move(metrics);
  thread_ = std::thread([this] { Serve(); });
  return Ok();
}

void HttpServer::Stop() {
  if (stop_fd_) {
    uint64_t one = 1;
    (void)!write(stop_fd_.get(), &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
}

void HttpServer::Serve() {
  sys::Acceptor acceptor;
  bool paused = false;
  while (true) {
    // Out of descriptors, the listener rests a moment instead of spinning on it.
    pollfd fds[2] = {{paused ? -1 : listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    if (poll(fds, 2, paused ? 100 : -1) < 0) continue;
    if (fds[1].revents) return;
    paused = false;
    if (fds[0].revents == 0) continue;
    auto accepted = acceptor.Accept(listen_fd_.get());
    if (!accepted) {
      int err = accepted.error().sys_errno();
      paused = err == EMFILE || err == ENFILE;
      continue;
    }
    UniqueFd conn = std::move(*accepted);
    // The accepted socket is non-blocking; this server reads with a timeout instead.
    fcntl(conn.get(), F_SETFL, fcntl(conn.get(), F_GETFL) & ~O_NONBLOCK);
    timeval tv{2, 0};
    setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string request;
    char buf[2048];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 8192) {
      ssize_t n = recv(conn.get(), buf, sizeof buf, 0);
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    std::string status = "404 Not Found";
    std::string body = "not found\n";
    std::string type = "text/plain";
    if (StartsWith(request, "GET /metrics ") || StartsWith(request, "GET /metrics?")) {
      status = "200 OK";
      body = handler_();
      type = "text/plain; version=0.0.4";
    }
    std::string response = "HTTP/1.0 " + status + "\r\nContent-Type: " + type +
                           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    (void)!send(conn.get(), response.data(), response.size(), MSG_NOSIGNAL);
  }
}

}  // namespace sbx::daemon
