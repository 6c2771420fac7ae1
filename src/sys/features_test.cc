#include "src/sys/features.h"

#include <gtest/gtest.h>

#include "src/sys/fs.h"
#include "src/testing/temp_dir.h"

namespace sbx::sys {
namespace {

TEST(FeaturesTest, DetectsHybridV1Layout) {
  sbx::testing::TempDir dir;
  std::string mountinfo =
      "30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n"
      "31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
      "33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
      "34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
      "35 30 0:31 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
      "36 30 0:32 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n";
  ASSERT_TRUE(WriteFile(dir.Sub("mountinfo"), mountinfo));
  CgroupLayout layout = ProbeCgroups(dir.Sub("mountinfo"));
  EXPECT_EQ(layout.version, "v1");
  EXPECT_EQ(layout.v1_mounts["cpu"], "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(layout.v1_mounts["cpuacct"], "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(layout.v2_root, "/sys/fs/cgroup/unified");
}

TEST(FeaturesTest, EmptyLayoutIsUnusable) {
  sbx::testing::TempDir dir;
  ASSERT_TRUE(WriteFile(dir.Sub("mountinfo"), "1 0 0:1 / / rw - ext4 /dev/vda rw\n"));
  EXPECT_EQ(ProbeCgroups(dir.Sub("mountinfo")).version, "");
}

TEST(FeaturesTest, ProbeAllNamesEveryFeature) {
  auto all = ProbeAll();
  for (const char* name :
       {"root", "userns", "overlayfs", "openat2", "pidfd", "seccomp", "loop", "cgroups"}) {
    EXPECT_TRUE(all.count(name)) << name;
    EXPECT_FALSE(all[name].detail.empty()) << name;
  }
}

}  // namespace
}  // namespace sbx::sys
