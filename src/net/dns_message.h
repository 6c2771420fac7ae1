// File: dns_message.h
//
// The parts of the DNS wire format (RFC 1035) sbxd's forwarder needs: parse a sandbox's query
// (hostile input: every length and pointer is bounded), parse an upstream answer's A and CNAME
// records with compressed names expanded, and build answers of our own. Names are kept as
// lower-case dotted text without the final dot; labels that are not plain host-name characters
// are refused, so a name's text has exactly one meaning when it is matched against a rule.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"
#include "src/net/ipv4.h"

namespace sbx::net {

inline constexpr uint16_t kDnsTypeA = 1;
inline constexpr uint16_t kDnsTypeCname = 5;
inline constexpr uint16_t kDnsTypeAaaa = 28;
inline constexpr uint16_t kDnsTypeOpt = 41;
inline constexpr uint16_t kDnsClassIn = 1;

inline constexpr int kDnsNoError = 0;
inline constexpr int kDnsFormErr = 1;
inline constexpr int kDnsServFail = 2;
inline constexpr int kDnsNxDomain = 3;
inline constexpr int kDnsNotImp = 4;
inline constexpr int kDnsRefused = 5;

struct DnsQuestion {
  std::string name;  // "pypi.org"; "" is the root
  uint16_t type = 0;
  uint16_t klass = 0;
  bool operator==(const DnsQuestion&) const = default;
};

struct DnsQuery {
  uint16_t id = 0;
  bool recursion_desired = false;
  DnsQuestion question;
  uint16_t udp_size = 512;  // from an EDNS OPT record, at least 512
};

struct DnsRecord {
  std::string name;
  uint16_t type = 0;
  uint32_t ttl = 0;
  Ipv4 address = 0;    // kDnsTypeA
  std::string target;  // kDnsTypeCname
};

struct DnsAnswer {
  uint16_t id = 0;
  int rcode = 0;
  bool truncated = false;
  std::vector<DnsQuestion> questions;
  std::vector<DnsRecord> records;  // A and CNAME records of the answer section, in order
};

// The id of a message, when it has a header at all.
Result<uint16_t> DnsMessageId(std::string_view packet);
// A standard query with exactly one question.
Result<DnsQuery> ParseDnsQuery(std::string_view packet);
// A response (QR set).
Result<DnsAnswer> ParseDnsAnswer(std::string_view packet);
// Our own answer to `query`: its question, and `records` (A and CNAME) as long as they fit in
// `max_size` bytes; TC is set when some did not.
std::string BuildDnsAnswer(const DnsQuery& query, int rcode, const std::vector<DnsRecord>& records,
                           size_t max_size);
// An error answer to a query we could not parse beyond its id.
std::string BuildDnsError(uint16_t id, int rcode);
// `packet` with its id replaced.
std::string WithDnsId(std::string packet, uint16_t id);

// "pypi.org" matches itself; "*.pypi.org" matches every name below pypi.org, not pypi.org.
// Both sides are compared case-insensitively.
bool DnsNameMatches(std::string_view pattern, std::string_view name);

}  // namespace sbx::net
