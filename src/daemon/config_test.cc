#include "src/daemon/config.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

TEST(ConfigTest, DefaultsWhenEmpty) {
  auto c = Config::FromJson("{}");
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->listen_unix, "/run/sbx/sbxd.sock");
  EXPECT_EQ(c->default_lifetime_seconds, 600);
  EXPECT_EQ(c->max_lifetime_seconds, 30 * 24 * 3600);
  EXPECT_EQ(c->default_image, "python:3.11");
  EXPECT_EQ(c->retention_seconds, 86400);
  EXPECT_TRUE(c->cgroup_favor_migrations);
  EXPECT_EQ(c->warm_pool_size, 1);
  EXPECT_EQ(c->warm_pool_images, 4);
  EXPECT_EQ(c->warm_pool_idle_seconds, 600);
  EXPECT_EQ(c->warm_pool_refill_delay_ms, 100);
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
       }) {
    EXPECT_FALSE(Config::FromJson(bad)) << bad;
  }
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
