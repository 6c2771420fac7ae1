#include "src/sys/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "src/sys/socket.h"
#include "src/testing/temp_dir.h"

namespace sbx::sys {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A socket bound to 127.0.0.1:port with SO_REUSEPORT, as a process that wants to share the
// port would make it; listening when `listen_too`. Returns an invalid fd when bind fails.
UniqueFd ReusePortSocket(int port, bool listen_too) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = Loopback(port);
  // JUSTIFICATION: sockaddr_in is the documented argument type of bind(2).
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return UniqueFd();
  if (listen_too && ::listen(fd.get(), 8) != 0) return UniqueFd();
  return fd;
}

UniqueFd Connect(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = Loopback(port);
  // JUSTIFICATION: sockaddr_in is the documented argument type of connect(2).
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return UniqueFd();
  return fd;
}

bool Readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

TEST(ListenTcpTest, NobodyCanShareTheAddressWhileWeListen) {
  auto listener = ListenTcp("127.0.0.1:0");
  ASSERT_TRUE(listener) << listener.error().ToString();
  ASSERT_EQ(listener->fds.size(), 1u);
  int port = listener->port;
  ASSERT_GT(port, 0);
  // SECURITY: without SO_REUSEPORT on our socket, another socket asking for it cannot bind.
  EXPECT_FALSE(ReusePortSocket(port, false));
  auto again = ListenTcp("127.0.0.1:" + std::to_string(port));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kUnavailable) << again.error().ToString();
  EXPECT_EQ(again.error().sys_errno(), EADDRINUSE);
}

TEST(ListenTcpTest, RefusesAnAddressAnotherProcessAlreadySharesOut) {
  auto probe = ListenTcp("127.0.0.1:0");
  ASSERT_TRUE(probe);
  int port = probe->port;
  probe->fds.clear();
  // Someone listens there with SO_REUSEPORT, hoping we would join and split the connections.
  UniqueFd squatter = ReusePortSocket(port, true);
  ASSERT_TRUE(squatter);
  auto listener = ListenTcp("127.0.0.1:" + std::to_string(port));
  ASSERT_FALSE(listener);
  EXPECT_EQ(listener.error().sys_errno(), EADDRINUSE) << listener.error().ToString();
}

TEST(ListenTcpTest, ParsesAddresses) {
  auto wildcard = ListenTcp(":0");
  ASSERT_TRUE(wildcard) << wildcard.error().ToString();
  UniqueFd conn = Connect(wildcard->port);  // IPv4 reaches the dual-stack wildcard
  EXPECT_TRUE(conn);
  auto v6 = ListenTcp("[::1]:0");
  if (!v6) GTEST_SKIP() << "no IPv6 loopback: " << v6.error().ToString();
  EXPECT_GT(v6->port, 0);
  for (const char* bad : {"127.0.0.1", "127.0.0.1:99999", "::1:80", "[::1]80", "127.0.0.1:x"}) {
    auto r = ListenTcp(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << bad;
  }
}

TEST(ListenUnixExclusiveTest, SetsTheModeAndRefusesALiveSocket) {
  sbx::testing::TempDir dir;
  std::string path = dir.Sub("api.sock");
  auto first = ListenUnixExclusive(path, 0660);
  ASSERT_TRUE(first) << first.error().ToString();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  // SECURITY: a second server must not unlink the path from under a live one.
  auto second = ListenUnixExclusive(path, 0660);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().sys_errno(), EADDRINUSE) << second.error().ToString();
  EXPECT_TRUE(ConnectUnix(path));
  // Once the first is gone its socket file is stale and is replaced.
  first->reset();
  auto third = ListenUnixExclusive(path, 0600);
  ASSERT_TRUE(third) << third.error().ToString();
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // Something that is not a socket is never removed.
  std::string file = dir.Sub("file");
  UniqueFd(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  EXPECT_FALSE(ListenUnixExclusive(file, 0600));
  EXPECT_EQ(::stat(file.c_str(), &st), 0);
}

TEST(AcceptorTest, RunningOutOfDescriptorsShedsTheConnectionAndRecovers) {
  auto listener = ListenTcp("127.0.0.1:0");
  ASSERT_TRUE(listener);
  int lfd = listener->fds[0].get();
  Acceptor acceptor;
  auto none = acceptor.Accept(lfd);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().sys_errno(), EAGAIN);

  UniqueFd victim = Connect(listener->port);
  ASSERT_TRUE(victim);
  // Use up every descriptor under a low limit, as a flood of connections would.
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 256;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<UniqueFd> hogs;
  while (true) {
    UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!fd) break;
    hogs.push_back(std::move(fd));
  }
  ASSERT_FALSE(hogs.empty());
  ASSERT_TRUE(Readable(lfd, 5000));
  auto exhausted = acceptor.Accept(lfd);
  ASSERT_FALSE(exhausted);
  EXPECT_EQ(exhausted.error().sys_errno(), EMFILE);
  // The pending connection was accepted and closed, not left in the queue: the client sees
  // the end of its connection, and the listener has nothing pending any more.
  ASSERT_TRUE(Readable(victim.get(), 5000));
  char byte;
  EXPECT_LE(::recv(victim.get(), &byte, 1, 0), 0);
  EXPECT_FALSE(Readable(lfd, 0));
  hogs.clear();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  // With descriptors back, the same listener accepts again.
  UniqueFd client = Connect(listener->port);
  ASSERT_TRUE(client);
  ASSERT_TRUE(Readable(lfd, 5000));
  sockaddr_storage peer{};
  auto conn = acceptor.Accept(lfd, &peer);
  ASSERT_TRUE(conn) << conn.error().ToString();
  EXPECT_EQ(PeerHost(peer), "127.0.0.1");
  EXPECT_NE(fcntl(conn->get(), F_GETFL) & O_NONBLOCK, 0);
}

}  // namespace
}  // namespace sbx::sys
