#include "src/net/dns_forwarder.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "src/base/clock.h"
#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/sys/listener.h"

namespace sbx::net {

namespace {

constexpr size_t kMaxQueue = 1024;
constexpr int kMaxQueuedPerClient = 64;
constexpr int kMaxTcpConnections = 4;
constexpr int kMaxTcpPerClient = 2;
constexpr int kTcpConnectionMs = 10000;
constexpr int kMaxQueriesPerTcpConnection = 8;
constexpr size_t kMaxUdpAnswer = 1232;  // the DNS flag day's safe EDNS size
// Buckets of sources that have been quiet this long are forgotten once there are many.
constexpr size_t kMaxIdleBuckets = 4096;
constexpr int64_t kBucketIdleMs = 60000;

sockaddr_in SockAddr(Ipv4 address, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(address);
  sa.sin_port = htons(port);
  return sa;
}

// JUSTIFICATION: the socket API takes every address family through `sockaddr*`.
sockaddr* Generic(sockaddr_in* sa) { return reinterpret_cast<sockaddr*>(sa); }

uint16_t RandomId() {
  uint16_t id = 0;
  if (getrandom(&id, sizeof id, 0) != sizeof id) id = static_cast<uint16_t>(MonotonicNanos());
  return id;
}

Result<UniqueFd> BoundSocket(int type, Ipv4 address, uint16_t port) {
  UniqueFd fd(socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::Errno("socket");
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa = SockAddr(address, port);
  if (bind(fd.get(), Generic(&sa), sizeof sa) != 0) {
    return Error::Errno("bind " + FormatIpv4(address) + ":" + std::to_string(port));
  }
  return fd;
}

// Reads exactly `n` bytes before `deadline_ms`.
Status ReadFull(int fd, char* out, size_t n, int64_t deadline_ms) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, out + got, n - got, 0);
    if (r > 0) {
      got += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return Error::Unavailable("connection closed");
    if (errno != EAGAIN && errno != EINTR) return Error::Errno("recv");
    pollfd pfd{fd, POLLIN, 0};
    int timeout = PollTimeout(deadline_ms);
    if (timeout == 0 || poll(&pfd, 1, timeout) == 0) return Error::DeadlineExceeded("read");
  }
  return Ok();
}

Status WriteFull(int fd, std::string_view data, int64_t deadline_ms) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t r = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (r > 0) {
      sent += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno != EAGAIN && errno != EINTR) return Error::Errno("send");
    pollfd pfd{fd, POLLOUT, 0};
    int timeout = PollTimeout(deadline_ms);
    if (timeout == 0 || poll(&pfd, 1, timeout) == 0) return Error::DeadlineExceeded("write");
  }
  return Ok();
}

std::string LengthPrefixed(std::string_view message) {
  std::string out;
  out += static_cast<char>(message.size() >> 8);
  out += static_cast<char>(message.size() & 0xff);
  out += message;
  return out;
}

// Reads one length-prefixed DNS message.
Result<std::string> ReadTcpMessage(int fd, int64_t deadline_ms) {
  char len[2];
  SBX_TRY(ReadFull(fd, len, 2, deadline_ms));
  size_t n =
      (static_cast<size_t>(static_cast<uint8_t>(len[0])) << 8) | static_cast<uint8_t>(len[1]);
  if (n < 12) return Error::InvalidArgument("DNS message too short");
  std::string message(n, '\0');
  SBX_TRY(ReadFull(fd, message.data(), n, deadline_ms));
  return message;
}

bool SameQuestion(const DnsAnswer& answer, const DnsQuestion& question) {
  return answer.questions.size() == 1 && answer.questions[0] == question;
}

}  // namespace

Result<DnsServer> ParseDnsServer(std::string_view text) {
  DnsServer server;
  size_t colon = text.find(':');
  SBX_ASSIGN_OR_RETURN(server.address, ParseIpv4(text.substr(0, colon)));
  if (colon != std::string_view::npos) {
    auto port = ParseUint64(text.substr(colon + 1));
    if (!port || *port == 0 || *port > 65535) {
      return Error::InvalidArgument("bad DNS server port in " + Quote(text));
    }
    server.port = static_cast<uint16_t>(*port);
  }
  return server;
}

std::vector<DnsServer> ResolvConfServers(std::string_view resolv_conf) {
  std::vector<DnsServer> out;
  for (const auto& raw : Split(resolv_conf, '\n')) {
    std::string_view line = Trim(raw);
    if (!StartsWith(line, "nameserver")) continue;
    std::string_view rest = Trim(line.substr(10));
    if (auto ip = ParseIpv4(rest)) out.push_back({*ip, 53});
  }
  return out;
}

Result<std::unique_ptr<DnsForwarder>> DnsForwarder::Create(Options options, Hooks hooks) {
  if (options.upstreams.empty()) {
    return Error::InvalidArgument("no upstream DNS server (none in the host's resolv.conf?)");
  }
  std::unique_ptr<DnsForwarder> f(new DnsForwarder(std::move(options), std::move(hooks)));
  std::string where =
      FormatIpv4(f->options_.listen_address) + ":" + std::to_string(f->options_.listen_port);
  SBX_ASSIGN_OR_RETURN_CTX(
      f->udp_, BoundSocket(SOCK_DGRAM, f->options_.listen_address, f->options_.listen_port),
      "DNS forwarder on " + where);
  SBX_ASSIGN_OR_RETURN_CTX(
      f->tcp_, BoundSocket(SOCK_STREAM, f->options_.listen_address, f->options_.listen_port),
      "DNS forwarder on " + where);
  if (listen(f->tcp_.get(), 64) != 0) return Error::Errno("listen on " + where);
  f->wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!f->wake_) return Error::Errno("eventfd");
  return f;
}

DnsForwarder::~DnsForwarder() { Stop(); }

void DnsForwarder::Start() {
  receiver_ = std::thread([this] { ReceiveLoop(); });
  for (int i = 0; i < options_.workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

void DnsForwarder::Stop() {
  if (stopping_.exchange(true)) return;
  uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof one);
  cv_.notify_all();
  if (receiver_.joinable()) receiver_.join();
  for (auto& w : workers_) w.join();
  workers_.clear();
}

void DnsForwarder::ReceiveLoop() {
  std::string buf(65536, '\0');
  sys::Acceptor acceptor;
  int64_t tcp_paused_until = 0;  // out of descriptors: the TCP listener rests instead of spinning
  while (!stopping_) {
    int64_t pause_left = tcp_paused_until - MonotonicMillis();
    int tcp = pause_left > 0 ? -1 : tcp_.get();
    pollfd pfds[3] = {{udp_.get(), POLLIN, 0}, {tcp, POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (poll(pfds, 3, pause_left > 0 ? static_cast<int>(pause_left) : -1) < 0 && errno != EINTR) {
      SBX_LOG_ERROR("dns forwarder: poll: {}", strerror(errno));
      return;
    }
    if (stopping_) return;
    if (pfds[0].revents & POLLIN) {
      while (true) {
        sockaddr_in from{};
        socklen_t from_len = sizeof from;
        ssize_t n = recvfrom(udp_.get(), buf.data(), buf.size(), 0, Generic(&from), &from_len);
        if (n < 0) break;
        Ipv4 client = ntohl(from.sin_addr.s_addr);
        std::lock_guard lock(mu_);
        int& queued = queued_per_client_[client];
        // A flood from one sandbox drops its own queries, not the others'.
        if (queue_.size() >= kMaxQueue || queued >= kMaxQueuedPerClient) continue;
        ++queued;
        Pending p;
        p.client = client;
        p.client_port = ntohs(from.sin_port);
        p.packet.assign(buf.data(), static_cast<size_t>(n));
        queue_.push_back(std::move(p));
        cv_.notify_one();
      }
    }
    if (pfds[1].revents & POLLIN) {
      while (true) {
        sockaddr_storage peer{};
        auto accepted = acceptor.Accept(tcp_.get(), &peer);
        if (!accepted) {
          int err = accepted.error().sys_errno();
          if (err == EMFILE || err == ENFILE) tcp_paused_until = MonotonicMillis() + 100;
          break;
        }
        UniqueFd conn = std::move(*accepted);
        sockaddr_in from{};
        memcpy(&from, &peer, sizeof from);
        Ipv4 client = ntohl(from.sin_addr.s_addr);
        std::lock_guard lock(mu_);
        if (tcp_connections_ >= kMaxTcpConnections || tcp_per_client_[client] >= kMaxTcpPerClient) {
          continue;  // closed: the client retries
        }
        ++tcp_connections_;
        ++tcp_per_client_[client];
        Pending p;
        p.client = client;
        p.tcp = std::move(conn);
        queue_.push_back(std::move(p));
        cv_.notify_one();
      }
    }
  }
}

void DnsForwarder::WorkerLoop() {
  while (true) {
    Pending job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      if (!job.tcp) {
        if (--queued_per_client_[job.client] <= 0) queued_per_client_.erase(job.client);
      }
    }
    if (job.tcp) {
      ServeTcp(job.tcp.get(), job.client);
      std::lock_guard lock(mu_);
      --tcp_connections_;
      if (--tcp_per_client_[job.client] <= 0) tcp_per_client_.erase(job.client);
      continue;
    }
    std::string answer = Answer(job.client, job.packet, false);
    if (answer.empty()) continue;
    sockaddr_in to = SockAddr(job.client, job.client_port);
    (void)sendto(udp_.get(), answer.data(), answer.size(), 0, Generic(&to), sizeof to);
  }
}

void DnsForwarder::ServeTcp(int conn, Ipv4 client) {
  int64_t deadline = MonotonicMillis() + kTcpConnectionMs;
  for (int i = 0; i < kMaxQueriesPerTcpConnection && !stopping_; ++i) {
    auto query = ReadTcpMessage(conn, deadline);
    if (!query) return;
    std::string answer = Answer(client, *query, true);
    if (answer.empty() || !WriteFull(conn, LengthPrefixed(answer), deadline)) return;
  }
}

std::string DnsForwarder::Answer(Ipv4 client, std::string_view packet, bool over_tcp) {
  auto query = ParseDnsQuery(packet);
  if (!query) {
    auto id = DnsMessageId(packet);
    if (!id) return {};
    return BuildDnsError(*id,
                         query.error().code() == Code::kUnimplemented ? kDnsNotImp : kDnsFormErr);
  }
  size_t max_size = over_tcp ? 65535 : std::min<size_t>(query->udp_size, kMaxUdpAnswer);
  if (query->question.klass != kDnsClassIn)
    return BuildDnsAnswer(*query, kDnsRefused, {}, max_size);
  Decision decision = hooks_.decide(client, query->question.name);
  if (decision.verdict == Verdict::kRefuse)
    return BuildDnsAnswer(*query, kDnsRefused, {}, max_size);
  if (decision.verdict == Verdict::kNxDomain) {
    return BuildDnsAnswer(*query, kDnsNxDomain, {}, max_size);
  }
  if (query->question.type == kDnsTypeAaaa)
    return BuildDnsAnswer(*query, kDnsNoError, {}, max_size);
  if (!TakeUpstreamToken(client)) {
    ++rate_limited_;
    return BuildDnsAnswer(*query, kDnsRefused, {}, max_size);
  }
  auto upstream = Exchange(std::string(packet), query->question);
  if (!upstream) {
    SBX_LOG_DEBUG("dns: {} for {}: {}", query->question.name, FormatIpv4(client),
                  upstream.error().message());
    return BuildDnsAnswer(*query, kDnsServFail, {}, max_size);
  }
  if (query->question.type != kDnsTypeA) {
    if (upstream->size() > max_size) {
      // Too big to pass through: an empty truncated answer sends the client to TCP.
      std::string tc = BuildDnsAnswer(*query, kDnsNoError, {}, max_size);
      tc[2] = static_cast<char>(tc[2] | 0x02);
      return tc;
    }
    return WithDnsId(std::move(*upstream), query->id);
  }
  auto parsed = ParseDnsAnswer(*upstream);
  if (!parsed) return BuildDnsAnswer(*query, kDnsServFail, {}, max_size);
  std::vector<DnsRecord> records;
  std::vector<DnsRecord> addresses;
  for (auto& r : parsed->records) {
    // SECURITY: a rebinding answer (a public name resolving to a private address) resolves to
    // nothing here, and never reaches an allowlist.
    if (r.type == kDnsTypeA && hooks_.denied(r.address)) continue;
    if (r.type == kDnsTypeA) addresses.push_back(r);
    records.push_back(std::move(r));
  }
  if (!addresses.empty()) hooks_.learn(decision.token, query->question.name, addresses);
  return BuildDnsAnswer(*query, parsed->rcode, records, max_size);
}

bool DnsForwarder::TakeUpstreamToken(Ipv4 client) {
  const double rate = options_.upstream_queries_per_second;
  const double burst = 2 * rate;
  int64_t now = MonotonicMillis();
  std::lock_guard lock(buckets_mu_);
  if (buckets_.size() > kMaxIdleBuckets) {
    std::erase_if(buckets_,
                  [now](const auto& b) { return now - b.second.last_ms > kBucketIdleMs; });
  }
  auto [it, fresh] = buckets_.try_emplace(client, Bucket{burst, now});
  Bucket& b = it->second;
  if (!fresh) {
    b.tokens = std::min(burst, b.tokens + static_cast<double>(now - b.last_ms) * rate / 1000);
    b.last_ms = now;
  }
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

Result<std::string> DnsForwarder::Exchange(const std::string& query, const DnsQuestion& question) {
  Error last = Error::Unavailable("no upstream DNS server answered");
  for (int attempt = 0; attempt < 2; ++attempt) {
    for (const auto& server : options_.upstreams) {
      auto answer = ExchangeUdp(server, query, question);
      if (!answer) {
        last = std::move(answer).error();
        continue;
      }
      if (question.type == kDnsTypeA) {
        auto parsed = ParseDnsAnswer(*answer);
        if (parsed && parsed->truncated) {
          auto full = ExchangeTcp(server, query, question);
          if (full) return full;
        }
      }
      return answer;
    }
  }
  return last;
}

Result<std::string> DnsForwarder::ExchangeUdp(const DnsServer& server, const std::string& query,
                                              const DnsQuestion& question) {
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::Errno("socket");
  sockaddr_in to = SockAddr(server.address, server.port);
  if (connect(fd.get(), Generic(&to), sizeof to) != 0) return Error::Errno("connect upstream");
  uint16_t id = RandomId();
  std::string message = WithDnsId(query, id);
  if (send(fd.get(), message.data(), message.size(), 0) < 0) return Error::Errno("send upstream");
  int64_t deadline = MonotonicMillis() + options_.upstream_timeout_ms;
  std::string buf(65536, '\0');
  while (true) {
    pollfd pfd{fd.get(), POLLIN, 0};
    int timeout = PollTimeout(deadline);
    if (timeout == 0 || poll(&pfd, 1, timeout) == 0) {
      return Error::DeadlineExceeded("upstream " + FormatIpv4(server.address) + " timed out");
    }
    ssize_t n = recv(fd.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return Error::Errno("recv from upstream");
    }
    std::string_view reply(buf.data(), static_cast<size_t>(n));
    auto parsed = ParseDnsAnswer(reply);
    // Anything but the answer to our question (a spoofed or stale datagram) is ignored.
    if (!parsed || parsed->id != id || !SameQuestion(*parsed, question)) continue;
    return std::string(reply);
  }
}

Result<std::string> DnsForwarder::ExchangeTcp(const DnsServer& server, const std::string& query,
                                              const DnsQuestion& question) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::Errno("socket");
  int64_t deadline = MonotonicMillis() + options_.upstream_timeout_ms;
  sockaddr_in to = SockAddr(server.address, server.port);
  if (connect(fd.get(), Generic(&to), sizeof to) != 0 && errno != EINPROGRESS) {
    return Error::Errno("connect upstream");
  }
  uint16_t id = RandomId();
  SBX_TRY(WriteFull(fd.get(), LengthPrefixed(WithDnsId(query, id)), deadline));
  SBX_ASSIGN_OR_RETURN(std::string reply, ReadTcpMessage(fd.get(), deadline));
  auto parsed = ParseDnsAnswer(reply);
  if (!parsed || parsed->id != id || !SameQuestion(*parsed, question)) {
    return Error::Unavailable("unexpected answer from upstream over TCP");
  }
  return reply;
}

}  // namespace sbx::net
