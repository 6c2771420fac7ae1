// The favordynmods hierarchy sbxd holds to keep cgroup migrations cheap: it exists exactly while
// it is held, two daemons can hold it at once, and sandboxes are created normally under it.

#include <ctype.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/runtime/cgroup/favor_migrations.h"
#include "src/sys/features.h"
#include "src/sys/fs.h"
#include "tests/support/features.h"
#include "tests/support/sandbox_fixture.h"

namespace sbx::testing {
namespace {

bool HierarchyListed() {
  auto text = sys::ReadFile("/proc/self/cgroup");
  return text && text->find(std::string(":name=") + runtime::FavorMigrations::kHierarchyName +
                            ":") != std::string::npos;
}

// The kernel destroys a released hierarchy asynchronously (after an RCU grace period).
bool WaitUntilUnlisted() {
  int64_t deadline = MonotonicMillis() + 10000;
  while (HierarchyListed()) {
    if (MonotonicMillis() > deadline) return false;
    usleep(5000);
  }
  return true;
}

class CgroupMigrationTest : public SandboxTest {};

// Whether an sbxd runs on this host: it holds the hierarchy for as long as it lives.
bool SbxdRunning() {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return false;
  bool found = false;
  while (dirent* e = readdir(proc)) {
    if (!isdigit(static_cast<unsigned char>(e->d_name[0]))) continue;
    auto comm = sys::ReadFile(std::string("/proc/") + e->d_name + "/comm");
    if (comm && Trim(*comm) == "sbxd") found = true;
  }
  closedir(proc);
  return found;
}

TEST_F(CgroupMigrationTest, FavorMigrationsHierarchyLivesExactlyWhileHeld) {
  if (!WaitUntilUnlisted()) {
    if (SbxdRunning()) {
      GTEST_SKIP() << "a running sbxd holds the hierarchy: its release cannot be observed here";
    }
    FAIL() << "a hierarchy of an earlier run is still there, and no sbxd holds it";
  }
  auto first = runtime::FavorMigrations::Enable();
  SBX_REQUIRE("favordynmods", first.has_value(), first.has_value() ? "" : first.error().ToString());
  EXPECT_TRUE(first->enabled());
  EXPECT_TRUE(HierarchyListed());

  // A second holder (another daemon on the host) shares the hierarchy.
  auto second = runtime::FavorMigrations::Enable();
  ASSERT_TRUE(second) << second.error().ToString();
  first->Release();
  EXPECT_FALSE(first->enabled());
  EXPECT_TRUE(HierarchyListed());

  // Sandboxes are created and run as usual while it is held.
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto out = Exec(*sb, {"echo", "moved"});
  ASSERT_TRUE(out) << out.error().ToString();
  EXPECT_EQ(out->out, "moved\n");

  second->Release();
  EXPECT_TRUE(WaitUntilUnlisted()) << "the hierarchy outlived its last holder";
}

// The group of `pid` in the v1 hierarchy of `controller`, from /proc/<pid>/cgroup.
std::string GroupOf(pid_t pid, const std::string& controller) {
  auto text = sys::ReadFile("/proc/" + std::to_string(pid) + "/cgroup");
  if (!text) return "";
  for (const auto& line : Split(*text, '\n')) {
    auto fields = Split(line, ':');
    if (fields.size() < 3) continue;
    for (const auto& c : Split(fields[1], ',')) {
      if (c == controller) return fields[2];
    }
  }
  return "";
}

class CgroupV1Test : public SandboxTest {};

// On cgroup v1, every controller that confines a sandbox gives it a group of its own: devices
// (nothing but the nodes the runtime makes in /dev), cpuset (the parent's CPUs and memory nodes)
// and blkio; none of them is left behind.
TEST_F(CgroupV1Test, SandboxesHaveTheirOwnDevicesCpusetAndBlkioGroups) {
  sys::CgroupLayout layout = sys::ProbeCgroups();
  if (layout.version != "v1") GTEST_SKIP() << "a cgroup v1 host only";
  for (const char* c : {"devices", "cpuset", "blkio"}) {
    SBX_REQUIRE(std::string("cgroup-v1-") + c, layout.v1_mounts.count(c) > 0, "not mounted");
  }
  auto sb = Create();
  ASSERT_TRUE(sb) << sb.error().ToString();
  for (const char* c : {"devices", "cpuset", "blkio"}) {
    EXPECT_EQ(GroupOf(sb->state.init_pid, c), "/sbx-test/" + sb->id) << c;
  }
  std::string group = "/sbx-test/" + sb->id;
  auto list = sys::ReadFile(layout.v1_mounts["devices"] + group + "/devices.list");
  ASSERT_TRUE(list);
  std::set<std::string> allowed;
  for (const auto& line : Split(std::string(Trim(*list)), '\n')) allowed.insert(line);
  std::set<std::string> expected = {"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                                    "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm"};
  EXPECT_EQ(allowed, expected) << *list;
  for (const char* file : {"cpuset.cpus", "cpuset.mems"}) {
    auto own = sys::ReadFile(layout.v1_mounts["cpuset"] + group + "/" + file);
    auto parent = sys::ReadFile(layout.v1_mounts["cpuset"] + "/sbx-test/" + file);
    ASSERT_TRUE(own && parent) << file;
    EXPECT_FALSE(Trim(*own).empty()) << file;
    EXPECT_EQ(*own, *parent) << file;
  }

  // A device node that is not on the list, planted from the host, cannot be opened inside.
  struct stat host_node {};
  ASSERT_EQ(stat("/dev/loop-control", &host_node), 0);
  std::string planted = "/proc/" + std::to_string(sb->state.init_pid) + "/root/dev/planted";
  ASSERT_EQ(mknod(planted.c_str(), S_IFCHR | 0666, host_node.st_rdev), 0) << strerror(errno);
  ASSERT_EQ(chmod(planted.c_str(), 0666), 0);
  auto refused = Exec(*sb, {"sbx-testpayload", "open", "/dev/planted"});
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->out, "EPERM\n");
  auto null = Exec(*sb, {"sbx-testpayload", "open", "/dev/null"});
  ASSERT_TRUE(null);
  EXPECT_EQ(null->out, "ok\n");

  ASSERT_TRUE(Destroy(*sb));
  for (const char* c : {"devices", "cpuset", "blkio"}) {
    EXPECT_FALSE(sys::PathExists(layout.v1_mounts[c] + group)) << c;
  }
}

}  // namespace
}  // namespace sbx::testing
