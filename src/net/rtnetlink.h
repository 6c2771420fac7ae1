// File: rtnetlink.h
//
// A small rtnetlink client: the handful of link, address and route operations sbxd needs, as
// messages written here, in-process (no `ip` commands, no fork). A socket belongs to the network
// namespace of the thread that opened it, so a socket opened inside a new namespace keeps
// configuring that namespace after the thread has returned to the host's.
//
//   SBX_ASSIGN_OR_RETURN(Rtnetlink rtnl, Rtnetlink::Open());
//   SBX_TRY(rtnl.CreateBridge("sbx0", mac));
//   SBX_ASSIGN_OR_RETURN(int index, rtnl.LinkIndex("sbx0"));
//   SBX_TRY(rtnl.AddAddress(index, gateway, 16));
//
// Not thread-safe: one user at a time per object.

#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/net/ipv4.h"

namespace sbx::net {

struct LinkInfo {
  int index = 0;
  std::string name;
  int master = 0;  // index of the bridge it is a port of, or 0
};

struct AddressInfo {
  int index = 0;
  Ipv4 address = 0;
  int prefix_length = 0;
  Ipv4 peer = 0;  // the other end of a point-to-point link; == address on other links
};

struct RouteInfo {
  Ipv4Prefix destination;
  int table = 0;
  int type = 0;                // RTN_UNICAST, RTN_LOCAL, RTN_BLACKHOLE, ...
  std::vector<Ipv4> gateways;  // its next hops (several on a multipath route); none: on link
};

class Rtnetlink {
 public:
  // A socket in the calling thread's network namespace.
  static Result<Rtnetlink> Open();

  Status CreateBridge(const std::string& name, const std::array<uint8_t, 6>& mac);
  // A veth pair: `name` here, enslaved to `master` (if not 0) and down; `peer_name` in the
  // namespace `peer_netns_fd`, down.
  Status CreateVeth(const std::string& name, int master, const std::string& peer_name,
                    int peer_netns_fd);
  // kNotFound when there is no such link.
  Result<int> LinkIndex(const std::string& name);
  Status SetUp(int index);
  // Marks a bridge port isolated (it forwards to non-isolated ports only, and a bridge whose
  // ports are all isolated forwards nothing between them) and brings it up.
  Status SetIsolatedPortUp(int index);
  Status DeleteLink(int index);
  Status AddAddress(int index, Ipv4 address, int prefix_length);
  Status AddDefaultRoute(Ipv4 gateway);

  Result<std::vector<LinkInfo>> Links();
  Result<std::vector<AddressInfo>> Addresses();
  Result<std::vector<RouteInfo>> Routes();

 private:
  explicit Rtnetlink(UniqueFd fd) : fd_(std::move(fd)) {}
  // Sends one request and waits for its acknowledgement.
  Status Transact(std::string message, const std::string& what);
  // Sends one dump request; returns every reply message (header included).
  Result<std::vector<std::string>> Dump(std::string message, const std::string& what);

  UniqueFd fd_;
  uint32_t seq_ = 0;
};

}  // namespace sbx::net
