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

TEST(StringsTest, QuoteAndToValidUtf8NeverProduceInvalidUtf8) {
  // Characters pass through whole; truncation never splits one.
  EXPECT_EQ(Quote("h\xc3\xa9llo"), "\"h\xc3\xa9llo\"");
  EXPECT_EQ(Quote("\xe6\x97\xa5\xe6\x97\xa5", 4), "\"\xe6\x97\xa5...\"");
  EXPECT_EQ(Quote("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\"");
  // Bytes that start no valid sequence are escaped: stray continuation bytes, truncated and
  // overlong sequences, surrogates, and code points past U+10FFFF.
  EXPECT_EQ(Quote("a\xff"
                  "b"),
            "\"a\\xffb\"");
  EXPECT_EQ(Quote("\x80"), "\"\\x80\"");
  EXPECT_EQ(Quote("\xc3"), "\"\\xc3\"");
  EXPECT_EQ(Quote("\xc0\xaf"), "\"\\xc0\\xaf\"");
  EXPECT_EQ(Quote("\xed\xa0\x80"), "\"\\xed\\xa0\\x80\"");
  EXPECT_EQ(Quote("\xf4\x90\x80\x80"), "\"\\xf4\\x90\\x80\\x80\"");
  EXPECT_EQ(ToValidUtf8("ok \xc3\xa9 \xff\xfe end"), "ok \xc3\xa9 \\xff\\xfe end");
  EXPECT_EQ(ToValidUtf8("line\n"), "line\n");
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

TEST(StringsTest, FormatUtc) {
  const int64_t t = 1796677445LL * 1000000000 + 123456789;  // 2026-12-07T21:04:05.123456789Z
  EXPECT_EQ(FormatUtc(t), "2026-12-07T21:04:05Z");
  EXPECT_EQ(FormatUtc(t, 3), "2026-12-07T21:04:05.123Z");
  EXPECT_EQ(FormatUtc(t, 9), "2026-12-07T21:04:05.123456789Z");
  EXPECT_EQ(FormatUtc(0), "1970-01-01T00:00:00Z");
}

}  // namespace
}  // namespace sbx
