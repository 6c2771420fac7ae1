#include "src/net/dns_forwarder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "src/base/clock.h"

namespace sbx::net {
namespace {

void U16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

std::string Query(uint16_t id, const std::string& name, uint16_t type) {
  std::string q;
  U16(q, id);
  U16(q, 0x0100);
  U16(q, 1);
  U16(q, 0);
  U16(q, 0);
  U16(q, 0);
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    q += static_cast<char>(dot - start);
    q += name.substr(start, dot - start);
    start = dot + 1;
  }
  q += '\0';
  U16(q, type);
  U16(q, kDnsClassIn);
  return q;
}

// An upstream resolver on loopback answering A queries from a fixed table.
class FakeUpstream {
 public:
  FakeUpstream() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    socklen_t len = sizeof sa;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeUpstream() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  uint16_t port() const { return port_; }
  int queries() const { return queries_; }

 private:
  void Serve() {
    char buf[4096];
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      if (poll(&pfd, 1, 50) <= 0) continue;
      sockaddr_in from{};
      socklen_t len = sizeof from;
      ssize_t n = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n <= 0) continue;
      ++queries_;
      auto q = ParseDnsQuery(std::string_view(buf, static_cast<size_t>(n)));
      if (!q) continue;
      std::vector<DnsRecord> records;
      const std::string& name = q->question.name;
      if (name == "public.test") {
        records.push_back({name, kDnsTypeA, 5, *ParseIpv4("203.0.113.10"), ""});
      } else if (name == "rebind.test") {
        records.push_back({name, kDnsTypeA, 5, *ParseIpv4("10.0.0.1"), ""});
        records.push_back({name, kDnsTypeA, 5, *ParseIpv4("203.0.113.11"), ""});
      } else if (name == "alias.test") {
        records.push_back({name, kDnsTypeCname, 5, 0, "public.test"});
        records.push_back({"public.test", kDnsTypeA, 5, *ParseIpv4("203.0.113.10"), ""});
      }
      std::string answer =
          BuildDnsAnswer(*q, records.empty() ? kDnsNxDomain : kDnsNoError, records, 512);
      sendto(fd_, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
  int fd_;
  uint16_t port_;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

struct Learned {
  uint64_t token;
  std::string name;
  std::vector<Ipv4> addresses;
};

class DnsForwarderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DnsForwarder::Options options;
    options.listen_address = INADDR_LOOPBACK;
    options.listen_port = 0;
    options.upstreams = {{INADDR_LOOPBACK, upstream_.port()}};
    options.upstream_timeout_ms = 1000;
    DnsForwarder::Hooks hooks;
    hooks.decide = [](Ipv4 client, const std::string& name) {
      if (client == *ParseIpv4("10.9.0.2"))
        return DnsForwarder::Decision{DnsForwarder::Verdict::kForward, 1};
      if (client == *ParseIpv4("10.9.0.3")) {
        bool allowed = DnsNameMatches("*.test", name);
        return DnsForwarder::Decision{
            allowed ? DnsForwarder::Verdict::kForward : DnsForwarder::Verdict::kNxDomain, 2};
      }
      return DnsForwarder::Decision{DnsForwarder::Verdict::kRefuse, 0};
    };
    hooks.learn = [this](uint64_t token, const std::string& name,
                         const std::vector<DnsRecord>& records) {
      Learned l{token, name, {}};
      for (const auto& r : records) l.addresses.push_back(r.address);
      learned_.push_back(l);
    };
    std::vector<Ipv4Range> deny;
    for (const auto& p : BuiltinDenyPrefixes()) deny.push_back(ToRange(p));
    hooks.denied = [deny](Ipv4 ip) { return RangesContain(deny, ip); };
    auto f = DnsForwarder::Create(options, hooks);
    ASSERT_TRUE(f) << f.error().ToString();
    forwarder_ = std::move(*f);
  }

  DnsAnswer Ask(const char* client, const std::string& name, uint16_t type = kDnsTypeA) {
    std::string wire = forwarder_->Answer(*ParseIpv4(client), Query(42, name, type), false);
    auto a = ParseDnsAnswer(wire);
    EXPECT_TRUE(a) << (a ? "" : a.error().ToString());
    if (!a) return {};
    EXPECT_EQ(a->id, 42);
    return *a;
  }

  FakeUpstream upstream_;
  std::unique_ptr<DnsForwarder> forwarder_;
  std::vector<Learned> learned_;
};

TEST_F(DnsForwarderTest, ForwardsAndLearns) {
  DnsAnswer a = Ask("10.9.0.3", "alias.test");
  EXPECT_EQ(a.rcode, kDnsNoError);
  ASSERT_EQ(a.records.size(), 2u);
  EXPECT_EQ(a.records[0].type, kDnsTypeCname);
  EXPECT_EQ(a.records[1].address, *ParseIpv4("203.0.113.10"));
  ASSERT_EQ(learned_.size(), 1u);
  EXPECT_EQ(learned_[0].token, 2u);
  EXPECT_EQ(learned_[0].addresses, std::vector<Ipv4>{*ParseIpv4("203.0.113.10")});
}

TEST_F(DnsForwarderTest, RebindingAnswersLoseTheirPrivateAddresses) {
  DnsAnswer a = Ask("10.9.0.3", "rebind.test");
  ASSERT_EQ(a.records.size(), 1u);
  EXPECT_EQ(a.records[0].address, *ParseIpv4("203.0.113.11"));
  ASSERT_EQ(learned_.size(), 1u);
  EXPECT_EQ(learned_[0].addresses, std::vector<Ipv4>{*ParseIpv4("203.0.113.11")});
}

TEST_F(DnsForwarderTest, PolicyAnswersWithoutAskingUpstream) {
  EXPECT_EQ(Ask("10.9.0.3", "pypi.org").rcode, kDnsNxDomain);
  EXPECT_EQ(Ask("10.9.0.99", "public.test").rcode, kDnsRefused);
  DnsAnswer aaaa = Ask("10.9.0.2", "public.test", kDnsTypeAaaa);
  EXPECT_EQ(aaaa.rcode, kDnsNoError);
  EXPECT_TRUE(aaaa.records.empty());
  EXPECT_EQ(upstream_.queries(), 0);
  EXPECT_TRUE(learned_.empty());
}

TEST_F(DnsForwarderTest, MalformedQueriesGetFormErr) {
  std::string bad = Query(5, "x", kDnsTypeA);
  bad[5] = 2;  // two questions
  auto a = ParseDnsAnswer(forwarder_->Answer(*ParseIpv4("10.9.0.2"), bad, false));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->rcode, kDnsFormErr);
  EXPECT_TRUE(forwarder_->Answer(*ParseIpv4("10.9.0.2"), "xx", false).empty());
}

TEST_F(DnsForwarderTest, UpstreamQueriesOfOneSourceAreRateLimited) {
  DnsForwarder::Options options;
  options.listen_address = INADDR_LOOPBACK;
  options.listen_port = 0;
  options.upstreams = {{INADDR_LOOPBACK, upstream_.port()}};
  options.upstream_queries_per_second = 5;  // bursts of 10
  DnsForwarder::Hooks hooks;
  hooks.decide = [](Ipv4, const std::string&) {
    return DnsForwarder::Decision{DnsForwarder::Verdict::kForward, 1};
  };
  hooks.learn = [](uint64_t, const std::string&, const std::vector<DnsRecord>&) {};
  hooks.denied = [](Ipv4) { return false; };
  auto limited = DnsForwarder::Create(options, hooks);
  ASSERT_TRUE(limited) << limited.error().ToString();
  auto ask = [&](const char* client) {
    auto a = ParseDnsAnswer(
        (*limited)->Answer(*ParseIpv4(client), Query(7, "public.test", kDnsTypeA), false));
    EXPECT_TRUE(a);
    return a ? a->rcode : -1;
  };
  int64_t start = MonotonicMillis();
  int refused = 0;
  for (int i = 0; i < 40; ++i) refused += ask("10.9.0.2") == kDnsRefused;
  double seconds = static_cast<double>(MonotonicMillis() - start) / 1000;
  // The burst, and what the rate added while the queries ran; the rest were refused.
  EXPECT_LE(upstream_.queries(), 10 + static_cast<int>(5 * seconds) + 1);
  EXPECT_EQ(upstream_.queries() + refused, 40);
  EXPECT_EQ((*limited)->rate_limited(), static_cast<uint64_t>(refused));
  // Another source has a bucket of its own; answers the forwarder gives itself take nothing.
  EXPECT_EQ(ask("10.9.0.3"), kDnsNoError);
  auto aaaa = ParseDnsAnswer(
      (*limited)->Answer(*ParseIpv4("10.9.0.2"), Query(8, "public.test", kDnsTypeAaaa), false));
  ASSERT_TRUE(aaaa);
  EXPECT_EQ(aaaa->rcode, kDnsNoError);
}

TEST(ResolvConfTest, TakesIpv4Nameservers) {
  auto servers = ResolvConfServers(
      "# comment\nnameserver 10.255.255.53\nnameserver ::1\n"
      "search example.org\nnameserver 1.1.1.1\n");
  ASSERT_EQ(servers.size(), 2u);
  EXPECT_EQ(servers[0].address, *ParseIpv4("10.255.255.53"));
  EXPECT_EQ(servers[1].port, 53);
  auto s = ParseDnsServer("203.0.113.10:5353");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->port, 5353);
  EXPECT_FALSE(ParseDnsServer("203.0.113.10:0"));
}

}  // namespace
}  // namespace sbx::net
