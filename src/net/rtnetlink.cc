#include "src/net/rtnetlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "src/base/strings.h"
#include "src/net/netlink_message.h"

namespace sbx::net {

Result<Rtnetlink> Rtnetlink::Open() {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, OpenNetlink(NETLINK_ROUTE, "NETLINK_ROUTE"));
  return Rtnetlink(std::move(fd));
}

Status Rtnetlink::Transact(std::string message, const std::string& what) {
  uint32_t seq = ++seq_;
  nlmsghdr h;
  std::memcpy(&h, message.data(), sizeof h);
  h.nlmsg_seq = seq;
  h.nlmsg_flags |= NLM_F_ACK;
  std::memcpy(message.data(), &h, sizeof h);
  return SendAndAwaitAck(fd_.get(), message, seq, seq, what);
}

Result<std::vector<std::string>> Rtnetlink::Dump(std::string message, const std::string& what) {
  uint32_t seq = ++seq_;
  nlmsghdr h;
  std::memcpy(&h, message.data(), sizeof h);
  h.nlmsg_seq = seq;
  h.nlmsg_flags |= NLM_F_DUMP;
  std::memcpy(message.data(), &h, sizeof h);
  if (send(fd_.get(), message.data(), message.size(), 0) < 0) {
    return Error::Errno(what + ": send netlink");
  }
  std::vector<std::string> out;
  bool done = false;
  while (!done) {
    SBX_ASSIGN_OR_RETURN(auto replies, ReceiveNetlink(fd_.get(), seq, seq, true, what, &done));
    for (auto& r : replies) out.push_back(std::move(r));
  }
  return out;
}

Status Rtnetlink::CreateBridge(const std::string& name, const std::array<uint8_t, 6>& mac) {
  NetlinkMessage m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  m.Raw(info);
  m.AttrString(IFLA_IFNAME, name);
  // A fixed address: otherwise a bridge takes the lowest address of its ports, and changes it as
  // ports come and go, which breaks the sandboxes' neighbour caches.
  m.Attr(IFLA_ADDRESS, mac.data(), mac.size());
  size_t linkinfo = m.Begin(IFLA_LINKINFO);
  m.AttrString(IFLA_INFO_KIND, "bridge");
  m.End(linkinfo);
  return Transact(m.Finish(0), "create bridge " + Quote(name));
}

Status Rtnetlink::CreateVeth(const std::string& name, int master, const std::string& peer_name,
                             int peer_netns_fd) {
  NetlinkMessage m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  m.Raw(info);
  m.AttrString(IFLA_IFNAME, name);
  if (master > 0) m.AttrU32(IFLA_MASTER, static_cast<uint32_t>(master));
  size_t linkinfo = m.Begin(IFLA_LINKINFO);
  m.AttrString(IFLA_INFO_KIND, "veth");
  size_t data = m.Begin(IFLA_INFO_DATA);
  size_t peer = m.Begin(VETH_INFO_PEER);
  ifinfomsg peer_info{};
  peer_info.ifi_family = AF_UNSPEC;
  m.Raw(peer_info);
  m.AttrString(IFLA_IFNAME, peer_name);
  m.AttrU32(IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  m.End(peer);
  m.End(data);
  m.End(linkinfo);
  return Transact(m.Finish(0), "create veth " + Quote(name));
}

Result<int> Rtnetlink::LinkIndex(const std::string& name) {
  NetlinkMessage m(RTM_GETLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  m.Raw(info);
  m.AttrString(IFLA_IFNAME, name);
  std::string message = m.Finish(0);
  uint32_t seq = ++seq_;
  nlmsghdr h;
  std::memcpy(&h, message.data(), sizeof h);
  h.nlmsg_seq = seq;
  std::memcpy(message.data(), &h, sizeof h);
  std::string what = "look up link " + Quote(name);
  if (send(fd_.get(), message.data(), message.size(), 0) < 0) {
    return Error::Errno(what + ": send netlink");
  }
  bool done = false;
  while (!done) {
    auto replies = ReceiveNetlink(fd_.get(), seq, seq, false, what, &done);
    if (!replies) {
      if (replies.error().sys_errno() == ENODEV) {
        return Error::NotFound("no link " + Quote(name));
      }
      return std::move(replies).error();
    }
    for (const auto& r : *replies) return NetlinkHeader<ifinfomsg>(r).ifi_index;
  }
  return Error::NotFound("no link " + Quote(name));
}

Status Rtnetlink::SetUp(int index) {
  NetlinkMessage m(RTM_NEWLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  info.ifi_index = index;
  info.ifi_flags = IFF_UP;
  info.ifi_change = IFF_UP;
  m.Raw(info);
  return Transact(m.Finish(0), "set link " + std::to_string(index) + " up");
}

Status Rtnetlink::SetIsolatedPortUp(int index) {
  NetlinkMessage m(RTM_NEWLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  info.ifi_index = index;
  info.ifi_flags = IFF_UP;
  info.ifi_change = IFF_UP;
  m.Raw(info);
  size_t linkinfo = m.Begin(IFLA_LINKINFO);
  m.AttrString(IFLA_INFO_SLAVE_KIND, "bridge");
  size_t data = m.Begin(IFLA_INFO_SLAVE_DATA);
  m.AttrU8(IFLA_BRPORT_ISOLATED, 1);
  m.End(data);
  m.End(linkinfo);
  return Transact(m.Finish(0), "isolate bridge port " + std::to_string(index));
}

Status Rtnetlink::DeleteLink(int index) {
  NetlinkMessage m(RTM_DELLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  info.ifi_index = index;
  m.Raw(info);
  return Transact(m.Finish(0), "delete link " + std::to_string(index));
}

Status Rtnetlink::AddAddress(int index, Ipv4 address, int prefix_length) {
  NetlinkMessage m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  ifaddrmsg a{};
  a.ifa_family = AF_INET;
  a.ifa_prefixlen = static_cast<uint8_t>(prefix_length);
  a.ifa_scope = RT_SCOPE_UNIVERSE;
  a.ifa_index = static_cast<uint32_t>(index);
  m.Raw(a);
  uint32_t wire = htonl(address);
  m.AttrU32(IFA_LOCAL, wire);
  m.AttrU32(IFA_ADDRESS, wire);
  return Transact(m.Finish(0), "add address " + FormatIpv4(address) + "/" +
                                   std::to_string(prefix_length) + " to link " +
                                   std::to_string(index));
}

Status Rtnetlink::AddDefaultRoute(Ipv4 gateway) {
  NetlinkMessage m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  rtmsg r{};
  r.rtm_family = AF_INET;
  r.rtm_table = RT_TABLE_MAIN;
  r.rtm_protocol = RTPROT_BOOT;
  r.rtm_scope = RT_SCOPE_UNIVERSE;
  r.rtm_type = RTN_UNICAST;
  m.Raw(r);
  m.AttrU32(RTA_GATEWAY, htonl(gateway));
  return Transact(m.Finish(0), "add default route via " + FormatIpv4(gateway));
}

Result<std::vector<LinkInfo>> Rtnetlink::Links() {
  NetlinkMessage m(RTM_GETLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  m.Raw(info);
  SBX_ASSIGN_OR_RETURN(auto replies, Dump(m.Finish(0), "list links"));
  std::vector<LinkInfo> out;
  for (const auto& r : replies) {
    if (NetlinkType(r) != RTM_NEWLINK) continue;
    auto attrs = NetlinkAttrs::OfMessage(r, sizeof(ifinfomsg), IFLA_MAX);
    out.push_back({NetlinkHeader<ifinfomsg>(r).ifi_index, attrs.String(IFLA_IFNAME),
                   static_cast<int>(attrs.U32(IFLA_MASTER))});
  }
  return out;
}

Result<std::vector<AddressInfo>> Rtnetlink::Addresses() {
  NetlinkMessage m(RTM_GETADDR, 0);
  ifaddrmsg a{};
  a.ifa_family = AF_INET;
  m.Raw(a);
  SBX_ASSIGN_OR_RETURN(auto replies, Dump(m.Finish(0), "list addresses"));
  std::vector<AddressInfo> out;
  for (const auto& r : replies) {
    auto header = NetlinkHeader<ifaddrmsg>(r);
    if (header.ifa_family != AF_INET) continue;
    auto attrs = NetlinkAttrs::OfMessage(r, sizeof(ifaddrmsg), IFA_MAX);
    std::string_view local = attrs.Get(IFA_LOCAL);
    std::string_view peer = attrs.Get(IFA_ADDRESS);
    if (local.empty()) local = peer;
    if (peer.empty()) peer = local;
    if (local.size() != 4 || peer.size() != 4) continue;
    uint32_t wire, peer_wire;
    std::memcpy(&wire, local.data(), 4);
    std::memcpy(&peer_wire, peer.data(), 4);
    out.push_back(
        {static_cast<int>(header.ifa_index), ntohl(wire), header.ifa_prefixlen, ntohl(peer_wire)});
  }
  return out;
}

Result<std::vector<RouteInfo>> Rtnetlink::Routes() {
  NetlinkMessage m(RTM_GETROUTE, 0);
  rtmsg r{};
  r.rtm_family = AF_INET;
  m.Raw(r);
  SBX_ASSIGN_OR_RETURN(auto replies, Dump(m.Finish(0), "list routes"));
  std::vector<RouteInfo> out;
  for (const auto& reply : replies) {
    auto header = NetlinkHeader<rtmsg>(reply);
    if (header.rtm_family != AF_INET) continue;
    auto attrs = NetlinkAttrs::OfMessage(reply, sizeof(rtmsg), RTA_MAX);
    uint32_t table = attrs.Get(RTA_TABLE).empty() ? header.rtm_table : attrs.U32(RTA_TABLE);
    std::string_view dst = attrs.Get(RTA_DST);
    uint32_t wire = 0;
    if (dst.size() == 4) std::memcpy(&wire, dst.data(), 4);
    RouteInfo route{
        MakePrefix(ntohl(wire), header.rtm_dst_len), static_cast<int>(table), header.rtm_type, {}};
    auto add_gateway = [&route](std::string_view gateway) {
      uint32_t gw = 0;
      if (gateway.size() != 4) return;
      std::memcpy(&gw, gateway.data(), 4);
      route.gateways.push_back(ntohl(gw));
    };
    add_gateway(attrs.Get(RTA_GATEWAY));
    // A multipath route: a list of rtnexthop headers, each followed by its own attributes.
    std::string_view hops = attrs.Get(RTA_MULTIPATH);
    while (hops.size() >= sizeof(rtnexthop)) {
      rtnexthop hop;
      std::memcpy(&hop, hops.data(), sizeof hop);
      if (hop.rtnh_len < sizeof hop || hop.rtnh_len > hops.size()) break;
      NetlinkAttrs hop_attrs(hops.substr(RTNH_LENGTH(0), hop.rtnh_len - RTNH_LENGTH(0)), RTA_MAX);
      add_gateway(hop_attrs.Get(RTA_GATEWAY));
      hops.remove_prefix(std::min<size_t>(RTNH_ALIGN(hop.rtnh_len), hops.size()));
    }
    out.push_back(std::move(route));
  }
  return out;
}

}  // namespace sbx::net
