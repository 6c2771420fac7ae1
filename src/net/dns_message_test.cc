#include "src/net/dns_message.h"

#include <gtest/gtest.h>

namespace sbx::net {
namespace {

void U16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

std::string Name(const std::string& dotted) {
  std::string out;
  size_t start = 0;
  while (start < dotted.size()) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    out += static_cast<char>(dot - start);
    out += dotted.substr(start, dot - start);
    start = dot + 1;
  }
  return out + '\0';
}

std::string Query(uint16_t id, const std::string& name, uint16_t type, bool edns = false) {
  std::string q;
  U16(q, id);
  U16(q, 0x0100);
  U16(q, 1);
  U16(q, 0);
  U16(q, 0);
  U16(q, edns ? 1 : 0);
  q += Name(name);
  U16(q, type);
  U16(q, kDnsClassIn);
  if (edns) {
    q += '\0';
    U16(q, kDnsTypeOpt);
    U16(q, 4096);
    U16(q, 0);
    U16(q, 0);
    U16(q, 0);
  }
  return q;
}

TEST(DnsMessageTest, ParsesAQuery) {
  auto q = ParseDnsQuery(Query(0x1234, "Files.PythonHosted.org", kDnsTypeA, true));
  ASSERT_TRUE(q) << q.error().ToString();
  EXPECT_EQ(q->id, 0x1234);
  EXPECT_TRUE(q->recursion_desired);
  EXPECT_EQ(q->question.name, "files.pythonhosted.org");
  EXPECT_EQ(q->question.type, kDnsTypeA);
  EXPECT_EQ(q->udp_size, 4096);
}

TEST(DnsMessageTest, RefusesOddQueries) {
  std::string response = Query(1, "a.b", kDnsTypeA);
  response[2] = static_cast<char>(response[2] | 0x80);
  EXPECT_FALSE(ParseDnsQuery(response));
  EXPECT_FALSE(ParseDnsQuery("short"));
  std::string dotted = Query(1, "x", kDnsTypeA);
  dotted[13] = '.';  // a label holding a dot would read as two labels
  EXPECT_FALSE(ParseDnsQuery(dotted));
  std::string looping = Query(1, "", kDnsTypeA);
  looping[12] = static_cast<char>(0xc0);  // a pointer to itself
  looping.insert(13, 1, static_cast<char>(12));
  EXPECT_FALSE(ParseDnsQuery(looping));
}

TEST(DnsMessageTest, BuildsAnswersThatParseBack) {
  auto q = ParseDnsQuery(Query(7, "pypi.org", kDnsTypeA));
  ASSERT_TRUE(q);
  std::vector<DnsRecord> records = {
      {"pypi.org", kDnsTypeCname, 60, 0, "dualstack.pypi.map.example"},
      {"dualstack.pypi.map.example", kDnsTypeA, 30, *ParseIpv4("151.101.0.223"), ""},
  };
  std::string wire = BuildDnsAnswer(*q, kDnsNoError, records, 512);
  auto a = ParseDnsAnswer(wire);
  ASSERT_TRUE(a) << a.error().ToString();
  EXPECT_EQ(a->id, 7);
  EXPECT_EQ(a->rcode, kDnsNoError);
  EXPECT_FALSE(a->truncated);
  ASSERT_EQ(a->questions.size(), 1u);
  EXPECT_EQ(a->questions[0].name, "pypi.org");
  ASSERT_EQ(a->records.size(), 2u);
  EXPECT_EQ(a->records[0].target, "dualstack.pypi.map.example");
  EXPECT_EQ(a->records[1].address, *ParseIpv4("151.101.0.223"));
  EXPECT_EQ(a->records[1].ttl, 30u);
  // Records that do not fit are left out and the answer is marked truncated.
  std::string small = BuildDnsAnswer(*q, kDnsNoError, records, 60);
  auto t = ParseDnsAnswer(small);
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->truncated);
  EXPECT_LT(t->records.size(), 2u);
}

TEST(DnsMessageTest, ErrorsAndIds) {
  auto e = ParseDnsAnswer(BuildDnsError(99, kDnsFormErr));
  ASSERT_TRUE(e);
  EXPECT_EQ(e->id, 99);
  EXPECT_EQ(e->rcode, kDnsFormErr);
  EXPECT_EQ(*DnsMessageId(WithDnsId(Query(1, "a", kDnsTypeA), 0xbeef)), 0xbeef);
}

TEST(DnsMessageTest, NameMatching) {
  EXPECT_TRUE(DnsNameMatches("pypi.org", "PyPI.org."));
  EXPECT_FALSE(DnsNameMatches("pypi.org", "files.pypi.org"));
  EXPECT_TRUE(DnsNameMatches("*.pypi.org", "files.pypi.org"));
  EXPECT_TRUE(DnsNameMatches("*.pypi.org", "a.b.pypi.org"));
  EXPECT_FALSE(DnsNameMatches("*.pypi.org", "pypi.org"));
  EXPECT_FALSE(DnsNameMatches("*.pypi.org", "evilpypi.org"));
  EXPECT_FALSE(DnsNameMatches("", ""));
}

}  // namespace
}  // namespace sbx::net
