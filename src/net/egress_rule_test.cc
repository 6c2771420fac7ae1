#include "src/net/egress_rule.h"

#include <gtest/gtest.h>

namespace sbx::net {
namespace {

TEST(EgressRuleTest, TransportsByName) {
  EXPECT_EQ(ParseTransport("TCP").value(), Transport::kTcp);
  EXPECT_EQ(ParseTransport("udp").value(), Transport::kUdp);
  EXPECT_EQ(ParseTransport("").value(), Transport::kTcpAndUdp);
  EXPECT_FALSE(ParseTransport("sctp"));
  for (Transport t : {Transport::kTcp, Transport::kUdp, Transport::kTcpAndUdp}) {
    EXPECT_EQ(ParseTransport(TransportName(t)).value(), t);
  }
}

TEST(EgressRuleTest, PortRangesAsTheApiGivesThem) {
  EXPECT_EQ(MakePortRange(Transport::kTcp, 443, 0).value(), (PortRange{Transport::kTcp, 443, 443}));
  EXPECT_EQ(MakePortRange(Transport::kUdp, 1000, 2000).value(),
            (PortRange{Transport::kUdp, 1000, 2000}));
  // Port 0 is every port, whatever the end.
  EXPECT_EQ(MakePortRange(Transport::kTcpAndUdp, 0, 0).value(), PortRange{});
  EXPECT_EQ(MakePortRange(Transport::kTcpAndUdp, 0, 80).value(), PortRange{});
  EXPECT_FALSE(MakePortRange(Transport::kTcp, 2000, 1000));
  EXPECT_FALSE(MakePortRange(Transport::kTcp, 70000, 0));
  EXPECT_FALSE(MakePortRange(Transport::kTcp, -1, 0));
  EXPECT_FALSE(MakePortRange(Transport::kTcp, 1, 65536));
}

TEST(EgressRuleTest, DnsPatternsAreLowerCaseHostNames) {
  auto exact = DnsPattern::Parse("PyPI.org");
  ASSERT_TRUE(exact) << exact.error().ToString();
  EXPECT_EQ(exact->text(), "pypi.org");
  EXPECT_TRUE(exact->Matches("pypi.org"));
  EXPECT_TRUE(exact->Matches("PYPI.ORG."));
  EXPECT_FALSE(exact->Matches("files.pypi.org"));
  auto below = DnsPattern::Parse("*.pypi.org");
  ASSERT_TRUE(below);
  EXPECT_TRUE(below->Matches("files.pypi.org"));
  EXPECT_FALSE(below->Matches("pypi.org"));
  EXPECT_FALSE(below->Matches("evilpypi.org"));
  for (const char* bad :
       {"", "*.", "a..b", "*.*.org", "under_score.org", "sp ace.org", "pypi.org/simple", "*"}) {
    auto parsed = DnsPattern::Parse(bad);
    EXPECT_FALSE(parsed) << bad;
    if (!parsed) {
      EXPECT_EQ(parsed.error().code(), Code::kInvalidArgument);
    }
  }
  EXPECT_FALSE(DnsPattern::Parse(std::string(64, 'a') + ".org"));
  EXPECT_TRUE(DnsPattern::Parse(std::string(63, 'a') + ".org"));
  EXPECT_TRUE(DnsPattern().empty());
}

}  // namespace
}  // namespace sbx::net
