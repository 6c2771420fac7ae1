#include "src/sys/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "src/base/strings.h"
#include "src/sys/socket.h"

namespace sbx::sys {

namespace {

struct HostPort {
  std::string host;  // empty: every address
  std::string port;
};

Result<HostPort> SplitHostPort(const std::string& address) {
  HostPort out;
  std::string_view rest = address;
  if (StartsWith(rest, "[")) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos || rest.substr(close + 1, 1) != ":") {
      return Error::InvalidArgument("address " + Quote(address) + " is not [host]:port");
    }
    out.host = std::string(rest.substr(1, close - 1));
    out.port = std::string(rest.substr(close + 2));
  } else {
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos) {
      return Error::InvalidArgument("address " + Quote(address) + " is not host:port");
    }
    out.host = std::string(rest.substr(0, colon));
    out.port = std::string(rest.substr(colon + 1));
    if (out.host.find(':') != std::string::npos) {
      return Error::InvalidArgument("address " + Quote(address) +
                                    ": write an IPv6 host in brackets, as [::1]:7443");
    }
  }
  auto port = ParseUint64(out.port);
  if (!port || *port > 65535) {
    return Error::InvalidArgument("address " + Quote(address) + " has no valid port");
  }
  return out;
}

// JUSTIFICATION (the casts below): the socket API passes addresses as sockaddr_storage or a
// generic sockaddr; the family field says which concrete type the bytes are.
sockaddr* Generic(sockaddr_storage* addr) { return reinterpret_cast<sockaddr*>(addr); }
sockaddr_in* In4(sockaddr_storage* addr) { return reinterpret_cast<sockaddr_in*>(addr); }
sockaddr_in6* In6(sockaddr_storage* addr) { return reinterpret_cast<sockaddr_in6*>(addr); }
const sockaddr_in* In4(const sockaddr_storage* addr) {
  return reinterpret_cast<const sockaddr_in*>(addr);
}
const sockaddr_in6* In6(const sockaddr_storage* addr) {
  return reinterpret_cast<const sockaddr_in6*>(addr);
}

void SetPort(sockaddr_storage* addr, int port) {
  if (addr->ss_family == AF_INET) {
    In4(addr)->sin_port = htons(static_cast<uint16_t>(port));
  } else {
    In6(addr)->sin6_port = htons(static_cast<uint16_t>(port));
  }
}

int GetPort(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) return ntohs(In4(&addr)->sin_port);
  return ntohs(In6(&addr)->sin6_port);
}

struct Candidate {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

Result<std::vector<Candidate>> Resolve(const HostPort& hp, const std::string& address) {
  std::vector<Candidate> out;
  if (hp.host.empty()) {
    // Every address: one dual-stack IPv6 socket, or IPv4 alone on a host without IPv6.
    Candidate v6;
    sockaddr_in6* in6 = In6(&v6.addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_any;
    v6.len = sizeof(sockaddr_in6);
    out.push_back(v6);
    return out;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &found);
  if (rc != 0) {
    return Error::InvalidArgument("resolve " + Quote(address) + ": " + gai_strerror(rc));
  }
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    Candidate c;
    memcpy(&c.addr, ai->ai_addr, ai->ai_addrlen);
    c.len = ai->ai_addrlen;
    bool seen = false;
    for (const auto& o : out) seen |= o.len == c.len && memcmp(&o.addr, &c.addr, c.len) == 0;
    if (!seen) out.push_back(c);
  }
  freeaddrinfo(found);
  if (out.empty()) return Error::InvalidArgument(Quote(address) + " resolves to no IP address");
  return out;
}

Result<UniqueFd> BindOne(Candidate& c, bool v6_only, int backlog, const std::string& address) {
  UniqueFd fd(::socket(c.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::Errno("socket for " + address);
  int one = 1;
  // SO_REUSEADDR lets a restarted server bind while its old connections linger in TIME_WAIT; it
  // never admits a second listener. SECURITY: SO_REUSEPORT is left off, so no other process can
  // bind this address beside us and take a share of the connections.
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    return Error::Errno("setsockopt SO_REUSEADDR");
  }
  if (c.addr.ss_family == AF_INET6) {
    int only = v6_only ? 1 : 0;
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only) != 0) {
      return Error::Errno("setsockopt IPV6_V6ONLY");
    }
  }
  if (::bind(fd.get(), Generic(&c.addr), c.len) != 0 || ::listen(fd.get(), backlog) != 0) {
    int err = errno;
    Error e = Error::FromErrno(err, "listen on " + address);
    if (err == EADDRINUSE) {
      e.WithCode(Code::kUnavailable);
      e.Wrap("another process holds the address");
    }
    return e;
  }
  return fd;
}

}  // namespace

Result<TcpListener> ListenTcp(const std::string& address, int backlog) {
  SBX_ASSIGN_OR_RETURN(HostPort hp, SplitHostPort(address));
  SBX_ASSIGN_OR_RETURN(std::vector<Candidate> candidates, Resolve(hp, address));
  bool pick_port = hp.port == "0";
  // With several addresses and port 0, the port the first one got may be taken on another; try
  // a few times before giving up.
  for (int attempt = 0;; ++attempt) {
    TcpListener out;
    Status failed = Ok();
    for (auto& c : candidates) {
      if (out.port != 0) SetPort(&c.addr, out.port);
      // A single IPv6 wildcard serves IPv4 too; beside an explicit IPv4 address it must not.
      bool v6_only = candidates.size() > 1;
      auto fd = BindOne(c, v6_only, backlog, address);
      if (!fd && hp.host.empty() && fd.error().sys_errno() == EAFNOSUPPORT) {
        Candidate v4;
        sockaddr_in* in = In4(&v4.addr);
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_ANY);
        in->sin_port = htons(static_cast<uint16_t>(*ParseUint64(hp.port)));
        v4.len = sizeof(sockaddr_in);
        c = v4;
        fd = BindOne(c, false, backlog, address);
      }
      if (!fd) {
        failed = std::move(fd).error();
        break;
      }
      if (out.port == 0) {
        sockaddr_storage bound{};
        socklen_t len = sizeof bound;
        if (::getsockname(fd->get(), Generic(&bound), &len) != 0)
          return Error::Errno("getsockname");
        out.port = GetPort(bound);
      }
      out.fds.push_back(std::move(*fd));
    }
    if (failed) return out;
    if (!pick_port || attempt >= 10 || failed.error().sys_errno() != EADDRINUSE) {
      return std::move(failed).error();
    }
    for (auto& c : candidates) SetPort(&c.addr, 0);
  }
}

Result<UniqueFd> ListenUnixExclusive(const std::string& path, mode_t mode, gid_t gid, int backlog) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Error::InvalidArgument("unix socket path " + Quote(path) + " is empty or longer than " +
                                  std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  memcpy(addr.sun_path, path.data(), path.size());
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error::FailedPrecondition(Quote(path) + " exists and is not a socket");
    }
    // SECURITY: a socket someone still answers on belongs to a running server (another sbxd
    // with the same configuration); taking its path would steal its clients.
    if (auto live = ConnectUnix(path, 1000); live) {
      return Error(Code::kUnavailable,
                   "listen on " + Quote(path) + ": another process listens on it", EADDRINUSE);
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Error::Errno("remove stale socket " + Quote(path));
    }
  } else if (errno != ENOENT) {
    return Error::Errno("lstat " + Quote(path));
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::Errno("socket");
  // JUSTIFICATION: sockaddr_un is the documented argument type of bind(2).
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Error::Errno("bind " + Quote(path));
  }
  // The file exists from bind on, with the umask's mode; nobody can connect before listen, so
  // the final owner and mode are in place before the first client can be accepted.
  if (::chmod(path.c_str(), mode) != 0) return Error::Errno("chmod " + Quote(path));
  if (gid != static_cast<gid_t>(-1) && ::lchown(path.c_str(), 0, gid) != 0) {
    return Error::Errno("chown " + Quote(path));
  }
  if (::listen(fd.get(), backlog) != 0) return Error::Errno("listen " + Quote(path));
  return fd;
}

std::string PeerHost(const sockaddr_storage& peer) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (peer.ss_family == AF_INET) {
    inet_ntop(AF_INET, &In4(&peer)->sin_addr, text, sizeof text);
    return text;
  }
  if (peer.ss_family == AF_INET6) {
    const in6_addr& a = In6(&peer)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      inet_ntop(AF_INET, &a.s6_addr[12], text, sizeof text);
    } else {
      inet_ntop(AF_INET6, &a, text, sizeof text);
    }
    return text;
  }
  return "unix";
}

Acceptor::Acceptor() : reserve_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

Result<UniqueFd> Acceptor::Accept(int listen_fd, sockaddr_storage* peer) {
  if (!reserve_) reserve_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  sockaddr_storage ignored{};
  sockaddr_storage* from = peer != nullptr ? peer : &ignored;
  socklen_t len = sizeof *from;
  int fd = ::accept4(listen_fd, Generic(from), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) return UniqueFd(fd);
  int err = errno;
  if ((err == EMFILE || err == ENFILE) && reserve_) {
    reserve_.reset();
    UniqueFd shed(::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    shed.reset();
    reserve_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  }
  return Error::FromErrno(err, "accept");
}

}  // namespace sbx::sys
