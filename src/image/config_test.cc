#include "src/image/config.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace sbx::image {
namespace {

using Json = nlohmann::json;
using Strings = std::vector<std::string>;

ImageConfig PythonLike() {
  ImageConfig c;
  c.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "PYTHON_VERSION=3.11.9"};
  c.entrypoint = {"/docker-entrypoint.sh"};
  c.cmd = {"python3"};
  c.working_dir = "/app";
  c.user = "app";
  return c;
}

TEST(ResolveProcessTest, ImageDefaults) {
  ProcessSpec p = ResolveProcess(PythonLike(), {});
  EXPECT_EQ(p.argv, (Strings{"/docker-entrypoint.sh", "python3"}));
  EXPECT_EQ(p.env, PythonLike().env);
  EXPECT_EQ(p.cwd, "/app");
  EXPECT_EQ(p.user, "app");
}

TEST(ResolveProcessTest, ArgsReplaceCmdAndKeepEntrypoint) {
  Overrides o;
  o.args = Strings{"-c", "print(1)"};
  EXPECT_EQ(ResolveProcess(PythonLike(), o).argv,
            (Strings{"/docker-entrypoint.sh", "-c", "print(1)"}));
  o.args = Strings{};
  EXPECT_EQ(ResolveProcess(PythonLike(), o).argv, (Strings{"/docker-entrypoint.sh"}));
}

TEST(ResolveProcessTest, CommandReplacesEntrypointAndCmd) {
  Overrides o;
  o.command = Strings{"/bin/sh"};
  EXPECT_EQ(ResolveProcess(PythonLike(), o).argv, (Strings{"/bin/sh"}));
  o.args = Strings{"-c", "true"};
  EXPECT_EQ(ResolveProcess(PythonLike(), o).argv, (Strings{"/bin/sh", "-c", "true"}));
}

TEST(ResolveProcessTest, EnvMergeRequestWins) {
  Overrides o;
  o.env = {"LANG=en_US.UTF-8", "NEW=1", "PYTHON_VERSION", "EMPTY="};
  ProcessSpec p = ResolveProcess(PythonLike(), o);
  EXPECT_EQ(p.env,
            (Strings{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=en_US.UTF-8", "NEW=1", "EMPTY="}));
}

TEST(ResolveProcessTest, DefaultsWhenTheImageSaysNothing) {
  ProcessSpec p = ResolveProcess(ImageConfig{}, {});
  EXPECT_TRUE(p.argv.empty());
  EXPECT_EQ(p.env, (Strings{std::string(kDefaultPath)}));
  EXPECT_EQ(p.cwd, "/");
  EXPECT_EQ(p.user, "");
  Overrides o;
  o.working_dir = "/srv/app";
  o.user = "1000:1000";
  p = ResolveProcess(PythonLike(), o);
  EXPECT_EQ(p.cwd, "/srv/app");
  EXPECT_EQ(p.user, "1000:1000");
}

TEST(ImageConfigTest, ParsesDockerConfig) {
  Json j = {{"architecture", "aarch64"},
            {"os", "linux"},
            {"created", "2024-01-02T03:04:05.123456789Z"},
            {"config",
             {{"Env", {"A=1"}},
              {"Entrypoint", nullptr},
              {"Cmd", "sh"},
              {"WorkingDir", "/w"},
              {"User", "1000"},
              {"ExposedPorts", {{"8080/tcp", Json::object()}, {"53/udp", Json::object()}}}}},
            {"rootfs",
             {{"type", "layers"},
              {"diff_ids", {"sha256:" + std::string(64, 'a'), "sha256:" + std::string(64, 'b')}}}}};
  auto parsed = ParseImageConfig(j.dump());
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ(parsed->config.architecture, "arm64");
  EXPECT_EQ(parsed->config.variant, "v8");
  EXPECT_EQ(parsed->config.env, (Strings{"A=1"}));
  EXPECT_TRUE(parsed->config.entrypoint.empty());
  EXPECT_EQ(parsed->config.cmd, (Strings{"sh"}));
  EXPECT_EQ(parsed->config.exposed_ports, (Strings{"53/udp", "8080/tcp"}));
  EXPECT_EQ(parsed->diff_ids.size(), 2u);
  EXPECT_EQ(parsed->created_unix, 1704164645);
}

TEST(ImageConfigTest, RejectsBadConfigs) {
  EXPECT_FALSE(ParseImageConfig("[]"));
  EXPECT_FALSE(ParseImageConfig(R"({"rootfs":{"type":"layers","diff_ids":["sha256:1"]}})"));
  EXPECT_FALSE(ParseImageConfig(R"({"rootfs":{"type":"other","diff_ids":[]}})"));
  EXPECT_FALSE(
      ParseImageConfig(R"({"config":{"Env":[1]},"rootfs":{"type":"layers","diff_ids":[]}})"));
  EXPECT_FALSE(ParseImageConfig(R"({"config":{"Env":[]}})"));
}

TEST(ImageConfigTest, RefusesNulBytesThatWouldCutAProcessStringShort) {
  const std::string rootfs = R"("rootfs":{"type":"layers","diff_ids":[]})";
  ASSERT_TRUE(ParseImageConfig(R"({"config":{"Env":["A=x"]},)" + rootfs + "}"));
  for (const std::string config : {R"({"Env":["A=x\u0000B=y"]})", R"({"Cmd":["sh\u0000"]})",
                                   R"({"Entrypoint":"/bin/sh\u0000-c"})",
                                   R"({"WorkingDir":"/app\u0000"})", R"({"User":"0\u0000"})"}) {
    auto parsed = ParseImageConfig(R"({"config":)" + config + "," + rootfs + "}");
    ASSERT_FALSE(parsed) << config;
    EXPECT_EQ(parsed.error().code(), Code::kInvalidArgument) << parsed.error().ToString();
    EXPECT_NE(parsed.error().message().find("NUL"), std::string::npos) << parsed.error().ToString();
  }
}

TEST(ImageConfigTest, Rfc3339) {
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseRfc3339("2000-03-01T00:00:00+01:00"), 951865200);
  EXPECT_EQ(ParseRfc3339("2024-02-29T12:00:00.5-00:30"), 1709208000 + 1800);
  EXPECT_FALSE(ParseRfc3339("2024-02-29"));
  EXPECT_FALSE(ParseRfc3339("2024-13-01T00:00:00Z"));
  EXPECT_FALSE(ParseRfc3339("2024-01-01T00:00:00"));
}

}  // namespace
}  // namespace sbx::image
