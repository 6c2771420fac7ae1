// The file operations sbx-init runs, against a temporary directory standing in for the sandbox's
// root: paths resolve inside it whatever they say, and links are created, read and replaced
// without ever being followed out of it.

#include "src/agent/init/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "src/sys/fs.h"
#include "src/testing/temp_dir.h"

namespace sbx::agent {
namespace {

class InitFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fd = sys::Open(root_.path(), O_PATH | O_DIRECTORY);
    ASSERT_TRUE(fd);
    root_fd_ = std::move(*fd);
    outside_ = std::make_unique<testing::TempDir>("sbx-outside");
  }
  int root() const { return root_fd_.get(); }
  std::string Host(const std::string& path) const { return root_.path() + path; }

  testing::TempDir root_{"sbx-root"};
  std::unique_ptr<testing::TempDir> outside_;
  UniqueFd root_fd_;
  uid_t uid_ = getuid();
  gid_t gid_ = getgid();
};

TEST_F(InitFilesTest, MakeDirectorySetsModeAndKeepsExisting) {
  auto made = MakeDirectory(root(), "/d", 0750, false, uid_, gid_);
  ASSERT_TRUE(made) << made.error().ToString();
  EXPECT_EQ(made->type, FileType::kDirectory);
  EXPECT_EQ(made->mode, 0750u);
  struct stat st {};
  ASSERT_EQ(stat(Host("/d").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  // An existing directory is kept with its mode.
  auto again = MakeDirectory(root(), "/d", 0700, false, uid_, gid_);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->mode, 0750u);
}

TEST_F(InitFilesTest, MakeDirectoryDropsSetuidAndSetgid) {
  auto made = MakeDirectory(root(), "/s", 06777, false, uid_, gid_);
  ASSERT_TRUE(made);
  EXPECT_EQ(made->mode, 0777u);
}

TEST_F(InitFilesTest, MakeDirectoryParents) {
  auto missing = MakeDirectory(root(), "/a/b/c", 0755, false, uid_, gid_);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().reason(), "CWSANDBOX_FILE_NOT_FOUND");
  auto made = MakeDirectory(root(), "/a/b/c", 0755, true, uid_, gid_);
  ASSERT_TRUE(made) << made.error().ToString();
  EXPECT_TRUE(sys::PathExists(Host("/a/b/c")));
}

TEST_F(InitFilesTest, MakeDirectoryReportsALinkWithoutFollowingIt) {
  ASSERT_TRUE(MakeSymlink(root(), "/link", "/elsewhere", false, uid_, gid_));
  auto info = MakeDirectory(root(), "/link", 0755, false, uid_, gid_);
  ASSERT_TRUE(info) << info.error().ToString();
  EXPECT_EQ(info->type, FileType::kSymlink);
  EXPECT_FALSE(sys::PathExists(Host("/elsewhere")));
}

TEST_F(InitFilesTest, AbsoluteLinksAndDotDotStayInsideTheRoot) {
  // A link to the host's directory, and a path climbing above the root: both resolve inside it.
  ASSERT_TRUE(MakeSymlink(root(), "/escape", outside_->path(), false, uid_, gid_));
  ASSERT_TRUE(sys::MakeDirs(Host(outside_->path())));
  auto through = MakeDirectory(root(), "/escape/x", 0755, false, uid_, gid_);
  ASSERT_TRUE(through) << through.error().ToString();
  EXPECT_FALSE(sys::PathExists(outside_->Sub("x")));
  EXPECT_TRUE(sys::PathExists(Host(outside_->path() + "/x")));
  auto climb = MakeDirectory(root(), "/../../../climbed", 0755, false, uid_, gid_);
  ASSERT_TRUE(climb) << climb.error().ToString();
  EXPECT_TRUE(sys::PathExists(Host("/climbed")));
}

TEST_F(InitFilesTest, SymlinkIsCreatedReadAndReplaced) {
  ASSERT_TRUE(MakeSymlink(root(), "/l", "target-one", false, uid_, gid_));
  EXPECT_EQ(*ReadSymlink(root(), "/l"), "target-one");
  ASSERT_TRUE(MakeSymlink(root(), "/l", "/target/two", false, uid_, gid_));
  EXPECT_EQ(*ReadSymlink(root(), "/l"), "/target/two");
  // A regular file is replaced by the link.
  ASSERT_TRUE(sys::WriteFile(Host("/f"), "x"));
  ASSERT_TRUE(MakeSymlink(root(), "/f", "l", false, uid_, gid_));
  EXPECT_EQ(*ReadSymlink(root(), "/f"), "l");
  // No temporary names are left behind.
  auto entries = ListDirectory(root(), "/", 100);
  ASSERT_TRUE(entries);
  for (const auto& e : entries->entries) EXPECT_NE(e.name.rfind(".sbx-", 0), 0u) << e.name;
}

TEST_F(InitFilesTest, SymlinkNeverReplacesADirectory) {
  ASSERT_TRUE(MakeDirectory(root(), "/dir", 0755, false, uid_, gid_));
  auto replaced = MakeSymlink(root(), "/dir", "x", false, uid_, gid_);
  ASSERT_FALSE(replaced);
  EXPECT_EQ(replaced.error().reason(), "CWSANDBOX_FILE_IS_DIRECTORY");
  EXPECT_FALSE(MakeSymlink(root(), "/", "x", false, uid_, gid_));
  EXPECT_FALSE(MakeSymlink(root(), "/dir/", "x", false, uid_, gid_));
}

TEST_F(InitFilesTest, SymlinkParents) {
  EXPECT_FALSE(MakeSymlink(root(), "/p/q/l", "t", false, uid_, gid_));
  ASSERT_TRUE(MakeSymlink(root(), "/p/q/l", "t", true, uid_, gid_));
  EXPECT_EQ(*ReadSymlink(root(), "/p/q/l"), "t");
}

TEST_F(InitFilesTest, ReadSymlinkErrors) {
  ASSERT_TRUE(sys::WriteFile(Host("/plain"), "x"));
  auto not_link = ReadSymlink(root(), "/plain");
  ASSERT_FALSE(not_link);
  EXPECT_EQ(not_link.error().code(), Code::kInvalidArgument);
  auto missing = ReadSymlink(root(), "/missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().reason(), "CWSANDBOX_FILE_NOT_FOUND");
  // A link in the middle of the path is followed (inside the root); the last one is read.
  ASSERT_TRUE(MakeDirectory(root(), "/real", 0755, false, uid_, gid_));
  ASSERT_TRUE(MakeSymlink(root(), "/real/inner", "x", false, uid_, gid_));
  ASSERT_TRUE(MakeSymlink(root(), "/alias", "/real", false, uid_, gid_));
  EXPECT_EQ(*ReadSymlink(root(), "/alias/inner"), "x");
}

TEST_F(InitFilesTest, InvalidTargets) {
  EXPECT_FALSE(MakeSymlink(root(), "/l", "", false, uid_, gid_));
  EXPECT_FALSE(MakeSymlink(root(), "/l", std::string("a\0b", 3), false, uid_, gid_));
}

}  // namespace
}  // namespace sbx::agent
