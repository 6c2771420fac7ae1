// File: bridge_options.h
//
// What BridgeNetwork (bridge_network.h) is made from: the daemon's names, its subnet, upstream
// resolvers, the operator's changes to the deny set and the exposed ports' range, as parsed
// values. The daemon fills them from its configuration (docs/configuration.md#network).

#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/net/dns_forwarder.h"
#include "src/net/ipv4.h"

namespace sbx::net {

// A Linux bridge takes at most 1023 ports; a bridge's /22 holds its gateway and 1021 sandboxes.
inline constexpr int kMaxSandboxesPerBridge = 1021;

// What one sandbox, or all of them, may take of the host's shared resources. Rates allow bursts
// of twice as many.
struct NetworkLimits {
  int sandbox_flows = 8192;             // flows (conntrack entries) tracked at once, per sandbox
  int sandbox_flows_per_second = 1000;  // new flows, per sandbox
  int flows = 0;                     // all sandboxes together; 0: half the host's nf_conntrack_max
  int dns_queries_per_second = 100;  // queries the forwarder sends upstream, per sandbox
};

struct BridgeNetworkOptions {
  std::string run_dir;               // the network's state lives in <run_dir>/network
  std::string bridge;                // the bridge's interface name
  std::string table;                 // the nftables tables' name, [A-Za-z0-9_]
  std::optional<Ipv4Prefix> subnet;  // nullopt: a free /16 of 10.128.0.0/10
  std::vector<DnsServer> dns;        // upstream resolvers; empty: the host's /etc/resolv.conf
  int pool_size = 16;                // namespaces and veth pairs prepared ahead of time
  // Sandboxes on one bridge; beyond, more bridges ("<bridge>-1", ...) each with a /22 of the
  // subnet of its own.
  int sandboxes_per_bridge = kMaxSandboxesPerBridge;
  std::vector<Ipv4Prefix> deny;    // denied on top of the built-in deny set
  std::vector<Ipv4Prefix> allow;   // taken out of the deny set (never the sandbox subnet)
  int service_port_first = 30000;  // host ports for exposed services
  int service_port_last = 32767;
  std::string service_host;  // host in service URLs; empty: the gateway address
  NetworkLimits limits;
};

// A daemon's default bridge and table names: "sbx" and "sbx_" followed by six hex digits of a
// hash of `key` (its cgroup parent, which differs between daemons on one host).
std::string DefaultBridgeName(std::string_view key);
std::string DefaultTableName(std::string_view key);

}  // namespace sbx::net
