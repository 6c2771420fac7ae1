#include "src/net/ruleset.h"

#include <string_view>

#include "src/base/strings.h"

namespace sbx::net {

namespace {

// The exposed ports' DNAT maps, by protocol and by who may reach them.
constexpr const char* kServiceMaps[] = {"svc_tcp_any",  "svc_udp_any",  "svc_sctp_any",
                                        "svc_tcp_host", "svc_udp_host", "svc_sctp_host"};

std::string Quoted(const std::string& name) { return "\"" + name + "\""; }

std::string PortClause(const PortRange& p) {
  std::string out = p.transport == Transport::kTcpAndUdp
                        ? "meta l4proto { tcp, udp }"
                        : "meta l4proto " + std::string(TransportName(p.transport));
  if (p.first > 0) {
    out += " th dport " + std::to_string(p.first);
    if (p.last > p.first) out += "-" + std::to_string(p.last);
  }
  return out;
}

}  // namespace

std::map<std::string, uint64_t> ParseCounterPackets(std::string_view listing) {
  // counter <name> {
  //     packets <n> bytes <m>
  // }
  std::map<std::string, uint64_t> out;
  std::string current;
  for (const auto& raw : Split(listing, '\n')) {
    std::vector<std::string> words;
    for (const auto& w : Split(Trim(raw), ' ')) {
      if (!w.empty()) words.push_back(w);
    }
    if (words.size() == 3 && words[0] == "counter" && words[2] == "{") {
      current = words[1];
    } else if (words.size() >= 2 && words[0] == "packets" && !current.empty()) {
      if (auto n = ParseUint64(words[1])) out[current] = *n;
      current.clear();
    }
  }
  return out;
}

std::string Ruleset::ChainName(int slot) { return "s" + std::to_string(slot); }

std::string Ruleset::DnsSetName(int slot, int rule) {
  return "s" + std::to_string(slot) + "_d" + std::to_string(rule);
}

std::string Ruleset::ServiceMap(const PublishedPort& p) const {
  return "svc_" + p.protocol + (p.from_anywhere ? "_any" : "_host");
}

std::string Ruleset::InetTable(const std::vector<Ipv4Range>& deny_set) const {
  // Every bridge of sandboxes (a bridge takes at most 1023 ports).
  const std::string br = "@bridges";
  const std::string gw = FormatIpv4(c_.gateway);
  std::string deny;
  for (const auto& r : deny_set) deny += (deny.empty() ? "" : ", ") + r.ToString();
  std::string t = "table inet " + c_.table + " {\n";
  t += "  set deny { type ipv4_addr; flags interval;";
  if (!deny.empty()) t += " elements = { " + deny + " };";
  t += " }\n";
  t += "  set bridges { type ifname; elements = { " + Quoted(c_.bridge) + " }; }\n";
  t += "  map sandboxes { type ipv4_addr : verdict; }\n";
  // Per sandbox address: a token bucket of new flows (kept while the sandbox makes flows) and
  // the count of its tracked flows. Sized for every address of the subnet: a full set would let
  // new addresses through unlimited.
  const std::string size = std::to_string(c_.subnet.Size());
  t +=
      "  set flow_rate { type ipv4_addr; size " + size + "; flags dynamic,timeout; timeout 1m; }\n";
  t += "  set flows { type ipv4_addr; size " + size + "; flags dynamic; }\n";
  for (const char* counter : {kSandboxFlowRateCounter, kSandboxFlowsCounter, kFlowsCounter}) {
    t += std::string("  counter ") + counter + " { }\n";
  }
  for (const char* map : kServiceMaps) {
    t += std::string("  map ") + map + " { type inet_service : ipv4_addr . inet_service; }\n";
  }
  // SECURITY: every flow a sandbox starts takes a conntrack entry of the host's (of its own
  // traffic to the gateway too), and the table is shared with the host: without these a sandbox
  // fills it in a second with one-packet UDP flows. A packet dropped here is never confirmed, so
  // it leaves no entry behind.
  const std::string rate = std::to_string(c_.sandbox_flows_per_second);
  t += "  chain limits {\n"
       "    type filter hook prerouting priority filter; policy accept;\n"
       "    iifname " +
       br +
       " ct state new jump new_flow\n"
       "  }\n";
  t += "  chain new_flow {\n"
       "    update @flow_rate { ip saddr limit rate over " +
       rate + "/second burst " + std::to_string(2 * c_.sandbox_flows_per_second) +
       " packets } counter name " + kSandboxFlowRateCounter +
       " drop\n"
       "    add @flows { ip saddr ct count over " +
       std::to_string(c_.sandbox_flows) + " } counter name " + kSandboxFlowsCounter +
       " drop\n"
       "    ct count over " +
       std::to_string(c_.flows) + " counter name " + kFlowsCounter +
       " drop\n"
       "  }\n";
  t += "  chain forward {\n"
       "    type filter hook forward priority filter; policy accept;\n"
       "    iifname " +
       br +
       " jump from_sandbox\n"
       "    oifname " +
       br +
       " jump to_sandbox\n"
       "  }\n";
  // SECURITY: established flows were admitted by these rules when they started (or are replies
  // to an exposed port); every new flow passes the deny set before any sandbox's own rules.
  t += "  chain from_sandbox {\n"
       "    ct state established,related accept\n"
       "    meta nfproto != ipv4 drop\n"
       "    ip daddr @deny drop\n"
       "    ip saddr vmap @sandboxes\n"
       "    drop\n"
       "  }\n";
  t += "  chain to_sandbox {\n"
       "    ct state established,related accept\n"
       "    ct status dnat accept\n"
       "    drop\n"
       "  }\n";
  // SECURITY: the host itself (every address it has, and whatever listens on them) is reachable
  // from a sandbox only for DNS to the forwarder.
  t += "  chain input {\n"
       "    type filter hook input priority filter; policy accept;\n"
       "    iifname " +
       br +
       " jump sandbox_to_host\n"
       "  }\n";
  t += "  chain sandbox_to_host {\n"
       "    ct state established,related accept\n"
       "    ip daddr " +
       gw +
       " udp dport 53 accept\n"
       "    ip daddr " +
       gw +
       " tcp dport 53 accept\n"
       "    drop\n"
       "  }\n";
  t += "  chain postrouting {\n"
       "    type nat hook postrouting priority srcnat; policy accept;\n"
       "    ip saddr " +
       c_.subnet.ToString() + " oifname != " + br +
       " masquerade\n"
       "  }\n";
  t += "  chain prerouting {\n"
       "    type nat hook prerouting priority dstnat; policy accept;\n"
       "    fib daddr type local dnat ip to tcp dport map @svc_tcp_any\n"
       "    fib daddr type local dnat ip to udp dport map @svc_udp_any\n"
       "    fib daddr type local dnat ip to sctp dport map @svc_sctp_any\n"
       "  }\n";
  // Loopback destinations are left alone: DNAT from 127/8 to a sandbox would need route_localnet.
  t += "  chain output {\n"
       "    type nat hook output priority -100; policy accept;\n";
  for (const char* map : kServiceMaps) {
    std::string_view name(map);
    std::string proto(name.substr(4, name.rfind('_') - 4));
    t += std::string("    ip daddr != 127.0.0.0/8 fib daddr type local dnat ip to ") + proto +
         " dport map @" + map + "\n";
  }
  t += "  }\n}\n";
  return t;
}

std::string Ruleset::BridgeTable() const {
  const std::string ports = Quoted(c_.port_prefix + "*");
  std::string t = "table bridge " + c_.table + " {\n";
  t += "  set ports { type ifname . ipv4_addr; }\n";
  t += "  chain prerouting {\n"
       "    type filter hook prerouting priority filter; policy accept;\n"
       "    iifname " +
       ports +
       " jump from_sandbox\n"
       "  }\n";
  // SECURITY: without this a sandbox could send with another sandbox's source address
  // (IP_FREEBIND needs no capability) and borrow its egress rules.
  t += "  chain from_sandbox {\n"
       "    ether type ip meta iifname . ip saddr @ports accept\n"
       "    ether type arp meta iifname . arp saddr ip @ports accept\n"
       "    drop\n"
       "  }\n";
  t += "  chain forward {\n"
       "    type filter hook forward priority filter; policy accept;\n"
       "    iifname " +
       ports +
       " drop\n"
       "  }\n}\n";
  return t;
}

std::string Ruleset::Replace(const std::vector<Ipv4Range>& deny,
                             const std::vector<std::pair<std::string, Ipv4>>& ports,
                             const std::vector<SandboxRules>& sandboxes,
                             const std::vector<std::string>& more_bridges) const {
  std::string out = Delete();
  out += InetTable(deny);
  out += BridgeTable();
  for (const auto& bridge : more_bridges) out += AddBridge(bridge);
  for (const auto& [port, address] : ports) out += AddPort(port, address);
  for (const auto& s : sandboxes) out += AddSandbox(s);
  return out;
}

std::string Ruleset::Delete() const {
  // "add" first makes the deletes succeed whether or not the tables exist.
  return "add table inet " + c_.table + "\ndelete table inet " + c_.table + "\nadd table bridge " +
         c_.table + "\ndelete table bridge " + c_.table + "\n";
}

std::string Ruleset::SetDeny(const std::vector<Ipv4Range>& deny) const {
  std::string out = "flush set inet " + c_.table + " deny\n";
  if (deny.empty()) return out;
  out += "add element inet " + c_.table + " deny { ";
  for (size_t i = 0; i < deny.size(); ++i) out += (i ? ", " : "") + deny[i].ToString();
  return out + " }\n";
}

std::string Ruleset::ListCounters() const { return "list counters table inet " + c_.table + "\n"; }

std::string Ruleset::AddBridge(const std::string& name) const {
  return "add element inet " + c_.table + " bridges { " + Quoted(name) + " }\n";
}

std::string Ruleset::AddPort(const std::string& port, Ipv4 address) const {
  return "add element bridge " + c_.table + " ports { " + Quoted(port) + " . " +
         FormatIpv4(address) + " }\n";
}

std::string Ruleset::RemovePort(const std::string& port, Ipv4 address) const {
  return "delete element bridge " + c_.table + " ports { " + Quoted(port) + " . " +
         FormatIpv4(address) + " }\n";
}

std::string Ruleset::AddSandbox(const SandboxRules& s) const {
  const std::string& t = c_.table;
  const std::string addr = FormatIpv4(s.address);
  std::string out;
  std::string verdict = "accept";
  if (s.policy == SandboxPolicy::kDenyAll) verdict = "drop";
  if (s.policy == SandboxPolicy::kAllowlist) {
    std::string chain = ChainName(s.slot);
    verdict = "jump " + chain;
    out += "add chain inet " + t + " " + chain + "\n";
    for (size_t i = 0; i < s.egress.size(); ++i) {
      const EgressRule& e = s.egress[i];
      std::string match;
      if (e.kind == EgressKind::kCidr) {
        match = "ip daddr " + e.cidr.ToString();
        if (!e.except.empty()) {
          std::string list;
          for (const auto& x : e.except) list += (list.empty() ? "" : ", ") + x.ToString();
          match += " ip daddr != { " + list + " }";
        }
      } else if (e.kind == EgressKind::kDnsName) {
        std::string set = DnsSetName(s.slot, static_cast<int>(i));
        out += "add set inet " + t + " " + set + " { type ipv4_addr; flags timeout; }\n";
        match = "ip daddr @" + set;
      }
      std::string prefix = "add rule inet " + t + " " + chain + " ";
      if (e.ports.empty()) {
        out += prefix + (match.empty() ? "" : match + " ") + "accept\n";
      }
      for (const auto& p : e.ports) {
        out += prefix + (match.empty() ? "" : match + " ") + PortClause(p) + " accept\n";
      }
    }
  }
  out += "add element inet " + t + " sandboxes { " + addr + " : " + verdict + " }\n";
  for (const auto& p : s.published) {
    out += "add element inet " + t + " " + ServiceMap(p) + " { " + std::to_string(p.host_port) +
           " : " + addr + " . " + std::to_string(p.port) + " }\n";
  }
  return out;
}

std::optional<NftVerdictElement> Ruleset::SandboxElement(const SandboxRules& s) const {
  if (s.policy == SandboxPolicy::kAllowlist || !s.published.empty()) return std::nullopt;
  NftVerdictElement element;
  element.table = c_.table;
  element.map = "sandboxes";
  element.key = s.address;
  element.verdict = s.policy == SandboxPolicy::kDenyAll ? NftVerdict::kDrop : NftVerdict::kAccept;
  return element;
}

std::string Ruleset::RemoveSandbox(const SandboxRules& s) const {
  const std::string& t = c_.table;
  std::string out;
  for (const auto& p : s.published) {
    out += "delete element inet " + t + " " + ServiceMap(p) + " { " + std::to_string(p.host_port) +
           " }\n";
  }
  out += "delete element inet " + t + " sandboxes { " + FormatIpv4(s.address) + " }\n";
  if (s.policy == SandboxPolicy::kAllowlist) {
    std::string chain = ChainName(s.slot);
    out += "flush chain inet " + t + " " + chain + "\n";
    out += "delete chain inet " + t + " " + chain + "\n";
    for (size_t i = 0; i < s.egress.size(); ++i) {
      if (s.egress[i].kind == EgressKind::kDnsName) {
        out += "delete set inet " + t + " " + DnsSetName(s.slot, static_cast<int>(i)) + "\n";
      }
    }
  }
  return out;
}

std::string Ruleset::Allow(int slot, int rule, Ipv4 address, int timeout_seconds) const {
  std::string set = "inet " + c_.table + " " + DnsSetName(slot, rule);
  std::string element = FormatIpv4(address);
  std::string timeout = " timeout " + std::to_string(timeout_seconds) + "s";
  // add (so that it exists), delete, add again: the element ends up with a fresh timeout.
  return "add element " + set + " { " + element + timeout + " }\n" + "delete element " + set +
         " { " + element + " }\n" + "add element " + set + " { " + element + timeout + " }\n";
}

}  // namespace sbx::net
