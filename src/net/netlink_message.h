// File: netlink_message.h
//
// The netlink wire format as sbxd writes and reads it, shared by its netlink clients (rtnetlink.h,
// nft_map_elements.h, host_networks.h): a message builder, an attribute reader, a bound socket,
// and the send-and-await-acknowledgement loop. Lengths and alignment follow the netlink rules
// (4-byte alignment everywhere); every length read from the kernel is checked before use.

#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::net {

// Builds one netlink message: the header, a family header, attributes (nested ones by
// Begin/End).
class NetlinkMessage {
 public:
  NetlinkMessage(uint16_t type, uint16_t flags);

  template <typename T>
  void Raw(const T& value) {
    Append(&value, sizeof value);
  }
  void Attr(uint16_t type, const void* data, size_t length);
  void AttrU8(uint16_t type, uint8_t v) { Attr(type, &v, sizeof v); }
  void AttrU32(uint16_t type, uint32_t v) { Attr(type, &v, sizeof v); }
  void AttrString(uint16_t type, const std::string& s) { Attr(type, s.c_str(), s.size() + 1); }
  // A nested attribute: Begin returns its offset, End closes it.
  size_t Begin(uint16_t type);
  void End(size_t offset);
  // The message, with its length and sequence number written in.
  std::string Finish(uint32_t seq);

 private:
  void Append(const void* data, size_t length);
  std::string buf_;
};

// The attributes found in `data` (a message after its family header, or a nested attribute's
// payload), by type; the last one of each type wins, nested types lose their flag bits.
class NetlinkAttrs {
 public:
  NetlinkAttrs(std::string_view data, size_t max_type);
  // The attributes of `message` after its family header of `header_size` bytes.
  static NetlinkAttrs OfMessage(std::string_view message, size_t header_size, size_t max_type);

  std::string_view Get(uint16_t type) const {
    return type < by_type_.size() ? by_type_[type] : std::string_view();
  }
  uint32_t U32(uint16_t type) const;
  std::string String(uint16_t type) const;

 private:
  std::vector<std::string_view> by_type_;
};

// The family header of `message` (zeroes when the message is too short for it).
template <typename T>
T NetlinkHeader(std::string_view message) {
  T out{};
  if (message.size() >= NLMSG_HDRLEN + sizeof(T)) {
    std::memcpy(&out, message.data() + NLMSG_HDRLEN, sizeof(T));
  }
  return out;
}

// The type of `message` (its nlmsghdr's).
uint16_t NetlinkType(std::string_view message);

// A bound netlink socket of `protocol` in the calling thread's network namespace, subscribed to
// the multicast `groups` (RTMGRP_* bits; 0 for none).
Result<UniqueFd> OpenNetlink(int protocol, const std::string& name, uint32_t groups = 0);

// Replies to the request(s) numbered `first_seq`..`last_seq` (a batch has several) from one
// datagram, waiting for it up to a few seconds. `done` is set by the acknowledgement, an error,
// NLMSG_DONE or, unless `dump`, the first reply.
Result<std::vector<std::string>> ReceiveNetlink(int fd, uint32_t first_seq, uint32_t last_seq,
                                                bool dump, const std::string& what, bool* done);

// Sends `messages` (numbered `first_seq`..`last_seq`) and waits for the acknowledgement, or the
// error the kernel reports against whichever of them caused it.
Status SendAndAwaitAck(int fd, const std::string& messages, uint32_t first_seq, uint32_t last_seq,
                       const std::string& what);

}  // namespace sbx::net
