// DiskPool against real loop devices and ext4: a taken disk is a mounted, writable filesystem that
// carries the sandbox's name, and nothing of the pool outlives it.

#include "src/daemon/disk_pool.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "src/sys/fs.h"
#include "src/testing/temp_dir.h"

namespace sbx::daemon {
namespace {

constexpr uint64_t kDiskBytes = 64ull << 20;

std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] != '.') names.insert(e->d_name);
    }
    closedir(d);
  }
  return names;
}

// Loop devices whose backing file lies under `dir`.
int LoopsBackedBy(const std::string& dir) {
  int count = 0;
  if (DIR* d = opendir("/sys/block")) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name.rfind("loop", 0) != 0) continue;
      auto backing = sys::ReadFile("/sys/block/" + name + "/loop/backing_file");
      if (backing && backing->rfind(dir, 0) == 0) ++count;
    }
    closedir(d);
  }
  return count;
}

// The pool fills in the background; a test waits for it, bounded, as a create would not.
std::optional<PreparedDisk> TakeWhenReady(DiskPool& pool, const std::string& id) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto disk = pool.Take(id)) return disk;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::nullopt;
}

class DiskPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root for loop devices and mounts";
    ASSERT_TRUE(sys::MakeDirs(dir_.path() + "/pool", 0700));
    ASSERT_TRUE(sys::MakeDirs(dir_.path() + "/disks", 0700));
  }
  testing::TempDir dir_;
  runtime::DiskFormat format_{kDiskBytes, 0, 1000000, 1000000};
};

TEST_F(DiskPoolTest, TakenDiskIsAMountedExt4FilesystemNamedForTheSandbox) {
  DiskPool pool(dir_.path() + "/pool", dir_.path() + "/disks", format_, 2);
  pool.Start();
  auto disk = TakeWhenReady(pool, "sb-one");
  ASSERT_TRUE(disk.has_value());
  EXPECT_EQ(disk->image, dir_.path() + "/disks/sb-one.img");
  struct stat st {};
  ASSERT_EQ(stat(disk->image.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kDiskBytes);

  ASSERT_TRUE(disk->mount.valid());
  UniqueFd file(openat(disk->mount.get(), "written", O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  ASSERT_TRUE(file.valid()) << strerror(errno);
  struct statfs fs {};
  ASSERT_EQ(fstatfs(file.get(), &fs), 0);
  EXPECT_EQ(fs.f_type, EXT4_SUPER_MAGIC);
  EXPECT_EQ(write(file.get(), "x", 1), 1);
}

TEST_F(DiskPoolTest, TakenDiskHasTheOverlayDirectoriesOwnedByTheSandboxRoot) {
  DiskPool pool(dir_.path() + "/pool", dir_.path() + "/disks", format_, 1);
  pool.Start();
  auto disk = TakeWhenReady(pool, "sb-dirs");
  ASSERT_TRUE(disk.has_value());
  for (const char* dir : {"upper", "work"}) {
    struct stat st {};
    ASSERT_EQ(fstatat(disk->mount.get(), dir, &st, AT_SYMLINK_NOFOLLOW), 0) << dir;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << dir;
  }
  struct stat upper {};
  ASSERT_EQ(fstatat(disk->mount.get(), "upper", &upper, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(upper.st_uid, 1000000u);
  EXPECT_EQ(upper.st_gid, 1000000u);
}

TEST_F(DiskPoolTest, TakenDisksAreDistinctAndThePoolRefills) {
  DiskPool pool(dir_.path() + "/pool", dir_.path() + "/disks", format_, 1);
  pool.Start();
  auto first = TakeWhenReady(pool, "sb-a");
  ASSERT_TRUE(first.has_value());
  // With a target of one, a second disk exists only if the pool made another after the take.
  auto second = TakeWhenReady(pool, "sb-b");
  ASSERT_TRUE(second.has_value());
  UniqueFd marker(openat(first->mount.get(), "mine", O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  ASSERT_TRUE(marker.valid());
  EXPECT_EQ(faccessat(second->mount.get(), "mine", F_OK, 0), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(DiskPoolTest, StoppingReleasesEveryMountAndLoopDeviceItHeld) {
  {
    DiskPool pool(dir_.path() + "/pool", dir_.path() + "/disks", format_, 2);
    pool.Start();
    auto taken = TakeWhenReady(pool, "sb-kept");
    ASSERT_TRUE(taken.has_value());
    EXPECT_GT(LoopsBackedBy(dir_.path()), 0);
    taken->mount.reset();
    pool.Stop();
  }
  // Only the image handed out remains in disks/; the formatted reserve stays in the pool dir for
  // the next start.
  EXPECT_EQ(FilesIn(dir_.path() + "/disks"), std::set<std::string>{"sb-kept.img"});
  EXPECT_FALSE(FilesIn(dir_.path() + "/pool").empty());
  // Loop devices detach when the last reference to their filesystem goes, which the kernel may
  // finish just after the close returns.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (LoopsBackedBy(dir_.path()) > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(LoopsBackedBy(dir_.path()), 0);
}

}  // namespace
}  // namespace sbx::daemon
