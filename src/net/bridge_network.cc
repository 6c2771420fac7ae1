#include "src/net/bridge_network.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "src/base/clock.h"
#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/net/host_networks.h"
#include "src/net/host_ports.h"
#include "src/net/netns.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"

namespace sbx::net {

namespace {

using nlohmann::json;

constexpr int kTakeSlotTimeoutMs = 30000;
constexpr int kNamespaceGoneTimeoutMs = 3000;
constexpr uint32_t kMinAllowSeconds = 300;
constexpr uint32_t kMaxAllowSeconds = 86400;
constexpr int kDenyRetryMs = 1000;

uint32_t Fnv1a(std::string_view text) {
  uint32_t h = 2166136261u;
  for (char c : text) {
    h ^= static_cast<uint8_t>(c);
    h *= 16777619u;
  }
  return h;
}

std::string Hex6(uint32_t v) {
  char buf[8];
  snprintf(buf, sizeof buf, "%06x", v & 0xffffff);
  return buf;
}

SandboxPolicy PolicyOf(NetworkMode mode) {
  switch (mode) {
    case NetworkMode::kPublic:
      return SandboxPolicy::kPublic;
    case NetworkMode::kAllowlist:
      return SandboxPolicy::kAllowlist;
    case NetworkMode::kNone:
      break;
  }
  return SandboxPolicy::kDenyAll;
}

json RulesToJson(const SandboxRules& r) {
  json egress = json::array();
  for (const auto& e : r.egress) {
    json ports = json::array();
    for (const auto& p : e.ports) ports.push_back({TransportName(p.transport), p.first, p.last});
    json except = json::array();
    for (const auto& x : e.except) except.push_back(x.ToString());
    egress.push_back({{"kind", static_cast<int>(e.kind)},
                      {"cidr", e.cidr.ToString()},
                      {"except", except},
                      {"ports", ports}});
  }
  json published = json::array();
  for (const auto& p : r.published) {
    published.push_back({p.protocol, p.host_port, p.port, p.from_anywhere});
  }
  return {{"slot", r.slot},
          {"policy", static_cast<int>(r.policy)},
          {"egress", egress},
          {"published", published}};
}

// The rules of a state file; `dns_patterns` has the name of each DNS rule, at its index.
Result<SandboxRules> RulesFromJson(const json& j, const json& dns_patterns) {
  SandboxRules r;
  r.slot = j.at("slot").get<int>();
  r.policy = static_cast<SandboxPolicy>(j.at("policy").get<int>());
  for (const auto& e : j.at("egress")) {
    EgressRule m;
    m.kind = static_cast<EgressKind>(e.at("kind").get<int>());
    SBX_ASSIGN_OR_RETURN(m.cidr, ParseIpv4Prefix(e.at("cidr").get<std::string>()));
    for (const auto& x : e.at("except")) {
      SBX_ASSIGN_OR_RETURN(auto p, ParseIpv4Prefix(x.get<std::string>()));
      m.except.push_back(p);
    }
    if (m.kind == EgressKind::kDnsName) {
      SBX_ASSIGN_OR_RETURN(m.dns_name,
                           DnsPattern::Parse(dns_patterns.at(r.egress.size()).get<std::string>()));
    }
    for (const auto& p : e.at("ports")) {
      SBX_ASSIGN_OR_RETURN(Transport transport, ParseTransport(p.at(0).get<std::string>()));
      SBX_ASSIGN_OR_RETURN(PortRange range,
                           MakePortRange(transport, p.at(1).get<int>(), p.at(2).get<int>()));
      m.ports.push_back(range);
    }
    r.egress.push_back(std::move(m));
  }
  for (const auto& p : j.at("published")) {
    std::string protocol = p.at(0).get<std::string>();
    if (protocol != "tcp" && protocol != "udp" && protocol != "sctp") {
      return Error::InvalidArgument("bad protocol");
    }
    r.published.push_back({protocol, p.at(1).get<int>(), p.at(2).get<int>(), p.at(3).get<bool>()});
  }
  return r;
}

// Half of the host's connection tracking table: what all sandboxes together may take by default.
int HalfTheConntrackTable() {
  // Before any rule uses conntrack the module may not be loaded yet; 262144 is what Linux sizes
  // the table to on hosts with a few GiB of memory.
  uint64_t max = 262144;
  if (auto text = ReadNetSysctl("net/netfilter/nf_conntrack_max")) {
    if (auto n = ParseUint64(*text); n && *n >= 2) max = *n;
  }
  return static_cast<int>(std::min<uint64_t>(max / 2, INT32_MAX));
}

}  // namespace

std::string DefaultBridgeName(std::string_view key) { return "sbx" + Hex6(Fnv1a(key)); }

std::string DefaultTableName(std::string_view key) { return "sbx_" + Hex6(Fnv1a(key)); }

BridgeNetwork::BridgeNetwork(BridgeNetworkOptions options) : options_(std::move(options)) {
  // 8 characters, leaving 7 for the slot number within IFNAMSIZ.
  port_prefix_ = "sv" + Hex6(Fnv1a(options_.bridge));
  dir_ = options_.run_dir + "/network";
  pins_dir_ = dir_ + "/netns";
  state_dir_ = dir_ + "/sandboxes";
}

Result<std::unique_ptr<BridgeNetwork>> BridgeNetwork::Create(BridgeNetworkOptions options) {
  std::unique_ptr<BridgeNetwork> n(new BridgeNetwork(std::move(options)));
  SBX_TRY(n->SetUpHost());
  return n;
}

Status BridgeNetwork::SetUpHost() {
  SBX_TRY(sys::MakeDirs(pins_dir_, 0700));
  SBX_TRY(sys::MakeDirs(state_dir_, 0700));
  SBX_TRY(MakePrivateMount(pins_dir_));
  SBX_ASSIGN_OR_RETURN(Rtnetlink rtnl, Rtnetlink::Open());
  SBX_TRY(ChooseSubnet(rtnl));
  // Beyond a bridge's ports, more bridges, each on a /22 of the subnet: as many as the subnet
  // holds and their names fit IFNAMSIZ ("<bridge>-63").
  int groups = 1;
  if (subnet_.length <= kGroupPrefixLength && options_.bridge.size() + 3 <= 15) {
    groups = static_cast<int>(std::min<uint64_t>(subnet_.Size() / kGroupAddresses, 64));
  }
  max_slots_ = static_cast<int>(std::min<uint64_t>(
      subnet_.Size() - 3, static_cast<uint64_t>(groups) * options_.sandboxes_per_bridge));

  for (const auto& p : BuiltinDenyPrefixes()) fixed_deny_.push_back(ToRange(p));
  for (const auto& p : options_.deny) fixed_deny_.push_back(ToRange(p));
  for (const auto& p : options_.allow) allow_.push_back(ToRange(p));
  deny_ = DenySet({});
  watch_wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!watch_wake_) return Error::Errno("eventfd");

  // NAT needs forwarding in sbxd's network namespace; nothing else of the host is changed.
  auto forward = ReadNetSysctl("net/ipv4/ip_forward");
  if (forward && *forward != "1") {
    SBX_TRY_CTX(WriteNetSysctl("net/ipv4/ip_forward", "1"), "enable ip_forward");
    SBX_LOG_WARN("enabled net.ipv4.ip_forward for the sandboxes' NAT");
  }

  SBX_ASSIGN_OR_RETURN(nft_, Nftables::Open());
  SBX_ASSIGN_OR_RETURN(elements_, NftMapElements::Open());
  RulesetConfig rc;
  rc.table = options_.table;
  rc.bridge = options_.bridge;
  rc.port_prefix = port_prefix_;
  rc.subnet = subnet_;
  rc.gateway = gateway_;
  rc.sandbox_flows = options_.limits.sandbox_flows;
  rc.sandbox_flows_per_second = options_.limits.sandbox_flows_per_second;
  rc.flows = options_.limits.flows > 0 ? options_.limits.flows : HalfTheConntrackTable();
  ruleset_ = std::make_unique<Ruleset>(rc);

  DnsForwarder::Options dns;
  dns.listen_address = gateway_;
  dns.upstreams = options_.dns;
  dns.upstream_queries_per_second = options_.limits.dns_queries_per_second;
  if (dns.upstreams.empty()) {
    auto resolv = sys::ReadFile("/etc/resolv.conf", 1 << 20);
    if (resolv) dns.upstreams = ResolvConfServers(*resolv);
  }
  DnsForwarder::Hooks hooks;
  hooks.decide = [this](Ipv4 client, const std::string& name) { return Decide(client, name); };
  hooks.learn = [this](uint64_t token, const std::string& name,
                       const std::vector<DnsRecord>& records) { Learn(token, name, records); };
  hooks.denied = [this](Ipv4 ip) {
    std::lock_guard lock(deny_mu_);
    return RangesContain(deny_, ip);
  };
  SBX_ASSIGN_OR_RETURN_CTX(dns_, DnsForwarder::Create(dns, std::move(hooks)),
                           "the sandboxes' DNS forwarder");
  SBX_LOG_INFO(
      "sandbox network: bridge={} subnet={} table={} dns upstreams={} flows per sandbox={} (new: "
      "{}/s) all sandboxes={}",
      options_.bridge, subnet_.ToString(), options_.table, dns.upstreams.size(), rc.sandbox_flows,
      rc.sandbox_flows_per_second, rc.flows);
  return Ok();
}

Status BridgeNetwork::ChooseSubnet(Rtnetlink& rtnl) {
  const std::optional<Ipv4Prefix>& wanted = options_.subnet;
  auto existing = rtnl.LinkIndex(options_.bridge);
  if (!existing && existing.error().code() != Code::kNotFound) return std::move(existing).error();
  SBX_ASSIGN_OR_RETURN(auto addresses, rtnl.Addresses());
  if (existing) {
    bridge_index_ = *existing;
    for (const auto& a : addresses) {
      if (a.index != bridge_index_) continue;
      // The bridge survived a restart: keep its subnet, the live sandboxes have addresses in it.
      Ipv4Prefix current = MakePrefix(a.address, a.prefix_length);
      if (wanted && !(*wanted == current)) {
        return Error::FailedPrecondition("bridge " + Quote(options_.bridge) + " already has " +
                                         current.ToString() + ", not network_subnet " +
                                         wanted->ToString());
      }
      subnet_ = current;
      gateway_ = a.address;
      return rtnl.SetUp(bridge_index_);
    }
  }
  SBX_ASSIGN_OR_RETURN(auto routes, rtnl.Routes());
  auto in_use = [&](const Ipv4Prefix& p) {
    for (const auto& r : routes) {
      if (r.destination.length > 0 && r.table != 255 && r.destination.Overlaps(p)) return true;
    }
    for (const auto& a : addresses) {
      if (p.Contains(a.address)) return true;
    }
    return false;
  };
  if (wanted) {
    if (in_use(*wanted)) {
      return Error::FailedPrecondition("network_subnet " + wanted->ToString() +
                                       " overlaps a network this host already has");
    }
    subnet_ = *wanted;
  } else {
    // 64 candidate /16s in 10.128.0.0/10, starting at one derived from the bridge's name.
    uint32_t start = Fnv1a(options_.bridge) % 64;
    bool found = false;
    for (uint32_t k = 0; k < 64 && !found; ++k) {
      Ipv4Prefix candidate = MakePrefix((10u << 24) | ((128 + (start + k) % 64) << 16), 16);
      if (!in_use(candidate)) {
        subnet_ = candidate;
        found = true;
      }
    }
    if (!found)
      return Error::FailedPrecondition("no free /16 in 10.128.0.0/10; set network_subnet");
  }
  gateway_ = subnet_.address + 1;
  if (!existing) {
    std::array<uint8_t, 6> mac{};
    if (getrandom(mac.data(), mac.size(), 0) != static_cast<ssize_t>(mac.size())) {
      return Error::Errno("getrandom");
    }
    mac[0] = static_cast<uint8_t>((mac[0] & 0xfe) | 0x02);  // unicast, locally administered
    SBX_TRY(rtnl.CreateBridge(options_.bridge, mac));
    SBX_ASSIGN_OR_RETURN(bridge_index_, rtnl.LinkIndex(options_.bridge));
  }
  // SECURITY: no IPv6 on the sandboxes' segment; the bridge table drops IPv6 frames as well.
  (void)sys::WriteKnob("/proc/sys/net/ipv6/conf/" + options_.bridge + "/disable_ipv6", "1");
  SBX_TRY(rtnl.AddAddress(bridge_index_, gateway_, subnet_.length));
  return rtnl.SetUp(bridge_index_);
}

// ---------------------------------------------------------------------------------------------
// Attach and detach

Result<NetworkAttachment> BridgeNetwork::Attach(const std::string& sandbox_id,
                                                const NetworkRequest& request) {
  NetworkAttachment out;
  out.mode = request.mode;
  if (request.mode == NetworkMode::kNone && request.services.empty()) return out;
  Attached a;
  a.id = sandbox_id;
  a.mode = request.mode;
  a.rules.policy = PolicyOf(request.mode);
  if (request.mode == NetworkMode::kPublic) out.effective_egress.push_back(EgressRule{});
  if (request.mode == NetworkMode::kAllowlist) {
    a.rules.egress = request.egress;
    out.effective_egress = request.egress;
  }
  for (const auto& s : request.services) a.services.push_back({s, 0, ""});
  SBX_ASSIGN_OR_RETURN(a.reservations, ReserveHostPorts(a.services, false));
  SBX_ASSIGN_OR_RETURN(int slot, TakeSlot());
  a.rules.slot = slot;
  a.rules.address = Address(slot);
  for (auto& e : a.services) {
    a.rules.published.push_back(
        {e.service.protocol, e.host_port, e.service.port, e.service.public_access});
    e.url = ServiceUrl(e);
  }
  auto element = ruleset_->SandboxElement(a.rules);
  Status added = element ? elements_->Put(*element) : nft_->Run(ruleset_->AddSandbox(a.rules));
  if (!added) {
    std::lock_guard lock(mu_);
    releases_.push_back({slot, a.rules, true});
    reaper_cv_.notify_one();
    return std::move(added).error().Wrap("install the sandbox's network rules");
  }
  if (Status saved = SaveState(a); !saved) {
    SBX_LOG_WARN("sandbox id={} network state not saved: {}", sandbox_id, saved.error().ToString());
  }
  out.netns_path = PinPath(slot);
  out.address = FormatIpv4(a.rules.address);
  if (request.mode != NetworkMode::kNone) out.dns_servers = {FormatIpv4(gateway_)};
  out.services = a.services;
  std::lock_guard lock(mu_);
  a.token = next_token_++;
  by_address_[a.rules.address] = sandbox_id;
  by_token_[a.token] = sandbox_id;
  attached_[sandbox_id] = std::move(a);
  return out;
}

Result<int> BridgeNetwork::TakeSlot() {
  std::unique_lock lock(mu_);
  if (!started_) return Error::Unavailable("the sandbox network is not running yet");
  ++waiting_;
  pool_cv_.notify_all();
  pool_cv_.wait_for(lock, std::chrono::milliseconds(kTakeSlotTimeoutMs),
                    [this] { return stopping_ || !pool_.empty(); });
  --waiting_;
  if (stopping_) return Error::Unavailable("sbxd is stopping");
  if (pool_.empty()) {
    return Error::Unavailable("no network namespace became ready in time (see sbxd's log)");
  }
  int slot = pool_.front();
  pool_.pop_front();
  pool_cv_.notify_all();
  return slot;
}

void BridgeNetwork::Detach(const std::string& sandbox_id, Leftover leftover) {
  std::lock_guard lock(mu_);
  auto it = attached_.find(sandbox_id);
  if (it == attached_.end()) return;
  Attached& a = it->second;
  by_address_.erase(a.rules.address);
  by_token_.erase(a.token);
  releases_.push_back({a.rules.slot, a.rules, true, leftover == Leftover::kProcessesStay});
  unlink(StatePath(sandbox_id).c_str());
  attached_.erase(it);  // closes the host-port reservations
  reaper_cv_.notify_one();
}

std::map<std::string, uint64_t> BridgeNetwork::LimitHits() {
  std::map<std::string, uint64_t> out;
  if (auto listing = nft_->Query(ruleset_->ListCounters())) out = ParseCounterPackets(*listing);
  if (dns_) out["sandbox_dns_query_rate"] = dns_->rate_limited();
  return out;
}

std::vector<ServiceEndpoint> BridgeNetwork::Services(const std::string& sandbox_id) {
  std::lock_guard lock(mu_);
  auto it = attached_.find(sandbox_id);
  return it == attached_.end() ? std::vector<ServiceEndpoint>{} : it->second.services;
}

Result<std::vector<UniqueFd>> BridgeNetwork::ReserveHostPorts(
    std::vector<ServiceEndpoint>& services, bool keep_ports) {
  std::vector<UniqueFd> out;
  const int first = options_.service_port_first;
  const int last = options_.service_port_last;
  int count = last - first + 1;
  for (auto& e : services) {
    if (keep_ports) {
      auto held = HoldPort(e.service.protocol, e.host_port);
      if (!held) {
        SBX_LOG_WARN("exposed port {} could not be held again: {}", e.host_port,
                     held.error().ToString());
        out.emplace_back();
      } else {
        out.push_back(std::move(*held));
      }
      continue;
    }
    int start;
    {
      std::lock_guard lock(mu_);
      start = next_service_port_;
      next_service_port_ = (next_service_port_ + 1) % count;
    }
    bool found = false;
    for (int k = 0; k < count && !found; ++k) {
      int port = first + (start + k) % count;
      if (auto held = HoldPort(e.service.protocol, port)) {
        e.host_port = port;
        out.push_back(std::move(*held));
        std::lock_guard lock(mu_);
        next_service_port_ = (port - first + 1) % count;
        found = true;
      }
    }
    if (!found) {
      return Error::ResourceExhausted("no free host port in network_service_ports " +
                                      std::to_string(first) + "-" + std::to_string(last));
    }
  }
  return out;
}

std::string BridgeNetwork::ServiceUrl(const ServiceEndpoint& e) const {
  std::string host = options_.service_host.empty() ? FormatIpv4(gateway_) : options_.service_host;
  std::string scheme = e.service.protocol == "tcp" ? "http://" : e.service.protocol + "://";
  return scheme + host + ":" + std::to_string(e.host_port);
}

Status BridgeNetwork::SaveState(const Attached& a) const {
  json services = json::array();
  for (const auto& e : a.services) {
    services.push_back({{"port", e.service.port},
                        {"name", e.service.name},
                        {"protocol", e.service.protocol},
                        {"public", e.service.public_access},
                        {"visibility", e.service.visibility},
                        {"host_port", e.host_port},
                        {"url", e.url}});
  }
  // The names of DNS rules, and whether any rule resolves every name, stay separate fields, as
  // daemons of earlier versions read them.
  std::vector<std::string> dns_patterns;
  bool resolve_any = false;
  for (const auto& rule : a.rules.egress) {
    dns_patterns.push_back(rule.dns_name.text());
    resolve_any = resolve_any || rule.kind == EgressKind::kAny;
  }
  json j = {{"id", a.id},
            {"mode", static_cast<int>(a.mode)},
            {"rules", RulesToJson(a.rules)},
            {"dns_patterns", dns_patterns},
            {"resolve_any", resolve_any},
            {"services", services}};
  return sys::WriteFileAtomic(StatePath(a.id), j.dump(), 0600, false);
}

// ---------------------------------------------------------------------------------------------
// The pool

void BridgeNetwork::PoolLoop() {
  auto rtnl = Rtnetlink::Open();
  if (!rtnl) {
    SBX_LOG_ERROR("network pool: {}", rtnl.error().ToString());
    return;
  }
  int failures = 0;
  int nice = 0;
  while (true) {
    int slot = -1;
    bool create_waits = false;
    {
      std::unique_lock lock(mu_);
      pool_cv_.wait(lock, [this] {
        if (stopping_) return true;
        int want = options_.pool_size + waiting_;
        return static_cast<int>(pool_.size()) + preparing_ < want &&
               std::find(busy_.begin(), busy_.end(), false) != busy_.end();
      });
      if (stopping_) return;
      // Round robin: an address is reused as late as possible, so that no stray packet of an
      // old flow (conntrack entries outlive their sandbox) reaches the next sandbox.
      auto free = std::find(busy_.begin() + next_slot_, busy_.end(), false);
      if (free == busy_.end()) free = std::find(busy_.begin(), busy_.end(), false);
      slot = static_cast<int>(free - busy_.begin());
      next_slot_ = (slot + 1) % max_slots_;
      busy_[slot] = true;
      ++preparing_;
      create_waits = waiting_ > 0;
    }
    // A refill yields the CPU to the creates it serves, unless a create is waiting for it.
    if (int wanted = create_waits ? 0 : sys::kBackgroundNice; wanted != nice) {
      if (sys::SetThreadNice(wanted)) nice = wanted;
    }
    Status prepared = Prepare(*rtnl, slot);
    {
      std::lock_guard lock(mu_);
      --preparing_;
      if (prepared) {
        pool_.push_back(slot);
        pool_cv_.notify_all();
      } else {
        releases_.push_back({slot, std::nullopt, true});
        reaper_cv_.notify_one();
      }
    }
    if (prepared) {
      failures = 0;
      continue;
    }
    SBX_LOG_WARN("network pool: preparing slot {} failed: {}", slot, prepared.error().ToString());
    // Back off, but wake for a stop.
    std::unique_lock lock(mu_);
    failures = std::min(failures + 1, 20);
    pool_cv_.wait_for(lock, std::chrono::milliseconds(100 * failures),
                      [this] { return stopping_; });
  }
}

Status BridgeNetwork::Prepare(Rtnetlink& rtnl, int slot) {
  const std::string pin = PinPath(slot);
  const std::string port = PortName(slot);
  const Ipv4 address = Address(slot);
  SBX_TRY(RemovePinnedNetns(pin));
  if (auto stale = rtnl.LinkIndex(port)) SBX_TRY(rtnl.DeleteLink(*stale));
  std::optional<Rtnetlink> inside;
  auto set_up_inside = [&]() -> Status {
    // What the runtime does in namespaces it creates itself: root in the sandbox (which owns
    // no namespace) may bind low ports and use ping sockets.
    SBX_TRY(WriteNetSysctl("net/ipv4/ip_unprivileged_port_start", "0"));
    SBX_TRY(WriteNetSysctl("net/ipv4/ping_group_range", "0 2147483647"));
    // SECURITY: eth0 gets no IPv6 (loopback keeps ::1). The host side filters IPv6 as well.
    (void)WriteNetSysctl("net/ipv6/conf/default/disable_ipv6", "1");
    SBX_ASSIGN_OR_RETURN(Rtnetlink r, Rtnetlink::Open());
    inside.emplace(std::move(r));
    return Ok();
  };
  SBX_TRY(CreatePinnedNetns(pin, set_up_inside));
  auto undo = [&](Error error) {
    (void)RemovePinnedNetns(pin);
    return error.Wrap("prepare " + port);
  };
  auto netns = sys::Open(pin, O_RDONLY);
  if (!netns) return undo(std::move(netns).error());
  const int group = GroupOf(slot);
  auto bridge = GroupBridge(rtnl, group);
  if (!bridge) return undo(std::move(bridge).error());
  if (Status s = rtnl.CreateVeth(port, *bridge, "eth0", netns->get()); !s) {
    return undo(std::move(s).error());
  }
  Status configured = [&]() -> Status {
    SBX_ASSIGN_OR_RETURN(int index, rtnl.LinkIndex(port));
    (void)sys::WriteKnob("/proc/sys/net/ipv6/conf/" + port + "/disable_ipv6", "1");
    SBX_TRY(rtnl.SetIsolatedPortUp(index));
    SBX_TRY(inside->SetUp(1));  // loopback is always index 1
    SBX_ASSIGN_OR_RETURN(int eth0, inside->LinkIndex("eth0"));
    SBX_TRY(inside->AddAddress(eth0, address, PrefixLengthOf(group)));
    SBX_TRY(inside->SetUp(eth0));
    SBX_TRY(inside->AddDefaultRoute(GatewayOf(group)));
    return nft_->Run(ruleset_->AddPort(port, address));
  }();
  // On failure the caller queues the slot for the reaper, which removes the veth and the pin.
  return configured;
}

Result<int> BridgeNetwork::GroupBridge(Rtnetlink& rtnl, int group) {
  if (group == 0) return bridge_index_;
  std::lock_guard lock(bridges_mu_);
  if (auto it = group_bridges_.find(group); it != group_bridges_.end()) return it->second;
  const std::string name = BridgeName(group);
  auto existing = rtnl.LinkIndex(name);
  if (!existing && existing.error().code() != Code::kNotFound) return std::move(existing).error();
  int index;
  if (existing) {
    index = *existing;  // made by this daemon before a restart
  } else {
    std::array<uint8_t, 6> mac{};
    if (getrandom(mac.data(), mac.size(), 0) != static_cast<ssize_t>(mac.size())) {
      return Error::Errno("getrandom");
    }
    mac[0] = static_cast<uint8_t>((mac[0] & 0xfe) | 0x02);  // unicast, locally administered
    SBX_TRY(rtnl.CreateBridge(name, mac));
    SBX_ASSIGN_OR_RETURN(index, rtnl.LinkIndex(name));
  }
  // SECURITY: as the first bridge: no IPv6, the same rules (the set the ruleset matches on).
  (void)sys::WriteKnob("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6", "1");
  if (Status added = rtnl.AddAddress(index, GatewayOf(group), kGroupPrefixLength);
      !added && added.error().sys_errno() != EEXIST) {
    return std::move(added).error();
  }
  SBX_TRY(rtnl.SetUp(index));
  SBX_TRY_CTX(nft_->Run(ruleset_->AddBridge(name)), "add bridge " + Quote(name) + " to the rules");
  SBX_LOG_INFO("sandbox network: bridge {} for sandboxes {} to {}", name,
               FormatIpv4(GroupBase(group) + 2),
               FormatIpv4(GroupBase(group) + kGroupAddresses - 2));
  group_bridges_[group] = index;
  return index;
}

std::vector<std::string> BridgeNetwork::MoreBridges(Rtnetlink& rtnl) {
  std::vector<std::string> names;
  auto links = rtnl.Links();
  if (!links) return names;
  const std::string prefix = options_.bridge + "-";
  for (const auto& l : *links) {
    if (!StartsWith(l.name, prefix)) continue;
    auto group = ParseUint64(l.name.substr(prefix.size()));
    if (group && *group >= 1 && *group < 64 && l.name == BridgeName(static_cast<int>(*group))) {
      names.push_back(l.name);
    }
  }
  return names;
}

// ---------------------------------------------------------------------------------------------
// The reaper

void BridgeNetwork::ReaperLoop() {
  // Slots are many; a release can wait for the CPU to be free of creates.
  (void)sys::SetThreadNice(sys::kBackgroundNice);
  auto rtnl = Rtnetlink::Open();
  if (!rtnl) {
    SBX_LOG_ERROR("network reaper: {}", rtnl.error().ToString());
    return;
  }
  while (true) {
    std::vector<Release> batch;
    {
      std::unique_lock lock(mu_);
      reaper_cv_.wait(lock, [this] { return reaper_stopping_ || !releases_.empty(); });
      if (releases_.empty()) return;
      batch.assign(std::make_move_iterator(releases_.begin()),
                   std::make_move_iterator(releases_.end()));
      releases_.clear();
    }
    Reap(*rtnl, batch);
    {
      std::lock_guard lock(mu_);
      for (const auto& r : batch) busy_[r.slot] = false;
    }
    pool_cv_.notify_all();
  }
}

void BridgeNetwork::Reap(Rtnetlink& rtnl, std::vector<Release> batch) {
  std::string commands;
  for (const auto& r : batch) {
    if (r.rules) {
      if (auto element = ruleset_->SandboxElement(*r.rules)) {
        // Absent when its install failed: nothing to remove then.
        if (Status removed = elements_->Remove(*element);
            !removed && removed.error().code() != Code::kNotFound) {
          SBX_LOG_WARN("network slot {}: {}", r.slot, removed.error().ToString());
        }
      } else {
        commands += ruleset_->RemoveSandbox(*r.rules);
      }
    }
    if (r.port_bound) commands += ruleset_->RemovePort(PortName(r.slot), Address(r.slot));
  }
  if (!commands.empty() && !nft_->Run(commands)) {
    // Something was already gone (a half-prepared slot): remove the rest one by one.
    for (const auto& line : Split(commands, '\n')) {
      if (!line.empty()) (void)nft_->Run(line);
    }
  }
  for (const auto& r : batch) {
    if (Status removed = RemovePinnedNetns(PinPath(r.slot)); !removed) {
      SBX_LOG_WARN("network slot {}: {}", r.slot, removed.error().ToString());
    }
  }
  // Unpinned, a namespace is destroyed by the kernel, veth pair included, in batches under one
  // RTNL section. Deleting each veth here instead would cost a synchronize_net per pair.
  std::vector<int> remaining;
  for (const auto& r : batch) {
    if (!r.processes_stay) {
      remaining.push_back(r.slot);
    } else if (auto index = rtnl.LinkIndex(PortName(r.slot))) {
      // A process keeps the namespace: its veth pair goes now, with the slot's address.
      (void)rtnl.DeleteLink(*index);
    }
  }
  int64_t deadline = MonotonicMillis() + kNamespaceGoneTimeoutMs;
  while (true) {
    std::erase_if(remaining, [&](int slot) { return !rtnl.LinkIndex(PortName(slot)); });
    if (remaining.empty() || MonotonicMillis() >= deadline) break;
    usleep(2000);
  }
  // Something still holds a namespace (a process that outlived its sandbox?): cut its link.
  for (int slot : remaining) {
    if (auto index = rtnl.LinkIndex(PortName(slot))) {
      SBX_LOG_WARN("network slot {}: namespace still alive, deleting its veth", slot);
      (void)rtnl.DeleteLink(*index);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// DNS policy

DnsForwarder::Decision BridgeNetwork::Decide(Ipv4 client, const std::string& name) {
  using Verdict = DnsForwarder::Verdict;
  std::lock_guard lock(mu_);
  auto it = by_address_.find(client);
  if (it == by_address_.end()) return {Verdict::kRefuse, 0};
  const Attached& a = attached_.at(it->second);
  switch (a.mode) {
    case NetworkMode::kPublic:
      return {Verdict::kForward, a.token};
    case NetworkMode::kNone:
      return {Verdict::kNxDomain, a.token};
    case NetworkMode::kAllowlist:
      break;
  }
  for (const auto& rule : a.rules.egress) {
    // An `any` rule resolves every name.
    if (rule.kind == EgressKind::kAny ||
        (rule.kind == EgressKind::kDnsName && rule.dns_name.Matches(name))) {
      return {Verdict::kForward, a.token};
    }
  }
  return {Verdict::kNxDomain, a.token};
}

void BridgeNetwork::Learn(uint64_t token, const std::string& name,
                          const std::vector<DnsRecord>& records) {
  // Held across the commit: once Detach has run, no address can be added to a set that a later
  // sandbox on the same slot would inherit.
  std::lock_guard lock(mu_);
  auto id = by_token_.find(token);
  if (id == by_token_.end()) return;
  const Attached& a = attached_.at(id->second);
  std::string commands;
  for (size_t i = 0; i < a.rules.egress.size(); ++i) {
    const EgressRule& rule = a.rules.egress[i];
    if (rule.kind != EgressKind::kDnsName || !rule.dns_name.Matches(name)) continue;
    for (const auto& r : records) {
      uint32_t seconds = std::clamp(r.ttl, kMinAllowSeconds, kMaxAllowSeconds);
      commands +=
          ruleset_->Allow(a.rules.slot, static_cast<int>(i), r.address, static_cast<int>(seconds));
    }
  }
  if (commands.empty()) return;
  if (Status s = nft_->Run(commands); !s) {
    SBX_LOG_WARN("sandbox id={} allowing {}: {}", a.id, name, s.error().ToString());
  }
}

// ---------------------------------------------------------------------------------------------
// The deny set, kept current with the host's networks

std::vector<Ipv4Range> BridgeNetwork::DenySet(const std::vector<Ipv4Prefix>& host_networks) const {
  std::vector<Ipv4Range> deny = fixed_deny_;
  // SECURITY: the host's LAN, its router and its other networks (another daemon's sandboxes
  // included) are denied even where their addresses are public; network_allow can still open
  // one of them.
  for (const auto& p : host_networks) deny.push_back(ToRange(p));
  deny = Subtract(deny, allow_);
  // SECURITY: the sandboxes' own subnet is denied whatever the configuration says: sandboxes
  // never reach each other.
  deny.push_back(ToRange(subnet_));
  return Normalize(std::move(deny));
}

Status BridgeNetwork::UpdateDenySet(Rtnetlink& rtnl) {
  SBX_ASSIGN_OR_RETURN_CTX(auto host_networks, ReadHostNetworks(rtnl), "read the host's networks");
  std::vector<Ipv4Range> deny = DenySet(host_networks);
  {
    std::lock_guard lock(deny_mu_);
    if (deny == deny_) return Ok();
  }
  SBX_TRY_CTX(nft_->Run(ruleset_->SetDeny(deny)), "update the deny set");
  std::string networks;
  for (const auto& p : host_networks) networks += (networks.empty() ? "" : " ") + p.ToString();
  SBX_LOG_INFO("deny set updated for the host's networks: {}", networks);
  std::lock_guard lock(deny_mu_);
  deny_ = std::move(deny);
  return Ok();
}

void BridgeNetwork::WatchHostNetworks() {
  auto rtnl = Rtnetlink::Open();
  if (!rtnl) {
    SBX_LOG_ERROR("the deny set no longer follows the host's networks: {}",
                  rtnl.error().ToString());
    return;
  }
  bool pending = false;  // a change not applied yet: the last update failed
  while (true) {
    pollfd fds[2] = {{monitor_->fd(), POLLIN, 0}, {watch_wake_.get(), POLLIN, 0}};
    if (poll(fds, 2, pending ? kDenyRetryMs : -1) < 0 && errno != EINTR) {
      SBX_LOG_ERROR("the deny set no longer follows the host's networks: poll: {}",
                    strerror(errno));
      return;
    }
    if (fds[1].revents & POLLIN) return;
    if (fds[0].revents & POLLIN) {
      auto changed = monitor_->Drain();
      pending = pending || !changed || *changed;
    }
    if (!pending) continue;
    Status updated = UpdateDenySet(*rtnl);
    if (!updated) SBX_LOG_WARN("{} (trying again)", updated.error().ToString());
    pending = !updated;
  }
}

// ---------------------------------------------------------------------------------------------
// Recovery and shutdown

Status BridgeNetwork::Recover(const std::vector<std::string>& live) {
  {
    std::lock_guard lock(mu_);
    if (started_) return Error::FailedPrecondition("sandbox network recovered twice");
  }
  std::set<std::string> live_set(live.begin(), live.end());
  std::map<int, Attached> kept;
  std::set<int> orphans;
  auto slot_of = [this](const std::string& text) -> std::optional<int> {
    auto n = ParseUint64(text);
    if (!n || *n >= static_cast<uint64_t>(max_slots_) || std::to_string(*n) != text) {
      return std::nullopt;
    }
    return static_cast<int>(*n);
  };
  auto list_dir = [](const std::string& dir) {
    std::vector<std::string> names;
    if (DIR* d = opendir(dir.c_str())) {
      while (dirent* e = readdir(d)) {
        if (e->d_name[0] != '.') names.emplace_back(e->d_name);
      }
      closedir(d);
    }
    return names;
  };
  for (const auto& file : list_dir(state_dir_)) {
    std::string path = state_dir_ + "/" + file;
    auto text = sys::ReadFile(path, 1 << 20);
    json j = text ? json::parse(*text, nullptr, false) : json();
    std::optional<Attached> a;
    try {
      if (j.is_object()) {
        Attached parsed;
        parsed.id = j.at("id").get<std::string>();
        parsed.mode = static_cast<NetworkMode>(j.at("mode").get<int>());
        auto rules = RulesFromJson(j.at("rules"), j.at("dns_patterns"));
        if (rules && rules->slot >= 0 && rules->slot < max_slots_) {
          parsed.rules = *rules;
          parsed.rules.address = Address(parsed.rules.slot);
          for (const auto& s : j.at("services")) {
            ServiceEndpoint e;
            e.service.port = s.at("port").get<int>();
            e.service.name = s.at("name").get<std::string>();
            e.service.protocol = s.at("protocol").get<std::string>();
            e.service.public_access = s.at("public").get<bool>();
            e.service.visibility = s.at("visibility").get<int>();
            e.host_port = s.at("host_port").get<int>();
            e.url = s.at("url").get<std::string>();
            parsed.services.push_back(std::move(e));
          }
          a = std::move(parsed);
        }
      }
    } catch (const json::exception&) {
      a.reset();
    }
    if (a && live_set.count(a->id) && !kept.count(a->rules.slot) && file == a->id + ".json") {
      kept[a->rules.slot] = std::move(*a);
      continue;
    }
    if (a) orphans.insert(a->rules.slot);
    unlink(path.c_str());
  }
  for (const auto& name : list_dir(pins_dir_)) {
    auto slot = slot_of(name);
    if (!slot) {
      (void)RemovePinnedNetns(pins_dir_ + "/" + name);
      continue;
    }
    if (!kept.count(*slot)) orphans.insert(*slot);
  }
  {
    SBX_ASSIGN_OR_RETURN(Rtnetlink rtnl, Rtnetlink::Open());
    SBX_ASSIGN_OR_RETURN(auto links, rtnl.Links());
    for (const auto& l : links) {
      if (!StartsWith(l.name, port_prefix_)) continue;
      auto slot = slot_of(l.name.substr(port_prefix_.size()));
      if (!slot) {
        (void)rtnl.DeleteLink(l.index);
      } else if (!kept.count(*slot)) {
        orphans.insert(*slot);
      }
    }
  }
  std::vector<std::pair<std::string, Ipv4>> ports;
  std::vector<SandboxRules> rules;
  for (const auto& [slot, a] : kept) {
    ports.emplace_back(PortName(slot), Address(slot));
    rules.push_back(a.rules);
  }
  // Subscribed before the networks are read, so that no change falls between the two.
  SBX_ASSIGN_OR_RETURN_CTX(HostNetworkMonitor monitor, HostNetworkMonitor::Open(),
                           "follow the host's networks");
  monitor_.emplace(std::move(monitor));
  std::vector<Ipv4Range> deny;
  {
    SBX_ASSIGN_OR_RETURN(Rtnetlink rtnl, Rtnetlink::Open());
    SBX_ASSIGN_OR_RETURN_CTX(auto host_networks, ReadHostNetworks(rtnl),
                             "read the host's networks");
    deny = DenySet(host_networks);
  }
  std::vector<std::string> more_bridges;
  {
    SBX_ASSIGN_OR_RETURN(Rtnetlink rtnl, Rtnetlink::Open());
    more_bridges = MoreBridges(rtnl);
  }
  SBX_TRY_CTX(nft_->Run(ruleset_->Replace(deny, ports, rules, more_bridges)),
              "install the sandbox network's rules");
  {
    std::lock_guard lock(deny_mu_);
    deny_ = std::move(deny);
  }
  for (auto& [slot, a] : kept) {
    auto held = ReserveHostPorts(a.services, true);
    if (held) a.reservations = std::move(*held);
  }
  {
    std::lock_guard lock(mu_);
    busy_.assign(static_cast<size_t>(max_slots_), false);
    for (auto& [slot, a] : kept) {
      busy_[slot] = true;
      next_slot_ = (slot + 1) % max_slots_;
      a.token = next_token_++;
      by_address_[a.rules.address] = a.id;
      by_token_[a.token] = a.id;
      SBX_LOG_INFO("sandbox id={} network re-adopted address={}", a.id,
                   FormatIpv4(a.rules.address));
      std::string id = a.id;
      attached_[id] = std::move(a);
    }
    for (int slot : orphans) {
      busy_[slot] = true;
      releases_.push_back({slot, std::nullopt, false});
    }
    started_ = true;
  }
  if (!orphans.empty())
    SBX_LOG_INFO("removing {} network namespaces no sandbox owns", orphans.size());
  dns_->Start();
  reaper_thread_ = std::thread([this] { ReaperLoop(); });
  pool_thread_ = std::thread([this] { PoolLoop(); });
  watch_thread_ = std::thread([this] { WatchHostNetworks(); });
  return Ok();
}

BridgeNetwork::~BridgeNetwork() {
  if (watch_thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(watch_wake_.get(), &one, sizeof one);
    watch_thread_.join();
  }
  if (dns_) dns_->Stop();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  pool_cv_.notify_all();
  if (pool_thread_.joinable()) pool_thread_.join();
  bool remove_all = false;
  {
    std::lock_guard lock(mu_);
    for (int slot : pool_) releases_.push_back({slot, std::nullopt, true});
    pool_.clear();
    reaper_stopping_ = true;
    remove_all = started_ && attached_.empty();
  }
  reaper_cv_.notify_all();
  if (reaper_thread_.joinable()) reaper_thread_.join();
  if (!remove_all) return;
  // No sandbox uses the network any more: leave nothing of this daemon behind.
  if (Status s = nft_->Run(ruleset_->Delete()); !s) {
    SBX_LOG_WARN("removing the network rules: {}", s.error().ToString());
  }
  if (auto rtnl = Rtnetlink::Open()) {
    for (const auto& name : MoreBridges(*rtnl)) {
      if (auto index = rtnl->LinkIndex(name)) (void)rtnl->DeleteLink(*index);
    }
    if (auto index = rtnl->LinkIndex(options_.bridge)) (void)rtnl->DeleteLink(*index);
  }
  dns_.reset();
  umount2(pins_dir_.c_str(), MNT_DETACH);
  (void)sys::RemoveTree(dir_);
  SBX_LOG_INFO("sandbox network {} removed", options_.bridge);
}

}  // namespace sbx::net
