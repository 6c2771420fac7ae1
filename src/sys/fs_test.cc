#include "src/sys/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "src/testing/temp_dir.h"

namespace sbx::sys {
namespace {

using sbx::testing::TempDir;

TEST(FsTest, MakeDirsAndWriteRead) {
  TempDir dir;
  ASSERT_TRUE(MakeDirs(dir.Sub("a/b/c")));
  ASSERT_TRUE(MakeDirs(dir.Sub("a/b/c")));  // existing is fine
  ASSERT_TRUE(WriteFile(dir.Sub("a/b/c/f"), "hello"));
  auto content = ReadFile(dir.Sub("a/b/c/f"));
  ASSERT_TRUE(content);
  EXPECT_EQ(*content, "hello");
}

TEST(FsTest, ReadFileIsBounded) {
  TempDir dir;
  ASSERT_TRUE(WriteFile(dir.Sub("big"), std::string(1000, 'x')));
  auto content = ReadFile(dir.Sub("big"), 999);
  ASSERT_FALSE(content);
  EXPECT_EQ(content.error().code(), Code::kResourceExhausted);
}

TEST(FsTest, AvailableMemoryIsMemAvailable) {
  TempDir dir;
  ASSERT_TRUE(WriteFile(dir.Sub("meminfo"),
                        "MemTotal:       24000000 kB\nMemFree:         100 kB\n"
                        "MemAvailable:   22000000 kB\nBuffers:  1 kB\n"));
  auto available = AvailableMemory(dir.Sub("meminfo"));
  ASSERT_TRUE(available) << available.error().ToString();
  EXPECT_EQ(*available, 22000000ull * 1024);
  ASSERT_TRUE(WriteFile(dir.Sub("old"), "MemTotal: 1 kB\nNotMemAvailable: 5 kB\n"));
  EXPECT_FALSE(AvailableMemory(dir.Sub("old")));
  auto host = AvailableMemory();
  ASSERT_TRUE(host) << host.error().ToString();
  EXPECT_GT(*host, 0u);
}

TEST(FsTest, WriteFileAtomicReplaces) {
  TempDir dir;
  ASSERT_TRUE(WriteFile(dir.Sub("f"), "old"));
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("f"), "new"));
  EXPECT_EQ(*ReadFile(dir.Sub("f")), "new");
}

TEST(FsTest, OpenInRootCannotEscape) {
  TempDir dir;
  ASSERT_TRUE(MakeDirs(dir.Sub("root/etc")));
  ASSERT_TRUE(MakeDirs(dir.Sub("outside")));
  ASSERT_TRUE(WriteFile(dir.Sub("root/etc/passwd"), "inside"));
  ASSERT_TRUE(WriteFile(dir.Sub("outside/secret"), "outside"));
  ASSERT_EQ(symlink("/etc/passwd", dir.Sub("root/abs").c_str()), 0);
  ASSERT_EQ(symlink("../../outside/secret", dir.Sub("root/rel").c_str()), 0);
  auto root = Open(dir.Sub("root"), O_PATH | O_DIRECTORY);
  ASSERT_TRUE(root);
  for (const char* path : {"/etc/passwd", "abs", "../../../etc/passwd", "/../etc/passwd"}) {
    auto fd = OpenInRoot(root->get(), path, O_RDONLY);
    ASSERT_TRUE(fd) << path << ": " << fd.error().ToString();
    EXPECT_EQ(*ReadFd(fd->get()), "inside") << path;
  }
  // The relative symlink climbs out; in the root it resolves to /outside/secret, which is absent.
  auto escaped = OpenInRoot(root->get(), "rel", O_RDONLY);
  EXPECT_FALSE(escaped);
}

TEST(FsTest, OpenInRootRefusesMagicLinks) {
  TempDir dir;
  ASSERT_TRUE(MakeDirs(dir.Sub("root")));
  auto root = Open(dir.Sub("root"), O_PATH | O_DIRECTORY);
  ASSERT_TRUE(root);
  ASSERT_EQ(symlink("/proc/self/root/etc/hostname", dir.Sub("root/magic").c_str()), 0);
  // Inside the root there is no /proc, so this fails either way; the real check is that a path
  // through /proc/self/fd is refused when /proc is reachable.
  auto host_root = Open("/", O_PATH | O_DIRECTORY);
  auto fd = OpenInRoot(host_root->get(), "/proc/self/root/etc/hostname", O_RDONLY);
  ASSERT_FALSE(fd);
  EXPECT_EQ(fd.error().sys_errno(), ELOOP);
}

TEST(FsTest, RemoveTreeDoesNotFollowSymlinks) {
  TempDir dir;
  ASSERT_TRUE(MakeDirs(dir.Sub("victim")));
  ASSERT_TRUE(WriteFile(dir.Sub("victim/keep"), "x"));
  ASSERT_TRUE(MakeDirs(dir.Sub("tree/sub")));
  ASSERT_EQ(symlink(dir.Sub("victim").c_str(), dir.Sub("tree/sub/link").c_str()), 0);
  ASSERT_TRUE(RemoveTree(dir.Sub("tree")));
  EXPECT_FALSE(PathExists(dir.Sub("tree")));
  EXPECT_TRUE(PathExists(dir.Sub("victim/keep")));
  EXPECT_TRUE(RemoveTree(dir.Sub("missing")));
}

TEST(FsTest, PathParts) {
  EXPECT_EQ(DirName("a/b/c"), "a/b");
  EXPECT_EQ(DirName("c"), ".");
  EXPECT_EQ(DirName("/c"), "/");
  EXPECT_EQ(BaseName("/a/b/"), "b");
  EXPECT_EQ(JoinPath("/a/", "/b"), "/a/b");
}

}  // namespace
}  // namespace sbx::sys
