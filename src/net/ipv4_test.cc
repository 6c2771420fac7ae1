#include "src/net/ipv4.h"

#include <gtest/gtest.h>

namespace sbx::net {
namespace {

TEST(Ipv4Test, ParsesAndFormats) {
  auto ip = ParseIpv4("192.0.2.10");
  ASSERT_TRUE(ip);
  EXPECT_EQ(*ip, 0xc000020aU);
  EXPECT_EQ(FormatIpv4(*ip), "192.0.2.10");
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.x", "1..2.3",
                          " 1.2.3.4", "0x1.2.3.4"}) {
    EXPECT_FALSE(ParseIpv4(bad)) << bad;
  }
}

TEST(Ipv4Test, Prefixes) {
  auto p = ParseIpv4Prefix("10.1.2.3/8");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ToString(), "10.0.0.0/8");
  EXPECT_FALSE(ParseIpv4Prefix("10.1.2.3/8", true));
  EXPECT_TRUE(p->Contains(*ParseIpv4("10.255.0.1")));
  EXPECT_FALSE(p->Contains(*ParseIpv4("11.0.0.0")));
  EXPECT_EQ(ParseIpv4Prefix("1.2.3.4")->ToString(), "1.2.3.4/32");
  EXPECT_EQ(ParseIpv4Prefix("0.0.0.0/0")->Size(), uint64_t{1} << 32);
  EXPECT_FALSE(ParseIpv4Prefix("1.2.3.4/33"));
  EXPECT_FALSE(ParseIpv4Prefix("1.2.3.4/"));
  EXPECT_FALSE(ParseIpv4Prefix("::/0"));
  EXPECT_TRUE(ParseIpv4Prefix("10.0.0.0/8")->Overlaps(*ParseIpv4Prefix("10.3.0.0/16")));
  EXPECT_FALSE(ParseIpv4Prefix("10.0.0.0/8")->Overlaps(*ParseIpv4Prefix("11.0.0.0/16")));
}

TEST(Ipv4Test, RangeArithmetic) {
  auto r = [](const char* a, const char* b) { return Ipv4Range{*ParseIpv4(a), *ParseIpv4(b)}; };
  auto merged =
      Normalize({r("10.0.0.5", "10.0.0.9"), r("10.0.0.0", "10.0.0.4"), r("10.0.1.0", "10.0.1.0")});
  ASSERT_EQ(merged.size(), 2u);
  EXPECT_EQ(merged[0].ToString(), "10.0.0.0-10.0.0.9");
  EXPECT_EQ(merged[1].ToString(), "10.0.1.0");
  auto cut = Subtract({ToRange(*ParseIpv4Prefix("10.0.0.0/8"))},
                      {ToRange(*ParseIpv4Prefix("10.1.0.0/16"))});
  ASSERT_EQ(cut.size(), 2u);
  EXPECT_EQ(cut[0].ToString(), "10.0.0.0-10.0.255.255");
  EXPECT_EQ(cut[1].ToString(), "10.2.0.0-10.255.255.255");
  EXPECT_TRUE(RangesContain(cut, *ParseIpv4("10.3.0.1")));
  EXPECT_FALSE(RangesContain(cut, *ParseIpv4("10.1.0.1")));
  auto whole = Subtract({r("0.0.0.0", "255.255.255.255")}, {r("0.0.0.0", "255.255.255.255")});
  EXPECT_TRUE(whole.empty());
}

TEST(Ipv4Test, BuiltinDenySetCoversTheDangerousAndNotTheDocumentationRanges) {
  std::vector<Ipv4Range> deny;
  for (const auto& p : BuiltinDenyPrefixes()) deny.push_back(ToRange(p));
  for (const char* ip : {"10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1",
                         "100.100.100.200", "169.254.169.254", "169.254.170.2", "127.0.0.1",
                         "0.0.0.0", "224.0.0.251", "255.255.255.255", "168.63.129.16"}) {
    EXPECT_TRUE(RangesContain(deny, *ParseIpv4(ip))) << ip;
  }
  for (const char* ip : {"8.8.8.8", "192.0.2.1", "198.51.100.7", "203.0.113.10", "172.32.0.1",
                         "100.128.0.1", "151.101.0.223"}) {
    EXPECT_FALSE(RangesContain(deny, *ParseIpv4(ip))) << ip;
  }
}

}  // namespace
}  // namespace sbx::net
