#include "src/daemon/services/archive_service.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

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
