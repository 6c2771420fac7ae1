// The favordynmods hierarchy sbxd holds to keep cgroup migrations cheap: it exists exactly while
// it is held, two daemons can hold it at once, and sandboxes are created normally under it.

#include <ctype.h>
#include <dirent.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/runtime/cgroup/favor_migrations.h"
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

}  // namespace
}  // namespace sbx::testing
