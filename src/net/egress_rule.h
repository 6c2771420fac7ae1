// File: egress_rule.h
//
// A sandbox's egress rules as typed values: an IPv4 CIDR block (minus exceptions), a DNS name
// pattern, or every public destination, each on some ports. The API's request parser builds them
// once, at the edge; everything below (the network provider, the ruleset, the record the daemon
// stores and renders) takes them as they are and never parses a rule's text again.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"
#include "src/net/ipv4.h"

namespace sbx::net {

// The transport protocols a port range covers.
enum class Transport { kTcpAndUdp, kTcp, kUdp };

// "tcp", "udp" or "" (both), any case.
Result<Transport> ParseTransport(std::string_view text);
// "tcp", "udp", or "" for kTcpAndUdp.
std::string_view TransportName(Transport transport);

struct PortRange {
  Transport transport = Transport::kTcpAndUdp;
  uint16_t first = 0;  // 0: every port (and then `last` is 0 too)
  uint16_t last = 0;   // == first for one port
  bool operator==(const PortRange&) const = default;
};

// A port range as the API gives it: `port` 0 means every port, `end_port` 0 means just `port`.
// InvalidArgument when a number is out of 0-65535 or `end_port` is below `port`.
Result<PortRange> MakePortRange(Transport transport, int port, int end_port);

// "pypi.org" (that name) or "*.pypi.org" (every name below it, not pypi.org itself), in lower
// case: labels of letters, digits and '-', at most 63 bytes each, 253 in all.
class DnsPattern {
 public:
  DnsPattern() = default;
  // InvalidArgument naming the text when it is not such a pattern.
  static Result<DnsPattern> Parse(std::string_view text);

  bool Matches(std::string_view name) const;
  const std::string& text() const { return text_; }
  bool empty() const { return text_.empty(); }
  bool operator==(const DnsPattern&) const = default;

 private:
  explicit DnsPattern(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

// The values are stored in sbxd's state files; keep their numbers.
enum class EgressKind { kCidr = 0, kDnsName = 1, kAny = 2 };

struct EgressRule {
  EgressKind kind = EgressKind::kAny;
  Ipv4Prefix cidr;                 // kCidr
  std::vector<Ipv4Prefix> except;  // kCidr
  DnsPattern dns_name;             // kDnsName
  std::vector<PortRange> ports;    // empty: every port and protocol
  bool operator==(const EgressRule&) const = default;
};

}  // namespace sbx::net
