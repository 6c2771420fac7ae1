#include "src/daemon/recovery.h"

#include <set>

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

SandboxRecord Record(const std::string& id, State state, int64_t create_ns, pid_t pid = 0) {
  SandboxRecord r;
  r.id = id;
  r.state = state;
  r.create_ns = create_ns;
  r.init_pid = pid;
  return r;
}

std::vector<std::string> Ids(const std::vector<SandboxRecord>& records) {
  std::vector<std::string> ids;
  for (const auto& r : records) ids.push_back(r.id);
  return ids;
}

const SandboxRecord& Find(const std::vector<SandboxRecord>& records, const std::string& id) {
  for (const auto& r : records) {
    if (r.id == id) return r;
  }
  ADD_FAILURE() << id << " not in the list";
  static SandboxRecord none;
  return none;
}

TEST(RecoveryTest, EachStateHasItsPlan) {
  std::vector<SandboxRecord> records = {
      Record("running-alive", State::kRunning, 1, 100),
      Record("running-gone", State::kRunning, 2, 101),
      Record("creating-alive", State::kCreating, 3, 102),
      Record("creating-unstarted", State::kCreating, 4, 0),
      Record("stopping-alive", State::kTerminating, 5, 103),
      Record("stopping-gone", State::kTerminating, 6, 104),
      Record("pending", State::kPending, 7),
      Record("done", State::kCompleted, 8),
  };
  std::set<pid_t> alive = {100, 102, 103};
  RecoveryPlan plan = PlanRecovery(
      records, [&](const SandboxRecord& r) { return alive.count(r.init_pid) > 0; }, {}, 999);

  EXPECT_EQ(Ids(plan.adopt), (std::vector<std::string>{"running-alive", "creating-alive"}));
  EXPECT_EQ(Find(plan.adopt, "creating-alive").state, State::kRunning);
  EXPECT_EQ(Find(plan.adopt, "creating-alive").start_ns, 999);
  EXPECT_EQ(Ids(plan.finish_stop), (std::vector<std::string>{"stopping-alive"}));
  EXPECT_EQ(Find(plan.finish_stop, "stopping-alive").stop_reason, "USER_STOPPED");
  EXPECT_EQ(Ids(plan.kept), (std::vector<std::string>{"done"}));
  EXPECT_EQ(Ids(plan.ended), (std::vector<std::string>{"running-gone", "creating-unstarted",
                                                       "stopping-gone", "pending"}));
  const auto& lost = Find(plan.ended, "running-gone");
  EXPECT_EQ(lost.state, State::kFailed);
  EXPECT_EQ(lost.reason, "HOST_LOST");
  EXPECT_EQ(lost.end_ns, 999);
  EXPECT_EQ(Find(plan.ended, "creating-unstarted").reason, "STARTUP_FAILED");
  EXPECT_EQ(Find(plan.ended, "stopping-gone").state, State::kTerminated);
  EXPECT_EQ(Find(plan.ended, "stopping-gone").reason, "USER_STOPPED");
  EXPECT_EQ(Find(plan.ended, "pending").state, State::kFailed);
  // What is left of the sandboxes that ended goes; a pending one never had anything.
  std::set<std::string> destroy(plan.destroy.begin(), plan.destroy.end());
  EXPECT_EQ(destroy,
            (std::set<std::string>{"running-gone", "creating-unstarted", "stopping-gone"}));
}

TEST(RecoveryTest, KeptFilesStayWhileTheirTimeLastsAndSbxInitLives) {
  auto ended = [](const std::string& id, pid_t pid, int64_t files_until_ns) {
    SandboxRecord r = Record(id, State::kCompleted, 1, pid);
    r.files_until_ns = files_until_ns;
    return r;
  };
  SandboxRecord deleted = ended("deleted", 203, 2000);
  deleted.deleted_ns = 900;
  std::vector<SandboxRecord> records = {ended("kept", 200, 2000), ended("expired", 201, 999),
                                        ended("init-gone", 202, 2000), deleted};
  std::set<pid_t> alive = {200, 201, 203};
  RecoveryPlan plan = PlanRecovery(
      records, [&](const SandboxRecord& r) { return alive.count(r.init_pid) > 0; },
      {"kept", "expired", "init-gone", "deleted"}, 1000);
  EXPECT_EQ(Ids(plan.kept_files), (std::vector<std::string>{"kept"}));
  EXPECT_EQ(Ids(plan.ended), (std::vector<std::string>{"deleted", "expired", "init-gone"}));
  for (const auto& r : plan.ended) {
    EXPECT_EQ(r.files_until_ns, 0) << r.id;
    EXPECT_EQ(r.state, State::kCompleted) << r.id;  // how it ended does not change
  }
  std::set<std::string> destroy(plan.destroy.begin(), plan.destroy.end());
  EXPECT_EQ(destroy, (std::set<std::string>{"expired", "init-gone", "deleted"}));
}

TEST(RecoveryTest, AStopForTheLifetimeKeepsItsReason) {
  SandboxRecord r = Record("s", State::kTerminating, 1, 5);
  r.stop_reason = "LIFETIME_EXCEEDED";
  RecoveryPlan plan = PlanRecovery(
      {r}, [](const SandboxRecord&) { return false; }, {}, 10);
  ASSERT_EQ(plan.ended.size(), 1u);
  EXPECT_EQ(plan.ended[0].reason, "LIFETIME_EXCEEDED");
}

// An exit whose outcome was recorded before the teardown began ends as recorded, whatever the
// state of its sbx-init: the exit code the user is owed is not lost to a crash.
TEST(RecoveryTest, ARecordedEndingIsFinishedAsRecorded) {
  SandboxRecord r = Record("s", State::kRunning, 1, 5);
  r.ending = SandboxRecord::Ending{State::kFailed, "EXITED", "main process exited with code 3", 3};
  for (bool alive : {true, false}) {
    RecoveryPlan plan = PlanRecovery(
        {r}, [alive](const SandboxRecord&) { return alive; }, {}, 10);
    ASSERT_EQ(plan.ended.size(), 1u) << alive;
    EXPECT_TRUE(plan.adopt.empty());
    EXPECT_EQ(plan.ended[0].state, State::kFailed);
    EXPECT_EQ(plan.ended[0].reason, "EXITED");
    EXPECT_EQ(plan.ended[0].exit_code, 3);
    EXPECT_FALSE(plan.ended[0].ending);
    EXPECT_EQ(plan.destroy, std::vector<std::string>{"s"});
  }
}

TEST(RecoveryTest, LeftoversOfNoLiveSandboxAreDestroyedOnce) {
  std::vector<SandboxRecord> records = {Record("live", State::kRunning, 1, 5),
                                        Record("gone", State::kRunning, 2, 6),
                                        Record("old", State::kTerminated, 3)};
  RecoveryPlan plan = PlanRecovery(
      records, [](const SandboxRecord& r) { return r.init_pid == 5; },
      {"live", "gone", "old", "warm-or-orphan"}, 10);
  std::multiset<std::string> destroy(plan.destroy.begin(), plan.destroy.end());
  EXPECT_EQ(destroy, (std::multiset<std::string>{"gone", "old", "warm-or-orphan"}));
}

TEST(RecoveryTest, PlansAreInCreationOrder) {
  std::vector<SandboxRecord> records = {Record("c", State::kRunning, 30, 1),
                                        Record("a", State::kRunning, 10, 1),
                                        Record("b", State::kRunning, 20, 1)};
  RecoveryPlan plan = PlanRecovery(
      records, [](const SandboxRecord&) { return true; }, {}, 0);
  EXPECT_EQ(Ids(plan.adopt), (std::vector<std::string>{"a", "b", "c"}));
}

}  // namespace
}  // namespace sbx::daemon
