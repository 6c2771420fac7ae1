#include "src/sys/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "src/sys/fs.h"

namespace sbx::sys {
namespace {

TEST(ProcessTest, RunCommandCapturesOutputAndExitCode) {
  auto r = RunCommand({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->status.signaled);
  EXPECT_EQ(r->status.exit_code, 3);
}

TEST(ProcessTest, SignalIsReported) {
  auto r = RunCommand({"/bin/sh", "-c", "kill -TERM $$"});
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->status.signaled);
  EXPECT_EQ(r->status.signal, SIGTERM);
  EXPECT_EQ(r->status.ShellCode(), 128 + SIGTERM);
}

TEST(ProcessTest, TimeoutKillsAndReports) {
  auto r = RunCommand({"/bin/sleep", "5"}, {}, 100);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kDeadlineExceeded);
}

TEST(ProcessTest, OnlyListedDescriptorsReachChildren) {
  auto fd = Open("/dev/null", O_RDONLY);
  ASSERT_TRUE(fd);
  int inheritable = dup(fd->get());  // no CLOEXEC: only Spawn's closing keeps it out
  ASSERT_GE(inheritable, 0);
  auto r = RunCommand({"/bin/sh", "-c", "ls /proc/self/fd | wc -l"});
  ASSERT_TRUE(r);
  close(inheritable);
  // 0, 1, 2 and the descriptor ls uses to read the directory.
  EXPECT_EQ(r->out, "4\n");
}

TEST(ProcessTest, EnvironmentIsExplicit) {
  setenv("SBX_SHOULD_NOT_LEAK", "1", 1);
  auto r = RunCommand({"/usr/bin/env"}, {"ONLY=this"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "ONLY=this\n");
}

TEST(ProcessTest, DestructorKillsAndReaps) {
  pid_t pid;
  {
    auto child = Spawn({.argv = {"/bin/sleep", "100"}});
    ASSERT_TRUE(child);
    pid = child->pid();
  }
  EXPECT_NE(kill(pid, 0), 0);
}

TEST(ProcessTest, SpawnMissingBinaryFails) {
  auto child = Spawn({.argv = {"/nonexistent/binary"}});
  EXPECT_FALSE(child);
}

TEST(ProcessTest, ThreadNiceAppliesToTheThreadAndWhatItSpawns) {
  int own_nice = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
  std::string child_nice;
  int thread_nice = 0;
  Status set = Ok();
  std::thread background([&] {
    set = SetThreadNice(kBackgroundNice);
    errno = 0;
    thread_nice = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
    auto r = RunCommand({"/usr/bin/nice"});
    child_nice = r ? r->out : r.error().ToString();
  });
  background.join();
  ASSERT_TRUE(set) << set.error().ToString();
  EXPECT_EQ(thread_nice, kBackgroundNice);
  EXPECT_EQ(child_nice, std::to_string(kBackgroundNice) + "\n");
  // Other threads keep their own value.
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())), own_nice);
}

}  // namespace
}  // namespace sbx::sys
