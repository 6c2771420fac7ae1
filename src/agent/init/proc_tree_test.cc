#include "src/agent/init/proc_tree.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "src/sys/process.h"

namespace sbx::agent {
namespace {

TEST(ProcTreeTest, ParsesCommWithSpacesAndParens) {
  ProcStat st;
  ASSERT_TRUE(ParseProcStat("123 (a (b) c) S 1 123 123 0 -1", &st));
  EXPECT_EQ(st.pid, 123);
  EXPECT_EQ(st.ppid, 1);
  EXPECT_EQ(st.pgrp, 123);
  EXPECT_EQ(st.session, 123);
  EXPECT_EQ(st.state, 'S');
  EXPECT_FALSE(ParseProcStat("garbage", &st));
}

TEST(ProcTreeTest, KillsDescendantsThatLeftTheProcessGroup) {
  // A new session whose child moves to its own process group; both must die. The test reaps the
  // orphans itself, as sbx-init (PID 1) does in a sandbox.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  auto child = sys::Spawn({.argv = {"/bin/sh", "-c", "setsid sleep 100 & sleep 100"},
                           .env = {"PATH=/usr/bin:/bin"},
                           .new_session = true});
  ASSERT_TRUE(child);
  pid_t pid = child->pid();
  // Wait until the grandchild exists.
  for (int i = 0; i < 200; ++i) {
    auto r = sys::RunCommand({"/usr/bin/pgrep", "-P", std::to_string(pid)});
    if (r && !r->out.empty()) break;
    usleep(10000);
  }
  auto r = sys::RunCommand({"/usr/bin/pgrep", "-P", std::to_string(pid)});
  ASSERT_TRUE(r);
  ASSERT_FALSE(r->out.empty());
  pid_t grandchild = std::stoi(r->out);
  EXPECT_GE(KillTree(pid, SIGKILL), 2);
  auto status = child->Wait(5000);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->signaled);
  // The grandchildren were reparented to us; reaping them proves they died of the signal.
  int reaped = 0;
  int wstatus = 0;
  pid_t got;
  while ((got = waitpid(-1, &wstatus, 0)) > 0) {
    EXPECT_TRUE(WIFSIGNALED(wstatus)) << got;
    ++reaped;
  }
  EXPECT_GE(reaped, 1);
  EXPECT_NE(kill(grandchild, 0), 0);
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

}  // namespace
}  // namespace sbx::agent
