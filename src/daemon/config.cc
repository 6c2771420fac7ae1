#include "src/daemon/config.h"

#include <tuple>

#include <nlohmann/json.hpp>

#include "src/base/quantity.h"
#include "src/base/strings.h"
#include "src/daemon/id_ranges.h"
#include "src/net/dns_forwarder.h"
#include "src/net/ipv4.h"
#include "src/sys/fs.h"

namespace sbx::daemon {

using nlohmann::json;

namespace {

// Reads `key` into `out` when present, checking the JSON type.
template <typename T>
Status Field(const json& j, const char* key, T& out, std::vector<std::string>& seen) {
  seen.emplace_back(key);
  if (!j.contains(key)) return Ok();
  try {
    out = j.at(key).get<T>();
  } catch (const json::exception&) {
    return Error::InvalidArgument(std::string("config: ") + key + " has the wrong type");
  }
  return Ok();
}

Status Mode(const json& j, const char* key, uint32_t& out, std::vector<std::string>& seen) {
  seen.emplace_back(key);
  if (!j.contains(key)) return Ok();
  const auto& v = j.at(key);
  if (v.is_number_unsigned()) {
    out = v.get<uint32_t>();
    return Ok();
  }
  if (v.is_string()) {
    std::string text = v.get<std::string>();
    char* end = nullptr;
    unsigned long mode = strtoul(text.c_str(), &end, 8);
    if (!text.empty() && *end == '\0' && mode <= 07777) {
      out = static_cast<uint32_t>(mode);
      return Ok();
    }
  }
  return Error::InvalidArgument(std::string("config: ") + key +
                                " must be an octal mode like \"0660\"");
}

bool ValidInterfaceName(const std::string& name) {
  return !name.empty() && name.size() <= 15 && std::all_of(name.begin(), name.end(), [](char ch) {
    return isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
  });
}

Status ValidateNetwork(const Config& c) {
  if (c.network != "bridge" && c.network != "none") {
    return Error::InvalidArgument("config: network must be \"bridge\" or \"none\"");
  }
  if (!c.network_bridge.empty() && !ValidInterfaceName(c.network_bridge)) {
    return Error::InvalidArgument(
        "config: network_bridge must be 1-15 characters of [A-Za-z0-9_-]");
  }
  if (!c.network_table.empty() &&
      (c.network_table.size() > 64 ||
       !std::all_of(c.network_table.begin(), c.network_table.end(), [](char ch) {
         return isalnum(static_cast<unsigned char>(ch)) || ch == '_';
       }))) {
    return Error::InvalidArgument("config: network_table must be 1-64 characters of [A-Za-z0-9_]");
  }
  if (c.network_pool_size < 0 || c.network_pool_size > 1024) {
    return Error::InvalidArgument("config: network_pool_size must be between 0 and 1024");
  }
  if (c.network_sandboxes_per_bridge < 1 ||
      c.network_sandboxes_per_bridge > net::kMaxSandboxesPerBridge) {
    return Error::InvalidArgument("config: network_sandboxes_per_bridge must be between 1 and " +
                                  std::to_string(net::kMaxSandboxesPerBridge));
  }
  SBX_TRY(BridgeNetworkOptionsFrom(c));
  return Ok();
}

Status ValidateApiLimits(const Config& c) {
  if (c.tcp_max_connections < 1 || c.tcp_max_connections_per_client < 1 ||
      c.tcp_max_connections_per_client > c.tcp_max_connections) {
    return Error::InvalidArgument(
        "config: tcp_max_connections and tcp_max_connections_per_client must be positive, the "
        "second at most the first");
  }
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return Error::InvalidArgument("config: tls_cert and tls_key go together");
  }
  if (c.tcp_handshake_timeout_seconds < 1 || c.tcp_idle_timeout_seconds < 1) {
    return Error::InvalidArgument(
        "config: tcp_handshake_timeout_seconds and tcp_idle_timeout_seconds must be positive");
  }
  if (c.max_file_bytes < 1 || c.max_file_bytes > (1ull << 30)) {
    return Error::InvalidArgument("config: max_file_bytes must be between 1 and 1073741824");
  }
  // A ReadFile holds the file twice (content and serialized response): the largest one must fit
  // a tenant's share, and the share the total.
  if (c.response_memory_per_tenant < 2 * c.max_file_bytes ||
      c.response_memory < c.response_memory_per_tenant) {
    return Error::InvalidArgument(
        "config: response_memory_per_tenant must be at least twice max_file_bytes, and "
        "response_memory at least response_memory_per_tenant");
  }
  return Ok();
}

}  // namespace

Result<net::BridgeNetworkOptions> BridgeNetworkOptionsFrom(const Config& c) {
  net::BridgeNetworkOptions o;
  o.run_dir = c.run_dir;
  o.bridge = c.network_bridge.empty() ? net::DefaultBridgeName(c.cgroup_parent) : c.network_bridge;
  o.table = c.network_table.empty() ? net::DefaultTableName(c.cgroup_parent) : c.network_table;
  if (c.network_subnet != "auto") {
    auto subnet = net::ParseIpv4Prefix(c.network_subnet, true);
    if (!subnet || subnet->length < 8 || subnet->length > 28) {
      return Error::InvalidArgument(
          "config: network_subnet must be \"auto\" or an IPv4 CIDR from /8 to /28");
    }
    o.subnet = *subnet;
  }
  for (const auto& s : c.network_dns) {
    auto server = net::ParseDnsServer(s);
    if (!server) return Error::InvalidArgument("config: network_dns: " + server.error().message());
    o.dns.push_back(*server);
  }
  o.pool_size = c.network_pool_size;
  o.sandboxes_per_bridge = c.network_sandboxes_per_bridge;
  for (auto [list, name, out] : {std::tuple{&c.network_deny, "network_deny", &o.deny},
                                 std::tuple{&c.network_allow, "network_allow", &o.allow}}) {
    for (const auto& cidr : *list) {
      auto prefix = net::ParseIpv4Prefix(cidr, true);
      if (!prefix) {
        return Error::InvalidArgument(std::string("config: ") + name + ": " +
                                      prefix.error().message());
      }
      out->push_back(*prefix);
    }
  }
  auto ports = ParseServicePorts(c.network_service_ports);
  if (!ports) {
    return Error::InvalidArgument(
        "config: network_service_ports must be a range \"first-last\" within 1024-65535");
  }
  std::tie(o.service_port_first, o.service_port_last) = *ports;
  o.service_host = c.network_service_host;
  // At most a million: the kernel's sets and the token buckets stay far from overflow, and no
  // sandbox needs more.
  constexpr int kMaxLimit = 1000000;
  for (auto [value, name, out] :
       {std::tuple{c.network_sandbox_max_flows, "network_sandbox_max_flows",
                   &o.limits.sandbox_flows},
        std::tuple{c.network_sandbox_flows_per_second, "network_sandbox_flows_per_second",
                   &o.limits.sandbox_flows_per_second},
        std::tuple{c.network_sandbox_dns_queries_per_second,
                   "network_sandbox_dns_queries_per_second", &o.limits.dns_queries_per_second}}) {
    if (value < 1 || value > kMaxLimit) {
      return Error::InvalidArgument(std::string("config: ") + name + " must be between 1 and " +
                                    std::to_string(kMaxLimit));
    }
    *out = value;
  }
  if (c.network_max_flows < 0 || c.network_max_flows > 100 * kMaxLimit) {
    return Error::InvalidArgument(
        "config: network_max_flows must be between 0 (half the host's "
        "nf_conntrack_max) and " +
        std::to_string(100 * kMaxLimit));
  }
  o.limits.flows = c.network_max_flows;
  return o;
}

std::optional<std::pair<int, int>> ParseServicePorts(const std::string& range) {
  auto parts = Split(range, '-');
  if (parts.size() != 2) return std::nullopt;
  auto first = ParseUint64(parts[0]);
  auto last = ParseUint64(parts[1]);
  if (!first || !last || *first < 1024 || *last > 65535 || *first > *last) return std::nullopt;
  return std::pair<int, int>(static_cast<int>(*first), static_cast<int>(*last));
}

Result<Config> Config::FromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false, true);
  if (j.is_discarded() || !j.is_object())
    return Error::InvalidArgument("config is not a JSON object");
  Config c;
  std::vector<std::string> seen;
  SBX_TRY(Field(j, "state_dir", c.state_dir, seen));
  SBX_TRY(Field(j, "run_dir", c.run_dir, seen));
  SBX_TRY(Field(j, "listen_unix", c.listen_unix, seen));
  SBX_TRY(Mode(j, "unix_socket_mode", c.unix_socket_mode, seen));
  SBX_TRY(Field(j, "unix_socket_group", c.unix_socket_group, seen));
  SBX_TRY(Field(j, "listen_tcp", c.listen_tcp, seen));
  SBX_TRY(Field(j, "tls_cert", c.tls_cert, seen));
  SBX_TRY(Field(j, "tls_key", c.tls_key, seen));
  SBX_TRY(Field(j, "metrics_listen", c.metrics_listen, seen));
  SBX_TRY(Field(j, "local_tenant", c.local_tenant, seen));
  SBX_TRY(Field(j, "local_operator", c.local_operator, seen));
  SBX_TRY(Field(j, "tcp_max_connections", c.tcp_max_connections, seen));
  SBX_TRY(Field(j, "tcp_max_connections_per_client", c.tcp_max_connections_per_client, seen));
  SBX_TRY(Field(j, "tcp_handshake_timeout_seconds", c.tcp_handshake_timeout_seconds, seen));
  SBX_TRY(Field(j, "tcp_idle_timeout_seconds", c.tcp_idle_timeout_seconds, seen));
  SBX_TRY(Field(j, "default_max_sandboxes", c.default_max_sandboxes, seen));
  SBX_TRY(Field(j, "registry_mirrors", c.registry_mirrors, seen));
  SBX_TRY(Field(j, "insecure_registries", c.insecure_registries, seen));
  SBX_TRY(Field(j, "secrets_dir", c.secrets_dir, seen));
  SBX_TRY(Field(j, "default_image", c.default_image, seen));
  SBX_TRY(Field(j, "default_cpu", c.default_cpu, seen));
  SBX_TRY(Field(j, "default_memory", c.default_memory, seen));
  SBX_TRY(Field(j, "default_pids", c.default_pids, seen));
  SBX_TRY(Field(j, "default_disk", c.default_disk, seen));
  SBX_TRY(Field(j, "default_disk_request", c.default_disk_request, seen));
  SBX_TRY(Field(j, "default_cpu_request", c.default_cpu_request, seen));
  SBX_TRY(Field(j, "default_memory_request", c.default_memory_request, seen));
  SBX_TRY(Field(j, "memory_reserve", c.memory_reserve, seen));
  SBX_TRY(Field(j, "default_lifetime_seconds", c.default_lifetime_seconds, seen));
  SBX_TRY(Field(j, "max_lifetime_seconds", c.max_lifetime_seconds, seen));
  SBX_TRY(Field(j, "capacity_cpu", c.capacity_cpu, seen));
  SBX_TRY(Field(j, "capacity_memory", c.capacity_memory, seen));
  SBX_TRY(Field(j, "capacity_disk", c.capacity_disk, seen));
  SBX_TRY(Field(j, "disk_reserve", c.disk_reserve, seen));
  SBX_TRY(Field(j, "retention_seconds", c.retention_seconds, seen));
  SBX_TRY(Field(j, "files_retention_seconds", c.files_retention_seconds, seen));
  SBX_TRY(Field(j, "writable_layer", c.writable_layer, seen));
  SBX_TRY(Field(j, "disk_pool_size", c.disk_pool_size, seen));
  SBX_TRY(Field(j, "warm_pool_size", c.warm_pool_size, seen));
  SBX_TRY(Field(j, "warm_pool_images", c.warm_pool_images, seen));
  SBX_TRY(Field(j, "warm_pool_idle_seconds", c.warm_pool_idle_seconds, seen));
  SBX_TRY(Field(j, "warm_pool_refill_delay_ms", c.warm_pool_refill_delay_ms, seen));
  SBX_TRY(Field(j, "id_map_uid", c.id_map_uid, seen));
  SBX_TRY(Field(j, "id_map_gid", c.id_map_gid, seen));
  SBX_TRY(Field(j, "id_map_size", c.id_map_size, seen));
  SBX_TRY(Field(j, "id_map_ranges", c.id_map_ranges, seen));
  SBX_TRY(Field(j, "max_file_bytes", c.max_file_bytes, seen));
  SBX_TRY(Field(j, "response_memory", c.response_memory, seen));
  SBX_TRY(Field(j, "response_memory_per_tenant", c.response_memory_per_tenant, seen));
  SBX_TRY(Field(j, "runner_id", c.runner_id, seen));
  SBX_TRY(Field(j, "log_level", c.log_level, seen));
  SBX_TRY(Field(j, "log_format", c.log_format, seen));
  SBX_TRY(Field(j, "runtime_path", c.runtime_path, seen));
  SBX_TRY(Field(j, "cgroup_parent", c.cgroup_parent, seen));
  SBX_TRY(Field(j, "stop_grace_max_seconds", c.stop_grace_max_seconds, seen));
  SBX_TRY(Field(j, "create_wait_ms", c.create_wait_ms, seen));
  SBX_TRY(Field(j, "runtime_helpers", c.runtime_helpers, seen));
  SBX_TRY(Field(j, "cgroup_favor_migrations", c.cgroup_favor_migrations, seen));
  SBX_TRY(Field(j, "network", c.network, seen));
  SBX_TRY(Field(j, "network_bridge", c.network_bridge, seen));
  SBX_TRY(Field(j, "network_subnet", c.network_subnet, seen));
  SBX_TRY(Field(j, "network_table", c.network_table, seen));
  SBX_TRY(Field(j, "network_dns", c.network_dns, seen));
  SBX_TRY(Field(j, "network_pool_size", c.network_pool_size, seen));
  SBX_TRY(Field(j, "network_sandboxes_per_bridge", c.network_sandboxes_per_bridge, seen));
  SBX_TRY(Field(j, "network_deny", c.network_deny, seen));
  SBX_TRY(Field(j, "network_allow", c.network_allow, seen));
  SBX_TRY(Field(j, "network_service_ports", c.network_service_ports, seen));
  SBX_TRY(Field(j, "network_service_host", c.network_service_host, seen));
  SBX_TRY(Field(j, "network_sandbox_max_flows", c.network_sandbox_max_flows, seen));
  SBX_TRY(Field(j, "network_sandbox_flows_per_second", c.network_sandbox_flows_per_second, seen));
  SBX_TRY(Field(j, "network_max_flows", c.network_max_flows, seen));
  SBX_TRY(Field(j, "network_sandbox_dns_queries_per_second",
                c.network_sandbox_dns_queries_per_second, seen));
  seen.emplace_back("api_keys");
  if (j.contains("api_keys")) {
    if (!j["api_keys"].is_array()) return Error::InvalidArgument("config: api_keys must be a list");
    for (const auto& k : j["api_keys"]) {
      ApiKey key;
      if (!k.is_object() || !k.contains("key") || !k["key"].is_string() || !k.contains("tenant") ||
          !k["tenant"].is_string()) {
        return Error::InvalidArgument("config: every api_keys entry needs \"key\" and \"tenant\"");
      }
      key.key = k["key"].get<std::string>();
      key.tenant = k["tenant"].get<std::string>();
      key.max_sandboxes = k.value("max_sandboxes", 0);
      if (k.contains("operator")) {
        if (!k["operator"].is_boolean()) {
          return Error::InvalidArgument("config: api_keys: \"operator\" must be true or false");
        }
        key.is_operator = k["operator"].get<bool>();
      }
      for (const auto& [field, value] : k.items()) {
        if (field != "key" && field != "tenant" && field != "max_sandboxes" &&
            field != "operator") {
          return Error::InvalidArgument("config: api_keys: unknown field " + Quote(field));
        }
      }
      if (key.key.size() < 16) {
        return Error::InvalidArgument("config: API keys must be at least 16 characters");
      }
      c.api_keys.push_back(key);
    }
  }
  seen.emplace_back("registry_credentials");
  if (j.contains("registry_credentials")) {
    for (const auto& r : j["registry_credentials"]) {
      c.registry_credentials.push_back(
          {r.value("registry", ""), r.value("username", ""), r.value("password", "")});
    }
  }
  for (const auto& [key, value] : j.items()) {
    if (std::find(seen.begin(), seen.end(), key) == seen.end()) {
      return Error::InvalidArgument("config: unknown field " + Quote(key));
    }
  }
  if (c.writable_layer != "loop" && c.writable_layer != "tmpfs") {
    return Error::InvalidArgument("config: writable_layer must be \"loop\" or \"tmpfs\"");
  }
  if (c.warm_pool_size < 0 || c.warm_pool_size > 64 || c.warm_pool_images < 1 ||
      c.warm_pool_images > 256 || c.warm_pool_idle_seconds < 1 || c.warm_pool_refill_delay_ms < 0) {
    return Error::InvalidArgument(
        "config: warm_pool_size must be between 0 and 64, warm_pool_images between 1 and 256, "
        "warm_pool_idle_seconds positive, warm_pool_refill_delay_ms not negative");
  }
  // A quantity that does not parse must not fall back to a default unnoticed.
  for (const auto& [name, value, auto_allowed] :
       {std::tuple{"default_cpu", c.default_cpu, false},
        std::tuple{"default_cpu_request", c.default_cpu_request, false},
        std::tuple{"capacity_cpu", c.capacity_cpu, true}}) {
    if ((!auto_allowed || value != "auto") && !ParseCpuMillis(value)) {
      return Error::InvalidArgument("config: " + std::string(name) +
                                    " is not a CPU quantity: " + Quote(value));
    }
  }
  for (const auto& [name, value, auto_allowed] :
       {std::tuple{"default_memory", c.default_memory, false},
        std::tuple{"capacity_memory", c.capacity_memory, true},
        std::tuple{"default_disk", c.default_disk, false},
        std::tuple{"default_disk_request", c.default_disk_request, false},
        std::tuple{"default_memory_request", c.default_memory_request, false},
        std::tuple{"memory_reserve", c.memory_reserve, false},
        std::tuple{"capacity_disk", c.capacity_disk, true},
        std::tuple{"disk_reserve", c.disk_reserve, false}}) {
    if ((!auto_allowed || value != "auto") && !ParseBytes(value)) {
      return Error::InvalidArgument("config: " + std::string(name) +
                                    " is not a byte quantity: " + Quote(value));
    }
  }
  SBX_TRY(ValidateIdRangeLayout({c.id_map_uid, c.id_map_gid, c.id_map_size, c.id_map_ranges}));
  if (c.runtime_helpers < 1 || c.runtime_helpers > 64) {
    return Error::InvalidArgument("config: runtime_helpers must be between 1 and 64");
  }
  if (c.cgroup_parent.empty() || c.cgroup_parent.find_first_of("/.") != std::string::npos) {
    return Error::InvalidArgument("config: cgroup_parent must be a plain directory name");
  }
  SBX_TRY(ValidateNetwork(c));
  if (c.log_format != "text" && c.log_format != "json") {
    return Error::InvalidArgument("config: log_format must be \"text\" or \"json\"");
  }
  if (c.default_lifetime_seconds <= 0 || c.default_lifetime_seconds > c.max_lifetime_seconds) {
    return Error::InvalidArgument(
        "config: default_lifetime_seconds must be positive and at most max_lifetime_seconds");
  }
  if (c.files_retention_seconds < 0 || c.files_retention_seconds > c.retention_seconds) {
    return Error::InvalidArgument(
        "config: files_retention_seconds must be between 0 and retention_seconds");
  }
  SBX_TRY(ValidateApiLimits(c));
  if (!c.listen_tcp.empty() && c.api_keys.empty()) {
    return Error::InvalidArgument(
        "config: listen_tcp needs api_keys (every TCP request is authenticated)");
  }
  return c;
}

Result<Config> Config::Load(const std::string& path) {
  SBX_ASSIGN_OR_RETURN(std::string text, sys::ReadFile(path, 4u << 20));
  auto config = FromJson(text);
  if (!config) return std::move(config).error().Wrap(path);
  return config;
}

std::string Config::ToJson() const {
  json keys = json::array();
  for (const auto& k : api_keys) {
    keys.push_back({{"key", "<redacted>"},
                    {"tenant", k.tenant},
                    {"max_sandboxes", k.max_sandboxes},
                    {"operator", k.is_operator}});
  }
  json j = {{"state_dir", state_dir},
            {"run_dir", run_dir},
            {"listen_unix", listen_unix},
            {"listen_tcp", listen_tcp},
            {"metrics_listen", metrics_listen},
            {"api_keys", keys},
            {"local_tenant", local_tenant},
            {"local_operator", local_operator},
            {"tcp_max_connections", tcp_max_connections},
            {"tcp_max_connections_per_client", tcp_max_connections_per_client},
            {"tcp_handshake_timeout_seconds", tcp_handshake_timeout_seconds},
            {"tcp_idle_timeout_seconds", tcp_idle_timeout_seconds},
            {"response_memory", response_memory},
            {"response_memory_per_tenant", response_memory_per_tenant},
            {"registry_mirrors", registry_mirrors},
            {"insecure_registries", insecure_registries},
            {"secrets_dir", secrets_dir},
            {"default_image", default_image},
            {"default_cpu", default_cpu},
            {"default_memory", default_memory},
            {"default_disk", default_disk},
            {"default_disk_request", default_disk_request},
            {"default_cpu_request", default_cpu_request},
            {"default_memory_request", default_memory_request},
            {"memory_reserve", memory_reserve},
            {"default_lifetime_seconds", default_lifetime_seconds},
            {"max_lifetime_seconds", max_lifetime_seconds},
            {"capacity_cpu", capacity_cpu},
            {"capacity_memory", capacity_memory},
            {"capacity_disk", capacity_disk},
            {"disk_reserve", disk_reserve},
            {"files_retention_seconds", files_retention_seconds},
            {"writable_layer", writable_layer},
            {"disk_pool_size", disk_pool_size},
            {"warm_pool_size", warm_pool_size},
            {"warm_pool_images", warm_pool_images},
            {"warm_pool_idle_seconds", warm_pool_idle_seconds},
            {"warm_pool_refill_delay_ms", warm_pool_refill_delay_ms},
            {"id_map_uid", id_map_uid},
            {"id_map_gid", id_map_gid},
            {"id_map_size", id_map_size},
            {"id_map_ranges", id_map_ranges},
            {"cgroup_parent", cgroup_parent},
            {"cgroup_favor_migrations", cgroup_favor_migrations},
            {"network", network},
            {"network_bridge", network_bridge},
            {"network_subnet", network_subnet},
            {"network_table", network_table},
            {"network_dns", network_dns},
            {"network_pool_size", network_pool_size},
            {"network_deny", network_deny},
            {"network_allow", network_allow},
            {"network_service_ports", network_service_ports},
            {"network_service_host", network_service_host},
            {"network_sandbox_max_flows", network_sandbox_max_flows},
            {"network_sandbox_flows_per_second", network_sandbox_flows_per_second},
            {"network_max_flows", network_max_flows},
            {"network_sandbox_dns_queries_per_second", network_sandbox_dns_queries_per_second},
            {"runner_id", runner_id}};
  return j.dump(2);
}

}  // namespace sbx::daemon
