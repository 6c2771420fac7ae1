#include "src/net/netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "src/base/strings.h"

namespace sbx::net {

namespace {

constexpr int kReplyTimeoutMs = 5000;

// Builds one netlink message: the header, a family header, attributes (nested ones by
// begin/end). Lengths and alignment follow the netlink rules (4-byte alignment everywhere).
class Message {
 public:
  Message(uint16_t type, uint16_t flags) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
    Append(&h, sizeof h);
  }

  template <typename T>
  void Raw(const T& value) {
    Append(&value, sizeof value);
  }

  void Attr(uint16_t type, const void* data, size_t length) {
    rtattr a{};
    a.rta_type = type;
    a.rta_len = static_cast<uint16_t>(RTA_LENGTH(length));
    Append(&a, sizeof a);
    Append(data, length);
  }
  void AttrU8(uint16_t type, uint8_t v) { Attr(type, &v, sizeof v); }
  void AttrU32(uint16_t type, uint32_t v) { Attr(type, &v, sizeof v); }
  void AttrString(uint16_t type, const std::string& s) { Attr(type, s.c_str(), s.size() + 1); }

  size_t Begin(uint16_t type) {
    size_t offset = buf_.size();
    rtattr a{};
    a.rta_type = static_cast<uint16_t>(type | NLA_F_NESTED);
    Append(&a, sizeof a);
    return offset;
  }
  void End(size_t offset) {
    uint16_t length = static_cast<uint16_t>(buf_.size() - offset);
    std::memcpy(buf_.data() + offset + offsetof(rtattr, rta_len), &length, sizeof length);
  }

  std::string Finish(uint32_t seq) {
    uint32_t length = static_cast<uint32_t>(buf_.size());
    std::memcpy(buf_.data() + offsetof(nlmsghdr, nlmsg_len), &length, sizeof length);
    std::memcpy(buf_.data() + offsetof(nlmsghdr, nlmsg_seq), &seq, sizeof seq);
    return std::move(buf_);
  }

 private:
  void Append(const void* data, size_t length) {
    buf_.append(static_cast<const char*>(data), length);
    buf_.resize(NLMSG_ALIGN(buf_.size()), '\0');
  }
  std::string buf_;
};

// Attributes of a message after its family header of `header_size` bytes, by type (the last one
// of each type wins; nested types lose their flag bits).
struct Attrs {
  std::vector<std::string_view> by_type;

  Attrs(std::string_view message, size_t header_size, size_t max_type) : by_type(max_type + 1) {
    size_t offset = NLMSG_HDRLEN + NLMSG_ALIGN(header_size);
    while (offset + sizeof(rtattr) <= message.size()) {
      rtattr a;
      std::memcpy(&a, message.data() + offset, sizeof a);
      if (a.rta_len < sizeof(rtattr) || offset + a.rta_len > message.size()) break;
      uint16_t type = a.rta_type & NLA_TYPE_MASK;
      if (type <= max_type) {
        by_type[type] = message.substr(offset + RTA_LENGTH(0), a.rta_len - RTA_LENGTH(0));
      }
      offset += RTA_ALIGN(a.rta_len);
    }
  }
  std::string_view Get(uint16_t type) const {
    return type < by_type.size() ? by_type[type] : std::string_view();
  }
  uint32_t U32(uint16_t type) const {
    std::string_view v = Get(type);
    uint32_t out = 0;
    if (v.size() >= sizeof out) std::memcpy(&out, v.data(), sizeof out);
    return out;
  }
  std::string String(uint16_t type) const {
    std::string_view v = Get(type);
    return std::string(v.substr(0, v.find('\0')));
  }
};

template <typename T>
T Header(std::string_view message) {
  T out{};
  if (message.size() >= NLMSG_HDRLEN + sizeof(T)) {
    std::memcpy(&out, message.data() + NLMSG_HDRLEN, sizeof(T));
  }
  return out;
}

// The extended-ack text of an error message, when the kernel gave one.
std::string ExtAckMessage(std::string_view message) {
  nlmsghdr h;
  std::memcpy(&h, message.data(), sizeof h);
  if (!(h.nlmsg_flags & NLM_F_ACK_TLVS)) return {};
  // The error header carries the original request's header, and all of it unless capped.
  size_t header = sizeof(nlmsgerr);
  if (!(h.nlmsg_flags & NLM_F_CAPPED)) {
    nlmsgerr e;
    std::memcpy(&e, message.data() + NLMSG_HDRLEN, sizeof e);
    header += e.msg.nlmsg_len - sizeof(nlmsghdr);
  }
  if (NLMSG_HDRLEN + NLMSG_ALIGN(header) > message.size()) return {};
  Attrs attrs(message, header, NLMSGERR_ATTR_MSG);
  return attrs.String(NLMSGERR_ATTR_MSG);
}

// Replies to the request(s) numbered `first_seq`..`last_seq` (a batch has several).
Result<std::vector<std::string>> Receive(int fd, uint32_t first_seq, uint32_t last_seq, bool dump,
                                         const std::string& what, bool* done) {
  std::vector<std::string> out;
  std::string buf(64 * 1024, '\0');
  pollfd pfd{fd, POLLIN, 0};
  int ready = poll(&pfd, 1, kReplyTimeoutMs);
  if (ready < 0) return Error::Errno(what + ": poll netlink");
  if (ready == 0) return Error::DeadlineExceeded(what + ": no answer from the kernel");
  ssize_t n = recv(fd, buf.data(), buf.size(), MSG_TRUNC);
  if (n < 0) return Error::Errno(what + ": recv netlink");
  if (static_cast<size_t>(n) > buf.size())
    return Error::Internal(what + ": netlink reply truncated");
  size_t offset = 0;
  while (offset + NLMSG_HDRLEN <= static_cast<size_t>(n)) {
    nlmsghdr h;
    std::memcpy(&h, buf.data() + offset, sizeof h);
    if (h.nlmsg_len < NLMSG_HDRLEN || offset + h.nlmsg_len > static_cast<size_t>(n)) break;
    std::string_view message(buf.data() + offset, h.nlmsg_len);
    offset += NLMSG_ALIGN(h.nlmsg_len);
    // A late answer to an abandoned request.
    if (h.nlmsg_seq < first_seq || h.nlmsg_seq > last_seq) continue;
    if (h.nlmsg_type == NLMSG_ERROR) {
      nlmsgerr e{};
      if (message.size() >= NLMSG_HDRLEN + sizeof e) {
        std::memcpy(&e, message.data() + NLMSG_HDRLEN, sizeof e);
      }
      *done = true;
      if (e.error == 0) return out;
      std::string ack = ExtAckMessage(message);
      return Error::FromErrno(-e.error, ack.empty() ? what : what + " (" + ack + ")");
    }
    if (h.nlmsg_type == NLMSG_DONE) {
      *done = true;
      return out;
    }
    out.emplace_back(message);
    if (!dump) *done = true;
  }
  return out;
}

// A bound netlink socket of `protocol`, in the calling thread's network namespace.
Result<UniqueFd> OpenNetlink(int protocol, const std::string& name) {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
  if (!fd) return Error::Errno("socket(" + name + ")");
  int one = 1;
  // Error messages with the kernel's explanation; not fatal when unsupported.
  (void)setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void)setsockopt(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  // JUSTIFICATION: sockaddr_nl is passed through the generic sockaddr interface.
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    return Error::Errno("bind " + name + " socket");
  }
  return fd;
}

// Sends `messages` (numbered `first_seq`..`last_seq`) and waits for the acknowledgement, or the
// error the kernel reports against whichever of them caused it.
Status SendAndAwaitAck(int fd, const std::string& messages, uint32_t first_seq, uint32_t last_seq,
                       const std::string& what) {
  if (send(fd, messages.data(), messages.size(), 0) < 0) {
    return Error::Errno(what + ": send netlink");
  }
  bool done = false;
  while (!done) {
    SBX_ASSIGN_OR_RETURN(auto replies, Receive(fd, first_seq, last_seq, false, what, &done));
    (void)replies;
  }
  return Ok();
}

}  // namespace

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
    SBX_ASSIGN_OR_RETURN(auto replies, Receive(fd_.get(), seq, seq, true, what, &done));
    for (auto& r : replies) out.push_back(std::move(r));
  }
  return out;
}

Status Rtnetlink::CreateBridge(const std::string& name, const std::array<uint8_t, 6>& mac) {
  Message m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
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
  Message m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
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
  Message m(RTM_GETLINK, 0);
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
    auto replies = Receive(fd_.get(), seq, seq, false, what, &done);
    if (!replies) {
      if (replies.error().sys_errno() == ENODEV) {
        return Error::NotFound("no link " + Quote(name));
      }
      return std::move(replies).error();
    }
    for (const auto& r : *replies) return Header<ifinfomsg>(r).ifi_index;
  }
  return Error::NotFound("no link " + Quote(name));
}

Status Rtnetlink::SetUp(int index) {
  Message m(RTM_NEWLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  info.ifi_index = index;
  info.ifi_flags = IFF_UP;
  info.ifi_change = IFF_UP;
  m.Raw(info);
  return Transact(m.Finish(0), "set link " + std::to_string(index) + " up");
}

Status Rtnetlink::SetIsolatedPortUp(int index) {
  Message m(RTM_NEWLINK, 0);
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
  Message m(RTM_DELLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  info.ifi_index = index;
  m.Raw(info);
  return Transact(m.Finish(0), "delete link " + std::to_string(index));
}

Status Rtnetlink::AddAddress(int index, Ipv4 address, int prefix_length) {
  Message m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
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
  Message m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
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
  Message m(RTM_GETLINK, 0);
  ifinfomsg info{};
  info.ifi_family = AF_UNSPEC;
  m.Raw(info);
  SBX_ASSIGN_OR_RETURN(auto replies, Dump(m.Finish(0), "list links"));
  std::vector<LinkInfo> out;
  for (const auto& r : replies) {
    nlmsghdr h;
    std::memcpy(&h, r.data(), sizeof h);
    if (h.nlmsg_type != RTM_NEWLINK) continue;
    Attrs attrs(r, sizeof(ifinfomsg), IFLA_MAX);
    out.push_back({Header<ifinfomsg>(r).ifi_index, attrs.String(IFLA_IFNAME),
                   static_cast<int>(attrs.U32(IFLA_MASTER))});
  }
  return out;
}

Result<std::vector<AddressInfo>> Rtnetlink::Addresses() {
  Message m(RTM_GETADDR, 0);
  ifaddrmsg a{};
  a.ifa_family = AF_INET;
  m.Raw(a);
  SBX_ASSIGN_OR_RETURN(auto replies, Dump(m.Finish(0), "list addresses"));
  std::vector<AddressInfo> out;
  for (const auto& r : replies) {
    auto header = Header<ifaddrmsg>(r);
    if (header.ifa_family != AF_INET) continue;
    Attrs attrs(r, sizeof(ifaddrmsg), IFA_MAX);
    std::string_view local = attrs.Get(IFA_LOCAL);
    if (local.empty()) local = attrs.Get(IFA_ADDRESS);
    if (local.size() != 4) continue;
    uint32_t wire;
    std::memcpy(&wire, local.data(), 4);
    out.push_back({static_cast<int>(header.ifa_index), ntohl(wire), header.ifa_prefixlen});
  }
  return out;
}

Result<std::vector<RouteInfo>> Rtnetlink::Routes() {
  Message m(RTM_GETROUTE, 0);
  rtmsg r{};
  r.rtm_family = AF_INET;
  m.Raw(r);
  SBX_ASSIGN_OR_RETURN(auto replies, Dump(m.Finish(0), "list routes"));
  std::vector<RouteInfo> out;
  for (const auto& reply : replies) {
    auto header = Header<rtmsg>(reply);
    if (header.rtm_family != AF_INET) continue;
    Attrs attrs(reply, sizeof(rtmsg), RTA_MAX);
    uint32_t table = attrs.Get(RTA_TABLE).empty() ? header.rtm_table : attrs.U32(RTA_TABLE);
    std::string_view dst = attrs.Get(RTA_DST);
    uint32_t wire = 0;
    if (dst.size() == 4) std::memcpy(&wire, dst.data(), 4);
    out.push_back({MakePrefix(ntohl(wire), header.rtm_dst_len), static_cast<int>(table)});
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// nf_tables map elements

namespace {

// Every nf_tables change travels in a batch: begin, the changes, end; the kernel commits the
// batch as one transaction.
std::string BatchMarker(uint16_t type, uint32_t seq) {
  Message m(type, 0);
  nfgenmsg g{};
  g.nfgen_family = AF_UNSPEC;
  g.version = NFNETLINK_V0;
  g.res_id = htons(NFNL_SUBSYS_NFTABLES);
  m.Raw(g);
  return m.Finish(seq);
}

std::string ElementMessage(uint16_t op, uint16_t flags, const NftVerdictElement& element,
                           bool with_verdict, uint32_t seq) {
  Message m(static_cast<uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | op),
            static_cast<uint16_t>(flags | NLM_F_ACK));
  nfgenmsg g{};
  g.nfgen_family = NFPROTO_INET;
  g.version = NFNETLINK_V0;
  m.Raw(g);
  m.AttrString(NFTA_SET_ELEM_LIST_TABLE, element.table);
  m.AttrString(NFTA_SET_ELEM_LIST_SET, element.map);
  size_t elements = m.Begin(NFTA_SET_ELEM_LIST_ELEMENTS);
  size_t item = m.Begin(NFTA_LIST_ELEM);
  size_t key = m.Begin(NFTA_SET_ELEM_KEY);
  uint32_t address = htonl(element.key);
  m.Attr(NFTA_DATA_VALUE, &address, sizeof address);
  m.End(key);
  if (with_verdict) {
    size_t data = m.Begin(NFTA_SET_ELEM_DATA);
    size_t verdict = m.Begin(NFTA_DATA_VERDICT);
    uint32_t code = element.verdict == NftVerdict::kAccept ? NF_ACCEPT : NF_DROP;
    m.AttrU32(NFTA_VERDICT_CODE, htonl(code));
    m.End(verdict);
    m.End(data);
  }
  m.End(item);
  m.End(elements);
  return m.Finish(seq);
}

std::string Describe(const NftVerdictElement& element) {
  return "element " + FormatIpv4(element.key) + " of map inet " + element.table + " " + element.map;
}

}  // namespace

Result<std::unique_ptr<NftMapElements>> NftMapElements::Open() {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, OpenNetlink(NETLINK_NETFILTER, "NETLINK_NETFILTER"));
  return std::unique_ptr<NftMapElements>(new NftMapElements(std::move(fd)));
}

Status NftMapElements::Put(const NftVerdictElement& element) {
  std::lock_guard lock(mu_);
  // Without NLM_F_EXCL the kernel accepts an element that is already there with this verdict.
  Status added = Transact({{NFT_MSG_NEWSETELEM, NLM_F_CREATE}}, element, "add");
  if (added || (added.error().sys_errno() != EEXIST && added.error().sys_errno() != EBUSY)) {
    return added;
  }
  // There with another verdict (left by a removal that failed): replaced in one transaction.
  return Transact({{NFT_MSG_DELSETELEM, 0}, {NFT_MSG_NEWSETELEM, NLM_F_CREATE | NLM_F_EXCL}},
                  element, "replace");
}

Status NftMapElements::Remove(const NftVerdictElement& element) {
  std::lock_guard lock(mu_);
  return Transact({{NFT_MSG_DELSETELEM, 0}}, element, "remove");
}

Status NftMapElements::Transact(const std::vector<Change>& changes,
                                const NftVerdictElement& element, const std::string& verb) {
  uint32_t first = ++seq_;
  std::string batch = BatchMarker(NFNL_MSG_BATCH_BEGIN, first);
  for (const Change& c : changes) {
    batch += ElementMessage(c.type, c.flags, element, c.type == NFT_MSG_NEWSETELEM, ++seq_);
  }
  uint32_t last = ++seq_;
  batch += BatchMarker(NFNL_MSG_BATCH_END, last);
  return SendAndAwaitAck(fd_.get(), batch, first, last, verb + " " + Describe(element));
}

}  // namespace sbx::net
