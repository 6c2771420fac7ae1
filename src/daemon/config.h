// File: config.h
//
// sbxd's configuration: a JSON file whose every field has a documented default
// (docs/configuration.md). Missing fields take their defaults; unknown fields are an error, so a
// typo never silently falls back to a default.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "src/base/result.h"
#include "src/net/bridge_options.h"

namespace sbx::daemon {

struct ApiKey {
  std::string key;
  std::string tenant;
  int max_sandboxes = 0;     // 0: the tenant default
  bool is_operator = false;  // "operator": may manage the node's images
};

struct RegistryCredential {
  std::string registry;
  std::string username;
  std::string password;
};

struct Config {
  std::string state_dir = "/var/lib/sbx";  // durable: database, images
  std::string run_dir = "/run/sbx";        // ephemeral: sandbox bundles, sockets
  std::string listen_unix = "/run/sbx/sbxd.sock";
  uint32_t unix_socket_mode = 0660;
  std::string unix_socket_group;  // group allowed to use the socket ("" keeps root's)
  std::string listen_tcp;         // "host:port"; empty: no TCP listener
  std::string tls_cert;           // PEM files; when set, TCP uses TLS
  std::string tls_key;
  std::string metrics_listen;  // "host:port" for Prometheus /metrics; empty: off
  std::vector<ApiKey> api_keys;
  std::string local_tenant = "local";  // tenant of unauthenticated unix-socket callers
  bool local_operator = true;          // unix-socket callers without a key may manage images
  // The TCP side (docs/configuration.md#the-tcp-api): connections sbxd keeps open, in all and
  // from one client host, and how long a connection may take to start talking HTTP/2 and stay
  // without calls.
  int tcp_max_connections = 4096;
  int tcp_max_connections_per_client = 256;
  int tcp_handshake_timeout_seconds = 10;
  int tcp_idle_timeout_seconds = 300;
  int default_max_sandboxes = 10000;          // per tenant
  std::vector<std::string> registry_mirrors;  // for docker.io, Docker's registry-mirrors
  std::vector<std::string> insecure_registries;
  std::vector<RegistryCredential> registry_credentials;
  std::string secrets_dir = "/etc/sbx/secrets";
  std::string default_image = "python:3.11";
  std::string default_cpu = "2";
  std::string default_memory = "2Gi";
  uint64_t default_pids = 4096;
  std::string default_disk = "10Gi";  // the size (limit) of every sandbox's writable layer
  // What a sandbox reserves of `capacity_disk` (layers are sparse: most use far less than their
  // size).
  std::string default_disk_request = "0";
  // What a sandbox without a CPU or memory request reserves of the node's capacity. Idle
  // sandboxes cost almost nothing, so by default none is reserved and the node admits them while
  // the host has real room (memory_reserve); explicit requests are reserved exactly.
  std::string default_cpu_request = "0";
  std::string default_memory_request = "0";
  // Creates wait (PENDING) while the host's available memory (MemAvailable) is below this plus
  // the new sandbox's memory request.
  std::string memory_reserve = "1Gi";
  int default_lifetime_seconds = 43200;  // the Python SDK's too: one default for every client
  int max_lifetime_seconds = 30 * 24 * 3600;
  std::string capacity_cpu = "auto";     // Kubernetes quantity, or "auto" (all CPUs)
  std::string capacity_memory = "auto";  // or "auto" (90% of RAM)
  // What sandboxes' disk requests may reserve; "auto": the size of the state_dir's filesystem
  // less disk_reserve.
  std::string capacity_disk = "auto";
  // Creates, pulls and loads stop (RESOURCE_EXHAUSTED) rather than leave less free than this on
  // the state_dir's filesystem.
  std::string disk_reserve = "2Gi";
  int retention_seconds = 24 * 3600;
  // How long the files of a sandbox whose main process ended (or whose lifetime ran out) stay
  // readable, unless it is deleted first; at most retention_seconds. 0: gone at the end.
  int files_retention_seconds = 3600;
  std::string writable_layer = "loop";  // "loop" or "tmpfs"
  int disk_pool_size = 8;               // loop images formatted ahead of time
  // Sandboxes started ahead of time for recently used images (docs/configuration.md): this many
  // per image, for at most `warm_pool_images` images, each image until it goes unused for
  // `warm_pool_idle_seconds`. 0 turns the pool off.
  int warm_pool_size = 1;
  int warm_pool_images = 4;
  int warm_pool_idle_seconds = 600;
  // A refill starts once no create has arrived for this long: preparing a sandbox slows the start
  // of one that has just begun on a machine with few cores.
  int warm_pool_refill_delay_ms = 100;
  // Host ids (id_ranges.h, docs/configuration.md#host-ids): the image layers' files belong to
  // the id_map_size ids at id_map_uid/id_map_gid, and every sandbox gets as many ids of its own
  // after them, for up to id_map_ranges sandboxes at once.
  uint32_t id_map_uid = 1000000;
  uint32_t id_map_gid = 1000000;
  uint32_t id_map_size = 65536;
  uint32_t id_map_ranges = 16384;
  uint64_t max_file_bytes = 32ull << 20;  // unary ReadFile/WriteFile limit
  // Memory for large one-message responses in flight (a ReadFile holds its file twice, the
  // content and the serialized response; an Exec its output), in all and per tenant.
  uint64_t response_memory = 512ull << 20;
  uint64_t response_memory_per_tenant = 256ull << 20;
  std::string runner_id;  // default: the host name
  std::string log_level = "info";
  std::string log_format = "text";  // or "json"
  std::string runtime_path;         // sbx-runtime; default: next to sbxd
  // cgroup directory (in each hierarchy) holding the sandboxes' groups. Each daemon on a host
  // needs its own: at start, sbxd removes groups under it that it does not know.
  std::string cgroup_parent = "sbx";
  int stop_grace_max_seconds = 300;
  int create_wait_ms = 5000;  // CreateSandbox answers once RUNNING, or after this long
  int runtime_helpers = 4;    // sbx-runtime processes creating sandboxes in parallel
  // Keep cgroup migrations cheap with the kernel's favordynmods while sbxd runs (see
  // src/runtime/cgroup/favor_migrations.h); costs forks and exits host-wide a little.
  bool cgroup_favor_migrations = true;

  // Sandbox networking (docs/networking.md). "bridge": a network namespace per sandbox on a
  // bridge with NAT and the deny set; "none": loopback only for every sandbox.
  std::string network = "bridge";
  std::string network_bridge;            // default: "sbx" + a hash of cgroup_parent
  std::string network_subnet = "auto";   // or an IPv4 CIDR; auto: a free /16 in 10.128.0.0/10
  std::string network_table;             // nftables table; default: "sbx_" + the same hash
  std::vector<std::string> network_dns;  // upstream resolvers; default: the host's resolv.conf
  int network_pool_size = 16;            // namespaces and veth pairs prepared ahead of time
  // Sandboxes on one bridge before the next bridge is made (a bridge takes at most 1023 ports).
  int network_sandboxes_per_bridge = 1021;
  std::vector<std::string> network_deny;   // CIDRs denied on top of the built-in deny set
  std::vector<std::string> network_allow;  // CIDRs taken out of the built-in deny set
  std::string network_service_ports = "30000-32767";  // host ports for exposed services
  std::string network_service_host;  // host name in service URLs; default: the gateway address
  // What one sandbox, or all of them, may take of the host's connection tracking table and of the
  // DNS forwarder's upstream resolvers. Rates allow bursts of twice as many.
  int network_sandbox_max_flows = 8192;         // flows tracked at once, per sandbox
  int network_sandbox_flows_per_second = 1000;  // new flows, per sandbox
  int network_max_flows = 0;  // all sandboxes together; 0: half the host's nf_conntrack_max
  int network_sandbox_dns_queries_per_second = 100;  // queries forwarded upstream, per sandbox

  static Result<Config> FromJson(const std::string& json);
  static Result<Config> Load(const std::string& path);
  std::string ToJson() const;
};

// "30000-32767" as (30000, 32767); nullopt unless 1024 <= first <= last <= 65535.
std::optional<std::pair<int, int>> ParseServicePorts(const std::string& range);

// The sandbox network's options from the `network_*` fields, with the bridge and table names
// derived from `cgroup_parent` when unset; InvalidArgument naming the field that is not valid.
Result<net::BridgeNetworkOptions> BridgeNetworkOptionsFrom(const Config& config);

}  // namespace sbx::daemon
