// File: host_networks.h
//
// The networks the host is directly attached to: the subnets of its addresses (on every
// interface, another daemon's bridge included), the destinations of its on-link routes, and its
// gateways. They hold the host's LAN, its router and its neighbours, none of which a sandbox may
// reach, whether their addresses are private or not: sbxd adds them to the deny set and keeps
// them current through HostNetworkMonitor, an rtnetlink subscription to the host's address and
// route changes (no polling).
//
//   SBX_ASSIGN_OR_RETURN(HostNetworkMonitor monitor, HostNetworkMonitor::Open());  // first
//   SBX_ASSIGN_OR_RETURN(auto networks, ReadHostNetworks(rtnl));
//   ... poll(monitor.fd()) ...; if (*monitor.Drain()) networks = *ReadHostNetworks(rtnl);

#pragma once

#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/net/ipv4.h"
#include "src/net/rtnetlink.h"

namespace sbx::net {

// Networks wider than this are not taken as the host's own: a point-to-point VPN that routes
// half the internet on link (0.0.0.0/1) would otherwise close every public address.
inline constexpr int kMinHostNetworkLength = 8;

// From the host's addresses and routes: each address's subnet (and a point-to-point peer's),
// each on-link unicast route's destination, each gateway (as a /32), and the addresses
// themselves. The local routing table (the host's own addresses, already closed to sandboxes)
// and routes that are not unicast are left out.
std::vector<Ipv4Prefix> HostNetworks(const std::vector<AddressInfo>& addresses,
                                     const std::vector<RouteInfo>& routes);

// The host's networks now, as seen from the namespace `rtnl` belongs to.
Result<std::vector<Ipv4Prefix>> ReadHostNetworks(Rtnetlink& rtnl);

// Notifications of IPv4 address and route changes in the network namespace of the thread that
// opens it. Open it before reading the networks, so that no change falls between the two.
class HostNetworkMonitor {
 public:
  static Result<HostNetworkMonitor> Open();

  // Readable when a notification is pending.
  int fd() const { return fd_.get(); }
  // Reads every pending notification without blocking. True when one of them was an address or
  // route change, or when the kernel dropped some (the socket's buffer overflowed): either way
  // the networks must be read again.
  Result<bool> Drain();

 private:
  explicit HostNetworkMonitor(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace sbx::net
