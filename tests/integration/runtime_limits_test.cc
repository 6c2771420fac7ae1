// Kernel-enforced limits: memory (OOM kill inside the sandbox, detected), pids, CPU quota and the
// writable layer's size.

#include <gtest/gtest.h>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "tests/support/sandbox_fixture.h"

namespace sbx::testing {
namespace {

class LimitsTest : public SandboxTest {};

TEST_F(LimitsTest, MemoryBombIsOomKilledInsideTheSandboxOnly) {
  auto sb = Create([](runtime::RuntimeSpec& s) { s.resources.memory_bytes = 64u << 20; });
  ASSERT_TRUE(sb);
  auto before = cgroups().Stats(sb->id);
  ASSERT_TRUE(before) << before.error().ToString();
  auto bomb = Exec(*sb, {"sbx-testpayload", "memhog", "512"});
  ASSERT_TRUE(bomb) << bomb.error().ToString();
  EXPECT_TRUE(bomb->exit.signaled);
  EXPECT_EQ(bomb->exit.signal, 9);
  auto after = cgroups().Stats(sb->id);
  ASSERT_TRUE(after);
  EXPECT_GT(after->oom_kills, before->oom_kills);
  // The sandbox survives: sbx-init still answers and new work runs.
  auto alive = Exec(*sb, {"echo", "alive"});
  ASSERT_TRUE(alive);
  EXPECT_EQ(alive->out, "alive\n");
}

TEST_F(LimitsTest, ForkBombStopsAtThePidsLimit) {
  auto sb = Create([](runtime::RuntimeSpec& s) { s.resources.pids = 64; });
  ASSERT_TRUE(sb);
  auto bomb = Exec(*sb, {"sbx-testpayload", "forkbomb"}, "", 60000);
  ASSERT_TRUE(bomb) << bomb.error().ToString();
  EXPECT_NE(bomb->out.find("fork failed after"), std::string::npos) << bomb->out;
  EXPECT_NE(bomb->out.find("EAGAIN"), std::string::npos) << bomb->out;
  auto stats = cgroups().Stats(sb->id);
  ASSERT_TRUE(stats);
  EXPECT_LE(stats->pids, 64u);
  auto alive = Exec(*sb, {"echo", "alive"});
  ASSERT_TRUE(alive);
  EXPECT_EQ(alive->out, "alive\n");
}

// A sandbox made ahead of time gets its user's limits: lowered and raised on the live group,
// with the kernel enforcing the new memory limit.
TEST_F(LimitsTest, LimitsChangedOnALiveGroupAreEnforced) {
  auto sb = Create([](runtime::RuntimeSpec& s) { s.resources.memory_bytes = 256u << 20; });
  ASSERT_TRUE(sb);
  Status lowered = cgroups().SetLimits(sb->id, {64u << 20, 500, 128});
  ASSERT_TRUE(lowered) << lowered.error().ToString();
  auto bomb = Exec(*sb, {"sbx-testpayload", "memhog", "128"});
  ASSERT_TRUE(bomb) << bomb.error().ToString();
  EXPECT_TRUE(bomb->exit.signaled);
  EXPECT_EQ(bomb->exit.signal, 9);
  // Raising memory past memory + swap works too (v1 raises memsw first).
  Status raised = cgroups().SetLimits(sb->id, {1u << 30, 1000, 256});
  ASSERT_TRUE(raised) << raised.error().ToString();
  auto fits = Exec(*sb, {"sbx-testpayload", "memhog", "128"});
  ASSERT_TRUE(fits) << fits.error().ToString();
  EXPECT_FALSE(fits->exit.signaled) << fits->out;
}

TEST_F(LimitsTest, CpuHogIsHeldToItsQuota) {
  auto sb = Create([](runtime::RuntimeSpec& s) { s.resources.cpu_millis = 250; });
  ASSERT_TRUE(sb);
  auto hog = Exec(*sb, {"sbx-testpayload", "cpuhog", "2000"}, "", 30000);
  ASSERT_TRUE(hog) << hog.error().ToString();
  auto cpu_ms = ParseUint64(Trim(hog->out));
  ASSERT_TRUE(cpu_ms) << hog->out;
  // A quarter of a CPU over 2 s of wall time is 500 ms of CPU; allow for period granularity.
  EXPECT_LT(*cpu_ms, 800u);
  EXPECT_GT(*cpu_ms, 200u);
}

TEST_F(LimitsTest, FillingTheDiskStopsAtTheQuota) {
  for (auto kind : {runtime::WritableKind::kLoop, runtime::WritableKind::kTmpfs}) {
    auto sb = Create([kind](runtime::RuntimeSpec& s) {
      s.rootfs.writable.kind = kind;
      s.rootfs.writable.size_bytes = 64u << 20;
    });
    ASSERT_TRUE(sb) << sb.error().ToString();
    auto fill = Exec(*sb, {"sbx-testpayload", "fill", "/big"}, "", 60000);
    ASSERT_TRUE(fill);
    EXPECT_NE(fill->out.find("ENOSPC"), std::string::npos) << fill->out;
    auto words = Split(std::string(Trim(fill->out)), ' ');  // "ENOSPC after N bytes"
    ASSERT_EQ(words.size(), 4u) << fill->out;
    auto bytes = ParseUint64(words[2]);
    ASSERT_TRUE(bytes) << fill->out;
    EXPECT_LE(*bytes, 64u << 20);
    EXPECT_GT(*bytes, 32u << 20);
    // The API write fails cleanly at the quota too.
    auto api = sb->agent().WriteFileFromString("/more", std::string(1u << 20, 'x'));
    EXPECT_FALSE(api);
    Status destroyed = Destroy(*sb);
    ASSERT_TRUE(destroyed) << destroyed.error().ToString();
  }
  EXPECT_EQ(Leftovers(), std::vector<std::string>{});
}

}  // namespace
}  // namespace sbx::testing
