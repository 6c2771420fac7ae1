// Exec through sbx-init against real sandboxes: stdio, exit codes, signals, terminals, many
// concurrent execs, and bounded memory under a slow reader.

#include <signal.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/sys/fs.h"
#include "tests/support/sandbox_fixture.h"

namespace sbx::testing {
namespace {

class ExecTest : public SandboxTest {};

TEST_F(ExecTest, StdioAndExitCodes) {
  auto sb = Create();
  ASSERT_TRUE(sb) << sb.error().ToString();
  auto r = Exec(*sb, {"sh", "-c", "cat; echo to-err >&2; exit 7"}, "from stdin\n");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->out, "from stdin\n");
  EXPECT_EQ(r->err, "to-err\n");
  EXPECT_EQ(r->exit.exit_code, 7);
  EXPECT_FALSE(r->exit.signaled);
  auto ok = Exec(*sb, {"true"});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->code(), 0);
}

TEST_F(ExecTest, SignalsAreReported) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto r = Exec(*sb, {"sh", "-c", "kill -TERM $$"});
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->exit.signaled);
  EXPECT_EQ(r->exit.signal, SIGTERM);
  EXPECT_EQ(r->code(), 143);
}

TEST_F(ExecTest, SignalRequestReachesTheProcessGroup) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto client = sb->agent();
  agent::ExecStart request;
  request.argv = {"sh", "-c", "echo ready; sleep 100"};
  auto stream = client.StartExec(request);
  ASSERT_TRUE(stream);
  auto first = stream->Next(MonotonicMillis() + 10000);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->output.data, "ready\n");
  ASSERT_TRUE(stream->Signal(SIGINT));
  while (true) {
    auto event = stream->Next(MonotonicMillis() + 10000);
    ASSERT_TRUE(event) << event.error().ToString();
    if (event->kind == agent::ExecEvent::kExit) {
      EXPECT_TRUE(event->exit.signaled);
      EXPECT_EQ(event->exit.signal, SIGINT);
      break;
    }
  }
}

TEST_F(ExecTest, MissingCommandIsAClearError) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto r = Exec(*sb, {"no-such-command"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kNotFound);
  EXPECT_NE(r.error().message().find("no-such-command"), std::string::npos);
  auto bad_cwd = sb->agent().StartExec({.argv = {"true"}, .cwd = "/does/not/exist"});
  ASSERT_FALSE(bad_cwd);
  EXPECT_EQ(bad_cwd.error().code(), Code::kInvalidArgument);
  auto bad_user = sb->agent().StartExec({.argv = {"true"}, .user = "ghost"});
  ASSERT_FALSE(bad_user);
  EXPECT_NE(bad_user.error().message().find("ghost"), std::string::npos);
}

TEST_F(ExecTest, RunsAsRequestedUser) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto r = Exec(*sb, {"id"}, "", 10000, "app");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "uid=1000(app) gid=1000(app) groups=1000(app)\n");
  auto home = Exec(*sb, {"sh", "-c", "echo $HOME; pwd"}, "", 10000, "app");
  ASSERT_TRUE(home);
  EXPECT_EQ(home->out, "/home/app\n/\n");
}

TEST_F(ExecTest, TimeoutKillsTheWholeTree) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto client = sb->agent();
  agent::ExecStart request;
  request.argv = {"sh", "-c", "sleep 1000 & sleep 1000 & echo started; wait"};
  request.timeout_ms = 300;
  auto stream = client.StartExec(request);
  ASSERT_TRUE(stream);
  agent::ExitInfo exit;
  while (true) {
    auto event = stream->Next(MonotonicMillis() + 10000);
    ASSERT_TRUE(event) << event.error().ToString();
    if (event->kind == agent::ExecEvent::kExit) {
      exit = event->exit;
      break;
    }
  }
  EXPECT_TRUE(exit.timed_out);
  EXPECT_TRUE(exit.signaled);
  auto ps = Exec(*sb, {"sh", "-c", "ps -o comm | grep -c sleep"});
  ASSERT_TRUE(ps);
  EXPECT_EQ(ps->out, "0\n");
}

TEST_F(ExecTest, DisconnectKillsTheExec) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  {
    auto client = sb->agent();
    auto stream = client.StartExec({.argv = {"sh", "-c", "echo up; exec sleep 1000"}});
    ASSERT_TRUE(stream);
    auto up = stream->Next(MonotonicMillis() + 10000);
    ASSERT_TRUE(up);
  }  // the connection closes here
  // sbx-init notices the hang-up and kills the tree; wait for it (bounded).
  std::string count;
  for (int64_t deadline = MonotonicMillis() + 10000; MonotonicMillis() < deadline;) {
    auto ps = Exec(*sb, {"sh", "-c", "ps -o comm | grep -c sleep"});
    ASSERT_TRUE(ps);
    count = ps->out;
    if (count == "0\n") break;
  }
  EXPECT_EQ(count, "0\n");
}

TEST_F(ExecTest, Terminal) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto client = sb->agent();
  agent::ExecStart request;
  request.argv = {"sh", "-c", "tty; stty size; read line; echo got:$line"};
  request.tty = true;
  request.rows = 33;
  request.cols = 101;
  request.stdin_open = true;
  auto stream = client.StartExec(request);
  ASSERT_TRUE(stream);
  std::string out;
  bool sent = false;
  agent::ExitInfo exit;
  while (true) {
    auto event = stream->Next(MonotonicMillis() + 10000);
    ASSERT_TRUE(event) << event.error().ToString() << " output so far: " << out;
    if (event->kind == agent::ExecEvent::kExit) {
      exit = event->exit;
      break;
    }
    out += event->output.data;
    if (!sent && out.find("33 101") != std::string::npos) {
      ASSERT_TRUE(stream->WriteStdin("hello\n", MonotonicMillis() + 5000));
      sent = true;
    }
  }
  EXPECT_EQ(exit.exit_code, 0);
  EXPECT_NE(out.find("/dev/pts/"), std::string::npos) << out;
  EXPECT_NE(out.find("33 101"), std::string::npos) << out;
  EXPECT_NE(out.find("got:hello"), std::string::npos) << out;
}

TEST_F(ExecTest, TerminalResize) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto client = sb->agent();
  agent::ExecStart request;
  request.argv = {"sh", "-c", "stty size; read x; stty size"};
  request.tty = true;
  request.rows = 10;
  request.cols = 20;
  request.stdin_open = true;
  auto stream = client.StartExec(request);
  ASSERT_TRUE(stream);
  std::string out;
  bool resized = false;
  while (true) {
    auto event = stream->Next(MonotonicMillis() + 10000);
    ASSERT_TRUE(event) << out;
    if (event->kind == agent::ExecEvent::kExit) break;
    out += event->output.data;
    if (!resized && out.find("10 20") != std::string::npos) {
      ASSERT_TRUE(stream->Resize(50, 160));
      ASSERT_TRUE(stream->WriteStdin("\n", MonotonicMillis() + 5000));
      resized = true;
    }
  }
  EXPECT_NE(out.find("50 160"), std::string::npos) << out;
}

TEST_F(ExecTest, FiftyConcurrentExecs) {
  auto sb = Create([](runtime::RuntimeSpec& s) { s.resources.pids = 1024; });
  ASSERT_TRUE(sb);
  auto client = sb->agent();
  std::vector<agent::ExecStream> streams;
  for (int i = 0; i < 50; ++i) {
    auto stream = client.StartExec({.argv = {"sh", "-c", "sleep 0.2; echo " + std::to_string(i)}});
    ASSERT_TRUE(stream) << i << ": " << stream.error().ToString();
    streams.push_back(std::move(*stream));
  }
  for (int i = 0; i < 50; ++i) {
    std::string out;
    while (true) {
      auto event = streams[i].Next(MonotonicMillis() + 20000);
      ASSERT_TRUE(event) << i << ": " << event.error().ToString();
      if (event->kind == agent::ExecEvent::kExit) {
        EXPECT_EQ(event->exit.exit_code, 0);
        break;
      }
      out += event->output.data;
    }
    EXPECT_EQ(out, std::to_string(i) + "\n");
  }
}

uint64_t RssKiB(pid_t pid) {
  auto status = sys::ReadFile("/proc/" + std::to_string(pid) + "/status");
  if (!status) return 0;
  for (const auto& line : Split(*status, '\n')) {
    if (StartsWith(line, "VmRSS:"))
      return ParseUint64(Split(std::string(Trim(line.substr(6))), ' ')[0]).value_or(0);
  }
  return 0;
}

TEST_F(ExecTest, HundredMebibytesThroughASlowReaderKeepsMemoryBounded) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  constexpr uint64_t kBytes = 100ull << 20;
  auto client = sb->agent();
  auto stream = client.StartExec({.argv = {"sbx-testpayload", "output", std::to_string(kBytes)}});
  ASSERT_TRUE(stream);
  uint64_t received = 0;
  uint64_t max_rss = 0;
  int reads = 0;
  while (true) {
    auto event = stream->Next(MonotonicMillis() + 60000);
    ASSERT_TRUE(event) << event.error().ToString();
    if (event->kind == agent::ExecEvent::kExit) {
      EXPECT_EQ(event->exit.exit_code, 0);
      break;
    }
    received += event->output.data.size();
    // A slow reader: pause now and then, long enough for every buffer on the way to fill.
    if (++reads % 64 == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      max_rss = std::max(max_rss, RssKiB(sb->state.init_pid));
    }
  }
  EXPECT_EQ(received, kBytes);
  // sbx-init holds at most its high-water mark of unsent output plus its own image.
  EXPECT_GT(max_rss, 0u);
  EXPECT_LT(max_rss, 16u * 1024) << "sbx-init RSS grew to " << max_rss << " KiB";
}

TEST_F(ExecTest, EnvironmentAndWorkingDirectory) {
  auto sb = Create([](runtime::RuntimeSpec& s) {
    s.process.env.push_back("BASE=1");
    s.process.cwd = "/work";
  });
  ASSERT_TRUE(sb);
  auto client = sb->agent();
  auto stream =
      client.StartExec({.argv = {"sh", "-c", "echo $BASE $EXTRA; pwd"}, .env = {"EXTRA=2"}});
  ASSERT_TRUE(stream);
  std::string out;
  while (true) {
    auto event = stream->Next(MonotonicMillis() + 10000);
    ASSERT_TRUE(event);
    if (event->kind == agent::ExecEvent::kExit) break;
    out += event->output.data;
  }
  EXPECT_EQ(out, "1 2\n/work\n");
}

}  // namespace
}  // namespace sbx::testing
