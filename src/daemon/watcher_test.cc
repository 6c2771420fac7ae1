#include "src/daemon/watcher.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

using Kind = WatchEvent::Kind;

struct Pair {
  UniqueFd ours;
  UniqueFd theirs;
};

Pair SocketPair() {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

class WatcherTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(watcher_.Open()); }
  std::atomic<int64_t> now_{1000};
  Watcher watcher_{[this] { return now_.load(); }};
};

TEST_F(WatcherTest, AMainExitIsReportedOnceWhenItsConnectionSpeaksOrDrops) {
  Pair a = SocketPair();
  Pair b = SocketPair();
  ASSERT_TRUE(watcher_.WatchMain("a", std::move(a.ours)));
  ASSERT_TRUE(watcher_.WatchMain("b", std::move(b.ours)));
  EXPECT_TRUE(watcher_.Wait(0).empty());
  ASSERT_EQ(write(a.theirs.get(), "x", 1), 1);  // sbx-init answers WaitMain
  EXPECT_EQ(watcher_.Wait(1000), (std::vector<WatchEvent>{{Kind::kMainExited, "a"}}));
  EXPECT_TRUE(watcher_.Wait(0).empty());  // once
  b.theirs.reset();                       // sbx-init died
  EXPECT_EQ(watcher_.Wait(1000), (std::vector<WatchEvent>{{Kind::kMainExited, "b"}}));
}

TEST_F(WatcherTest, AnUnwatchedOrReplacedConnectionReportsNothing) {
  Pair a = SocketPair();
  ASSERT_TRUE(watcher_.WatchMain("a", std::move(a.ours)));
  watcher_.UnwatchMain("a");
  a.theirs.reset();
  EXPECT_TRUE(watcher_.Wait(0).empty());
  Pair first = SocketPair();
  Pair second = SocketPair();
  ASSERT_TRUE(watcher_.WatchMain("c", std::move(first.ours)));
  ASSERT_TRUE(watcher_.WatchMain("c", std::move(second.ours)));
  first.theirs.reset();
  EXPECT_TRUE(watcher_.Wait(0).empty());
  second.theirs.reset();
  EXPECT_EQ(watcher_.Wait(1000), (std::vector<WatchEvent>{{Kind::kMainExited, "c"}}));
}

TEST_F(WatcherTest, LifetimesAndRetentionFireWhenTheClockPassesThem) {
  watcher_.SetLifetime("a", 2000);
  watcher_.SetRetention("old", 3000);
  watcher_.SetLifetime("never", 0);
  EXPECT_TRUE(watcher_.Wait(0).empty());
  now_ = 2000;
  EXPECT_EQ(watcher_.Wait(0), (std::vector<WatchEvent>{{Kind::kLifetimeReached, "a"}}));
  EXPECT_TRUE(watcher_.Wait(0).empty());
  now_ = 5000;
  EXPECT_EQ(watcher_.Wait(0), (std::vector<WatchEvent>{{Kind::kRetentionOver, "old"}}));
}

TEST_F(WatcherTest, KeptFilesExpireBeforeTheRecord) {
  watcher_.SetFilesDeadline("ended", 2000);
  watcher_.SetRetention("ended", 4000);
  now_ = 2500;
  EXPECT_EQ(watcher_.Wait(0), (std::vector<WatchEvent>{{Kind::kFilesExpired, "ended"}}));
  now_ = 4000;
  EXPECT_EQ(watcher_.Wait(0), (std::vector<WatchEvent>{{Kind::kRetentionOver, "ended"}}));
}

TEST_F(WatcherTest, ForgetDropsEverythingAboutASandbox) {
  Pair a = SocketPair();
  ASSERT_TRUE(watcher_.WatchMain("a", std::move(a.ours)));
  watcher_.SetLifetime("a", 2000);
  watcher_.SetRetention("a", 2000);
  watcher_.SetFilesDeadline("a", 2000);
  watcher_.Forget("a");
  now_ = 10000;
  a.theirs.reset();
  EXPECT_TRUE(watcher_.Wait(0).empty());
}

TEST_F(WatcherTest, WakeEndsAWaitWithoutATimeout) {
  watcher_.Wake();
  EXPECT_TRUE(watcher_.Wait(-1).empty());  // would block for ever without the wake
}

}  // namespace
}  // namespace sbx::daemon
