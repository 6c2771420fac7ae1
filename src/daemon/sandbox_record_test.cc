#include "src/daemon/sandbox_record.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

TEST(SandboxRecordTest, JsonRoundTrip) {
  SandboxRecord r;
  r.id = "sb-1";
  r.tenant = "t";
  r.state = State::kFailed;
  r.reason = "OOM_KILLED";
  r.message = "too much";
  r.exit_code = 137;
  r.tags = {"b", "a"};
  r.spec_blob = std::string("\x00\x01\xff", 3);
  auto back = SandboxRecord::FromJson(r.ToJson());
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->state, State::kFailed);
  EXPECT_EQ(back->exit_code, 137);
  EXPECT_EQ(back->tags, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(back->spec_blob, r.spec_blob);
  EXPECT_EQ(back->StateReason(), "OOM_KILLED: too much");
  EXPECT_FALSE(back->id_map);
  r.id_map = runtime::IdMap{1065536, 2065536, 65536};
  back = SandboxRecord::FromJson(r.ToJson());
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->id_map, r.id_map);
}

TEST(SandboxRecordTest, EffectiveEgressRoundTrip) {
  SandboxRecord r;
  r.id = "sb-2";
  r.network_mode = net::NetworkMode::kAllowlist;
  net::EgressRule name;
  name.kind = net::EgressKind::kDnsName;
  name.dns_name = *net::DnsPattern::Parse("pypi.org");
  name.ports = {{net::Transport::kTcp, 443, 443}};
  net::EgressRule block;
  block.kind = net::EgressKind::kCidr;
  block.cidr = *net::ParseIpv4Prefix("203.0.113.0/24");
  block.except = {*net::ParseIpv4Prefix("203.0.113.7/32")};
  block.ports = {{net::Transport::kUdp, 1000, 2000}, {}};
  r.effective_egress = {name, block, net::EgressRule{}};
  auto back = SandboxRecord::FromJson(r.ToJson());
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->network_mode, net::NetworkMode::kAllowlist);
  EXPECT_EQ(back->effective_egress, r.effective_egress);
}

TEST(SandboxRecordTest, EffectiveEgressOfEarlierRecords) {
  // The form records have always had in the store.
  auto r = SandboxRecord::FromJson(R"({"id": "sb-3", "network_mode": 2, "effective_egress": [
      {"cidr": "", "except": [], "dns_name": "pypi.org", "any": false,
       "ports": [{"protocol": "tcp", "port": 443, "end_port": 0}]},
      {"cidr": "198.51.100.0/24", "except": ["198.51.100.1/32"], "dns_name": "", "any": false,
       "ports": []},
      {"cidr": "", "except": [], "dns_name": "", "any": true, "ports": []}]})");
  ASSERT_TRUE(r) << r.error().ToString();
  ASSERT_EQ(r->effective_egress.size(), 3u);
  EXPECT_EQ(r->effective_egress[0].kind, net::EgressKind::kDnsName);
  EXPECT_EQ(r->effective_egress[0].dns_name.text(), "pypi.org");
  EXPECT_EQ(r->effective_egress[0].ports,
            (std::vector<net::PortRange>{{net::Transport::kTcp, 443, 443}}));
  EXPECT_EQ(r->effective_egress[1].kind, net::EgressKind::kCidr);
  EXPECT_EQ(r->effective_egress[1].cidr, *net::ParseIpv4Prefix("198.51.100.0/24"));
  EXPECT_EQ(r->effective_egress[1].except.size(), 1u);
  EXPECT_EQ(r->effective_egress[2].kind, net::EgressKind::kAny);
}

TEST(SandboxRecordTest, StateClasses) {
  EXPECT_TRUE(IsTerminal(State::kCompleted));
  EXPECT_TRUE(IsTerminal(State::kTerminated));
  EXPECT_FALSE(IsTerminal(State::kTerminating));
  EXPECT_TRUE(IsActive(State::kRunning));
  EXPECT_FALSE(IsActive(State::kPending));
}

TEST(SandboxRecordTest, CorruptRecordsAreErrors) {
  EXPECT_FALSE(SandboxRecord::FromJson("{"));
  EXPECT_FALSE(SandboxRecord::FromJson(R"({"id": "x", "state": 99})"));
}

}  // namespace
}  // namespace sbx::daemon
