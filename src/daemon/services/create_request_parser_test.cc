#include "src/daemon/services/create_request_parser.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "src/net/host_ports.h"
#include "src/sys/fs.h"
#include "src/testing/temp_dir.h"

namespace sbx::daemon {
namespace {

using ::testing::HasSubstr;

v1::CreateSandboxRequest Request() {
  v1::CreateSandboxRequest r;
  r.set_request_id("req-1");
  auto* c = r.mutable_sandbox()->mutable_spec()->add_containers();
  c->set_name("main");
  c->set_image("python:3.11");
  c->set_command("python");
  c->add_args("train.py");
  (*c->mutable_environment_variables())["A"] = "1";
  r.mutable_sandbox()->mutable_spec()->add_tags("batch");
  r.mutable_sandbox()->mutable_spec()->set_max_lifetime_seconds(300);
  return r;
}

TEST(ParseCreateRequestTest, GoodRequest) {
  Config config;
  auto r = ParseCreateRequest(Request(), config);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->image, "python:3.11");
  EXPECT_EQ(r->command, "python");
  EXPECT_EQ(r->args, std::vector<std::string>{"train.py"});
  EXPECT_EQ(r->env.at("A"), "1");
  EXPECT_EQ(r->tags, std::vector<std::string>{"batch"});
  EXPECT_EQ(r->lifetime_seconds, 300);
  EXPECT_FALSE(r->spec_blob.empty());
}

TEST(ParseCreateRequestTest, EmptySpecUsesDefaults) {
  Config config;
  v1::CreateSandboxRequest request;
  auto r = ParseCreateRequest(request, config);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->image, "python:3.11");
}

TEST(ParseCreateRequestTest, FieldErrors) {
  Config config;
  struct Case {
    std::function<void(v1::CreateSandboxRequest&)> mutate;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](auto& r) { r.mutable_sandbox()->mutable_spec()->add_tags(""); }, "sandbox.spec.tags[1]"},
      {[](auto& r) { r.mutable_sandbox()->mutable_spec()->add_tags(std::string(300, 'x')); },
       "sandbox.spec.tags[1]"},
      {[](auto& r) { r.mutable_sandbox()->mutable_spec()->set_max_lifetime_seconds(-1); },
       "sandbox.spec.max_lifetime_seconds"},
      {[](auto& r) {
         r.mutable_sandbox()->mutable_spec()->set_max_lifetime_seconds(40 * 24 * 3600);
       },
       "sandbox.spec.max_lifetime_seconds"},
      {[](auto& r) {
         r.mutable_sandbox()->mutable_spec()->mutable_containers(0)->mutable_resources()->set_cpu(
             "lots");
       },
       "sandbox.spec.containers[0].resources.cpu"},
      {[](auto& r) {
         r.mutable_sandbox()
             ->mutable_spec()
             ->mutable_containers(0)
             ->mutable_resources()
             ->set_memory("1Zb");
       },
       "sandbox.spec.containers[0].resources.memory"},
      {[](auto& r) {
         r.mutable_sandbox()->mutable_spec()->mutable_containers(0)->set_working_dir("rel");
       },
       "sandbox.spec.containers[0].working_dir"},
      {[](auto& r) {
         r.mutable_sandbox()->mutable_spec()->mutable_containers(0)->set_image("bad image");
       },
       "sandbox.spec.containers[0].image"},
      {[](auto& r) { r.mutable_sandbox()->mutable_spec()->set_runtime_class("kata"); },
       "sandbox.spec.runtime_class"},
      {[](auto& r) {
         (*r.mutable_sandbox()
               ->mutable_spec()
               ->mutable_containers(0)
               ->mutable_environment_variables())["A=B"] = "x";
       },
       "sandbox.spec.containers[0].environment_variables"},
      {[](auto& r) { r.mutable_sandbox()->mutable_spec()->add_containers(); },
       "sandbox.spec.containers"},
  };
  for (const auto& c : cases) {
    auto request = Request();
    c.mutate(request);
    auto r = ParseCreateRequest(request, config);
    ASSERT_FALSE(r) << c.field;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << r.error().ToString();
    EXPECT_EQ(r.error().MetadataValue("field"), c.field) << r.error().ToString();
  }
}

TEST(ParseCreateRequestTest, RequestAboveLimitIsRejected) {
  Config config;
  config.capacity_cpu = "8";
  auto request = Request();
  auto* rr = request.mutable_sandbox()
                 ->mutable_spec()
                 ->mutable_containers(0)
                 ->mutable_resource_requirements();
  rr->mutable_requests()->set_cpu("4");
  rr->mutable_limits()->set_cpu("2");
  auto r = ParseCreateRequest(request, config);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("CPU request exceeds the limit"), std::string::npos);
}

// A limit or request larger than the node is refused, naming the field, as capacity the node can
// never give; a quantity no kernel could honour is not a quantity at all.
TEST(ParseCreateRequestTest, QuantitiesAreBoundedByTheNode) {
  Config config;
  config.capacity_cpu = "2";
  config.capacity_memory = "24Gi";
  struct Case {
    std::function<void(v1::Container&)> set;
    Code code;
    std::string field;
  };
  const std::string base = "sandbox.spec.containers[0].";
  std::vector<Case> cases = {
      {[](auto& c) { c.mutable_resources()->set_memory("64Gi"); }, Code::kResourceExhausted,
       base + "resources.memory"},
      {[](auto& c) { c.mutable_resources()->set_memory("1Ei"); }, Code::kResourceExhausted,
       base + "resources.memory"},
      {[](auto& c) { c.mutable_resources()->set_cpu("1000"); }, Code::kResourceExhausted,
       base + "resources.cpu"},
      {[](auto& c) { c.mutable_resource_requirements()->mutable_limits()->set_cpu("2001m"); },
       Code::kResourceExhausted, base + "resource_requirements.limits.cpu"},
      {[](auto& c) { c.mutable_resource_requirements()->mutable_requests()->set_memory("25Gi"); },
       Code::kResourceExhausted, base + "resource_requirements.requests.memory"},
      {[](auto& c) { c.mutable_resources()->set_memory("9223372036854775807"); },
       Code::kInvalidArgument, base + "resources.memory"},
      {[](auto& c) { c.mutable_resources()->set_memory("18446744073709551615"); },
       Code::kInvalidArgument, base + "resources.memory"},
  };
  for (const auto& c : cases) {
    auto request = Request();
    c.set(*request.mutable_sandbox()->mutable_spec()->mutable_containers(0));
    auto r = ParseCreateRequest(request, config);
    ASSERT_FALSE(r) << c.field;
    EXPECT_EQ(r.error().code(), c.code) << c.field << ": " << r.error().message();
    EXPECT_NE(r.error().message().find(c.field), std::string::npos) << r.error().message();
  }
  auto fits = Request();
  fits.mutable_sandbox()->mutable_spec()->mutable_containers(0)->mutable_resources()->set_memory(
      "24Gi");
  fits.mutable_sandbox()->mutable_spec()->mutable_containers(0)->mutable_resources()->set_cpu("2");
  auto r = ParseCreateRequest(fits, config);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->memory_limit_bytes, 24ull << 30);
}

TEST(ParseCreateRequestTest, UnsupportedFeaturesAreUnimplemented) {
  Config config;
  auto request = Request();
  request.mutable_sandbox()->mutable_spec()->add_volumes()->set_name("v");
  auto r = ParseCreateRequest(request, config);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kUnimplemented);
}

TEST(ParseCreateRequestTest, SecretsAreResolvedAndMissingOnesNamed) {
  sbx::testing::TempDir dir;
  ASSERT_TRUE(sys::MakeDirs(dir.Sub("team")));
  ASSERT_TRUE(sys::WriteFile(dir.Sub("team/HF_TOKEN"), "hf-123\n"));
  Config config;
  config.secrets_dir = dir.path();
  auto request = Request();
  auto* store =
      request.mutable_sandbox()->mutable_spec()->mutable_containers(0)->add_secret_stores();
  store->set_store_name("team");
  auto* m = store->add_secrets();
  m->set_path("HF_TOKEN");
  m->set_env_var("HF_TOKEN");
  EXPECT_TRUE(ParseCreateRequest(request, config));
  m->set_path("MISSING");
  auto r = ParseCreateRequest(request, config);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_NE(r.error().message().find("MISSING"), std::string::npos);
  EXPECT_EQ(r.error().message().find("hf-123"), std::string::npos);
}

TEST(ParseCreateRequestTest, NetworkModes) {
  Config config;
  auto request = Request();
  auto r = ParseCreateRequest(request, config);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->network.mode, net::NetworkMode::kPublic);
  request.mutable_sandbox()->mutable_spec()->mutable_network()->set_deny_egress(true);
  r = ParseCreateRequest(request, config);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->network.mode, net::NetworkMode::kNone);
  auto* network = request.mutable_sandbox()->mutable_spec()->mutable_network();
  network->set_deny_egress(false);
  network->add_egress()->set_dns_name("*.PyPI.org");
  auto* cidr = network->add_egress();
  cidr->mutable_cidr()->set_cidr("203.0.113.7/24");
  cidr->mutable_cidr()->add_except("203.0.113.128/25");
  auto* port = cidr->add_ports();
  port->set_protocol("TCP");
  port->set_port(443);
  auto* range = cidr->add_ports();
  range->set_port(1000);
  range->set_end_port(2000);
  network->add_egress()->set_any(true);
  r = ParseCreateRequest(request, config);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->network.mode, net::NetworkMode::kAllowlist);
  ASSERT_EQ(r->network.egress.size(), 3u);
  // Typed once, here: the name in lower case and, without ports, HTTPS only.
  const net::EgressRule& name = r->network.egress[0];
  EXPECT_EQ(name.kind, net::EgressKind::kDnsName);
  EXPECT_EQ(name.dns_name.text(), "*.pypi.org");
  EXPECT_EQ(name.ports, (std::vector<net::PortRange>{{net::Transport::kTcp, 443, 443}}));
  // The block without its host bits, the ports as ranges.
  const net::EgressRule& block = r->network.egress[1];
  EXPECT_EQ(block.kind, net::EgressKind::kCidr);
  EXPECT_EQ(block.cidr, *net::ParseIpv4Prefix("203.0.113.0/24"));
  EXPECT_EQ(block.except,
            (std::vector<net::Ipv4Prefix>{*net::ParseIpv4Prefix("203.0.113.128/25")}));
  EXPECT_EQ(block.ports, (std::vector<net::PortRange>{{net::Transport::kTcp, 443, 443},
                                                      {net::Transport::kTcpAndUdp, 1000, 2000}}));
  EXPECT_EQ(r->network.egress[2].kind, net::EgressKind::kAny);
  EXPECT_TRUE(r->network.egress[2].ports.empty());
}

TEST(ParseCreateRequestTest, BadNetworkRules) {
  Config config;
  auto request = Request();
  request.mutable_sandbox()->mutable_spec()->mutable_network()->add_egress()->set_dns_name(
      "bad name");
  auto r = ParseCreateRequest(request, config);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().MetadataValue("field"), "sandbox.spec.network.egress[0].dns_name");
  request = Request();
  auto* rule = request.mutable_sandbox()->mutable_spec()->mutable_network()->add_egress();
  rule->set_any(true);
  rule->add_ports()->set_port(70000);
  r = ParseCreateRequest(request, config);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().MetadataValue("field"), "sandbox.spec.network.egress[0].ports[0]");
  rule->mutable_ports(0)->set_port(80);
  rule->mutable_ports(0)->set_protocol("sctp");
  r = ParseCreateRequest(request, config);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().MetadataValue("field"), "sandbox.spec.network.egress[0].ports[0].protocol");
  // `any` set to false names no destination a sandbox could be given.
  rule->clear_ports();
  rule->set_any(false);
  r = ParseCreateRequest(request, config);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.error().MetadataValue("field"), "sandbox.spec.network.egress[0].any");
}

TEST(ParseCreateRequestTest, Ipv6EgressIsRefused) {
  Config config;
  auto request = Request();
  request.mutable_sandbox()
      ->mutable_spec()
      ->mutable_network()
      ->add_egress()
      ->mutable_cidr()
      ->set_cidr("2001:db8::/32");
  auto r = ParseCreateRequest(request, config);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().MetadataValue("field"), "sandbox.spec.network.egress[0].cidr");
}

TEST(ParseCreateRequestTest, Services) {
  Config config;
  auto request = Request();
  auto* spec = request.mutable_sandbox()->mutable_spec();
  auto add = [](v1::SandboxSpec* to, int port, v1::ServiceProtocol protocol,
                v1::Visibility visibility) {
    auto* s = to->add_services();
    s->set_port(port);
    s->set_protocol(protocol);
    s->set_visibility(visibility);
    return s;
  };
  add(spec, 8080, v1::SERVICE_PROTOCOL_UNSPECIFIED, v1::VISIBILITY_PRIVATE)->set_name("web");
  add(spec, 9000, v1::SERVICE_PROTOCOL_TCP, v1::VISIBILITY_UNSPECIFIED);
  add(spec, 53, v1::SERVICE_PROTOCOL_UDP, v1::VISIBILITY_PRIVATE);
  auto r = ParseCreateRequest(request, config);
  ASSERT_TRUE(r) << r.error().ToString();
  // Only the services with a visibility are exposed; 9000 is declared, not exposed.
  ASSERT_EQ(r->network.services.size(), 2u);
  EXPECT_EQ(r->network.services[0].port, 8080);
  EXPECT_EQ(r->network.services[0].protocol, "tcp");
  EXPECT_FALSE(r->network.services[0].public_access);
  EXPECT_EQ(r->network.services[1].protocol, "udp");

  auto mixed = request;
  add(mixed.mutable_sandbox()->mutable_spec(), 443, v1::SERVICE_PROTOCOL_TCP,
      v1::VISIBILITY_PUBLIC);
  auto m = ParseCreateRequest(mixed, config);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(m.error().MetadataValue("field"), "sandbox.spec.services[3].visibility");

  auto twice = request;
  twice.mutable_sandbox()->mutable_spec()->add_services()->set_port(8080);
  auto t = ParseCreateRequest(twice, config);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().MetadataValue("field"), "sandbox.spec.services[3].port");

  auto bad_port = Request();
  bad_port.mutable_sandbox()->mutable_spec()->add_services()->set_port(0);
  EXPECT_FALSE(ParseCreateRequest(bad_port, config));

  // SCTP: declared always; exposed where the host's kernel speaks SCTP, else refused saying so.
  auto sctp = Request();
  add(sctp.mutable_sandbox()->mutable_spec(), 9, v1::SERVICE_PROTOCOL_SCTP,
      v1::VISIBILITY_UNSPECIFIED);
  ASSERT_TRUE(ParseCreateRequest(sctp, config));
  sctp.mutable_sandbox()->mutable_spec()->mutable_services(0)->set_visibility(
      v1::VISIBILITY_PRIVATE);
  auto e = ParseCreateRequest(sctp, config);
  if (net::SctpAvailable()) {
    ASSERT_TRUE(e) << e.error().ToString();
    EXPECT_EQ(e->network.services[0].protocol, "sctp");
  } else {
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code(), Code::kFailedPrecondition);
    EXPECT_THAT(e.error().message(), HasSubstr("SCTP"));
  }

  Config none;
  none.network = "none";
  auto n = ParseCreateRequest(request, none);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().code(), Code::kFailedPrecondition);
  auto declared_only = Request();
  add(declared_only.mutable_sandbox()->mutable_spec(), 9000, v1::SERVICE_PROTOCOL_TCP,
      v1::VISIBILITY_UNSPECIFIED);
  EXPECT_TRUE(ParseCreateRequest(declared_only, none)) << "nothing to expose, nothing needed";
}

TEST(ParseExecProcessTest, BuildsTheCommandLineAndEnvironment) {
  google::protobuf::RepeatedPtrField<std::string> command;
  command.Add("sh");
  command.Add("-c");
  command.Add("echo $A");
  google::protobuf::Map<std::string, std::string> env;
  env["A"] = "1=2";
  auto p = ParseExecProcess(command, env, "init.");
  ASSERT_TRUE(p) << p.error().ToString();
  EXPECT_EQ(p->argv, (std::vector<std::string>{"sh", "-c", "echo $A"}));
  EXPECT_EQ(p->env, std::vector<std::string>{"A=1=2"});
}

TEST(ParseExecProcessTest, NulBytesAndBadNamesNameTheField) {
  using Command = google::protobuf::RepeatedPtrField<std::string>;
  using Env = google::protobuf::Map<std::string, std::string>;
  auto field = [](const Command& command, const Env& env) {
    auto p = ParseExecProcess(command, env, "init.");
    EXPECT_FALSE(p);
    if (p) return std::string();
    EXPECT_EQ(p.error().code(), Code::kInvalidArgument);
    return p.error().MetadataValue("field");
  };
  Command ok;
  ok.Add("true");
  Env none;
  EXPECT_EQ(field(Command(), none), "init.command");
  Command nul_arg;
  nul_arg.Add("echo");
  nul_arg.Add(std::string("a\0b", 3));
  EXPECT_EQ(field(nul_arg, none), "init.command[1]");
  Command empty_first;
  empty_first.Add("");
  EXPECT_EQ(field(empty_first, none), "init.command[0]");
  Env nul_value;
  nul_value["A"] = std::string("x\0y", 3);
  EXPECT_EQ(field(ok, nul_value), "init.env");
  Env bad_name;
  bad_name["A=B"] = "x";
  EXPECT_EQ(field(ok, bad_name), "init.env");
}

TEST(ParseCreateRequestTest, SecretEnvironmentNamesAreChecked) {
  Config config;
  auto r = Request();
  auto* store = r.mutable_sandbox()->mutable_spec()->mutable_containers(0)->add_secret_stores();
  store->set_store_name("team");
  auto* m = store->add_secrets();
  m->set_path("HF_TOKEN");
  m->set_env_var("BAD=NAME");
  auto parsed = ParseCreateRequest(r, config);
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().MetadataValue("field"),
            "sandbox.spec.containers[0].secret_stores[0].secrets[0].env_var");
}

TEST(ParseCreateRequestTest, SecurityContextIsAppliedOrRefused) {
  Config config;
  auto request = Request();
  auto* sc =
      request.mutable_sandbox()->mutable_spec()->mutable_containers(0)->mutable_security_context();
  sc->set_run_as_user(1000);
  sc->set_run_as_group(0);
  sc->set_read_only_root_filesystem(true);
  sc->add_capabilities_drop("NET_RAW");
  sc->add_capabilities_drop("ALL");
  sc->set_allow_privilege_escalation(false);
  sc->set_privileged(false);
  sc->set_seccomp_profile("RuntimeDefault");
  auto r = ParseCreateRequest(request, config);
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->run_as_user, 1000u);
  EXPECT_EQ(r->run_as_group, 0u);
  EXPECT_TRUE(r->read_only_root);
  EXPECT_EQ(r->drop_capabilities, (std::vector<std::string>{"NET_RAW", "ALL"}));

  const std::string base = "sandbox.spec.containers[0].security_context.";
  struct Case {
    std::function<void(v1::SecurityContext&)> mutate;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](auto& c) { c.set_privileged(true); }, "privileged"},
      {[](auto& c) { c.add_capabilities_add("NET_ADMIN"); }, "capabilities_add"},
      {[](auto& c) { c.set_allow_privilege_escalation(true); }, "allow_privilege_escalation"},
      {[](auto& c) { c.add_capabilities_drop("NOT_A_CAP"); }, "capabilities_drop[0]"},
      {[](auto& c) { c.add_capabilities_drop("all"); }, "capabilities_drop[0]"},
      {[](auto& c) { c.set_seccomp_profile("Unconfined"); }, "seccomp_profile"},
      {[](auto& c) { c.set_run_as_user(65536); }, "run_as_user"},
      {[](auto& c) { c.set_run_as_group(4294967295u); }, "run_as_group"},
  };
  for (const auto& c : cases) {
    auto bad = Request();
    c.mutate(
        *bad.mutable_sandbox()->mutable_spec()->mutable_containers(0)->mutable_security_context());
    auto parsed = ParseCreateRequest(bad, config);
    ASSERT_FALSE(parsed) << c.field;
    EXPECT_EQ(parsed.error().code(), Code::kInvalidArgument);
    EXPECT_EQ(parsed.error().MetadataValue("field"), base + c.field) << parsed.error().ToString();
  }
}

}  // namespace
}  // namespace sbx::daemon
