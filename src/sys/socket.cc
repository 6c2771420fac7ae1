#include "src/sys/socket.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "src/base/strings.h"

namespace sbx::sys {

namespace {

Result<sockaddr_un> MakeAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Error::InvalidArgument("unix socket path " + Quote(path) + " is empty or longer than " +
                                  std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

}  // namespace

Result<UniqueFd> ListenUnix(const std::string& path, int backlog, mode_t mode) {
  SBX_ASSIGN_OR_RETURN(sockaddr_un addr, MakeAddress(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::Errno("socket");
  ::unlink(path.c_str());
  // The socket file is created with the umask applied; set the final mode explicitly afterwards
  // and refuse connections until then by not listening yet.
  // JUSTIFICATION: sockaddr_un is the documented argument type of bind(2).
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Error::Errno("bind " + Quote(path));
  }
  if (::chmod(path.c_str(), mode) != 0) return Error::Errno("chmod " + Quote(path));
  if (::listen(fd.get(), backlog) != 0) return Error::Errno("listen " + Quote(path));
  return fd;
}

Result<UniqueFd> ConnectUnix(const std::string& path, int timeout_ms) {
  SBX_ASSIGN_OR_RETURN(sockaddr_un addr, MakeAddress(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::Errno("socket");
  // JUSTIFICATION: sockaddr_un is the documented argument type of connect(2).
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) return Error::Errno("connect " + Quote(path));
    pollfd pfd{fd.get(), POLLOUT, 0};
    int n = ::poll(&pfd, 1, timeout_ms);
    if (n == 0) return Error::DeadlineExceeded("connect " + Quote(path) + ": timed out");
    if (n < 0) return Error::Errno("poll");
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return Error::FromErrno(err, "connect " + Quote(path));
  }
  return fd;
}

Result<std::pair<UniqueFd, UniqueFd>> SocketPair(int type) {
  int fds[2];
  if (::socketpair(AF_UNIX, (type ? type : SOCK_STREAM) | SOCK_CLOEXEC, 0, fds) != 0) {
    return Error::Errno("socketpair");
  }
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

}  // namespace sbx::sys
