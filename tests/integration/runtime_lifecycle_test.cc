// The life of a sandbox: its main process, logs, lifetime, stop, bad specs, and that removing
// sandboxes leaves nothing behind, again and again.

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"
#include "tests/support/sandbox_fixture.h"

namespace sbx::testing {
namespace {

class LifecycleTest : public SandboxTest {};

// The main process's whole output: until now, or with `follow` until it exits.
Result<std::string> AllLogs(agent::AgentClient& agent, bool follow, int timeout_ms,
                            agent::LogEnd* end = nullptr) {
  std::string logs;
  SBX_TRY(agent.StreamLogs(
      {0, follow},
      [&](const agent::LogChunk& chunk) {
        logs += chunk.data;
        return true;
      },
      end, MonotonicMillis() + timeout_ms));
  return logs;
}

TEST_F(LifecycleTest, MainProcessExitIsRecordedWithItsOutput) {
  struct Case {
    std::string script;
    bool signaled;
    int code;
  };
  for (const Case& c : {Case{"echo out; echo err >&2; exit 0", false, 0},
                        Case{"echo failing; exit 3", false, 3}, Case{"kill -KILL $$", true, 9}}) {
    auto sb = Create([&](runtime::RuntimeSpec& s) { s.process.args = {"sh", "-c", c.script}; });
    ASSERT_TRUE(sb) << sb.error().ToString();
    auto agent = sb->agent();
    auto status = agent.WaitMain(MonotonicMillis() + 10000);
    ASSERT_TRUE(status) << status.error().ToString();
    EXPECT_TRUE(status->main_exited);
    EXPECT_EQ(status->main_exit.signaled, c.signaled) << c.script;
    EXPECT_EQ(c.signaled ? status->main_exit.signal : status->main_exit.exit_code, c.code);
    agent::LogEnd end;
    auto read = AllLogs(agent, false, 10000, &end);
    ASSERT_TRUE(read) << read.error().ToString();
    const std::string& logs = *read;
    if (c.code == 0) {
      EXPECT_NE(logs.find("out\n"), std::string::npos);
      EXPECT_NE(logs.find("err\n"), std::string::npos);
    }
    EXPECT_EQ(end.next_offset, logs.size());
    // The exit stays recorded until acknowledged.
    auto again = agent.GetStatus();
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->main_exited);
    ASSERT_TRUE(agent.AckExit());
    ASSERT_TRUE(Destroy(*sb));
  }
  EXPECT_EQ(Leftovers(), std::vector<std::string>{});
}

TEST_F(LifecycleTest, DestroyReapsAnInitThatAlreadyExited) {
  // sbx-init exits by itself once the main exit is acknowledged; a destroy that comes after
  // must still reap it, or its parent keeps a zombie per sandbox.
  auto sb = Create([](runtime::RuntimeSpec& s) { s.process.args = {"true"}; });
  ASSERT_TRUE(sb) << sb.error().ToString();
  auto agent = sb->agent();
  ASSERT_TRUE(agent.WaitMain(MonotonicMillis() + 10000));
  ASSERT_TRUE(agent.AckExit());
  pid_t init = sb->state.init_pid;
  int64_t deadline = MonotonicMillis() + 10000;
  while (runtime::ProcessStartTime(init) != 0) {
    ASSERT_LT(MonotonicMillis(), deadline) << "sbx-init did not exit after the acknowledgement";
    usleep(1000);
  }
  ASSERT_NE(runtime::ProcessStartTime(init, /*include_zombies=*/true), 0u) << "already reaped";
  ASSERT_TRUE(Destroy(*sb));
  EXPECT_EQ(Leftovers(), std::vector<std::string>{});
}

TEST_F(LifecycleTest, FollowedLogsStreamUntilExit) {
  auto sb = Create([](runtime::RuntimeSpec& s) {
    s.process.args = {"sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.1; done"};
  });
  ASSERT_TRUE(sb);
  auto agent = sb->agent();
  auto logs = AllLogs(agent, true, 20000);
  ASSERT_TRUE(logs) << logs.error().ToString();
  EXPECT_EQ(*logs, "line1\nline2\nline3\n");
}

TEST_F(LifecycleTest, MissingMainCommandIsReportedNotHung) {
  auto sb = Create([](runtime::RuntimeSpec& s) { s.process.args = {"/no/such/binary"}; });
  ASSERT_TRUE(sb);
  auto status = sb->agent().WaitMain(MonotonicMillis() + 10000);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->main_exited);
  EXPECT_EQ(status->main_exit.exit_code, 127);
  EXPECT_NE(status->start_error.find("/no/such/binary"), std::string::npos) << status->start_error;
}

// A sandbox made ahead of time runs nothing until the host sends its main process, which then
// runs with the environment, directory, user and lifetime sent with it, and only once.
TEST_F(LifecycleTest, AwaitedMainProcessStartsWhenSentAndOnlyOnce) {
  auto sb = Create([](runtime::RuntimeSpec& s) {
    s.process.args = {"sh", "-c", "echo placeholder"};
    s.process.await_start = true;
  });
  ASSERT_TRUE(sb) << sb.error().ToString();
  auto agent = sb->agent();
  auto before = agent.GetStatus();
  ASSERT_TRUE(before) << before.error().ToString();
  EXPECT_FALSE(before->main_exited);
  EXPECT_FALSE(before->main_running);

  agent::InitConfig main;
  main.argv = {"sh", "-c", "echo \"$GREETING $(pwd) $(id -u)\"; sleep 1000"};
  main.env = {"PATH=/bin:/usr/bin", "GREETING=hello"};
  main.cwd = "/tmp";
  main.user = "1000";
  main.deadline_unix_ns = WallNanos() + 2000000000;  // the lifetime stops it
  main.stop_grace_ms = 100;
  Status started = agent.StartMain(main);
  ASSERT_TRUE(started) << started.error().ToString();
  Status again = agent.StartMain(main);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kFailedPrecondition);

  auto status = agent.WaitMain(MonotonicMillis() + 10000);
  ASSERT_TRUE(status) << status.error().ToString();
  EXPECT_TRUE(status->lifetime_exceeded);
  auto logs = AllLogs(agent, false, 10000);
  ASSERT_TRUE(logs) << logs.error().ToString();
  EXPECT_EQ(*logs, "hello /tmp 1000\n");
}

TEST_F(LifecycleTest, LifetimeIsEnforcedBySbxInit) {
  auto sb = Create([](runtime::RuntimeSpec& s) {
    s.process.args = {"sleep", "1000"};
    s.deadline_unix_ns = WallNanos() + 300000000;  // 300 ms
    s.stop_grace_ms = 200;
  });
  ASSERT_TRUE(sb);
  auto status = sb->agent().WaitMain(MonotonicMillis() + 10000);
  ASSERT_TRUE(status) << status.error().ToString();
  EXPECT_TRUE(status->lifetime_exceeded);
  EXPECT_TRUE(status->main_exit.signaled);
}

TEST_F(LifecycleTest, GracefulStopGivesTheMainProcessItsSignal) {
  auto sb = Create([](runtime::RuntimeSpec& s) {
    s.process.args = {"sh", "-c",
                      "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.05; done"};
  });
  ASSERT_TRUE(sb);
  auto agent = sb->agent();
  // Signal only once the trap is in place.
  std::string logs;
  ASSERT_TRUE(agent.StreamLogs(
      {0, true},
      [&](const agent::LogChunk& chunk) {
        logs += chunk.data;
        return logs.find("ready\n") == std::string::npos;
      },
      nullptr, MonotonicMillis() + 10000));
  ASSERT_TRUE(agent.SignalMain(SIGTERM));
  auto status = agent.WaitMain(MonotonicMillis() + 10000);
  ASSERT_TRUE(status);
  EXPECT_FALSE(status->main_exit.signaled);
  EXPECT_EQ(status->main_exit.exit_code, 0);
}

TEST_F(LifecycleTest, IdleSandboxStopsCleanly) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto agent = sb->agent();
  ASSERT_TRUE(agent.SignalMain(SIGTERM));
  auto status = agent.WaitMain(MonotonicMillis() + 5000);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->main_exit.exit_code, 0);
}

TEST_F(LifecycleTest, BadSpecsFailClearlyAndLeaveNothing) {
  struct Case {
    std::function<void(runtime::RuntimeSpec&)> adjust;
    Code code;
    std::string mentions;
  };
  std::vector<Case> cases = {
      {[](runtime::RuntimeSpec& s) { s.rootfs.layers = {"/no/such/layer"}; },
       Code::kInvalidArgument, "/no/such/layer"},
      {[](runtime::RuntimeSpec& s) { s.process.cwd = "relative"; }, Code::kInvalidArgument,
       "process.cwd"},
      {[](runtime::RuntimeSpec& s) { s.resources.memory_bytes = 1; }, Code::kInvalidArgument,
       "resources.memory_bytes"},
      {[](runtime::RuntimeSpec& s) { s.resources.pids = 1u << 30; }, Code::kInvalidArgument,
       "resources.pids"},
      {[](runtime::RuntimeSpec& s) {
         s.files.push_back({"/x", "/no/such/source", 0444});
       },
       Code::kNotFound, "files[0].source"},
      {[](runtime::RuntimeSpec& s) { s.process.cwd = "/bin/busybox"; }, Code::kInvalidArgument,
       "working directory"},
      {[](runtime::RuntimeSpec& s) { s.rootfs.writable.size_bytes = 100; }, Code::kInvalidArgument,
       "rootfs.writable.size_bytes"},
  };
  for (const auto& c : cases) {
    auto sb = Create(c.adjust);
    ASSERT_FALSE(sb) << c.mentions;
    EXPECT_EQ(sb.error().code(), c.code) << sb.error().ToString();
    EXPECT_NE(sb.error().message().find(c.mentions), std::string::npos) << sb.error().ToString();
  }
  EXPECT_EQ(Leftovers(), std::vector<std::string>{});
}

TEST_F(LifecycleTest, TwoHundredCreateStopCyclesLeaveNothing) {
  for (int i = 0; i < 200; ++i) {
    auto sb = Create();
    ASSERT_TRUE(sb) << "cycle " << i << ": " << sb.error().ToString();
    if (i % 20 == 0) {
      auto r = Exec(*sb, {"true"});
      ASSERT_TRUE(r);
    }
    ASSERT_TRUE(Destroy(*sb)) << "cycle " << i;
  }
  EXPECT_EQ(Leftovers(), std::vector<std::string>{});
}

TEST_F(LifecycleTest, LoopBackedLayersDetachOnStop) {
  for (int i = 0; i < 10; ++i) {
    auto sb = Create([](runtime::RuntimeSpec& s) {
      s.rootfs.writable.kind = runtime::WritableKind::kLoop;
      s.rootfs.writable.size_bytes = 64u << 20;
    });
    ASSERT_TRUE(sb) << sb.error().ToString();
    ASSERT_TRUE(Destroy(*sb));
  }
  // A loop device detaches once its filesystem is unmounted, which happens when the sandbox's
  // mount namespace goes away; wait for that with a deadline.
  std::vector<std::string> left;
  for (int64_t deadline = MonotonicMillis() + 10000; MonotonicMillis() < deadline;) {
    left = Leftovers();
    if (left.empty()) break;
  }
  EXPECT_EQ(left, std::vector<std::string>{});
}

TEST_F(LifecycleTest, RuntimeCliRunsAOneShotSandbox) {
  auto r = sys::RunCommand({BinDir() + "/sbx-runtime", "run", "--rootfs", RootfsDir(), "--tmpfs",
                            "--", "sh", "-c", "echo hi from $(hostname | cut -c1-4); exit 4"},
                           {"PATH=/usr/bin:/bin", "SBX_RUN_DIR=" + run_dir()}, 60000);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->out, "hi from run-\n");
  EXPECT_EQ(r->status.exit_code, 4);
  EXPECT_EQ(Leftovers(), std::vector<std::string>{});
}

}  // namespace
}  // namespace sbx::testing
