#include "src/base/quantity.h"

#include <gtest/gtest.h>

namespace sbx {
namespace {

TEST(QuantityTest, CpuAndBytes) {
  EXPECT_EQ(*ParseCpuMillis("500m"), 500u);
  EXPECT_EQ(*ParseCpuMillis("2"), 2000u);
  EXPECT_EQ(*ParseCpuMillis("0.5"), 500u);
  EXPECT_FALSE(ParseCpuMillis("abc"));
  EXPECT_FALSE(ParseCpuMillis("-1"));
  EXPECT_EQ(*ParseBytes("256Mi"), 256ull << 20);
  EXPECT_EQ(*ParseBytes("1G"), 1000000000ull);
  EXPECT_EQ(*ParseBytes("2Gi"), 2ull << 30);
  EXPECT_EQ(*ParseBytes("1024"), 1024u);
  EXPECT_EQ(*ParseBytes("1Ei"), 1ull << 60);
  EXPECT_FALSE(ParseBytes("12Zi"));
  EXPECT_FALSE(ParseBytes(""));
  EXPECT_FALSE(ParseBytes("1e30"));
}

// A quantity too large for a 64-bit signed conversion must be refused, not wrapped around into a
// number that means "no limit" to the kernel.
TEST(QuantityTest, BytesAtTheTopOfTheRangeAreRefused) {
  EXPECT_FALSE(ParseBytes("9223372036854775807"));
  EXPECT_FALSE(ParseBytes("9223372036854775808"));
  EXPECT_FALSE(ParseBytes("8Ei"));
  EXPECT_FALSE(ParseBytes("18446744073709551615"));
  ASSERT_TRUE(ParseBytes("7Ei"));
  EXPECT_EQ(*ParseBytes("7Ei"), 7ull << 60);
  EXPECT_FALSE(ParseCpuMillis("1e7"));
  EXPECT_FALSE(ParseCpuMillis("99999999999999999999999m"));
}

}  // namespace
}  // namespace sbx
