// File: ruleset.h
//
// The nftables rules of one daemon's sandbox network, as text in the `nft` language, generated
// from parsed values only. Two tables of the same name live in the daemon's own (host) network
// namespace, where no sandbox can touch them:
//
//   table inet <name>     limits:          a new flow from a sandbox is dropped when it has more
//                                          than its share of new flows per second or of tracked
//                                          flows, or all sandboxes together have theirs (each
//                                          drop counted)
//                         filter forward:  from the bridge: established flows; IPv4 only; never
//                                          the deny set; then each sandbox's policy (a verdict
//                                          map by source address: accept | jump its allowlist
//                                          chain | drop); to the bridge: established flows and
//                                          exposed ports only
//                         filter input:    from the bridge: only DNS to the gateway (sbxd's
//                                          forwarder) and replies to the host's own flows
//                         nat:             masquerade out of the subnet; exposed ports DNATed
//                                          (public ones from anywhere, the others from the host)
//   table bridge <name>   anti-spoofing:   a frame from a sandbox's port must carry that port's
//                                          IPv4 address (IP and ARP); nothing else (no IPv6);
//                                          nothing bridged between ports (isolation at L2)
//
// Per sandbox: an element in the verdict map; in allowlist mode a chain `s<slot>` with one rule
// per egress rule and, per DNS-name rule, a set `s<slot>_d<rule>` of the addresses sbxd's DNS
// forwarder resolved for that sandbox, each with a timeout.

#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/net/egress_rule.h"
#include "src/net/ipv4.h"
#include "src/net/nft_map_elements.h"

namespace sbx::net {

enum class SandboxPolicy { kPublic, kAllowlist, kDenyAll };

struct PublishedPort {
  std::string protocol;  // "tcp", "udp" or "sctp"
  int host_port = 0;
  int port = 0;                // in the sandbox
  bool from_anywhere = false;  // false: from the host itself only
};

struct SandboxRules {
  int slot = 0;
  Ipv4 address = 0;
  SandboxPolicy policy = SandboxPolicy::kPublic;
  std::vector<EgressRule> egress;  // kAllowlist
  std::vector<PublishedPort> published;
};

struct RulesetConfig {
  std::string table;        // [A-Za-z0-9_]
  std::string bridge;       // interface name of the first bridge; more join the `bridges` set
  std::string port_prefix;  // every host-side veth name starts with it
  Ipv4Prefix subnet;
  Ipv4 gateway = 0;
  int sandbox_flows = 8192;             // flows tracked at once, per sandbox address
  int sandbox_flows_per_second = 1000;  // new flows per sandbox address; bursts of twice as many
  int flows = 131072;                   // flows tracked at once, all sandboxes together
};

// The names of the counters of the limits' drops, as the ruleset declares them.
inline constexpr const char* kSandboxFlowRateCounter = "sandbox_flow_rate";
inline constexpr const char* kSandboxFlowsCounter = "sandbox_flows";
inline constexpr const char* kFlowsCounter = "flows";

// The packet counts of the named counters in the output of `list counters`.
std::map<std::string, uint64_t> ParseCounterPackets(std::string_view listing);

class Ruleset {
 public:
  explicit Ruleset(RulesetConfig config) : c_(std::move(config)) {}

  // Both tables replaced atomically by the base rules with this deny set, plus these ports and
  // sandboxes, and these bridges beside the first.
  std::string Replace(const std::vector<Ipv4Range>& deny,
                      const std::vector<std::pair<std::string, Ipv4>>& ports,
                      const std::vector<SandboxRules>& sandboxes,
                      const std::vector<std::string>& more_bridges = {}) const;
  // Another bridge of sandboxes: its traffic meets the same rules as the first one's.
  std::string AddBridge(const std::string& name) const;
  // The deny set's elements replaced, atomically: no packet meets an empty or partial set.
  std::string SetDeny(const std::vector<Ipv4Range>& deny) const;
  // Both tables removed (missing ones are fine).
  std::string Delete() const;
  // Lists the inet table's counters (for ParseCounterPackets).
  std::string ListCounters() const;

  // A sandbox port may send only from `address`.
  std::string AddPort(const std::string& port, Ipv4 address) const;
  std::string RemovePort(const std::string& port, Ipv4 address) const;

  std::string AddSandbox(const SandboxRules& rules) const;
  // When a sandbox's rules are a single verdict-map element (no allowlist chain, nothing
  // published), that element: the whole of AddSandbox and RemoveSandbox, for NftMapElements.
  std::optional<NftVerdictElement> SandboxElement(const SandboxRules& rules) const;
  // One command per line; callers may retry line by line when the batch fails on a missing
  // object.
  std::string RemoveSandbox(const SandboxRules& rules) const;

  // Lets sandbox `slot` reach `address` through DNS rule `rule` for `timeout_seconds`,
  // refreshing the timeout when it already could.
  std::string Allow(int slot, int rule, Ipv4 address, int timeout_seconds) const;

  static std::string ChainName(int slot);
  static std::string DnsSetName(int slot, int rule);

 private:
  std::string InetTable(const std::vector<Ipv4Range>& deny) const;
  std::string BridgeTable() const;
  std::string ServiceMap(const PublishedPort& p) const;

  RulesetConfig c_;
};

}  // namespace sbx::net
