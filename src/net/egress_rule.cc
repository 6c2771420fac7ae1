#include "src/net/egress_rule.h"

#include <algorithm>
#include <cctype>

#include "src/base/strings.h"
#include "src/net/dns_message.h"

namespace sbx::net {

namespace {

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

Result<Transport> ParseTransport(std::string_view text) {
  std::string lower = Lower(text);
  if (lower.empty()) return Transport::kTcpAndUdp;
  if (lower == "tcp") return Transport::kTcp;
  if (lower == "udp") return Transport::kUdp;
  return Error::InvalidArgument("not \"tcp\" or \"udp\": " + Quote(text));
}

std::string_view TransportName(Transport transport) {
  switch (transport) {
    case Transport::kTcp:
      return "tcp";
    case Transport::kUdp:
      return "udp";
    case Transport::kTcpAndUdp:
      break;
  }
  return "";
}

Result<PortRange> MakePortRange(Transport transport, int port, int end_port) {
  if (port < 0 || port > 65535 || end_port < 0 || end_port > 65535 ||
      (end_port != 0 && end_port < port)) {
    return Error::InvalidArgument("invalid port range " + std::to_string(port) + "-" +
                                  std::to_string(end_port));
  }
  PortRange range;
  range.transport = transport;
  if (port == 0) return range;
  range.first = static_cast<uint16_t>(port);
  range.last = static_cast<uint16_t>(end_port > 0 ? end_port : port);
  return range;
}

Result<DnsPattern> DnsPattern::Parse(std::string_view text) {
  auto bad = [&] { return Error::InvalidArgument("not a DNS name: " + Quote(text)); };
  std::string lower = Lower(text);
  std::string_view name = lower;
  if (StartsWith(name, "*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253) return bad();
  for (const auto& label : Split(name, '.')) {
    if (label.empty() || label.size() > 63) return bad();
    for (char c : label) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-')) return bad();
    }
  }
  return DnsPattern(std::move(lower));
}

bool DnsPattern::Matches(std::string_view name) const { return DnsNameMatches(text_, name); }

}  // namespace sbx::net
