// File: bridge_network.h
//
// The default NetworkProvider: every sandbox with a network gets a network namespace of its own,
// joined to a bridge in sbxd's namespace by a veth pair, with NAT to the outside and the rules of
// ruleset.h (deny set, per-sandbox policy, anti-spoofing, exposed ports) in sbxd's namespace,
// where the sandbox cannot touch them. DNS inside the sandbox is sbxd's forwarder on the
// bridge's gateway address. `deny_egress` sandboxes without services keep the runtime's
// loopback-only namespace and touch nothing here.
//
// Kernel objects are prepared and removed off the request path:
//
//   pool thread    keeps `network_pool_size` slots ready: a pinned namespace (sysctls set,
//                  loopback up), a veth pair (host side isolated on the bridge, `eth0` inside
//                  with the slot's address and a default route), the port's anti-spoofing
//                  element. Attach takes one and adds the sandbox's rules: one nftables
//                  transaction, no RTNL.
//   reaper thread  removes a detached sandbox's rules, unpins its namespace, and waits for the
//                  kernel to destroy the namespace and the veth pair with it (batched in the
//                  kernel's namespace cleanup); only then is the slot (address and names) free.
//   watch thread   follows the host's address and route changes (host_networks.h) and replaces
//                  the deny set's elements in one transaction when its networks change.
//
// Names are derived from the daemon: the bridge and the nftables tables (named in the options),
// host-side veths `sv<hash of the bridge><slot>`, pins `<run_dir>/network/netns/<slot>`,
// and one state file per attached sandbox in `<run_dir>/network/sandboxes/`, which is how
// Recover() finds what a live sandbox owns after a crash, and removes everything else.

#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/net/bridge_options.h"
#include "src/net/dns_forwarder.h"
#include "src/net/host_networks.h"
#include "src/net/ipv4.h"
#include "src/net/network_provider.h"
#include "src/net/nft_map_elements.h"
#include "src/net/nftables.h"
#include "src/net/rtnetlink.h"
#include "src/net/ruleset.h"

namespace sbx::net {

class BridgeNetwork : public NetworkProvider {
 public:
  // Sets up the host side: the bridge and its address (choosing a free subnet unless the options
  // name one), ip_forward, the DNS forwarder's sockets. Recover() installs the rules and starts the
  // threads.
  static Result<std::unique_ptr<BridgeNetwork>> Create(BridgeNetworkOptions options);
  // Stops the threads and releases the pool. When no sandbox is attached any more, also removes
  // the rules, the bridge and the pins' directory: nothing of the daemon remains.
  ~BridgeNetwork() override;

  Result<NetworkAttachment> Attach(const std::string& sandbox_id,
                                   const NetworkRequest& request) override;
  void Detach(const std::string& sandbox_id, Leftover leftover) override;
  Status Recover(const std::vector<std::string>& live) override;
  std::vector<ServiceEndpoint> Services(const std::string& sandbox_id) override;
  // "sandbox_flow_rate", "sandbox_flows", "flows" (new flows dropped by the per-sandbox rate,
  // the per-sandbox and the daemon-wide count of tracked flows) and "sandbox_dns_query_rate"
  // (queries refused by the forwarder).
  std::map<std::string, uint64_t> LimitHits() override;

 private:
  struct Attached {
    std::string id;
    uint64_t token = 0;
    NetworkMode mode = NetworkMode::kPublic;
    SandboxRules rules;
    std::vector<ServiceEndpoint> services;
    std::vector<UniqueFd> reservations;  // sockets holding the exposed host ports
  };
  struct Release {
    int slot = 0;
    std::optional<SandboxRules> rules;  // rules to remove, if they were installed
    bool port_bound = false;            // the anti-spoofing element exists
    bool processes_stay = false;        // the namespace outlives the release: cut its link
  };

  explicit BridgeNetwork(BridgeNetworkOptions options);
  Status SetUpHost();
  Status ChooseSubnet(Rtnetlink& rtnl);

  // Slots come in groups of options_.sandboxes_per_bridge, one group per bridge. Group g has the
  // g-th /22 of the subnet (group 0 the whole subnet, as its bridge has had since before there
  // were groups): the gateway at its first address, the sandboxes after it.
  int GroupOf(int slot) const { return slot / options_.sandboxes_per_bridge; }
  Ipv4 GroupBase(int group) const {
    return subnet_.address + static_cast<Ipv4>(group) * kGroupAddresses;
  }
  Ipv4 Address(int slot) const {
    return GroupBase(GroupOf(slot)) + 2 + static_cast<Ipv4>(slot % options_.sandboxes_per_bridge);
  }
  Ipv4 GatewayOf(int group) const { return group == 0 ? gateway_ : GroupBase(group) + 1; }
  int PrefixLengthOf(int group) const { return group == 0 ? subnet_.length : kGroupPrefixLength; }
  std::string BridgeName(int group) const {
    return group == 0 ? options_.bridge : options_.bridge + "-" + std::to_string(group);
  }
  // The index of group `group`'s bridge, made (with its address, in the rules' set) if missing.
  Result<int> GroupBridge(Rtnetlink& rtnl, int group);
  // The names of the bridges of groups 1 and up that exist.
  std::vector<std::string> MoreBridges(Rtnetlink& rtnl);
  std::string PortName(int slot) const { return port_prefix_ + std::to_string(slot); }
  std::string PinPath(int slot) const { return pins_dir_ + "/" + std::to_string(slot); }
  std::string StatePath(const std::string& id) const { return state_dir_ + "/" + id + ".json"; }

  void PoolLoop();
  Status Prepare(Rtnetlink& rtnl, int slot);
  Result<int> TakeSlot();
  void ReaperLoop();
  void Reap(Rtnetlink& rtnl, std::vector<Release> batch);

  Result<std::vector<UniqueFd>> ReserveHostPorts(std::vector<ServiceEndpoint>& services,
                                                 bool keep_ports);
  std::string ServiceUrl(const ServiceEndpoint& e) const;
  Status SaveState(const Attached& a) const;

  // The built-in ranges, the configured ones and the host's networks, less the allowed ones,
  // plus the sandbox subnet.
  std::vector<Ipv4Range> DenySet(const std::vector<Ipv4Prefix>& host_networks) const;
  // Reads the host's networks and installs the deny set when it changed.
  Status UpdateDenySet(Rtnetlink& rtnl);
  void WatchHostNetworks();

  DnsForwarder::Decision Decide(Ipv4 client, const std::string& name);
  void Learn(uint64_t token, const std::string& name, const std::vector<DnsRecord>& records);

  BridgeNetworkOptions options_;
  std::string port_prefix_;  // host-side veth names: <port_prefix_><slot>
  std::string dir_, pins_dir_, state_dir_;
  Ipv4Prefix subnet_;
  Ipv4 gateway_ = 0;
  int bridge_index_ = 0;
  static constexpr int kGroupPrefixLength = 22;
  static constexpr Ipv4 kGroupAddresses = 1u << (32 - kGroupPrefixLength);
  std::mutex bridges_mu_;
  std::map<int, int> group_bridges_;  // group (1 and up) -> its bridge's index
  int max_slots_ = 0;
  std::vector<Ipv4Range> fixed_deny_;  // built-in and network_deny
  std::vector<Ipv4Range> allow_;       // network_allow
  std::unique_ptr<Nftables> nft_;
  std::unique_ptr<NftMapElements> elements_;  // the per-sandbox verdicts, on the fast path
  std::unique_ptr<Ruleset> ruleset_;
  std::unique_ptr<DnsForwarder> dns_;

  std::mutex mu_;
  std::condition_variable pool_cv_;    // the pool or the free slots changed, or stopping
  std::condition_variable reaper_cv_;  // releases queued, or stopping
  std::vector<bool> busy_;             // per slot: pooled, attached or being released
  std::deque<int> pool_;
  int next_slot_ = 0;
  int preparing_ = 0;
  int waiting_ = 0;  // attaches waiting for a slot
  std::map<std::string, Attached> attached_;
  std::map<Ipv4, std::string> by_address_;
  std::map<uint64_t, std::string> by_token_;
  uint64_t next_token_ = 1;
  int next_service_port_ = 0;
  std::deque<Release> releases_;
  bool started_ = false;
  bool stopping_ = false;
  bool reaper_stopping_ = false;
  std::thread pool_thread_;
  std::thread reaper_thread_;

  std::mutex deny_mu_;
  std::vector<Ipv4Range> deny_;  // as installed; the DNS forwarder filters answers with it
  std::optional<HostNetworkMonitor> monitor_;
  UniqueFd watch_wake_;  // an eventfd: the watch thread stops
  std::thread watch_thread_;
};

}  // namespace sbx::net
