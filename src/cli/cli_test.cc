// The parts of the command line that need no daemon: splitting a command off the arguments,
// durations, times, environment assignments, sandbox paths and tables.

#include "src/cli/cli.h"

#include <CLI/CLI.hpp>
#include <gtest/gtest.h>

#include "src/cli/format.h"

namespace sbx::cli {
namespace {

class SplitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    app_.add_option("--url", url_);
    CLI::App* exec = app_.add_subcommand("exec");
    exec->add_flag("-i", flag_);
    exec->add_flag("-t", flag_);
    exec->add_flag("--quiet", flag_);
    exec->add_option("-e,--env", values_);
    exec->add_option("-w", value_);
    exec->add_option("id", value_);
    CLI::App* ls = app_.add_subcommand("ls");
    ls->add_flag("-a", flag_);
  }
  std::vector<std::string> Split(std::vector<std::string> args, std::vector<std::string>* rest) {
    *rest = SplitTrailingCommand(app_, args);
    return args;
  }
  CLI::App app_;
  std::string url_, value_;
  std::vector<std::string> values_;
  bool flag_ = false;
};

TEST_F(SplitTest, TheCommandKeepsItsOwnFlags) {
  std::vector<std::string> rest;
  EXPECT_EQ(Split({"exec", "-it", "ID", "ls", "-la", "--help"}, &rest),
            (std::vector<std::string>{"exec", "-it", "ID"}));
  EXPECT_EQ(rest, (std::vector<std::string>{"ls", "-la", "--help"}));
  // Option values are not mistaken for the id; global options come first.
  EXPECT_EQ(
      Split({"--url", "unix:///s", "exec", "-e", "A=1", "-w", "/x", "ID", "sh", "-i"}, &rest),
      (std::vector<std::string>{"--url", "unix:///s", "exec", "-e", "A=1", "-w", "/x", "ID"}));
  EXPECT_EQ(rest, (std::vector<std::string>{"sh", "-i"}));
  EXPECT_EQ(Split({"exec", "--env=A=1", "-eB=2", "--quiet", "ID", "true"}, &rest).back(), "ID");
  EXPECT_EQ(rest, (std::vector<std::string>{"true"}));
}

TEST_F(SplitTest, DoubleDash) {
  std::vector<std::string> rest;
  EXPECT_EQ(Split({"exec", "--", "ID", "-x"}, &rest), (std::vector<std::string>{"exec", "ID"}));
  EXPECT_EQ(rest, (std::vector<std::string>{"-x"}));
  EXPECT_EQ(Split({"exec", "ID", "--", "ls", "--", "-x"}, &rest),
            (std::vector<std::string>{"exec", "ID"}));
  EXPECT_EQ(rest, (std::vector<std::string>{"ls", "--", "-x"}));
}

TEST_F(SplitTest, OtherCommandsAreUntouched) {
  std::vector<std::string> rest;
  std::vector<std::string> args = {"ls", "-a", "x", "y"};
  EXPECT_EQ(Split(args, &rest), args);
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(Split({"exec", "-i"}, &rest), (std::vector<std::string>{"exec", "-i"}));
  EXPECT_TRUE(rest.empty());
}

TEST(FormatTest, Durations) {
  EXPECT_EQ(*ParseDuration("90"), 90);
  EXPECT_EQ(*ParseDuration("90s"), 90);
  EXPECT_EQ(*ParseDuration("15m"), 900);
  EXPECT_EQ(*ParseDuration("1h30m"), 5400);
  EXPECT_EQ(*ParseDuration("2d"), 172800);
  for (const char* bad : {"", "m", "10x", "-5", "1.5h", "10m5"})
    EXPECT_FALSE(ParseDuration(bad)) << bad;
  EXPECT_EQ(FormatDuration(std::chrono::seconds(3900)), "1h 5m");
  EXPECT_EQ(FormatDuration(std::chrono::seconds(42)), "42s");
}

TEST(FormatTest, Since) {
  TimePoint now = TimePoint(std::chrono::seconds(1700000000));
  EXPECT_EQ(*ParseSince("10m", now), now - std::chrono::minutes(10));
  auto t = ParseSince("2023-11-14T22:13:20Z", now);
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, now);
  EXPECT_EQ(*ParseSince("2023-11-15T00:13:20+02:00", now), now);
  EXPECT_EQ(*ParseSince("2023-11-14T22:13:20.5Z", now), now + std::chrono::milliseconds(500));
  EXPECT_FALSE(ParseSince("2023-11-14T22:13:20", now));  // no zone
  EXPECT_FALSE(ParseSince("yesterday", now));
  // Beyond what 64-bit nanoseconds hold: refused, not wrapped around into the past.
  EXPECT_FALSE(ParseSince("2999-01-01T00:00:00Z", now));
  EXPECT_EQ(*ParseSince("100000000d", now), TimePoint());
  EXPECT_EQ(FormatTime(now), "2023-11-14T22:13:20Z");
  EXPECT_EQ(FormatAge(now - std::chrono::seconds(125), now), "2 minutes ago");
  EXPECT_EQ(FormatAge(now - std::chrono::seconds(1), now), "1 second ago");
}

TEST(FormatTest, Quantities) {
  for (const char* ok : {"2", "0.5", "500m", "16"}) EXPECT_TRUE(CheckQuantity("--cpu", ok, true));
  for (const char* bad : {"fast", "", "0", "500Mi", "1.5m", "-1", "m", "1..5"}) {
    EXPECT_FALSE(CheckQuantity("--cpu", bad, true)) << bad;
  }
  for (const char* ok : {"512Mi", "4Gi", "1.5Gi", "500M", "1048576", "2k"}) {
    EXPECT_TRUE(CheckQuantity("--memory", ok, false)) << ok;
  }
  for (const char* bad : {"lots", "4GB", "Gi", "0Mi", "4 Gi", "-1Gi"}) {
    EXPECT_FALSE(CheckQuantity("--memory", bad, false)) << bad;
  }
  auto error = CheckQuantity("--memory", "lots", false);
  EXPECT_NE(error.error().message().find("--memory"), std::string::npos);
  EXPECT_NE(error.error().message().find("\"lots\""), std::string::npos);
}

TEST(FormatTest, Env) {
  auto kv = ParseEnv("A=b=c");
  ASSERT_TRUE(kv && *kv);
  EXPECT_EQ((*kv)->first, "A");
  EXPECT_EQ((*kv)->second, "b=c");
  setenv("SBX_CLI_TEST_VAR", "from-here", 1);
  EXPECT_EQ((*ParseEnv("SBX_CLI_TEST_VAR"))->second, "from-here");
  unsetenv("SBX_CLI_TEST_VAR");
  EXPECT_FALSE(*ParseEnv("SBX_CLI_TEST_VAR"));  // unset: skipped
  EXPECT_FALSE(ParseEnv("=x"));
}

TEST(FormatTest, SandboxPaths) {
  auto p = SplitSandboxPath("abc123:/work/src");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first, "abc123");
  EXPECT_EQ(p->second, "/work/src");
  EXPECT_FALSE(SplitSandboxPath("./a:b"));
  EXPECT_FALSE(SplitSandboxPath("/tmp/x"));
  EXPECT_FALSE(SplitSandboxPath(":x"));
  EXPECT_EQ(SplitSandboxPath("id:")->second, "");
}

TEST(FormatTest, TableAlignsColumns) {
  EXPECT_EQ(Table({{"ID", "STATUS"}, {"abcdef", "RUNNING"}}), "ID      STATUS\nabcdef  RUNNING\n");
  EXPECT_EQ(ShortDigest("sha256:0123456789abcdef0123"), "sha256:0123456789ab");
}

TEST(FormatTest, PublishTakesVisibilityPortAndProtocol) {
  auto plain = ParsePublish("8080");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->port, 8080);
  EXPECT_EQ(plain->protocol, "tcp");
  EXPECT_EQ(plain->visibility, Visibility::kPrivate);
  auto open = ParsePublish("public:53/udp");
  ASSERT_TRUE(open);
  EXPECT_EQ(open->port, 53);
  EXPECT_EQ(open->protocol, "udp");
  EXPECT_EQ(open->visibility, Visibility::kPublic);
  EXPECT_EQ(ParsePublish("private:9000/sctp")->visibility, Visibility::kPrivate);
  for (const char* bad : {"", "0", "65536", "http", "8080/icmp", "public:", "8000:80", "80/"}) {
    auto parsed = ParsePublish(bad);
    EXPECT_FALSE(parsed) << bad;
    if (!parsed) {
      EXPECT_NE(parsed.error().message().find("--publish"), std::string::npos);
    }
  }
  EXPECT_NE(ParsePublish("8000:80").error().message().find("sbxd chooses the host port"),
            std::string::npos);
}

TEST(FormatTest, SecretTakesStoreNameFieldAndVariable) {
  auto plain = ParseSecret("HF_TOKEN");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->store, "default");
  EXPECT_EQ(plain->name, "HF_TOKEN");
  EXPECT_EQ(plain->field, "");
  EXPECT_EQ(plain->env_var, "HF_TOKEN");
  auto full = ParseSecret("team/creds:password=DB_PASSWORD");
  ASSERT_TRUE(full);
  EXPECT_EQ(full->store, "team");
  EXPECT_EQ(full->name, "creds");
  EXPECT_EQ(full->field, "password");
  EXPECT_EQ(full->env_var, "DB_PASSWORD");
  EXPECT_EQ(ParseSecret("team/HF_TOKEN=TOKEN")->env_var, "TOKEN");
  for (const char* bad : {"", "team/", "/x", "a/b/c", "../x", "x=", "x:", "sp ace", "team/.."}) {
    EXPECT_FALSE(ParseSecret(bad)) << bad;
  }
}

TEST(FormatTest, EgressTakesDestinationsAndPorts) {
  auto any = ParseEgress("any");
  ASSERT_TRUE(any);
  EXPECT_TRUE(any->any);
  EXPECT_TRUE(any->ports.empty());
  auto name = ParseEgress("*.pypi.org:443");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->dns_name, "*.pypi.org");
  ASSERT_EQ(name->ports.size(), 1u);
  EXPECT_EQ(name->ports[0].port, 443);
  EXPECT_EQ(name->ports[0].protocol, "");
  auto block = ParseEgress("203.0.113.0/24:8000-8100/udp");
  ASSERT_TRUE(block);
  EXPECT_EQ(block->cidr, "203.0.113.0/24");
  EXPECT_EQ(block->ports[0].port, 8000);
  EXPECT_EQ(block->ports[0].end_port, 8100);
  EXPECT_EQ(block->ports[0].protocol, "udp");
  EXPECT_EQ(ParseEgress("198.51.100.7")->cidr, "198.51.100.7/32");
  EXPECT_EQ(FormatEgress(*block), "203.0.113.0/24:8000-8100/udp");
  EXPECT_EQ(FormatEgress(*ParseEgress("pypi.org:443/tcp")), "pypi.org:443/tcp");
  for (const char* bad : {"", "1.2.3.4/33", "1.2.3.256", "pypi.org:0", "pypi.org:80/icmp",
                          "x:90-80", "2001:db8::/32", "bad_name.org", "-", "a..b"}) {
    EXPECT_FALSE(ParseEgress(bad)) << bad;
  }
}

TEST(InWordsTest, SyscallAndErrnoNamesBecomeWords) {
  EXPECT_EQ(InWords(R"(openat2 "/nope": ENOENT (No such file or directory))"),
            "/nope: no such file or directory");
  EXPECT_EQ(InWords(R"(copy: rename into "/etc/hosts": EBUSY (Device or resource busy))"),
            "copy: /etc/hosts: device or resource busy");
  EXPECT_EQ(InWords(R"(rename "/a" to "/b": EXDEV (Invalid cross-device link))"),
            "/a: invalid cross-device link");
  EXPECT_EQ(InWords("read stdin: EIO (Input/output error)"), "read stdin: input/output error");
  EXPECT_EQ(InWords(R"(open "/a \"q\"": EACCES (Permission denied))"),
            R"(/a \"q\": permission denied)");
  // Nothing else is touched.
  EXPECT_EQ(InWords("sandbox \"sb-1\" not found"), "sandbox \"sb-1\" not found");
}

}  // namespace
}  // namespace sbx::cli
