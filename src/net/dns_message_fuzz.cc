// Fuzzes the DNS parsers with hostile input: queries from sandboxes, answers from upstream.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "src/net/dns_message.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // JUSTIFICATION: the fuzzer's bytes viewed as characters.
  std::string_view packet(reinterpret_cast<const char*>(data), size);
  if (auto q = sbx::net::ParseDnsQuery(packet)) {
    std::string answer = sbx::net::BuildDnsAnswer(*q, 0, {}, 512);
    (void)sbx::net::ParseDnsAnswer(answer);
  }
  if (auto a = sbx::net::ParseDnsAnswer(packet)) {
    for (const auto& r : a->records) (void)sbx::net::DnsNameMatches("*.example.org", r.name);
  }
  return 0;
}
