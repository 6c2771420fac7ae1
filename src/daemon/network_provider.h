// File: network_provider.h
//
// How a sandbox gets its network. The sandbox manager asks for an attachment before creating a
// sandbox and detaches it when the sandbox ends; the provider owns network namespaces, links,
// addresses, filtering rules and DNS, and must be able to clean up after a restart.
//
// LoopbackOnly gives every sandbox a fresh network namespace with only loopback, whatever was
// asked; its effective egress is empty, and the status says so. BridgeNetwork
// (bridge_network.h) is the real one.

#pragma once

#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/daemon/sandbox_record.h"

namespace sbx::daemon {

// An exposed service as attached: the host port that reaches it and its URL.
struct ServiceEndpoint {
  ServiceSpec service;
  int host_port = 0;
  std::string url;  // "http://<host>:<host_port>" (TCP) or "udp://<host>:<host_port>"
};

struct NetworkAttachment {
  NetworkMode mode = NetworkMode::kNone;
  std::string netns_path;  // empty: the runtime makes a namespace with only loopback
  std::string address;     // the sandbox's IPv4 address, if any
  std::vector<std::string> dns_servers;
  std::vector<std::string> extra_hosts;
  std::vector<EgressRuleSpec> effective_egress;
  std::vector<ServiceEndpoint> services;
};

class NetworkProvider {
 public:
  virtual ~NetworkProvider() = default;
  virtual Result<NetworkAttachment> Attach(const std::string& sandbox_id,
                                           const NetworkRequest& request) = 0;
  // Releases what Attach made; may finish asynchronously. Unknown ids are fine.
  virtual void Detach(const std::string& sandbox_id) = 0;
  // After a restart: keep the attachments of `live` sandboxes, remove everything else.
  virtual Status Recover(const std::vector<std::string>& live) = 0;
  // The exposed services of an attached sandbox (none once it is detached).
  virtual std::vector<ServiceEndpoint> Services(const std::string&) { return {}; }
};

class LoopbackOnlyNetwork : public NetworkProvider {
 public:
  Result<NetworkAttachment> Attach(const std::string&, const NetworkRequest&) override {
    return NetworkAttachment{};
  }
  void Detach(const std::string&) override {}
  Status Recover(const std::vector<std::string>&) override { return Ok(); }
};

}  // namespace sbx::daemon
