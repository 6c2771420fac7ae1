#include "src/daemon/config.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

TEST(ConfigTest, DefaultsWhenEmpty) {
  auto c = Config::FromJson("{}");
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->listen_unix, "/run/sbx/sbxd.sock");
  EXPECT_EQ(c->default_lifetime_seconds, 43200);
  EXPECT_EQ(c->max_lifetime_seconds, 30 * 24 * 3600);
  EXPECT_EQ(c->default_image, "python:3.11");
  EXPECT_EQ(c->retention_seconds, 86400);
  EXPECT_EQ(c->files_retention_seconds, 3600);
  EXPECT_EQ(c->default_cpu_request, "0");
  EXPECT_EQ(c->default_memory_request, "0");
  EXPECT_EQ(c->default_disk_request, "0");
  EXPECT_EQ(c->memory_reserve, "1Gi");
  EXPECT_EQ(c->default_max_sandboxes, 10000);
  EXPECT_EQ(c->id_map_ranges, 16384u);
  EXPECT_FALSE(Config::FromJson(R"({"memory_reserve": "lots"})"));
  EXPECT_FALSE(Config::FromJson(R"({"default_cpu_request": "1 core"})"));
  EXPECT_TRUE(c->cgroup_favor_migrations);
  EXPECT_EQ(c->warm_pool_size, 1);
  EXPECT_EQ(c->warm_pool_images, 4);
  EXPECT_EQ(c->warm_pool_idle_seconds, 600);
  EXPECT_EQ(c->warm_pool_refill_delay_ms, 100);
}

TEST(ConfigTest, FilesRetentionIsWithinTheRecordsRetention) {
  auto c = Config::FromJson(R"({"retention_seconds": 600, "files_retention_seconds": 0})");
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->files_retention_seconds, 0);
  auto longer = Config::FromJson(R"({"retention_seconds": 600, "files_retention_seconds": 601})");
  ASSERT_FALSE(longer);
  EXPECT_NE(longer.error().message().find("files_retention_seconds"), std::string::npos);
  EXPECT_FALSE(Config::FromJson(R"({"files_retention_seconds": -1})"));
}

TEST(ConfigTest, WarmPoolFields) {
  auto c = Config::FromJson(
      R"({"warm_pool_size": 0, "warm_pool_images": 2, "warm_pool_idle_seconds": 30})");
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->warm_pool_size, 0);
  EXPECT_EQ(c->warm_pool_images, 2);
  EXPECT_EQ(c->warm_pool_idle_seconds, 30);
  EXPECT_FALSE(Config::FromJson(R"({"warm_pool_size": -1})"));
  EXPECT_FALSE(Config::FromJson(R"({"warm_pool_images": 0})"));
  EXPECT_FALSE(Config::FromJson(R"({"warm_pool_idle_seconds": 0})"));
  EXPECT_FALSE(Config::FromJson(R"({"warm_pool_refill_delay_ms": -1})"));
}

TEST(ConfigTest, IdRangeFields) {
  auto defaults = Config::FromJson("{}");
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->id_map_uid, 1000000u);
  EXPECT_EQ(defaults->id_map_size, 65536u);
  EXPECT_EQ(defaults->id_map_ranges, 16384u);
  auto c = Config::FromJson(
      R"({"id_map_uid": 200000000, "id_map_gid": 300000000, "id_map_ranges": 100})");
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->id_map_gid, 300000000u);
  EXPECT_EQ(c->id_map_ranges, 100u);
  auto too_many = Config::FromJson(R"({"id_map_uid": 4000000000, "id_map_ranges": 10000})");
  ASSERT_FALSE(too_many);
  EXPECT_NE(too_many.error().message().find("id_map_ranges"), std::string::npos);
  EXPECT_FALSE(Config::FromJson(R"({"id_map_size": 1000})"));
  EXPECT_FALSE(Config::FromJson(R"({"id_map_uid": 0})"));
}

TEST(ConfigTest, ReadsFields) {
  auto c = Config::FromJson(R"({
    "state_dir": "/s", "unix_socket_mode": "0600",
    "registry_mirrors": ["http://127.0.0.1:5000"],
    "api_keys": [{"key": "0123456789abcdef0123", "tenant": "team-a", "max_sandboxes": 3}],
    "listen_tcp": "127.0.0.1:0", "cgroup_favor_migrations": false
  })");
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->state_dir, "/s");
  EXPECT_EQ(c->unix_socket_mode, 0600u);
  ASSERT_EQ(c->api_keys.size(), 1u);
  EXPECT_EQ(c->api_keys[0].tenant, "team-a");
  EXPECT_EQ(c->api_keys[0].max_sandboxes, 3);
  EXPECT_EQ(c->registry_mirrors, std::vector<std::string>{"http://127.0.0.1:5000"});
  EXPECT_FALSE(c->cgroup_favor_migrations);
}

TEST(ConfigTest, RejectsMistakes) {
  EXPECT_FALSE(Config::FromJson("not json"));
  EXPECT_FALSE(Config::FromJson(R"({"stat_dir": "/typo"})"));
  EXPECT_FALSE(Config::FromJson(R"({"state_dir": 5})"));
  EXPECT_FALSE(Config::FromJson(R"({"cgroup_favor_migrations": "yes"})"));
  EXPECT_FALSE(Config::FromJson(R"({"writable_layer": "zfs"})"));
  EXPECT_FALSE(Config::FromJson(R"({"listen_tcp": "0.0.0.0:1"})"));  // TCP without keys
  EXPECT_FALSE(Config::FromJson(R"({"api_keys": [{"key": "short", "tenant": "t"}]})"));
  EXPECT_FALSE(Config::FromJson(R"({"default_lifetime_seconds": 0})"));
  auto unknown = Config::FromJson(R"({"bogus": 1})");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("bogus"), std::string::npos);
}

// A quantity that does not parse is an error, never a silent fall back to the default.
TEST(ConfigTest, QuantitiesMustParse) {
  for (const char* field :
       {"default_cpu", "capacity_cpu", "default_memory", "capacity_memory", "default_disk",
        "default_disk_request", "capacity_disk", "disk_reserve"}) {
    auto bad = Config::FromJson(std::string("{\"") + field + "\": \"lots\"}");
    ASSERT_FALSE(bad) << field;
    EXPECT_NE(bad.error().message().find(field), std::string::npos) << bad.error().message();
  }
  EXPECT_FALSE(Config::FromJson(R"({"default_memory": "auto"})"));
  auto good = Config::FromJson(
      R"({"capacity_disk": "500Gi", "disk_reserve": "5Gi", "default_disk_request": "512Mi",
          "capacity_cpu": "auto", "default_cpu": "500m"})");
  ASSERT_TRUE(good) << good.error().ToString();
  EXPECT_EQ(good->capacity_disk, "500Gi");
  EXPECT_EQ(good->disk_reserve, "5Gi");
  EXPECT_EQ(good->default_disk_request, "512Mi");
}

TEST(ConfigTest, NetworkFields) {
  auto d = Config::FromJson("{}");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->network, "bridge");
  EXPECT_EQ(d->network_subnet, "auto");
  auto c = Config::FromJson(R"({
    "network": "bridge", "network_bridge": "sbxtest0", "network_subnet": "10.99.0.0/16",
    "network_table": "sbx_test", "network_dns": ["203.0.113.53", "198.51.100.53:5353"],
    "network_pool_size": 4, "network_deny": ["203.0.113.99/32"],
    "network_allow": ["10.1.2.3/32"], "network_service_ports": "40000-40010",
    "network_service_host": "node-1.example"
  })");
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->network_bridge, "sbxtest0");
  EXPECT_EQ(c->network_dns.size(), 2u);
  EXPECT_EQ(ParseServicePorts(c->network_service_ports),
            std::make_optional(std::pair{40000, 40010}));
  auto options = BridgeNetworkOptionsFrom(*c);
  ASSERT_TRUE(options) << options.error().ToString();
  EXPECT_EQ(options->bridge, "sbxtest0");
  EXPECT_EQ(options->table, "sbx_test");
  EXPECT_EQ(options->subnet, net::ParseIpv4Prefix("10.99.0.0/16").value());
  ASSERT_EQ(options->dns.size(), 2u);
  EXPECT_EQ(options->dns[1].port, 5353);
  EXPECT_EQ(options->deny, std::vector{net::ParseIpv4Prefix("203.0.113.99/32").value()});
  EXPECT_EQ(options->allow, std::vector{net::ParseIpv4Prefix("10.1.2.3/32").value()});
  EXPECT_EQ(options->service_port_first, 40000);
  EXPECT_EQ(options->service_port_last, 40010);
  EXPECT_EQ(options->service_host, "node-1.example");
  for (const char* bad : {
           R"({"network": "host"})",
           R"({"network_bridge": "much-too-long-bridge-name"})",
           R"({"network_bridge": "br0;reboot"})",
           R"({"network_table": "a b"})",
           R"({"network_subnet": "10.99.0.1/16"})",
           R"({"network_subnet": "10.0.0.0/30"})",
           R"({"network_subnet": "fd00::/64"})",
           R"({"network_dns": ["resolver.example"]})",
           R"({"network_deny": ["10.0.0.1/8"]})",
           R"({"network_allow": ["::1/128"]})",
           R"({"network_pool_size": -1})",
           R"({"network_service_ports": "80-90"})",
           R"({"network_service_ports": "40000"})",
           R"({"network_sandbox_max_flows": 0})",
           R"({"network_sandbox_flows_per_second": -5})",
           R"({"network_sandbox_dns_queries_per_second": 2000000})",
           R"({"network_max_flows": -1})",
           R"({"network_max_flows": "many"})",
       }) {
    EXPECT_FALSE(Config::FromJson(bad)) << bad;
  }
}

TEST(ConfigTest, NetworkLimits) {
  auto defaults = BridgeNetworkOptionsFrom(Config{});
  ASSERT_TRUE(defaults);
  EXPECT_EQ(defaults->limits.sandbox_flows, 8192);
  EXPECT_EQ(defaults->limits.sandbox_flows_per_second, 1000);
  EXPECT_EQ(defaults->limits.flows, 0);  // half the host's table, found at start
  EXPECT_EQ(defaults->limits.dns_queries_per_second, 100);
  auto c = Config::FromJson(R"({
    "network_sandbox_max_flows": 500, "network_sandbox_flows_per_second": 50,
    "network_max_flows": 4000, "network_sandbox_dns_queries_per_second": 7
  })");
  ASSERT_TRUE(c) << c.error().ToString();
  auto options = BridgeNetworkOptionsFrom(*c);
  ASSERT_TRUE(options);
  EXPECT_EQ(options->limits.sandbox_flows, 500);
  EXPECT_EQ(options->limits.sandbox_flows_per_second, 50);
  EXPECT_EQ(options->limits.flows, 4000);
  EXPECT_EQ(options->limits.dns_queries_per_second, 7);
  auto bad = Config::FromJson(R"({"network_sandbox_max_flows": 0})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("network_sandbox_max_flows"), std::string::npos);
}

TEST(ConfigTest, NetworkNamesDeriveFromTheCgroupParent) {
  Config a;
  a.cgroup_parent = "sbx-a";
  Config b;
  b.cgroup_parent = "sbx-b";
  auto na = BridgeNetworkOptionsFrom(a);
  auto nb = BridgeNetworkOptionsFrom(b);
  ASSERT_TRUE(na && nb);
  EXPECT_EQ(na->bridge.size(), 9u);
  EXPECT_EQ(na->bridge.rfind("sbx", 0), 0u);
  EXPECT_EQ(na->table, "sbx_" + na->bridge.substr(3));
  EXPECT_NE(na->bridge, nb->bridge);
  EXPECT_NE(na->table, nb->table);
  EXPECT_FALSE(na->subnet.has_value());
  EXPECT_EQ(na->pool_size, 16);
}

TEST(ConfigTest, ApiFrontDoorFields) {
  auto c = Config::FromJson(R"({
    "api_keys": [{"key": "0123456789abcdef0123", "tenant": "ops", "operator": true},
                 {"key": "abcdef0123456789abcd", "tenant": "team"}],
    "local_operator": false, "tcp_max_connections": 100, "tcp_max_connections_per_client": 10,
    "tcp_handshake_timeout_seconds": 5, "tcp_idle_timeout_seconds": 60,
    "response_memory": 1073741824, "response_memory_per_tenant": 134217728
  })");
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_TRUE(c->api_keys[0].is_operator);
  EXPECT_FALSE(c->api_keys[1].is_operator);
  EXPECT_FALSE(c->local_operator);
  EXPECT_EQ(c->tcp_max_connections, 100);
  EXPECT_EQ(c->tcp_max_connections_per_client, 10);
  EXPECT_EQ(c->response_memory_per_tenant, 128u << 20);
  EXPECT_TRUE(Config().local_operator);
  for (const char* bad : {
           R"({"api_keys": [{"key": "0123456789abcdef0123", "tenant": "t", "operator": "yes"}]})",
           R"({"api_keys": [{"key": "0123456789abcdef0123", "tenant": "t", "opertor": true}]})",
           R"({"tcp_max_connections": 0})",
           R"({"tcp_max_connections": 10, "tcp_max_connections_per_client": 11})",
           R"({"tcp_handshake_timeout_seconds": 0})",
           // A largest-size ReadFile (twice 32 MiB) must fit a tenant's share.
           R"({"response_memory_per_tenant": 33554432})",
           R"({"response_memory": 67108864, "response_memory_per_tenant": 134217728})",
           R"({"tls_cert": "/etc/sbx/tls.crt"})",
       }) {
    EXPECT_FALSE(Config::FromJson(bad)) << bad;
  }
}

TEST(ConfigTest, PrintedConfigHidesKeys) {
  auto c = Config::FromJson(R"({"api_keys": [{"key": "0123456789abcdef0123", "tenant": "t"}]})");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->ToJson().find("0123456789abcdef0123"), std::string::npos);
}

}  // namespace
}  // namespace sbx::daemon
