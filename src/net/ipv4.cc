#include "src/net/ipv4.h"

#include <algorithm>

#include "src/base/strings.h"

namespace sbx::net {

namespace {

Ipv4 Mask(int length) { return length == 0 ? 0 : ~Ipv4{0} << (32 - length); }

}  // namespace

Ipv4 Ipv4Prefix::Last() const { return address | ~Mask(length); }

bool Ipv4Prefix::Contains(Ipv4 ip) const { return (ip & Mask(length)) == address; }

bool Ipv4Prefix::Overlaps(const Ipv4Prefix& other) const {
  return First() <= other.Last() && other.First() <= Last();
}

std::string Ipv4Prefix::ToString() const {
  return FormatIpv4(address) + "/" + std::to_string(length);
}

std::string Ipv4Range::ToString() const {
  if (first == last) return FormatIpv4(first);
  return FormatIpv4(first) + "-" + FormatIpv4(last);
}

Result<Ipv4> ParseIpv4(std::string_view text) {
  auto bad = [&] { return Error::InvalidArgument("not an IPv4 address: " + Quote(text)); };
  std::vector<std::string> parts = Split(text, '.');
  if (parts.size() != 4) return bad();
  Ipv4 ip = 0;
  for (const auto& part : parts) {
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return bad();
    if (!std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return bad();
    }
    int octet = std::stoi(part);
    if (octet > 255) return bad();
    ip = (ip << 8) | static_cast<Ipv4>(octet);
  }
  return ip;
}

std::string FormatIpv4(Ipv4 ip) {
  return std::to_string(ip >> 24) + "." + std::to_string((ip >> 16) & 0xff) + "." +
         std::to_string((ip >> 8) & 0xff) + "." + std::to_string(ip & 0xff);
}

Ipv4Prefix MakePrefix(Ipv4 address, int length) { return {address & Mask(length), length}; }

Result<Ipv4Prefix> ParseIpv4Prefix(std::string_view text, bool strict) {
  size_t slash = text.find('/');
  SBX_ASSIGN_OR_RETURN(Ipv4 ip, ParseIpv4(text.substr(0, slash)));
  int length = 32;
  if (slash != std::string_view::npos) {
    std::string_view len = text.substr(slash + 1);
    auto n = ParseUint64(len);
    if (len.empty() || len.size() > 2 || !n || *n > 32) {
      return Error::InvalidArgument("not an IPv4 prefix length: " + Quote(text));
    }
    length = static_cast<int>(*n);
  }
  Ipv4Prefix prefix = MakePrefix(ip, length);
  if (strict && prefix.address != ip) {
    return Error::InvalidArgument(Quote(text) + " has host bits set (did you mean " +
                                  prefix.ToString() + "?)");
  }
  return prefix;
}

Ipv4Range ToRange(const Ipv4Prefix& prefix) { return {prefix.First(), prefix.Last()}; }

std::vector<Ipv4Range> Normalize(std::vector<Ipv4Range> ranges) {
  std::sort(ranges.begin(), ranges.end(),
            [](const Ipv4Range& a, const Ipv4Range& b) { return a.first < b.first; });
  std::vector<Ipv4Range> out;
  for (const auto& r : ranges) {
    if (!out.empty() && (r.first <= out.back().last ||
                         (out.back().last != UINT32_MAX && r.first == out.back().last + 1))) {
      out.back().last = std::max(out.back().last, r.last);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

std::vector<Ipv4Range> Subtract(const std::vector<Ipv4Range>& from,
                                const std::vector<Ipv4Range>& remove) {
  std::vector<Ipv4Range> current = Normalize(from);
  for (const auto& cut : Normalize(remove)) {
    std::vector<Ipv4Range> next;
    for (const auto& r : current) {
      if (cut.last < r.first || cut.first > r.last) {
        next.push_back(r);
        continue;
      }
      if (cut.first > r.first) next.push_back({r.first, cut.first - 1});
      if (cut.last < r.last) next.push_back({cut.last + 1, r.last});
    }
    current = std::move(next);
  }
  return current;
}

bool RangesContain(const std::vector<Ipv4Range>& ranges, Ipv4 ip) {
  return std::any_of(ranges.begin(), ranges.end(),
                     [ip](const Ipv4Range& r) { return ip >= r.first && ip <= r.last; });
}

std::vector<Ipv4Prefix> BuiltinDenyPrefixes() {
  static constexpr const char* kDeny[] = {
      "0.0.0.0/8",         // "this" network
      "10.0.0.0/8",        // RFC 1918
      "100.64.0.0/10",     // shared address space (CGNAT; Alibaba's metadata 100.100.100.200)
      "127.0.0.0/8",       // loopback
      "169.254.0.0/16",    // link-local: cloud metadata (169.254.169.254, 169.254.170.2)
      "172.16.0.0/12",     // RFC 1918
      "192.0.0.0/24",      // IETF protocol assignments
      "192.168.0.0/16",    // RFC 1918
      "198.18.0.0/15",     // benchmarking
      "224.0.0.0/4",       // multicast
      "240.0.0.0/4",       // reserved, and the limited broadcast address
      "168.63.129.16/32",  // Azure WireServer and its DNS
  };
  std::vector<Ipv4Prefix> out;
  for (const char* text : kDeny) out.push_back(*ParseIpv4Prefix(text, true));
  return out;
}

}  // namespace sbx::net
