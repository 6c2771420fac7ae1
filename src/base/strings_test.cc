#include "src/base/strings.h"

#include <gtest/gtest.h>

namespace sbx {
namespace {

TEST(StringsTest, SplitKeepsEmptyParts) {
  EXPECT_EQ(Split("a,,b", ','), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_EQ(Split("", ','), (std::vector<std::string>{""}));
}

TEST(StringsTest, JoinAndTrim) {
  EXPECT_EQ(Join({"a", "b", "c"}, "/"), "a/b/c");
  EXPECT_EQ(Trim("  x y \n"), "x y");
  EXPECT_EQ(Trim("   "), "");
}

TEST(StringsTest, ParseIntegersRejectJunk) {
  EXPECT_EQ(ParseUint64("123"), 123u);
  EXPECT_FALSE(ParseUint64("12a"));
  EXPECT_FALSE(ParseUint64("-1"));
  EXPECT_FALSE(ParseUint64(""));
  EXPECT_FALSE(ParseUint64("99999999999999999999999"));
  EXPECT_EQ(ParseInt64("-42"), -42);
}

TEST(StringsTest, QuoteEscapesControlCharacters) {
  EXPECT_EQ(Quote("a\"b\n"), "\"a\\\"b\\x0a\"");
  EXPECT_EQ(Quote("abcdef", 3), "\"abc...\"");
}

TEST(StringsTest, RandomHexIsHexOfRightLength) {
  std::string a = RandomHex(16);
  std::string b = RandomHex(16);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(StringsTest, FormatBytes) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
}

}  // namespace
}  // namespace sbx
