#include "src/daemon/services/archive_service.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

TEST(ArchiveServiceTest, EntryPathsAreRelativeAndClean) {
  EXPECT_EQ(*ArchiveEntryPath("a"), "a");
  EXPECT_EQ(*ArchiveEntryPath("./a//b/"), "a/b");
  EXPECT_EQ(*ArchiveEntryPath("a/./b/./c"), "a/b/c");
  EXPECT_EQ(*ArchiveEntryPath("."), "");
  EXPECT_EQ(*ArchiveEntryPath("./"), "");
  EXPECT_EQ(*ArchiveEntryPath("..."), "...");
  EXPECT_EQ(*ArchiveEntryPath("a..b/c"), "a..b/c");
}

TEST(ArchiveServiceTest, EntryPathsNeverLeaveTheTarget) {
  for (const char* name : {"/etc/passwd", "../x", "a/../../x", "a/..", "./..", "//x", ""}) {
    auto path = ArchiveEntryPath(name);
    EXPECT_FALSE(path) << name;
    if (!path) {
      EXPECT_EQ(path.error().code(), Code::kInvalidArgument) << name;
    }
  }
  EXPECT_FALSE(ArchiveEntryPath(std::string(5000, 'a')));
}

TEST(ArchiveServiceTest, TopNames) {
  EXPECT_EQ(*ArchiveTopName("/work/src"), "src");
  EXPECT_EQ(*ArchiveTopName("/work/src/"), "src");
  EXPECT_EQ(*ArchiveTopName("file.txt"), "file.txt");
  EXPECT_EQ(*ArchiveTopName("/work/src/."), ".");
  EXPECT_EQ(*ArchiveTopName("."), ".");
  EXPECT_FALSE(ArchiveTopName("/"));
  EXPECT_FALSE(ArchiveTopName("/."));
  EXPECT_FALSE(ArchiveTopName("/work/.."));
  EXPECT_FALSE(ArchiveTopName(""));
}

}  // namespace
}  // namespace sbx::daemon
