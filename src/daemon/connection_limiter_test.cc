#include "src/daemon/connection_limiter.h"

#include <set>

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

// Descriptors the fake "gRPC" still holds, as (fd, identity).
struct OpenSet {
  std::set<std::pair<int, uint64_t>> open;
  ConnectionLimiter::StillOpen Probe() {
    return [this](int fd, uint64_t id) { return open.count({fd, id}) > 0; };
  }
};

TEST(ConnectionLimiterTest, RemoteConnectionsStopAtTheTotalAndPerHostLimits) {
  OpenSet fds;
  ConnectionLimiter limiter({.local = 10, .remote = 4, .per_host = 2}, fds.Probe());
  int next_fd = 10;
  auto connect = [&](ConnectionKind kind, const std::string& host) {
    int fd = next_fd++;
    uint64_t id = 1000 + static_cast<uint64_t>(fd);
    bool ok = limiter.Admit(kind, host, fd, id);
    if (ok) fds.open.insert({fd, id});
    return ok;
  };
  EXPECT_TRUE(connect(ConnectionKind::kRemote, "10.0.0.1"));
  EXPECT_TRUE(connect(ConnectionKind::kRemote, "10.0.0.1"));
  EXPECT_FALSE(connect(ConnectionKind::kRemote, "10.0.0.1"));  // per host
  EXPECT_TRUE(connect(ConnectionKind::kRemote, "10.0.0.2"));
  EXPECT_TRUE(connect(ConnectionKind::kRemote, "10.0.0.3"));
  EXPECT_FALSE(connect(ConnectionKind::kRemote, "10.0.0.4"));  // total
  // The unix socket has a limit of its own: remote connections never take its room.
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(connect(ConnectionKind::kLocal, "unix")) << i;
  EXPECT_FALSE(connect(ConnectionKind::kLocal, "unix"));
  ConnectionCounts counts = limiter.Counts();
  EXPECT_EQ(counts.remote, 4u);
  EXPECT_EQ(counts.local, 10u);
  EXPECT_EQ(counts.refused_remote, 2u);
  EXPECT_EQ(counts.refused_local, 1u);
}

TEST(ConnectionLimiterTest, ClosedConnectionsMakeRoomWhenTheLimitIsReached) {
  OpenSet fds;
  ConnectionLimiter limiter({.local = 1, .remote = 2, .per_host = 2}, fds.Probe());
  fds.open = {{5, 50}, {6, 60}};
  ASSERT_TRUE(limiter.Admit(ConnectionKind::kRemote, "h", 5, 50));
  ASSERT_TRUE(limiter.Admit(ConnectionKind::kRemote, "h", 6, 60));
  EXPECT_FALSE(limiter.Admit(ConnectionKind::kRemote, "h", 7, 70));
  // gRPC closed one: the next admission notices.
  fds.open.erase({5, 50});
  fds.open.insert({7, 70});
  EXPECT_TRUE(limiter.Admit(ConnectionKind::kRemote, "h", 7, 70));
  EXPECT_EQ(limiter.Counts().remote, 2u);
  // Sweep forgets closed ones even when nobody is waiting.
  fds.open.clear();
  limiter.Sweep();
  EXPECT_EQ(limiter.Counts().remote, 0u);
}

TEST(ConnectionLimiterTest, ADescriptorNumberReusedByANewSocketIsANewConnection) {
  OpenSet fds;
  ConnectionLimiter limiter({.local = 1, .remote = 1, .per_host = 1}, fds.Probe());
  fds.open = {{5, 50}};
  ASSERT_TRUE(limiter.Admit(ConnectionKind::kRemote, "a", 5, 50));
  // Descriptor 5 was closed and the kernel handed the number to the next connection, whose
  // socket differs: the old one is gone, whatever the probe would say about number 5.
  fds.open = {{5, 51}};
  EXPECT_TRUE(limiter.Admit(ConnectionKind::kRemote, "b", 5, 51));
  EXPECT_EQ(limiter.Counts().remote, 1u);
  // A socket that is still open under its number keeps counting.
  EXPECT_FALSE(limiter.Admit(ConnectionKind::kRemote, "c", 6, 60));
}

}  // namespace
}  // namespace sbx::daemon
