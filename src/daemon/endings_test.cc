#include "src/daemon/endings.h"

#include <signal.h>

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

agent::StatusReply Exited(int code) {
  agent::StatusReply s;
  s.main_exited = true;
  s.main_exit.exit_code = code;
  return s;
}

agent::StatusReply Killed(int signal) {
  agent::StatusReply s;
  s.main_exited = true;
  s.main_exit.signaled = true;
  s.main_exit.signal = signal;
  return s;
}

SandboxRecord Record() {
  SandboxRecord r;
  r.lifetime_seconds = 60;
  r.memory_limit_bytes = 64u << 20;
  r.grace_seconds = 5;
  return r;
}

TEST(ExitEndingTest, EachWayAMainProcessEnds) {
  auto ok = ExitEnding(Exited(0), 0, Record());
  EXPECT_EQ(ok.state, State::kCompleted);
  EXPECT_EQ(ok.reason, "EXITED");
  EXPECT_EQ(ok.exit_code, 0);

  auto code = ExitEnding(Exited(3), 0, Record());
  EXPECT_EQ(code.state, State::kFailed);
  EXPECT_EQ(code.message, "main process exited with code 3");
  EXPECT_EQ(code.exit_code, 3);

  auto signal = ExitEnding(Killed(SIGSEGV), 0, Record());
  EXPECT_EQ(signal.state, State::kFailed);
  EXPECT_EQ(signal.message, "main process was killed by SIGSEGV");
  EXPECT_EQ(signal.exit_code, 128 + SIGSEGV);

  auto oom = ExitEnding(Killed(SIGKILL), 1, Record());
  EXPECT_EQ(oom.reason, "OOM_KILLED");
  EXPECT_EQ(oom.message, "the main process was killed for exceeding the memory limit of 64.0 MiB");
  EXPECT_EQ(oom.exit_code, 137);

  auto plain_kill = ExitEnding(Killed(SIGKILL), 0, Record());
  EXPECT_EQ(plain_kill.reason, "EXITED");

  agent::StatusReply lifetime = Killed(SIGTERM);
  lifetime.lifetime_exceeded = true;
  auto life = ExitEnding(lifetime, 0, Record());
  EXPECT_EQ(life.state, State::kTerminated);
  EXPECT_EQ(life.reason, "LIFETIME_EXCEEDED");
  EXPECT_EQ(life.message, "the sandbox reached its maximum lifetime of 60s");

  agent::StatusReply no_start = Exited(127);
  no_start.start_error = "exec \"nope\": No such file or directory";
  auto failed = ExitEnding(no_start, 0, Record());
  EXPECT_EQ(failed.reason, "STARTUP_FAILED");
  EXPECT_EQ(failed.message, no_start.start_error);

  auto lost = ExitEnding(Error::Unavailable("connect: refused"), 0, Record());
  EXPECT_EQ(lost.state, State::kFailed);
  EXPECT_EQ(lost.reason, "HOST_LOST");
  EXPECT_FALSE(lost.exit_code);
}

TEST(StopEndingTest, WithinAndAfterTheGracePeriod) {
  SandboxRecord r = Record();
  auto graceful = StopEnding(Exited(0), r);
  EXPECT_EQ(graceful.state, State::kTerminated);
  EXPECT_EQ(graceful.reason, "USER_STOPPED");
  EXPECT_EQ(graceful.message, "stopped; main process exited with code 0");
  EXPECT_EQ(graceful.exit_code, 0);

  auto killed = StopEnding(std::nullopt, r);
  EXPECT_EQ(killed.message, "stopped; main process killed after the 5s grace period");
  EXPECT_EQ(killed.exit_code, 137);

  r.grace_seconds = 0;
  EXPECT_EQ(StopEnding(std::nullopt, r).message, "stopped immediately");

  r.stop_reason = "LIFETIME_EXCEEDED";
  auto life = StopEnding(Killed(SIGTERM), r);
  EXPECT_EQ(life.reason, "LIFETIME_EXCEEDED");
  EXPECT_EQ(life.message, "the sandbox reached its maximum lifetime of 60s");
  EXPECT_EQ(life.exit_code, 128 + SIGTERM);
}

TEST(SignalNameTest, NamesAndNumbers) {
  EXPECT_EQ(SignalName(SIGKILL), "SIGKILL");
  EXPECT_EQ(SignalName(99), "signal 99");
}

}  // namespace
}  // namespace sbx::daemon
