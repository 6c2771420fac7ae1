#include "src/daemon/spec_builder.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

ResolvedImage Image() {
  ResolvedImage image;
  image.digest = "sha256:abc";
  image.layer_dirs = {"/layers/base", "/layers/top"};
  image.entrypoint = {"/entry"};
  image.cmd = {"default-arg"};
  image.env = {"PATH=/image/bin", "LANG=C.UTF-8", "FROM_IMAGE=1"};
  image.working_dir = "/app";
  image.user = "1000:1000";
  return image;
}

TEST(BuildProcessTest, ImageEntrypointAndCmdWhenTheRequestGivesNoCommand) {
  runtime::Process p = BuildProcess(CreateRequest{}, Image(), {});
  EXPECT_EQ(p.args, (std::vector<std::string>{"/entry", "default-arg"}));
  EXPECT_EQ(p.cwd, "/app");
  EXPECT_EQ(p.user, "1000:1000");
  EXPECT_EQ(p.env, Image().env);
}

TEST(BuildProcessTest, ArgsReplaceTheCmdAndKeepTheEntrypoint) {
  CreateRequest r;
  r.args = {"x", "y"};
  r.args_given = true;
  EXPECT_EQ(BuildProcess(r, Image(), {}).args, (std::vector<std::string>{"/entry", "x", "y"}));
  r.args.clear();  // given, but empty: no cmd at all
  EXPECT_EQ(BuildProcess(r, Image(), {}).args, (std::vector<std::string>{"/entry"}));
}

TEST(BuildProcessTest, ACommandReplacesEntrypointAndCmd) {
  CreateRequest r;
  r.command = "python";
  r.args = {"-c", "print(1)"};
  r.args_given = true;
  EXPECT_EQ(BuildProcess(r, Image(), {}).args,
            (std::vector<std::string>{"python", "-c", "print(1)"}));
}

TEST(BuildProcessTest, RequestEnvOverridesTheImageAndSecretsOverrideBoth) {
  CreateRequest r;
  r.env = {{"LANG", "en_US.UTF-8"}, {"TOKEN", "from-request"}, {"NEW", "1"}};
  runtime::Process p = BuildProcess(r, Image(), {{"TOKEN", "secret"}});
  EXPECT_EQ(p.env, (std::vector<std::string>{"PATH=/image/bin", "LANG=en_US.UTF-8", "FROM_IMAGE=1",
                                             "NEW=1", "TOKEN=secret"}));
}

TEST(BuildProcessTest, DefaultsWhenTheImageSaysNothing) {
  CreateRequest r;
  r.command = "sh";
  ResolvedImage bare;
  runtime::Process p = BuildProcess(r, bare, {});
  EXPECT_EQ(p.env, std::vector<std::string>{kDefaultPath});
  EXPECT_EQ(p.cwd, "/");
  EXPECT_TRUE(p.user.empty());
  r.working_dir = "/work";
  EXPECT_EQ(BuildProcess(r, Image(), {}).cwd, "/work");
}

TEST(ProcessUserTest, TheSecurityContextReplacesTheImagesIds) {
  EXPECT_EQ(ProcessUser("1000:1000", std::nullopt, std::nullopt), "1000:1000");
  EXPECT_EQ(ProcessUser("app", 1234, std::nullopt), "1234");
  EXPECT_EQ(ProcessUser("app:staff", 1234, std::nullopt), "1234:staff");
  EXPECT_EQ(ProcessUser("app", std::nullopt, 50), "app:50");
  EXPECT_EQ(ProcessUser("", std::nullopt, 50), "0:50");  // root's user, the given group
  EXPECT_EQ(ProcessUser("", 7, 8), "7:8");
  EXPECT_EQ(ProcessUser("", std::nullopt, std::nullopt), "");
}

TEST(BuildPlanTest, SecurityContextReachesTheSpec) {
  CreateRequest r;
  r.run_as_user = 1234;
  r.read_only_root = true;
  r.drop_capabilities = {"NET_RAW"};
  SpecInputs in{"sb-1", 500, 64u << 20, 0, {2065536, 2065536, 65536}, false};
  SandboxPlan plan = BuildPlan(in, r, Image(), net::NetworkAttachment{}, {}, {});
  EXPECT_EQ(plan.spec.process.user, "1234:1000");
  EXPECT_TRUE(plan.spec.rootfs.readonly);
  EXPECT_EQ(plan.spec.process.drop_capabilities, r.drop_capabilities);
}

TEST(BuildPlanTest, LimitsNetworkFilesAndDefaults) {
  CreateRequest r;
  r.files = {{"/etc/app.conf", "a=1"}, {"relative/data.txt", "hello"}};
  net::NetworkAttachment net;
  net.netns_path = "/run/netns/x";
  net.dns_servers = {"10.0.0.1"};
  net.extra_hosts = {"10.0.0.1 host.sbx.internal"};
  SpecDefaults defaults;
  defaults.loop_writable_layer = false;
  defaults.disk_bytes = 1u << 30;
  defaults.pids = 256;
  defaults.layers_id_map = {2000000, 2000000, 65536};
  SpecInputs in{"sb-1", 500, 64u << 20, 12345, {2065536, 2065536, 65536}, false};
  SandboxPlan plan = BuildPlan(in, r, Image(), net, {}, defaults);
  const runtime::RuntimeSpec& s = plan.spec;
  EXPECT_EQ(s.id, "sb-1");
  EXPECT_EQ(s.hostname, "sb-1");
  EXPECT_EQ(s.rootfs.layers, Image().layer_dirs);
  EXPECT_EQ(s.rootfs.writable.kind, runtime::WritableKind::kTmpfs);
  EXPECT_EQ(s.rootfs.writable.size_bytes, 1u << 30);
  EXPECT_EQ(s.resources.cpu_millis, 500u);
  EXPECT_EQ(s.resources.memory_bytes, 64u << 20);
  EXPECT_EQ(s.resources.shm_bytes, 32u << 20);  // half the memory, at most 64 MiB
  EXPECT_EQ(s.resources.pids, 256u);
  // The sandbox's own ids, and the layers' owner they are idmapped from.
  EXPECT_EQ(s.id_map.host_uid, 2065536u);
  ASSERT_TRUE(s.rootfs.layer_ids);
  EXPECT_EQ(s.rootfs.layer_ids->host_uid, 2000000u);
  EXPECT_EQ(s.deadline_unix_ns, 12345);
  EXPECT_EQ(s.network.mode, "netns");
  EXPECT_EQ(s.network.netns_path, "/run/netns/x");
  EXPECT_EQ(s.network.dns_servers, net.dns_servers);
  EXPECT_EQ(s.network.extra_hosts, net.extra_hosts);
  EXPECT_FALSE(s.process.await_start);
  EXPECT_FALSE(s.background);
  ASSERT_EQ(s.files.size(), 2u);
  EXPECT_EQ(s.files[0].path, "/etc/app.conf");
  EXPECT_EQ(s.files[1].path, "/app/relative/data.txt");  // relative to the working directory
  EXPECT_EQ(s.files[1].mode, 0444u);
  EXPECT_EQ(plan.file_contents, (std::vector<std::string>{"a=1", "hello"}));
}

TEST(BuildPlanTest, AWarmSandboxWaitsForItsMainProcessInTheBackground) {
  SpecInputs in{"sb-warm", 2000, 2u << 30, 0, {2065536, 2065536, 65536}, true};
  SandboxPlan plan = BuildPlan(in, CreateRequest{}, Image(), net::NetworkAttachment{}, {}, {});
  EXPECT_TRUE(plan.spec.process.await_start);
  EXPECT_TRUE(plan.spec.background);
  EXPECT_EQ(plan.spec.network.mode, "none");
}

TEST(MainProcessConfigTest, CarriesTheProcessAndTheDeadline) {
  runtime::Process p;
  p.args = {"a"};
  p.env = {"X=1"};
  p.cwd = "/w";
  p.user = "nobody";
  agent::InitConfig c = MainProcessConfig(p, 99, 7000);
  EXPECT_EQ(c.argv, p.args);
  EXPECT_EQ(c.env, p.env);
  EXPECT_EQ(c.cwd, "/w");
  EXPECT_EQ(c.user, "nobody");
  EXPECT_EQ(c.deadline_unix_ns, 99);
  EXPECT_EQ(c.stop_grace_ms, 7000);
}

}  // namespace
}  // namespace sbx::daemon
