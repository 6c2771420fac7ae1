#include "src/net/netlink_message.h"

#include <errno.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sys/socket.h>

namespace sbx::net {

namespace {

constexpr int kReplyTimeoutMs = 5000;

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
  return NetlinkAttrs::OfMessage(message, header, NLMSGERR_ATTR_MSG).String(NLMSGERR_ATTR_MSG);
}

}  // namespace

NetlinkMessage::NetlinkMessage(uint16_t type, uint16_t flags) {
  nlmsghdr h{};
  h.nlmsg_type = type;
  h.nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
  Append(&h, sizeof h);
}

void NetlinkMessage::Attr(uint16_t type, const void* data, size_t length) {
  rtattr a{};
  a.rta_type = type;
  a.rta_len = static_cast<uint16_t>(RTA_LENGTH(length));
  Append(&a, sizeof a);
  Append(data, length);
}

size_t NetlinkMessage::Begin(uint16_t type) {
  size_t offset = buf_.size();
  rtattr a{};
  a.rta_type = static_cast<uint16_t>(type | NLA_F_NESTED);
  Append(&a, sizeof a);
  return offset;
}

void NetlinkMessage::End(size_t offset) {
  uint16_t length = static_cast<uint16_t>(buf_.size() - offset);
  std::memcpy(buf_.data() + offset + offsetof(rtattr, rta_len), &length, sizeof length);
}

std::string NetlinkMessage::Finish(uint32_t seq) {
  uint32_t length = static_cast<uint32_t>(buf_.size());
  std::memcpy(buf_.data() + offsetof(nlmsghdr, nlmsg_len), &length, sizeof length);
  std::memcpy(buf_.data() + offsetof(nlmsghdr, nlmsg_seq), &seq, sizeof seq);
  return std::move(buf_);
}

void NetlinkMessage::Append(const void* data, size_t length) {
  buf_.append(static_cast<const char*>(data), length);
  buf_.resize(NLMSG_ALIGN(buf_.size()), '\0');
}

NetlinkAttrs::NetlinkAttrs(std::string_view data, size_t max_type) : by_type_(max_type + 1) {
  size_t offset = 0;
  while (offset + sizeof(rtattr) <= data.size()) {
    rtattr a;
    std::memcpy(&a, data.data() + offset, sizeof a);
    if (a.rta_len < sizeof(rtattr) || offset + a.rta_len > data.size()) break;
    uint16_t type = a.rta_type & NLA_TYPE_MASK;
    if (type <= max_type) {
      by_type_[type] = data.substr(offset + RTA_LENGTH(0), a.rta_len - RTA_LENGTH(0));
    }
    offset += RTA_ALIGN(a.rta_len);
  }
}

NetlinkAttrs NetlinkAttrs::OfMessage(std::string_view message, size_t header_size,
                                     size_t max_type) {
  size_t offset = NLMSG_HDRLEN + NLMSG_ALIGN(header_size);
  return NetlinkAttrs(offset < message.size() ? message.substr(offset) : std::string_view(),
                      max_type);
}

uint32_t NetlinkAttrs::U32(uint16_t type) const {
  std::string_view v = Get(type);
  uint32_t out = 0;
  if (v.size() >= sizeof out) std::memcpy(&out, v.data(), sizeof out);
  return out;
}

std::string NetlinkAttrs::String(uint16_t type) const {
  std::string_view v = Get(type);
  return std::string(v.substr(0, v.find('\0')));
}

uint16_t NetlinkType(std::string_view message) {
  nlmsghdr h{};
  if (message.size() >= sizeof h) std::memcpy(&h, message.data(), sizeof h);
  return h.nlmsg_type;
}

Result<std::vector<std::string>> ReceiveNetlink(int fd, uint32_t first_seq, uint32_t last_seq,
                                                bool dump, const std::string& what, bool* done) {
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

Result<UniqueFd> OpenNetlink(int protocol, const std::string& name, uint32_t groups) {
  UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol));
  if (!fd) return Error::Errno("socket(" + name + ")");
  int one = 1;
  // Error messages with the kernel's explanation; not fatal when unsupported.
  (void)setsockopt(fd.get(), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void)setsockopt(fd.get(), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  local.nl_groups = groups;
  // JUSTIFICATION: sockaddr_nl is passed through the generic sockaddr interface.
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    return Error::Errno("bind " + name + " socket");
  }
  return fd;
}

Status SendAndAwaitAck(int fd, const std::string& messages, uint32_t first_seq, uint32_t last_seq,
                       const std::string& what) {
  if (send(fd, messages.data(), messages.size(), 0) < 0) {
    return Error::Errno(what + ": send netlink");
  }
  bool done = false;
  while (!done) {
    SBX_ASSIGN_OR_RETURN(auto replies, ReceiveNetlink(fd, first_seq, last_seq, false, what, &done));
    (void)replies;
  }
  return Ok();
}

}  // namespace sbx::net
