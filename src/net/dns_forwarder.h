// File: dns_forwarder.h
//
// The sandboxes' DNS server: it listens (UDP and TCP) on the bridge's gateway address, asks a
// policy what each query may get, forwards allowed ones to the upstream resolvers, and answers
// itself otherwise. The policy identifies the sandbox by the query's source address, which the
// bridge's anti-spoofing rules make trustworthy.
//
//   * Unknown source: REFUSED. Name not allowed: NXDOMAIN. AAAA: an empty answer (sandboxes
//     have no IPv6), so resolvers move on to A at once.
//   * A queries are answered from the upstream's A and CNAME records, rebuilt by us; addresses in
//     the deny set are dropped from the answer (a rebinding answer resolves to nothing), and the
//     remaining ones are reported to `learn` before the answer is sent, so an allowlisted
//     sandbox can connect to what it was just told.
//   * Other types are passed through when the name is allowed.
//   * A query that would go upstream beyond the source's rate (a token bucket per source) is
//     REFUSED: each upstream query takes a socket, and a conntrack entry, of the host's, which no
//     limit of the sandbox's own flows counts, and the upstream resolvers are the host's too.
//
// Bounded everywhere: a fixed set of worker threads, a bounded queue with a per-source share,
// TCP connections capped in number, queries per connection and time, upstream queries per source
// and second.

#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/net/dns_message.h"
#include "src/net/ipv4.h"

namespace sbx::net {

struct DnsServer {
  Ipv4 address = 0;
  uint16_t port = 53;
};

// "1.1.1.1" or "1.1.1.1:5353".
Result<DnsServer> ParseDnsServer(std::string_view text);
// The IPv4 nameservers of a resolv.conf.
std::vector<DnsServer> ResolvConfServers(std::string_view resolv_conf);

class DnsForwarder {
 public:
  enum class Verdict { kRefuse, kNxDomain, kForward };
  struct Decision {
    Verdict verdict = Verdict::kRefuse;
    uint64_t token = 0;  // handed back to `learn`
  };
  struct Hooks {
    // What `client` may get for `name`.
    std::function<Decision(Ipv4 client, const std::string& name)> decide;
    // The addresses (with their TTLs) an A query for `name` resolved to, before the answer goes
    // out.
    std::function<void(uint64_t token, const std::string& name,
                       const std::vector<DnsRecord>& addresses)>
        learn;
    // Addresses no answer may contain.
    std::function<bool(Ipv4 address)> denied;
  };
  struct Options {
    Ipv4 listen_address = 0;
    uint16_t listen_port = 53;
    std::vector<DnsServer> upstreams;
    int workers = 8;
    int upstream_timeout_ms = 2000;
    int upstream_queries_per_second = 100;  // per source; bursts of twice as many
  };

  // Binds the sockets now (so a port conflict fails the daemon's start); Start() serves.
  static Result<std::unique_ptr<DnsForwarder>> Create(Options options, Hooks hooks);
  ~DnsForwarder();
  void Start();
  void Stop();

  // The answer to one query from `client` (empty: send nothing); exposed for tests.
  std::string Answer(Ipv4 client, std::string_view packet, bool over_tcp);
  // Queries refused because their source was over its rate, since the start.
  uint64_t rate_limited() const { return rate_limited_; }

 private:
  DnsForwarder(Options options, Hooks hooks)
      : options_(std::move(options)), hooks_(std::move(hooks)) {}
  void ReceiveLoop();
  void WorkerLoop();
  void ServeTcp(int conn, Ipv4 client);
  // Takes one upstream query from `client`'s bucket; false when it is empty.
  bool TakeUpstreamToken(Ipv4 client);
  Result<std::string> Exchange(const std::string& query, const DnsQuestion& question);
  Result<std::string> ExchangeUdp(const DnsServer& server, const std::string& query,
                                  const DnsQuestion& question);
  Result<std::string> ExchangeTcp(const DnsServer& server, const std::string& query,
                                  const DnsQuestion& question);

  Options options_;
  Hooks hooks_;
  UniqueFd udp_;
  UniqueFd tcp_;
  UniqueFd wake_;
  std::atomic<bool> stopping_{false};
  std::thread receiver_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  struct Pending {
    Ipv4 client = 0;
    uint16_t client_port = 0;
    std::string packet;
    UniqueFd tcp;  // a TCP connection to serve instead of a datagram
  };
  std::deque<Pending> queue_;
  std::map<Ipv4, int> queued_per_client_;
  std::map<Ipv4, int> tcp_per_client_;
  int tcp_connections_ = 0;
  struct Bucket {
    double tokens = 0;
    int64_t last_ms = 0;
  };
  std::mutex buckets_mu_;
  std::map<Ipv4, Bucket> buckets_;
  std::atomic<uint64_t> rate_limited_{0};
};

}  // namespace sbx::net
