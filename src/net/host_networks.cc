#include "src/net/host_networks.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <string>

#include "src/net/netlink_message.h"

namespace sbx::net {

namespace {

constexpr int kReceiveBufferBytes = 1 << 20;

}  // namespace

std::vector<Ipv4Prefix> HostNetworks(const std::vector<AddressInfo>& addresses,
                                     const std::vector<RouteInfo>& routes) {
  std::vector<Ipv4Prefix> out;
  auto add_network = [&out](Ipv4Prefix prefix) {
    if (prefix.length >= kMinHostNetworkLength) out.push_back(prefix);
  };
  for (const auto& a : addresses) {
    out.push_back(MakePrefix(a.address, 32));
    add_network(MakePrefix(a.address, a.prefix_length));
    if (a.peer != a.address) add_network(MakePrefix(a.peer, a.prefix_length));
  }
  for (const auto& r : routes) {
    if (r.table == RT_TABLE_LOCAL || r.type != RTN_UNICAST) continue;
    if (r.gateways.empty()) add_network(r.destination);
    for (Ipv4 gateway : r.gateways) out.push_back(MakePrefix(gateway, 32));
  }
  return out;
}

Result<std::vector<Ipv4Prefix>> ReadHostNetworks(Rtnetlink& rtnl) {
  SBX_ASSIGN_OR_RETURN(auto addresses, rtnl.Addresses());
  SBX_ASSIGN_OR_RETURN(auto routes, rtnl.Routes());
  return HostNetworks(addresses, routes);
}

Result<HostNetworkMonitor> HostNetworkMonitor::Open() {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, OpenNetlink(NETLINK_ROUTE, "NETLINK_ROUTE monitor",
                                                RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE));
  // Room for a burst of changes (an interface going down takes its routes with it); an overflow
  // is noticed and costs only a full read.
  int size = kReceiveBufferBytes;
  (void)setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  return HostNetworkMonitor(std::move(fd));
}

Result<bool> HostNetworkMonitor::Drain() {
  bool changed = false;
  std::string buf(64 * 1024, '\0');
  while (true) {
    ssize_t n = recv(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return changed;
      if (errno == ENOBUFS) {
        changed = true;
        continue;
      }
      return Error::Errno("read the host's address and route changes");
    }
    size_t offset = 0;
    while (offset + NLMSG_HDRLEN <= static_cast<size_t>(n)) {
      nlmsghdr h;
      std::memcpy(&h, buf.data() + offset, sizeof h);
      if (h.nlmsg_len < NLMSG_HDRLEN || offset + h.nlmsg_len > static_cast<size_t>(n)) break;
      switch (h.nlmsg_type) {
        case RTM_NEWADDR:
        case RTM_DELADDR:
        case RTM_NEWROUTE:
        case RTM_DELROUTE:
          changed = true;
          break;
        default:
          break;
      }
      offset += NLMSG_ALIGN(h.nlmsg_len);
    }
  }
}

}  // namespace sbx::net
