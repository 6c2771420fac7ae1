// File: network_provider.h
//
// How a sandbox gets its network. The sandbox manager asks for an attachment before creating a
// sandbox and detaches it when the sandbox ends; the provider owns network namespaces, links,
// addresses, filtering rules and DNS, and must be able to clean up after a restart.
//
// LoopbackOnlyNetwork gives every sandbox a fresh network namespace with only loopback, whatever
// was asked; its effective egress is empty, and the status says so. BridgeNetwork
// (bridge_network.h) is the real one.

#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/net/egress_rule.h"

namespace sbx::net {

// The values are stored in the daemon's records; keep their numbers.
enum class NetworkMode {
  kNone = 0,       // loopback only (deny_egress)
  kPublic = 1,     // outbound to public addresses, never to the deny set (the default)
  kAllowlist = 2,  // only the egress rules' destinations, never to the deny set
};

// A port of the sandbox exposed on the host.
struct ServiceSpec {
  int port = 0;
  std::string name;
  std::string protocol = "tcp";  // "tcp", "udp" or "sctp"
  bool public_access = false;    // reachable from other machines too, not only from the host
  int visibility = 0;            // as requested (the wire's Visibility), echoed in the status
};

// What a sandbox asks of the network, validated by the API's request parser.
struct NetworkRequest {
  NetworkMode mode = NetworkMode::kPublic;
  std::vector<EgressRule> egress;  // kAllowlist; a DNS name without ports is TCP 443
  std::vector<ServiceSpec> services;
};

// An exposed service as attached: the host port that reaches it and its URL.
struct ServiceEndpoint {
  ServiceSpec service;
  int host_port = 0;
  std::string url;  // "http://<host>:<host_port>" (TCP), "udp://…" or "sctp://…"
};

struct NetworkAttachment {
  NetworkMode mode = NetworkMode::kNone;
  std::string netns_path;  // empty: the runtime makes a namespace with only loopback
  std::string address;     // the sandbox's IPv4 address, if any
  std::vector<std::string> dns_servers;
  std::vector<std::string> extra_hosts;
  std::vector<EgressRule> effective_egress;
  std::vector<ServiceEndpoint> services;
};

class NetworkProvider {
 public:
  virtual ~NetworkProvider() = default;
  virtual Result<NetworkAttachment> Attach(const std::string& sandbox_id,
                                           const NetworkRequest& request) = 0;
  // What is left in a sandbox's network namespace when it is detached.
  enum class Leftover {
    kNothing,        // its processes are gone: the namespace goes with its last reference
    kProcessesStay,  // a process stays in it (an ended sandbox keeping its files)
  };
  // Releases what Attach made; may finish asynchronously. Unknown ids are fine.
  virtual void Detach(const std::string& sandbox_id, Leftover leftover) = 0;
  // After a restart: keep the attachments of `live` sandboxes, remove everything else.
  virtual Status Recover(const std::vector<std::string>& live) = 0;
  // The exposed services of an attached sandbox (none once it is detached).
  virtual std::vector<ServiceEndpoint> Services(const std::string&) { return {}; }
  // How often each of the provider's limits refused something (a new flow, a DNS query) since
  // it started, by limit.
  virtual std::map<std::string, uint64_t> LimitHits() { return {}; }
};

class LoopbackOnlyNetwork : public NetworkProvider {
 public:
  Result<NetworkAttachment> Attach(const std::string&, const NetworkRequest&) override {
    return NetworkAttachment{};
  }
  void Detach(const std::string&, Leftover) override {}
  Status Recover(const std::vector<std::string>&) override { return Ok(); }
};

}  // namespace sbx::net
