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
}

TEST(ConfigTest, ReadsFields) {
  auto c = Config::FromJson(R"({
    "state_dir": "/s", "unix_socket_mode": "0600",
    "registry_mirrors": ["http://127.0.0.1:5000"],
    "api_keys": [{"key": "0123456789abcdef0123", "tenant": "team-a", "max_sandboxes": 3}],
    "listen_tcp": "127.0.0.1:0"
  })");
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->state_dir, "/s");
  EXPECT_EQ(c->unix_socket_mode, 0600u);
  ASSERT_EQ(c->api_keys.size(), 1u);
  EXPECT_EQ(c->api_keys[0].tenant, "team-a");
  EXPECT_EQ(c->api_keys[0].max_sandboxes, 3);
  EXPECT_EQ(c->registry_mirrors, std::vector<std::string>{"http://127.0.0.1:5000"});
}

TEST(ConfigTest, RejectsMistakes) {
  EXPECT_FALSE(Config::FromJson("not json"));
  EXPECT_FALSE(Config::FromJson(R"({"stat_dir": "/typo"})"));
  EXPECT_FALSE(Config::FromJson(R"({"state_dir": 5})"));
  EXPECT_FALSE(Config::FromJson(R"({"writable_layer": "zfs"})"));
  EXPECT_FALSE(Config::FromJson(R"({"listen_tcp": "0.0.0.0:1"})"));  // TCP without keys
  EXPECT_FALSE(Config::FromJson(R"({"api_keys": [{"key": "short", "tenant": "t"}]})"));
  EXPECT_FALSE(Config::FromJson(R"({"default_lifetime_seconds": 0})"));
  auto unknown = Config::FromJson(R"({"bogus": 1})");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("bogus"), std::string::npos);
}

TEST(ConfigTest, PrintedConfigHidesKeys) {
  auto c = Config::FromJson(R"({"api_keys": [{"key": "0123456789abcdef0123", "tenant": "t"}]})");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->ToJson().find("0123456789abcdef0123"), std::string::npos);
}

}  // namespace
}  // namespace sbx::daemon
