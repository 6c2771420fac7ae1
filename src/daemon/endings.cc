#include "src/daemon/endings.h"

#include <signal.h>
#include <string.h>

#include "src/base/strings.h"
#include "src/sys/process.h"

namespace sbx::daemon {

namespace {

std::string LifetimeMessage(const SandboxRecord& r) {
  return "the sandbox reached its maximum lifetime of " + std::to_string(r.lifetime_seconds) + "s";
}

}  // namespace

std::string SignalName(int signal) {
  const char* name = sigabbrev_np(signal);
  return name ? std::string("SIG") + name : "signal " + std::to_string(signal);
}

SandboxRecord::Ending ExitEnding(const Result<agent::StatusReply>& status, uint64_t oom_kills,
                                 const SandboxRecord& r) {
  if (!status) {
    return {State::kFailed, "HOST_LOST", "sbx-init stopped answering: " + status.error().message(),
            std::nullopt};
  }
  const agent::ExitInfo& exit = status->main_exit;
  int code = exit.ShellCode();
  if (status->lifetime_exceeded) {
    return {State::kTerminated, "LIFETIME_EXCEEDED", LifetimeMessage(r), code};
  }
  if (!status->start_error.empty()) {
    return {State::kFailed, "STARTUP_FAILED", status->start_error, code};
  }
  if (exit.signaled && exit.signal == SIGKILL && oom_kills > 0) {
    return {State::kFailed, "OOM_KILLED",
            "the main process was killed for exceeding the memory limit of " +
                FormatBytes(r.memory_limit_bytes),
            code};
  }
  if (!exit.signaled && exit.exit_code == 0) {
    return {State::kCompleted, "EXITED", "main process exited with code 0", 0};
  }
  if (exit.signaled) {
    return {State::kFailed, "EXITED", "main process was killed by " + SignalName(exit.signal),
            code};
  }
  return {State::kFailed, "EXITED",
          "main process exited with code " + std::to_string(exit.exit_code), code};
}

SandboxRecord::Ending StopEnding(const std::optional<agent::StatusReply>& exited,
                                 const SandboxRecord& r) {
  std::string reason = r.stop_reason.empty() ? "USER_STOPPED" : r.stop_reason;
  SandboxRecord::Ending ending{State::kTerminated, reason, "", std::nullopt};
  if (exited) {
    const auto& x = exited->main_exit;
    ending.exit_code = x.ShellCode();
    ending.message =
        "stopped; main process " + (x.signaled ? "killed by " + SignalName(x.signal)
                                               : "exited with code " + std::to_string(x.exit_code));
  } else {
    ending.exit_code = sys::ShellExitCode(true, 0, SIGKILL);
    ending.message = r.grace_seconds > 0 ? "stopped; main process killed after the " +
                                               std::to_string(r.grace_seconds) + "s grace period"
                                         : "stopped immediately";
  }
  if (reason == "LIFETIME_EXCEEDED") ending.message = LifetimeMessage(r);
  return ending;
}

}  // namespace sbx::daemon
