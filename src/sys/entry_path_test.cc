#include "src/sys/entry_path.h"

#include <gtest/gtest.h>

#include "src/base/strings.h"

namespace sbx::sys {
namespace {

constexpr EntryPathRules kStrict{};  // archives into a sandbox, names in requests
constexpr EntryPathRules kRootAllowed{.allow_root = true};

// Every hostile name, and what each set of rules makes of it: the cleaned name, or "!" for a
// refusal. Whatever is accepted must stay below the root.
TEST(EntryPathTest, HostileNamesTable) {
  struct Case {
    std::string name;
    std::string strict;
    std::string layer;    // kLayerEntryRules
    std::string archive;  // kArchiveEntryRules
  };
  const std::string kLong(300, 'x');
  std::vector<Case> cases = {
      {"a/b", "a/b", "a/b", "a/b"},
      {"./a//b/", "a/b", "a/b", "a/b"},
      {"a/./b/.", "a/b", "a/b", "a/b"},
      {"/etc/passwd", "!", "etc/passwd", "!"},
      {"//etc", "!", "etc", "!"},
      {"..", "!", "!", "!"},
      {"../x", "!", "!", "!"},
      {"a/../../x", "!", "!", "!"},
      {"a/../b", "!", "b", "!"},
      {"a/b/../../..", "!", "!", "!"},
      {"/../x", "!", "!", "!"},
      {"./../x", "!", "!", "!"},
      {"a/..", "!", "", "!"},  // cleans to the root itself
      {"", "!", "!", "!"},
      {".", "!", "", ""},
      {"./", "!", "", ""},
      {"/", "!", "", "!"},
      {std::string("a\0b", 3), "!", "!", "!"},
      {kLong, "!", "!", "!"},
      {"a/" + kLong, "!", "!", "!"},
      {std::string(5000, 'a'), "!", "!", "!"},
      {"...", "...", "...", "..."},
      {"..a/a..", "..a/a..", "..a/a..", "..a/a.."},
      {"a\\..\\b", "a\\..\\b", "a\\..\\b", "a\\..\\b"},  // a backslash is a plain byte
  };
  for (const auto& c : cases) {
    auto strict = CleanEntryName(c.name, kStrict);
    auto layer = CleanEntryName(c.name, kLayerEntryRules);
    auto archive = CleanEntryName(c.name, kArchiveEntryRules);
    EXPECT_EQ(strict ? *strict : "!", c.strict) << Quote(c.name, 80);
    EXPECT_EQ(layer ? *layer : "!", c.layer) << Quote(c.name, 80);
    EXPECT_EQ(archive ? *archive : "!", c.archive) << Quote(c.name, 80);
    if (!strict) {
      EXPECT_EQ(strict.error().code(), Code::kInvalidArgument);
    }
    for (const auto& result : {strict, layer, archive}) {
      if (!result || result->empty()) continue;
      EXPECT_NE(result->front(), '/');
      for (const auto& part : Split(*result, '/')) EXPECT_NE(part, "..") << *result;
    }
  }
}

TEST(EntryPathTest, TheRootOnlyWhenAllowed) {
  for (const char* root : {".", "./", ".//."}) {
    auto cleaned = CleanEntryPath(root, kRootAllowed);
    ASSERT_TRUE(cleaned) << root;
    EXPECT_TRUE(cleaned->empty());
    EXPECT_FALSE(CleanEntryPath(root, kStrict)) << root;
  }
  EXPECT_FALSE(CleanEntryPath("", kRootAllowed));
}

TEST(EntryPathTest, ComponentsAreReturnedInOrder) {
  auto components = CleanEntryPath("usr//lib/./x86_64", kStrict);
  ASSERT_TRUE(components);
  EXPECT_EQ(*components, (std::vector<std::string>{"usr", "lib", "x86_64"}));
}

}  // namespace
}  // namespace sbx::sys
