#include "src/net/ruleset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sbx::net {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Ruleset Make() {
  RulesetConfig c;
  c.table = "sbx_test";
  c.bridge = "sbxbr0";
  c.port_prefix = "svtest";
  c.subnet = *ParseIpv4Prefix("10.200.0.0/16");
  c.gateway = *ParseIpv4("10.200.0.1");
  return Ruleset(c);
}

std::vector<Ipv4Range> Deny() {
  std::vector<Ipv4Range> deny;
  for (const auto& p : BuiltinDenyPrefixes()) deny.push_back(ToRange(p));
  return Normalize(deny);
}

TEST(RulesetTest, BaseTablesReplaceAtomically) {
  std::string text = Make().Replace(Deny(), {{"svtest0", *ParseIpv4("10.200.0.2")}}, {});
  // Replacing starts by removing whatever was there, in the same batch.
  EXPECT_EQ(text.find("add table inet sbx_test\ndelete table inet sbx_test\n"), 0u);
  EXPECT_THAT(text, HasSubstr("169.254.0.0-169.254.255.255"));
  EXPECT_THAT(text, HasSubstr("set bridges { type ifname; elements = { \"sbxbr0\" }; }"));
  EXPECT_THAT(text, HasSubstr("iifname @bridges jump from_sandbox"));
  EXPECT_THAT(text, HasSubstr("ip daddr 10.200.0.1 udp dport 53 accept"));
  EXPECT_THAT(text, HasSubstr("ip saddr 10.200.0.0/16 oifname != @bridges masquerade"));
  EXPECT_THAT(text, HasSubstr("iifname \"svtest*\" drop"));
  EXPECT_THAT(text, HasSubstr("add element bridge sbx_test ports { \"svtest0\" . 10.200.0.2 }"));
  // The deny set comes before any sandbox's own verdict.
  EXPECT_LT(text.find("ip daddr @deny drop"), text.find("ip saddr vmap @sandboxes"));
}

TEST(RulesetTest, MoreBridgesMeetTheSameRules) {
  std::string text = Make().Replace(Deny(), {}, {}, {"sbxbr0-1", "sbxbr0-2"});
  EXPECT_THAT(text, HasSubstr("add element inet sbx_test bridges { \"sbxbr0-1\" }\n"));
  EXPECT_THAT(text, HasSubstr("add element inet sbx_test bridges { \"sbxbr0-2\" }\n"));
  // Every rule about the sandboxes' traffic names the set, none a bridge of its own.
  EXPECT_THAT(text, HasSubstr("iifname @bridges jump sandbox_to_host"));
  EXPECT_THAT(text, HasSubstr("oifname @bridges jump to_sandbox"));
  EXPECT_THAT(text, Not(HasSubstr("iifname \"sbxbr0\"")));
  EXPECT_EQ(Make().AddBridge("sbxbr0-3"), "add element inet sbx_test bridges { \"sbxbr0-3\" }\n");
}

TEST(RulesetTest, NewFlowsOfEachSandboxAreLimited) {
  RulesetConfig c;
  c.table = "sbx_test";
  c.bridge = "sbxbr0";
  c.port_prefix = "svtest";
  c.subnet = *ParseIpv4Prefix("10.200.0.0/16");
  c.gateway = *ParseIpv4("10.200.0.1");
  c.sandbox_flows = 500;
  c.sandbox_flows_per_second = 300;
  c.flows = 7000;
  std::string text = Ruleset(c).Replace(Deny(), {}, {});
  // Before routing, so flows to the host (DNS) count as well as forwarded ones.
  EXPECT_THAT(text, HasSubstr("type filter hook prerouting priority filter; policy accept;\n"
                              "    iifname @bridges ct state new jump new_flow"));
  EXPECT_THAT(text,
              HasSubstr("set flow_rate { type ipv4_addr; size 65536; flags dynamic,timeout;"));
  EXPECT_THAT(text, HasSubstr("set flows { type ipv4_addr; size 65536; flags dynamic; }"));
  EXPECT_THAT(text, HasSubstr("update @flow_rate { ip saddr limit rate over 300/second burst 600 "
                              "packets } counter name sandbox_flow_rate drop"));
  EXPECT_THAT(text, HasSubstr("add @flows { ip saddr ct count over 500 } counter name "
                              "sandbox_flows drop"));
  EXPECT_THAT(text, HasSubstr("ct count over 7000 counter name flows drop"));
  EXPECT_EQ(Ruleset(c).ListCounters(), "list counters table inet sbx_test\n");
}

TEST(RulesetTest, CounterPacketsFromAListing) {
  auto counts = ParseCounterPackets(
      "table inet sbx_test {\n"
      "\tcounter sandbox_flow_rate {\n\t\tpackets 17494 bytes 507326\n\t}\n"
      "\tcounter sandbox_flows {\n\t\tpackets 0 bytes 0\n\t}\n"
      "}\n");
  EXPECT_EQ(counts,
            (std::map<std::string, uint64_t>{{"sandbox_flow_rate", 17494}, {"sandbox_flows", 0}}));
  EXPECT_TRUE(ParseCounterPackets("").empty());
}

TEST(RulesetTest, DenySetIsReplacedInOneTransaction) {
  std::vector<Ipv4Range> deny = {ToRange(*ParseIpv4Prefix("10.0.0.0/8")),
                                 ToRange(*ParseIpv4Prefix("198.51.100.0/24"))};
  EXPECT_EQ(Make().SetDeny(deny),
            "flush set inet sbx_test deny\n"
            "add element inet sbx_test deny { 10.0.0.0-10.255.255.255, "
            "198.51.100.0-198.51.100.255 }\n");
  EXPECT_EQ(Make().SetDeny({}), "flush set inet sbx_test deny\n");
}

TEST(RulesetTest, PublicSandboxIsOneVerdict) {
  SandboxRules s;
  s.slot = 3;
  s.address = *ParseIpv4("10.200.0.5");
  std::string add = Make().AddSandbox(s);
  EXPECT_EQ(add, "add element inet sbx_test sandboxes { 10.200.0.5 : accept }\n");
  EXPECT_EQ(Make().RemoveSandbox(s), "delete element inet sbx_test sandboxes { 10.200.0.5 }\n");
  s.policy = SandboxPolicy::kDenyAll;
  EXPECT_THAT(Make().AddSandbox(s), HasSubstr("10.200.0.5 : drop"));
}

TEST(RulesetTest, SandboxElementOnlyWhenTheRulesAreOneVerdict) {
  SandboxRules s;
  s.slot = 3;
  s.address = *ParseIpv4("10.200.0.5");
  auto element = Make().SandboxElement(s);
  ASSERT_TRUE(element.has_value());
  EXPECT_EQ(element->table, "sbx_test");
  EXPECT_EQ(element->map, "sandboxes");
  EXPECT_EQ(element->key, s.address);
  EXPECT_EQ(element->verdict, NftVerdict::kAccept);
  s.policy = SandboxPolicy::kDenyAll;
  ASSERT_TRUE(Make().SandboxElement(s).has_value());
  EXPECT_EQ(Make().SandboxElement(s)->verdict, NftVerdict::kDrop);
  // A published port needs a service-map element too; an allowlist needs its chain.
  s.published.push_back({"tcp", 30001, 8080, false});
  EXPECT_FALSE(Make().SandboxElement(s).has_value());
  s.published.clear();
  s.policy = SandboxPolicy::kAllowlist;
  EXPECT_FALSE(Make().SandboxElement(s).has_value());
}

TEST(RulesetTest, AllowlistChainAndSets) {
  SandboxRules s;
  s.slot = 7;
  s.address = *ParseIpv4("10.200.0.9");
  s.policy = SandboxPolicy::kAllowlist;
  EgressRule cidr;
  cidr.kind = EgressKind::kCidr;
  cidr.cidr = *ParseIpv4Prefix("203.0.113.0/24");
  cidr.except = {*ParseIpv4Prefix("203.0.113.128/25")};
  cidr.ports = {{Transport::kTcp, 80, 80}, {Transport::kTcpAndUdp, 1000, 2000}};
  EgressRule dns;
  dns.kind = EgressKind::kDnsName;
  dns.dns_name = *DnsPattern::Parse("pypi.org");
  dns.ports = {{Transport::kTcp, 443, 443}};
  EgressRule any;
  any.kind = EgressKind::kAny;
  s.egress = {cidr, dns, any};
  s.published = {{"tcp", 30001, 8080, false}, {"udp", 30002, 53, true}, {"sctp", 30003, 9, true}};
  std::string add = Make().AddSandbox(s);
  EXPECT_THAT(add, HasSubstr("add chain inet sbx_test s7\n"));
  EXPECT_THAT(add, HasSubstr("add rule inet sbx_test s7 ip daddr 203.0.113.0/24 ip daddr != { "
                             "203.0.113.128/25 } meta l4proto tcp th dport 80 accept\n"));
  EXPECT_THAT(add, HasSubstr("meta l4proto { tcp, udp } th dport 1000-2000 accept\n"));
  EXPECT_THAT(add, HasSubstr("add set inet sbx_test s7_d1 { type ipv4_addr; flags timeout; }"));
  EXPECT_THAT(add, HasSubstr("add rule inet sbx_test s7 ip daddr @s7_d1 meta l4proto tcp th "
                             "dport 443 accept\n"));
  EXPECT_THAT(add, HasSubstr("add rule inet sbx_test s7 accept\n"));
  EXPECT_THAT(add, HasSubstr("sandboxes { 10.200.0.9 : jump s7 }"));
  EXPECT_THAT(add, HasSubstr("svc_tcp_host { 30001 : 10.200.0.9 . 8080 }"));
  EXPECT_THAT(add, HasSubstr("svc_udp_any { 30002 : 10.200.0.9 . 53 }"));
  EXPECT_THAT(add, HasSubstr("svc_sctp_any { 30003 : 10.200.0.9 . 9 }"));
  // The chain is created before the verdict that jumps to it.
  EXPECT_LT(add.find("add chain"), add.find("jump s7"));
  std::string remove = Make().RemoveSandbox(s);
  EXPECT_LT(remove.find("delete element inet sbx_test sandboxes"),
            remove.find("delete chain inet sbx_test s7"));
  EXPECT_LT(remove.find("delete chain"), remove.find("delete set inet sbx_test s7_d1"));
  EXPECT_THAT(remove, Not(HasSubstr("s7_d0")));
}

TEST(RulesetTest, AllowRefreshesTheTimeout) {
  std::string text = Make().Allow(7, 1, *ParseIpv4("198.51.100.7"), 300);
  EXPECT_EQ(text,
            "add element inet sbx_test s7_d1 { 198.51.100.7 timeout 300s }\n"
            "delete element inet sbx_test s7_d1 { 198.51.100.7 }\n"
            "add element inet sbx_test s7_d1 { 198.51.100.7 timeout 300s }\n");
}

}  // namespace
}  // namespace sbx::net
