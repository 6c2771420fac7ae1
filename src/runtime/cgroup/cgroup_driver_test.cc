#include "src/runtime/cgroup/cgroup_driver.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include "src/sys/fs.h"
#include "src/testing/temp_dir.h"

namespace sbx::runtime {
namespace {

using sbx::testing::TempDir;

TEST(CgroupPlanTest, V1Plan) {
  auto driver = MakeCgroupV1Driver(
      {{"memory", "/m"}, {"cpu", "/c"}, {"pids", "/p"}, {"freezer", "/f"}}, "sbx");
  auto plan = driver->PlanLimits({256u << 20, 1500, 100});
  std::vector<CgroupWrite> expected = {
      {"memory", "memory.limit_in_bytes", "268435456"},
      {"memory", "memory.memsw.limit_in_bytes", "268435456", true},
      {"memory", "memory.swappiness", "0", true},
      {"cpu", "cpu.cfs_period_us", "100000"},
      {"cpu", "cpu.cfs_quota_us", "150000"},
      {"pids", "pids.max", "100"},
  };
  EXPECT_EQ(plan, expected);
  EXPECT_TRUE(driver->PlanLimits({}).empty());
  std::vector<CgroupWrite> weights = {{"cpu", "cpu.shares", "10"}};
  EXPECT_EQ(driver->PlanLimits({0, 0, 0, kBackgroundCpuWeight}), weights);
  weights = {{"cpu", "cpu.shares", "1024"}};
  EXPECT_EQ(driver->PlanLimits({0, 0, 0, kDefaultCpuWeight}), weights);
}

TEST(CgroupPlanTest, V2Plan) {
  auto driver = MakeCgroupV2Driver("/sys/fs/cgroup", "sbx");
  auto plan = driver->PlanLimits({1u << 30, 500, 64});
  std::vector<CgroupWrite> expected = {
      {"", "memory.max", "1073741824"},
      {"", "memory.swap.max", "0", true},
      {"", "memory.oom.group", "0", true},
      {"", "cpu.max", "50000 100000"},
      {"", "pids.max", "64"},
  };
  EXPECT_EQ(plan, expected);
  std::vector<CgroupWrite> weights = {{"", "cpu.weight", "1"}};
  EXPECT_EQ(driver->PlanLimits({0, 0, 0, kBackgroundCpuWeight}), weights);
}

// A fake cgroup v2 tree: plain files where the kernel would have knobs.
TEST(CgroupFakeFsTest, V2CreateWritesLimitsAndRemoves) {
  TempDir root;
  ASSERT_TRUE(sys::WriteFile(root.Sub("cgroup.subtree_control"), ""));
  auto driver = MakeCgroupV2Driver(root.path(), "sbx");
  ASSERT_TRUE(sys::MakeDirs(root.Sub("sbx/sb1")));
  // Knob files exist in a real cgroup as soon as it is created; the fake pre-creates them.
  for (const char* knob : {"memory.max", "cpu.max", "pids.max", "cgroup.procs"}) {
    ASSERT_TRUE(sys::WriteFile(root.Sub(std::string("sbx/sb1/") + knob), ""));
  }
  ASSERT_TRUE(sys::WriteFile(root.Sub("sbx/cgroup.subtree_control"), ""));
  // Create refuses an existing group.
  EXPECT_FALSE(driver->Create("sb1", {1u << 20, 100, 10}));
  EXPECT_EQ(driver->List(), std::vector<std::string>{"sb1"});
  EXPECT_TRUE(driver->Exists("sb1"));
  EXPECT_FALSE(driver->Exists("sb2"));
}

TEST(CgroupFakeFsTest, V1CreateFailsCleanlyWhenAKnobIsMissing) {
  TempDir root;
  std::map<std::string, std::string> mounts;
  for (const char* c : {"memory", "cpu", "pids", "freezer"}) {
    ASSERT_TRUE(sys::MakeDirs(root.Sub(c)));
    mounts[c] = root.Sub(c);
  }
  auto driver = MakeCgroupV1Driver(mounts, "sbx");
  // On a plain directory the knob files do not appear, so applying limits fails, and the
  // directories already made are removed again.
  Status created = driver->Create("sb1", {1u << 20, 100, 10});
  ASSERT_FALSE(created);
  EXPECT_FALSE(driver->Exists("sb1"));

  // Likewise in the devices, cpuset and blkio hierarchies: the new cpuset group finds no CPUs to
  // take, and no directory of the group is left in any hierarchy.
  for (const char* c : {"devices", "cpuset", "blkio"}) {
    ASSERT_TRUE(sys::MakeDirs(root.Sub(c)));
    mounts[c] = root.Sub(c);
  }
  ASSERT_TRUE(sys::MakeDirs(root.Sub("cpuset/sbx")));
  ASSERT_TRUE(sys::WriteFile(root.Sub("cpuset/sbx/cpuset.cpus"), "0-1\n"));
  ASSERT_TRUE(sys::WriteFile(root.Sub("cpuset/sbx/cpuset.mems"), "0\n"));
  driver = MakeCgroupV1Driver(mounts, "sbx");
  created = driver->Create("sb2", {1u << 20, 100, 10});
  ASSERT_FALSE(created);
  EXPECT_FALSE(driver->Exists("sb2"));
  EXPECT_EQ(driver->Paths("sb2").size(), 7u);
  for (const auto& dir : driver->Paths("sb2")) EXPECT_FALSE(sys::PathExists(dir)) << dir;
}

TEST(CgroupPlanTest, V1DevicesAllowOnlyTheSandboxsNodes) {
  auto driver = MakeCgroupV1Driver(
      {{"memory", "/m"}, {"cpu", "/c"}, {"pids", "/p"}, {"freezer", "/f"}, {"devices", "/d"}},
      "sbx");
  std::vector<CgroupWrite> expected = {
      {"devices", "devices.deny", "a"},
      {"devices", "devices.allow", "c 1:3 rwm"},
      {"devices", "devices.allow", "c 1:5 rwm"},
      {"devices", "devices.allow", "c 1:7 rwm"},
      {"devices", "devices.allow", "c 1:8 rwm"},
      {"devices", "devices.allow", "c 1:9 rwm"},
      {"devices", "devices.allow", "c 5:0 rwm"},
      {"devices", "devices.allow", "c 5:2 rwm"},
      {"devices", "devices.allow", "c 136:* rwm"},
  };
  EXPECT_EQ(driver->PlanDevices(), expected);
  // Without the controller (or on cgroup v2) there is nothing to write.
  EXPECT_TRUE(MakeCgroupV1Driver({{"memory", "/m"}}, "sbx")->PlanDevices().empty());
  EXPECT_TRUE(MakeCgroupV2Driver("/sys/fs/cgroup", "sbx")->PlanDevices().empty());
}

// A plain directory refuses rmdir while it has entries, as a cgroup does while it has groups.
TEST(CgroupFakeFsTest, ParentIsRemovedOnlyWhenNoGroupIsUnderIt) {
  TempDir root;
  std::map<std::string, std::string> mounts;
  for (const char* c : {"memory", "cpu", "pids", "freezer"}) {
    ASSERT_TRUE(sys::MakeDirs(root.Sub(std::string(c) + "/sbx")));
    mounts[c] = root.Sub(c);
  }
  ASSERT_TRUE(sys::MakeDirs(root.Sub("memory/sbx/sb1")));
  auto v1 = MakeCgroupV1Driver(mounts, "sbx");
  EXPECT_FALSE(v1->RemoveParentIfEmpty());
  EXPECT_TRUE(sys::PathExists(root.Sub("memory/sbx/sb1")));
  ASSERT_EQ(rmdir(root.Sub("memory/sbx/sb1").c_str()), 0);
  EXPECT_TRUE(v1->RemoveParentIfEmpty());
  for (const char* c : {"memory", "cpu", "pids", "freezer"}) {
    EXPECT_FALSE(sys::PathExists(root.Sub(std::string(c) + "/sbx"))) << c;
  }
  EXPECT_TRUE(v1->RemoveParentIfEmpty());  // nothing left is success

  // A group left in one hierarchy only (a teardown cut short) is listed, so it can be removed.
  ASSERT_TRUE(sys::MakeDirs(root.Sub("freezer/sbx/half")));
  EXPECT_EQ(v1->List(), std::vector<std::string>{"half"});
  EXPECT_TRUE(v1->Remove("half"));
  EXPECT_TRUE(v1->List().empty());

  ASSERT_TRUE(sys::MakeDirs(root.Sub("unified/sbx/sb2")));
  auto v2 = MakeCgroupV2Driver(root.Sub("unified"), "sbx");
  EXPECT_FALSE(v2->RemoveParentIfEmpty());
  ASSERT_EQ(rmdir(root.Sub("unified/sbx/sb2").c_str()), 0);
  EXPECT_TRUE(v2->RemoveParentIfEmpty());
  EXPECT_FALSE(sys::PathExists(root.Sub("unified/sbx")));
}

// A removal interrupted by a crash can leave a group in some hierarchies only (here: all but
// memory). It must still be listed, emptied and removed, or it stays for ever.
TEST(CgroupFakeFsTest, V1GroupLeftInSomeHierarchiesIsListedAndRemoved) {
  TempDir root;
  std::map<std::string, std::string> mounts;
  for (const char* c : {"memory", "cpu", "pids", "freezer", "cpuacct"}) {
    ASSERT_TRUE(sys::MakeDirs(root.Sub(std::string(c) + "/sbx")));
    mounts[c] = root.Sub(c);
  }
  for (const char* c : {"cpu", "pids", "freezer", "cpuacct"}) {
    ASSERT_TRUE(sys::MakeDirs(root.Sub(std::string(c) + "/sbx/sb-half")));
  }
  auto v1 = MakeCgroupV1Driver(mounts, "sbx");
  EXPECT_EQ(v1->List(), std::vector<std::string>{"sb-half"});
  EXPECT_TRUE(v1->Exists("sb-half"));
  auto procs = v1->Processes("sb-half");
  ASSERT_TRUE(procs) << procs.error().ToString();
  EXPECT_TRUE(procs->empty());
  Status killed = v1->KillAll("sb-half", 1000);
  EXPECT_TRUE(killed) << killed.error().ToString();
  Status removed = v1->Remove("sb-half");
  EXPECT_TRUE(removed) << removed.error().ToString();
  EXPECT_TRUE(v1->List().empty());
  EXPECT_FALSE(v1->Exists("sb-half"));
}

TEST(CgroupFakeFsTest, MakeDriverExplainsMissingControllers) {
  sys::CgroupLayout layout;
  auto driver = MakeCgroupDriver(layout);
  ASSERT_FALSE(driver);
  EXPECT_EQ(driver.error().code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace sbx::runtime
