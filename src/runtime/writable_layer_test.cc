#include "src/runtime/writable_layer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "src/base/unique_fd.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"
#include "src/testing/temp_dir.h"

namespace sbx::runtime {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kSize = 1ull << 30;
const DiskFormat kFormat{kSize, 0, 1000000, 1000000};

// fsck's verdict on an image: the copies must be whole, consistent filesystems.
bool Consistent(const std::string& image) {
  auto r = sys::RunCommand({"/usr/sbin/fsck.ext4", "-fn", image});
  return r && r->status.ShellCode() == 0;
}

std::string RootDirectoryStat(const std::string& image) {
  auto r = sys::RunCommand({"/usr/sbin/debugfs", "-R", "stat /", image});
  return r ? r->out : r.error().ToString();
}

struct stat Stat(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st;
}

TEST(WritableLayerTest, ImagesAreCopiesOfOneTemplateMadeOnce) {
  testing::TempDir dir;
  std::string templates = dir.Sub("pool");
  ASSERT_TRUE(FormatDiskImage(dir.Sub("a.img"), kFormat, templates));
  std::string template_path = TemplatePath(templates, kFormat);
  struct stat made = Stat(template_path);
  ASSERT_TRUE(FormatDiskImage(dir.Sub("b.img"), kFormat, templates));
  EXPECT_EQ(Stat(template_path).st_ino, made.st_ino) << "the template was made again";

  for (const char* name : {"a.img", "b.img"}) {
    std::string image = dir.Sub(name);
    struct stat st = Stat(image);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), kSize) << name;
    EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, kSize / 16) << name << " is not sparse";
    EXPECT_TRUE(Consistent(image)) << name;
    EXPECT_THAT(RootDirectoryStat(image), HasSubstr("User: 1000000   Group: 1000000")) << name;
  }
}

TEST(WritableLayerTest, WithoutATemplateDirectoryMkfsFormatsTheImageItself) {
  testing::TempDir dir;
  ASSERT_TRUE(FormatDiskImage(dir.Sub("a.img"), kFormat));
  EXPECT_TRUE(Consistent(dir.Sub("a.img")));
  EXPECT_THAT(RootDirectoryStat(dir.Sub("a.img")), HasSubstr("User: 1000000   Group: 1000000"));
}

TEST(WritableLayerTest, ATemplateOfTheWrongSizeIsMadeAgain) {
  testing::TempDir dir;
  std::string templates = dir.Sub("pool");
  ASSERT_TRUE(sys::MakeDirs(templates, 0700));
  ASSERT_TRUE(sys::WriteFile(TemplatePath(templates, kFormat), "not a filesystem", 0600));
  ASSERT_TRUE(FormatDiskImage(dir.Sub("a.img"), kFormat, templates));
  EXPECT_EQ(static_cast<uint64_t>(Stat(TemplatePath(templates, kFormat)).st_size), kSize);
  EXPECT_TRUE(Consistent(dir.Sub("a.img")));
}

TEST(WritableLayerTest, ATemplateFullOfDataIsNotCopied) {
  // As a filesystem that reports no holes would show a template: everything is data.
  testing::TempDir dir;
  std::string templates = dir.Sub("pool");
  ASSERT_TRUE(sys::MakeDirs(templates, 0700));
  std::string template_path = TemplatePath(templates, kFormat);
  {
    UniqueFd fd(open(template_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_TRUE(fd.valid());
    ASSERT_EQ(ftruncate(fd.get(), static_cast<off_t>(kSize)), 0);
    std::string chunk(1 << 20, 'x');
    for (int i = 0; i < 80; ++i) {
      ASSERT_EQ(write(fd.get(), chunk.data(), chunk.size()), static_cast<ssize_t>(chunk.size()));
    }
  }
  ASSERT_TRUE(FormatDiskImage(dir.Sub("a.img"), kFormat, templates));
  // Formatted by mkfs instead: a consistent filesystem, not 80 MiB of the template.
  EXPECT_TRUE(Consistent(dir.Sub("a.img")));
  EXPECT_LT(static_cast<uint64_t>(Stat(dir.Sub("a.img")).st_blocks) * 512, 32ull << 20);
}

TEST(WritableLayerTest, AnExistingTargetIsNeitherOverwrittenNorRemoved) {
  testing::TempDir dir;
  std::string templates = dir.Sub("pool");
  ASSERT_TRUE(sys::WriteFile(dir.Sub("taken.img"), "someone's", 0600));
  EXPECT_FALSE(FormatDiskImage(dir.Sub("taken.img"), kFormat, templates));
  auto kept = sys::ReadFile(dir.Sub("taken.img"));
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(*kept, "someone's");
}

// A changed disk size or id range leaves images of the old format in the pool that no create
// takes; they, and half-made ones, are removed, and the current format's are kept.
TEST(WritableLayerTest, PruningThePoolKeepsOnlyWhatTheFormatCanUse) {
  sbx::testing::TempDir pool;
  const DiskFormat old_size{kSize / 2, 0, 1000000, 1000000};
  const DiskFormat old_owner{kSize, 0, 2000000, 2000000};
  std::vector<std::string> keep = {PoolPrefix(kFormat) + "a1.img",
                                   sys::BaseName(TemplatePath(pool.path(), kFormat)),
                                   "unrelated-file"};
  std::vector<std::string> stale = {
      PoolPrefix(old_size) + "b2.img", PoolPrefix(old_owner) + "c3.img",
      sys::BaseName(TemplatePath(pool.path(), old_size)), ".tmp-0123abcd"};
  for (const auto& name : keep) ASSERT_TRUE(sys::WriteFile(pool.Sub(name), "x"));
  for (const auto& name : stale) ASSERT_TRUE(sys::WriteFile(pool.Sub(name), "x"));
  ASSERT_TRUE(PrunePool(pool.path(), kFormat));
  for (const auto& name : keep) EXPECT_TRUE(sys::PathExists(pool.Sub(name))) << name;
  for (const auto& name : stale) EXPECT_FALSE(sys::PathExists(pool.Sub(name))) << name;
  EXPECT_TRUE(PrunePool(pool.path() + "/missing", kFormat));  // no pool yet: nothing to do
}

}  // namespace
}  // namespace sbx::runtime
