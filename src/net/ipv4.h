// File: ipv4.h
//
// IPv4 addresses, prefixes and ranges as host-order integers: parsing (strict dotted quads, no
// octal or shorthand forms), formatting, containment and range arithmetic. The deny set is built
// from these, so every CIDR that reaches an nftables rule has been parsed and re-printed here,
// never copied from a request.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"

namespace sbx::net {

// A host-order IPv4 address.
using Ipv4 = uint32_t;

struct Ipv4Prefix {
  Ipv4 address = 0;  // host bits cleared
  int length = 0;

  Ipv4 First() const { return address; }
  Ipv4 Last() const;
  uint64_t Size() const { return uint64_t{1} << (32 - length); }
  bool Contains(Ipv4 ip) const;
  bool Overlaps(const Ipv4Prefix& other) const;
  std::string ToString() const;  // "10.0.0.0/8"
  bool operator==(const Ipv4Prefix&) const = default;
};

// An inclusive range of addresses.
struct Ipv4Range {
  Ipv4 first = 0;
  Ipv4 last = 0;
  std::string ToString() const;  // "10.0.0.0-10.255.255.255", or one address
  bool operator==(const Ipv4Range&) const = default;
};

// "192.0.2.1"; four decimal octets without leading zeros.
Result<Ipv4> ParseIpv4(std::string_view text);
std::string FormatIpv4(Ipv4 ip);
// "10.0.0.0/8"; a bare address is a /32. With `strict`, host bits must be zero; otherwise they
// are cleared.
Result<Ipv4Prefix> ParseIpv4Prefix(std::string_view text, bool strict = false);
Ipv4Prefix MakePrefix(Ipv4 address, int length);

// Sorted, merged ranges covering the same addresses.
std::vector<Ipv4Range> Normalize(std::vector<Ipv4Range> ranges);
// `from` minus `remove`, sorted and merged.
std::vector<Ipv4Range> Subtract(const std::vector<Ipv4Range>& from,
                                const std::vector<Ipv4Range>& remove);
bool RangesContain(const std::vector<Ipv4Range>& ranges, Ipv4 ip);
Ipv4Range ToRange(const Ipv4Prefix& prefix);

// Destinations no sandbox may reach, whatever its rules say: "this" network, RFC 1918, shared
// address space (100.64/10), loopback, link-local (cloud metadata lives there), IETF protocol
// assignments, benchmarking, multicast, reserved and broadcast, and Azure's WireServer, which sits
// on a public address. Documentation ranges (TEST-NET-1/2/3) are public on purpose.
std::vector<Ipv4Prefix> BuiltinDenyPrefixes();

}  // namespace sbx::net
