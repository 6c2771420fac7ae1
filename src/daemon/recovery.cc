#include "src/daemon/recovery.h"

#include <algorithm>
#include <set>

namespace sbx::daemon {

namespace {

void End(SandboxRecord& r, State state, std::string reason, std::string message, int64_t now) {
  r.state = state;
  r.reason = std::move(reason);
  r.message = std::move(message);
  r.end_ns = now;
  r.init_pid = 0;
}

}  // namespace

RecoveryPlan PlanRecovery(std::vector<SandboxRecord> records,
                          const std::function<bool(const SandboxRecord&)>& alive,
                          const std::vector<std::string>& leftovers, int64_t now_ns) {
  std::sort(records.begin(), records.end(), [](const SandboxRecord& a, const SandboxRecord& b) {
    return a.create_ns != b.create_ns ? a.create_ns < b.create_ns : a.id < b.id;
  });
  RecoveryPlan plan;
  std::set<std::string> owned;  // leftovers that belong to a sandbox that goes on
  for (auto& r : records) {
    if (IsTerminal(r.state)) {
      if (r.files_until_ns == 0) {
        plan.kept.push_back(std::move(r));
      } else if (now_ns < r.files_until_ns && r.deleted_ns == 0 && r.init_pid > 0 && alive(r)) {
        owned.insert(r.id);
        plan.kept_files.push_back(std::move(r));
      } else {
        // Their time is up, the sandbox was deleted, or sbx-init is gone: the files go.
        r.files_until_ns = 0;
        r.init_pid = 0;
        plan.destroy.push_back(r.id);
        plan.ended.push_back(std::move(r));
      }
      continue;
    }
    if (r.state == State::kPending) {
      End(r, State::kFailed, "STARTUP_FAILED", "sbxd restarted before the sandbox was created",
          now_ns);
      plan.ended.push_back(std::move(r));
      continue;
    }
    if (r.ending) {
      // The end was decided and recorded before the teardown began; the teardown is redone.
      SandboxRecord::Ending ending = *r.ending;
      End(r, ending.state, ending.reason, ending.message, now_ns);
      if (ending.exit_code) r.exit_code = ending.exit_code;
      r.ending.reset();
      plan.destroy.push_back(r.id);
      plan.ended.push_back(std::move(r));
      continue;
    }
    if (r.init_pid <= 0 || !alive(r)) {
      bool stopping = r.state == State::kTerminating;
      bool creating = r.state == State::kCreating;
      End(r, stopping ? State::kTerminated : State::kFailed,
          stopping ? (r.stop_reason.empty() ? "USER_STOPPED" : r.stop_reason)
                   : (creating ? "STARTUP_FAILED" : "HOST_LOST"),
          creating ? "sbxd restarted while the sandbox was being created"
                   : "sbx-init was gone when sbxd restarted",
          now_ns);
      plan.destroy.push_back(r.id);
      plan.ended.push_back(std::move(r));
      continue;
    }
    owned.insert(r.id);
    if (r.state == State::kTerminating) {
      if (r.stop_reason.empty()) r.stop_reason = "USER_STOPPED";
      plan.finish_stop.push_back(std::move(r));
      continue;
    }
    if (r.state == State::kCreating) {
      // The runtime finished after the daemon died: the sandbox runs.
      r.state = State::kRunning;
      if (r.start_ns == 0) r.start_ns = now_ns;
    }
    plan.adopt.push_back(std::move(r));
  }
  std::set<std::string> destroyed(plan.destroy.begin(), plan.destroy.end());
  for (const auto& id : leftovers) {
    if (!owned.count(id) && !destroyed.count(id)) plan.destroy.push_back(id);
  }
  return plan;
}

}  // namespace sbx::daemon
