#include "src/daemon/api_listener.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "src/base/clock.h"
#include "src/base/log.h"

namespace sbx::daemon {

namespace {

// How long a socket rests after the process ran out of descriptors.
constexpr int64_t kExhaustedPauseMs = 100;
// How often connections closed by gRPC are counted out when nothing else prompts it.
constexpr int64_t kSweepIntervalMs = 1000;
// Accepts per socket per wakeup, so one busy socket cannot starve the others.
constexpr int kAcceptBurst = 64;
constexpr int64_t kLogIntervalMs = 10000;

bool StillOpen(int fd, uint64_t identity) {
  struct stat st {};
  return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == identity;
}

}  // namespace

Result<std::unique_ptr<ApiListener>> ApiListener::Listen(const Options& options) {
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0) return Error::Errno("getrlimit RLIMIT_NOFILE");
  size_t descriptors = nofile.rlim_cur == RLIM_INFINITY ? size_t{1} << 20 : nofile.rlim_cur;
  ConnectionLimits limits;
  limits.local = std::max<size_t>(16, descriptors / 4);
  limits.remote = std::min(options.tcp_max_connections, descriptors / 2);
  limits.per_host = std::min(options.tcp_max_connections_per_client, limits.remote);
  if (!options.tcp_address.empty() && limits.remote < options.tcp_max_connections) {
    SBX_LOG_WARN(
        "tcp_max_connections is {} but sbxd may open only {} descriptors: at most {} TCP "
        "connections are accepted",
        options.tcp_max_connections, descriptors, limits.remote);
  }

  std::vector<Socket> sockets;
  SBX_ASSIGN_OR_RETURN(
      UniqueFd unix_fd,
      sys::ListenUnixExclusive(options.unix_path, options.unix_mode, options.unix_gid));
  sockets.push_back({std::move(unix_fd), ConnectionKind::kLocal});
  int tcp_port = 0;
  if (!options.tcp_address.empty()) {
    SBX_ASSIGN_OR_RETURN(sys::TcpListener tcp, sys::ListenTcp(options.tcp_address));
    tcp_port = tcp.port;
    for (auto& fd : tcp.fds) sockets.push_back({std::move(fd), ConnectionKind::kRemote});
  }
  UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake) return Error::Errno("eventfd");
  return std::unique_ptr<ApiListener>(
      new ApiListener(std::move(sockets), tcp_port, limits, std::move(wake)));
}

ApiListener::ApiListener(std::vector<Socket> sockets, int tcp_port, ConnectionLimits limits,
                         UniqueFd wake)
    : sockets_(std::move(sockets)),
      tcp_port_(tcp_port),
      limits_(limits),
      wake_(std::move(wake)),
      limiter_(limits, StillOpen) {}

ApiListener::~ApiListener() { Stop(); }

void ApiListener::Start(GrpcAcceptor* local, GrpcAcceptor* remote) {
  local_ = local;
  remote_ = remote;
  thread_ = std::thread([this] { Loop(); });
}

void ApiListener::Stop() {
  if (stopping_.exchange(true)) return;
  uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  sockets_.clear();
}

ConnectionCounts ApiListener::Counts() const {
  std::lock_guard lock(mu_);
  return limiter_.Counts();
}

void ApiListener::Loop() {
  int64_t next_sweep = MonotonicMillis() + kSweepIntervalMs;
  std::vector<pollfd> polled;
  std::vector<Socket*> owners;
  while (!stopping_) {
    int64_t now = MonotonicMillis();
    int64_t wake_at = next_sweep;
    polled.assign(1, pollfd{wake_.get(), POLLIN, 0});
    owners.assign(1, nullptr);
    for (auto& s : sockets_) {
      if (s.paused_until_ms > now) {
        wake_at = std::min(wake_at, s.paused_until_ms);
        continue;
      }
      polled.push_back({s.fd.get(), POLLIN, 0});
      owners.push_back(&s);
    }
    int timeout = static_cast<int>(std::clamp<int64_t>(wake_at - now, 0, kSweepIntervalMs));
    if (poll(polled.data(), polled.size(), timeout) < 0 && errno != EINTR) {
      SBX_LOG_ERROR("api listener: poll: {}", strerror(errno));
      return;
    }
    if (stopping_ || (polled[0].revents & POLLIN)) return;
    for (size_t i = 1; i < polled.size(); ++i) {
      if (polled[i].revents != 0) AcceptAll(*owners[i]);
    }
    if (MonotonicMillis() >= next_sweep) {
      std::lock_guard lock(mu_);
      limiter_.Sweep();
      next_sweep = MonotonicMillis() + kSweepIntervalMs;
    }
  }
}

void ApiListener::AcceptAll(Socket& socket) {
  GrpcAcceptor* target = socket.kind == ConnectionKind::kLocal ? local_ : remote_;
  for (int i = 0; i < kAcceptBurst; ++i) {
    sockaddr_storage peer{};
    auto conn = acceptor_.Accept(socket.fd.get(), &peer);
    if (!conn) {
      int err = conn.error().sys_errno();
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EMFILE || err == ENFILE) {
        int64_t now = MonotonicMillis();
        socket.paused_until_ms = now + kExhaustedPauseMs;
        if (now - last_exhausted_log_ms_ >= kLogIntervalMs) {
          last_exhausted_log_ms_ = now;
          SBX_LOG_WARN("sbxd is out of file descriptors; refusing new API connections meanwhile");
        }
        return;
      }
      continue;  // ECONNABORTED and the like concern that one connection only
    }
    struct stat st {};
    if (target == nullptr || fstat(conn->get(), &st) != 0) continue;
    std::string host = sys::PeerHost(peer);
    bool admitted;
    {
      std::lock_guard lock(mu_);
      admitted = limiter_.Admit(socket.kind, host, conn->get(), st.st_ino);
    }
    if (!admitted) {
      int64_t now = MonotonicMillis();
      if (now - last_refused_log_ms_ >= kLogIntervalMs) {
        last_refused_log_ms_ = now;
        auto counts = Counts();
        SBX_LOG_WARN(
            "refusing API connections over the limit ({} TCP of {}, {} per client; {} "
            "unix of {}); last from {}",
            counts.remote, limits_.remote, limits_.per_host, counts.local, limits_.local, host);
      }
      continue;  // closed: the client sees the refusal at once
    }
    GrpcAcceptor::NewConnectionParameters params;
    params.listener_fd = socket.fd.get();
    params.fd = conn->release();
    target->HandleNewConnection(&params);
  }
}

}  // namespace sbx::daemon
