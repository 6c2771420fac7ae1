#include "src/daemon/admission.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

AdmissionLimits Node(uint64_t cpu, uint64_t memory, int quota = 10) {
  AdmissionLimits limits;
  limits.cpu_millis = cpu;
  limits.memory_bytes = memory;
  limits.default_quota = quota;
  return limits;
}

Admission::Verdict VerdictOf(const Result<Admission::Decision>& d) {
  EXPECT_TRUE(d) << d.error().ToString();
  return d ? d->verdict : Admission::Verdict::kReplay;
}

TEST(AdmissionTest, AdmitsWhatFitsAndQueuesTheRestInOrder) {
  Admission a(Node(1000, 1000));
  EXPECT_EQ(VerdictOf(a.Decide("t", "", "f", {600, 100})), Admission::Verdict::kAdmit);
  a.Accept("s1", "t", "", "f", {600, 100}, true);
  EXPECT_EQ(VerdictOf(a.Decide("t", "", "f", {600, 100})), Admission::Verdict::kQueue);
  a.Accept("s2", "t", "", "f", {600, 100}, false);
  // A small one would fit, but it waits behind the first that does not: FIFO.
  EXPECT_EQ(VerdictOf(a.Decide("t", "", "f", {100, 100})), Admission::Verdict::kQueue);
  a.Accept("s3", "t", "", "f", {100, 100}, false);
  EXPECT_EQ(a.usage().cpu_millis, 600u);
  EXPECT_EQ(a.usage().queued, 2);
  // The first ends: both queued ones fit now, in their order.
  EXPECT_EQ(a.Release("s1"), (std::vector<std::string>{"s2", "s3"}));
  EXPECT_EQ(a.usage().cpu_millis, 700u);
  EXPECT_EQ(a.usage().queued, 0);
  EXPECT_TRUE(a.Release("s1").empty());  // twice is harmless
  EXPECT_EQ(a.usage().cpu_millis, 700u);
}

TEST(AdmissionTest, AWaitingSandboxSaysWhatItWaitsFor) {
  Admission a(Node(2000, 1u << 30));
  a.Accept("s1", "t", "", "f", {2000, 256u << 20}, true);
  a.Accept("s2", "t", "", "f", {500, 1u << 30}, false);
  a.Accept("s3", "t", "", "f", {100, 1}, false);
  EXPECT_EQ(a.WaitingFor("s1"), "");  // running: waits for nothing
  EXPECT_EQ(a.WaitingFor("s2"),
            "waiting for CPU: 2000m of 2000m reserved, it needs 500m; memory: 256.0 MiB of 1.0 GiB "
            "reserved, it needs 1.0 GiB");
  // It would fit, but the node's queue is first in, first out.
  EXPECT_EQ(a.WaitingFor("s3"),
            "waiting for CPU: 2000m of 2000m reserved, it needs 100m; behind 1 earlier sandbox of "
            "the node's queue");
  EXPECT_EQ(a.queued(), (std::deque<std::string>{"s2", "s3"}));
}

TEST(AdmissionTest, KeptFilesHoldOnlyTheirDisk) {
  AdmissionLimits limits = Node(1000, 1000);
  limits.disk_bytes = 100;
  Admission a(limits);
  a.Accept("s1", "t", "", "f", {600, 600, 60}, true);
  a.Accept("s2", "t", "", "f", {600, 600, 60}, false);
  // s1 ended with its files kept: its CPU and memory are free, its disk is not, so s2 waits on.
  EXPECT_TRUE(a.ReleaseKeepingDisk("s1").empty());
  EXPECT_EQ(a.usage().cpu_millis, 0u);
  EXPECT_EQ(a.usage().disk_bytes, 60u);
  EXPECT_NE(a.WaitingFor("s2").find("disk"), std::string::npos);
  EXPECT_TRUE(a.QueueHeadWaitsForDisk());
  EXPECT_EQ(a.ReleaseDisk("s1"), (std::vector<std::string>{"s2"}));
  EXPECT_EQ(a.usage().disk_bytes, 60u);  // s2's own
  EXPECT_FALSE(a.QueueHeadWaitsForDisk());
  EXPECT_TRUE(a.ReleaseDisk("s1").empty());  // twice is harmless
  EXPECT_TRUE(a.ReleaseDisk("s2").empty());  // s2 keeps no files: nothing to give back
  EXPECT_EQ(a.usage().disk_bytes, 60u);
}

TEST(AdmissionTest, KeptFilesAreRestoredWithTheirDisk) {
  AdmissionLimits limits = Node(1000, 1000);
  limits.disk_bytes = 100;
  Admission a(limits);
  a.RestoreKeepingDisk("s1", "t", "r1", "f", {600, 600, 60});
  EXPECT_EQ(a.usage().cpu_millis, 0u);
  EXPECT_EQ(a.usage().disk_bytes, 60u);
  EXPECT_EQ(a.Decide("t", "r1", "f", {600, 600, 60})->verdict, Admission::Verdict::kReplay);
  a.ReleaseDisk("s1");
  EXPECT_EQ(a.usage().disk_bytes, 0u);
}

TEST(AdmissionTest, TheHostsRealMemoryGatesCreatesBesideTheReservations) {
  AdmissionLimits limits = Node(1000, 100ull << 30);
  limits.memory_reserve_bytes = 1u << 30;
  Admission a(limits);
  // Nothing reserved, but the host has less available than its reserve: the create waits.
  a.SetHostAvailableMemory(900u << 20);
  EXPECT_EQ(VerdictOf(a.Decide("t", "", "f", {0, 0})), Admission::Verdict::kQueue);
  a.Accept("s1", "t", "", "f", {0, 0}, false);
  EXPECT_EQ(a.WaitingFor("s1"),
            "waiting for host memory: 900.0 MiB available, memory_reserve keeps 1.0 GiB free");
  EXPECT_TRUE(a.Readmit().empty());
  // Room again: it starts; one asking for more than what is left above the reserve waits.
  a.SetHostAvailableMemory(2ull << 30);
  EXPECT_EQ(a.Readmit(), (std::vector<std::string>{"s1"}));
  EXPECT_EQ(VerdictOf(a.Decide("t", "", "f", {0, 512u << 20})), Admission::Verdict::kAdmit);
  EXPECT_EQ(VerdictOf(a.Decide("t", "", "f", {0, 2ull << 30})), Admission::Verdict::kQueue);
}

TEST(AdmissionTest, MemoryCountsLikeCpu) {
  Admission a(Node(10000, 1000));
  a.Accept("s1", "t", "", "f", {10, 900}, true);
  EXPECT_EQ(VerdictOf(a.Decide("t", "", "f", {10, 200})), Admission::Verdict::kQueue);
  EXPECT_EQ(VerdictOf(a.Decide("t", "", "f", {10, 100})), Admission::Verdict::kAdmit);
}

// Writable layers are sparse: a sandbox reserves its disk request, and the node's disk capacity
// bounds the sum like CPU and memory.
TEST(AdmissionTest, DiskRequestsAreReservedLikeCpuAndMemory) {
  AdmissionLimits limits = Node(100000, 100000);
  limits.disk_bytes = 3000;
  Admission a(limits);
  for (const char* id : {"s1", "s2", "s3"}) {
    ASSERT_EQ(VerdictOf(a.Decide("t", "", "f", {10, 10, 1000})), Admission::Verdict::kAdmit);
    a.Accept(id, "t", "", "f", {10, 10, 1000}, true);
  }
  EXPECT_EQ(a.usage().disk_bytes, 3000u);
  EXPECT_EQ(VerdictOf(a.Decide("t", "", "f", {10, 10, 1000})), Admission::Verdict::kQueue);
  a.Accept("s4", "t", "", "f", {10, 10, 1000}, false);
  EXPECT_EQ(a.Release("s2"), std::vector<std::string>{"s4"});
  auto never = a.Decide("t", "", "f", {10, 10, 4000});
  ASSERT_FALSE(never);
  EXPECT_EQ(never.error().code(), Code::kResourceExhausted);
  EXPECT_NE(never.error().message().find("of disk"), std::string::npos);
}

TEST(AdmissionTest, ADemandLargerThanTheNodeIsRefused) {
  Admission a(Node(1000, 1000));
  auto d = a.Decide("t", "", "f", {2000, 10});
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code(), Code::kResourceExhausted);
  EXPECT_EQ(d.error().reason(), "CWSANDBOX_RUNNER_CAPACITY_EXHAUSTED");
  EXPECT_FALSE(a.Decide("t", "", "f", {10, 2000}));
}

TEST(AdmissionTest, QuotaCountsLiveSandboxesQueuedOrNot) {
  AdmissionLimits limits = Node(1000, 1000, 2);
  limits.tenant_quotas["big"] = 3;
  Admission a(limits);
  a.Accept("s1", "t", "", "f", {1000, 10}, true);
  a.Accept("s2", "t", "", "f", {1000, 10}, false);
  auto d = a.Decide("t", "", "f", {10, 10});
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().reason(), "CWSANDBOX_QUOTA_EXCEEDED");
  EXPECT_EQ(d.error().MetadataValue("limit"), "2");
  // Another tenant is not affected; its own quota applies.
  a.Accept("b1", "big", "", "f", {0, 0}, true);
  a.Accept("b2", "big", "", "f", {0, 0}, true);
  EXPECT_TRUE(a.Decide("big", "", "f", {0, 0}));
  // A queued sandbox stopped before it started frees its place in the quota.
  EXPECT_TRUE(a.Release("s2").empty());
  EXPECT_TRUE(a.Decide("t", "", "f", {10, 10}));
}

TEST(AdmissionTest, ARequestIdNamesOneSandboxPerTenant) {
  Admission a(Node(1000, 1000));
  a.Accept("s1", "t", "req", "spec-a", {10, 10}, true);
  auto again = a.Decide("t", "req", "spec-a", {10, 10});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->verdict, Admission::Verdict::kReplay);
  EXPECT_EQ(again->replay_id, "s1");
  // Another tenant's request id is its own.
  EXPECT_EQ(VerdictOf(a.Decide("u", "req", "spec-b", {10, 10})), Admission::Verdict::kAdmit);
  // The same id with another spec is a client's mistake, not a retry.
  auto reused = a.Decide("t", "req", "spec-b", {10, 10});
  ASSERT_FALSE(reused);
  EXPECT_EQ(reused.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(reused.error().MetadataValue("field"), "request_id");
  // Replayed even after the sandbox ended, until its record is forgotten.
  (void)a.Release("s1");
  EXPECT_EQ(VerdictOf(a.Decide("t", "req", "spec-a", {10, 10})), Admission::Verdict::kReplay);
  a.Forget("s1");
  EXPECT_EQ(VerdictOf(a.Decide("t", "req", "spec-b", {10, 10})), Admission::Verdict::kAdmit);
}

TEST(AdmissionTest, RestoredSandboxesHoldWhatTheyHeld) {
  Admission a(Node(1000, 1000, 2));
  a.Restore("live", "t", "r1", "f", {700, 10}, true);
  a.Restore("ended", "t", "r2", "f", {700, 10}, false);
  EXPECT_EQ(a.usage().cpu_millis, 700u);
  EXPECT_EQ(VerdictOf(a.Decide("t", "", "f", {700, 10})), Admission::Verdict::kQueue);
  EXPECT_EQ(VerdictOf(a.Decide("t", "r2", "f", {1, 1})), Admission::Verdict::kReplay);
  // Only the live one counts against the quota of 2.
  a.Accept("s3", "t", "", "f", {10, 10}, true);
  EXPECT_FALSE(a.Decide("t", "", "f", {10, 10}));
}

}  // namespace
}  // namespace sbx::daemon
