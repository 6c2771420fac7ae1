#include "src/net/host_ports.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace sbx::net {

namespace {

Result<UniqueFd> PortSocket(const std::string& protocol) {
  int type = protocol == "udp" ? SOCK_DGRAM : SOCK_STREAM;
  int proto = protocol == "sctp" ? IPPROTO_SCTP : 0;
  UniqueFd fd(socket(AF_INET, type | SOCK_CLOEXEC, proto));
  if (!fd) {
    if (errno == EPROTONOSUPPORT || errno == ESOCKTNOSUPPORT) {
      return Error::FailedPrecondition("the host's kernel has no " + protocol + " support (" +
                                       std::strerror(errno) + ")");
    }
    return Error::Errno(protocol + " socket");
  }
  return fd;
}

}  // namespace

Result<UniqueFd> HoldPort(const std::string& protocol, int port) {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, PortSocket(protocol));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  sa.sin_port = htons(static_cast<uint16_t>(port));
  // JUSTIFICATION: the socket API takes every address family through `sockaddr*`.
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    return Error::Errno("bind " + protocol + " port " + std::to_string(port));
  }
  return fd;
}

Status SctpAvailable() {
  static const Status probed = []() -> Status {
    auto fd = PortSocket("sctp");
    if (!fd) return fd.error();
    return Ok();
  }();
  return probed;
}

}  // namespace sbx::net
