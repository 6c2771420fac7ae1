#include "src/daemon/services/sandbox_proto.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

TEST(ToProtoTest, StatusFields) {
  SandboxRecord r;
  r.id = "sb-1";
  r.state = State::kFailed;
  r.reason = "OOM_KILLED";
  r.message = "killed";
  r.exit_code = 137;
  r.create_ns = 1000000000;
  r.cpu_limit_millis = 500;
  r.memory_limit_bytes = 256u << 20;
  r.cpu_request_millis = 10;
  r.memory_request_bytes = 32u << 20;
  r.lifetime_seconds = 600;
  v1::Sandbox s = ToProto(r, "node-1");
  EXPECT_EQ(s.sandbox_id(), "sb-1");
  EXPECT_EQ(s.status().state(), v1::STATE_FAILED);
  EXPECT_EQ(s.status().state_reason(), "OOM_KILLED: killed");
  EXPECT_TRUE(s.status().has_exit_code());
  EXPECT_EQ(s.status().exit_code(), 137);
  EXPECT_EQ(s.status().effective_resources().cpu(), "500m");
  EXPECT_EQ(s.status().effective_resources().memory(), "256Mi");
  EXPECT_EQ(s.status().effective_resource_requirements().requests().memory(), "32Mi");
  EXPECT_EQ(s.status().runner_id(), "node-1");
  EXPECT_EQ(s.status().effective_max_lifetime_seconds(), 600);
}

TEST(FormatTest, Quantities) {
  EXPECT_EQ(FormatCpu(2000), "2");
  EXPECT_EQ(FormatCpu(1500), "1500m");
  EXPECT_EQ(FormatMemory(2ull << 30), "2Gi");
  EXPECT_EQ(FormatMemory(1000), "1000");
}

TEST(ToProtoTest, ServicesOfALiveSandbox) {
  SandboxRecord r;
  r.id = "sb-2";
  r.state = State::kRunning;
  v1::SandboxSpec spec;
  auto* declared = spec.add_services();
  declared->set_port(9000);
  declared->set_name("internal");
  auto* web = spec.add_services();
  web->set_port(8080);
  web->set_name("web");
  web->set_visibility(v1::VISIBILITY_PRIVATE);
  r.spec_blob = spec.SerializeAsString();
  net::ServiceEndpoint e;
  e.service.port = 8080;
  e.service.name = "web";
  e.service.visibility = v1::VISIBILITY_PRIVATE;
  e.host_port = 30001;
  e.url = "http://10.128.0.1:30001";
  v1::Sandbox s = ToProto(r, "node-1", {e});
  ASSERT_EQ(s.status().services_size(), 2);
  EXPECT_EQ(s.status().services(0).port(), 9000);
  EXPECT_EQ(s.status().services(0).visibility(), v1::VISIBILITY_UNSPECIFIED);
  EXPECT_EQ(s.status().services(0).url(), "") << "a service without a visibility is not exposed";
  EXPECT_EQ(s.status().services(1).port(), 8080);
  EXPECT_EQ(s.status().services(1).name(), "web");
  EXPECT_EQ(s.status().services(1).protocol(), v1::SERVICE_PROTOCOL_TCP);
  EXPECT_EQ(s.status().services(1).url(), "http://10.128.0.1:30001");

  // Ended: the exposed endpoint is gone; the declared service stays listed.
  v1::Sandbox ended = ToProto(r, "node-1", {});
  ASSERT_EQ(ended.status().services_size(), 1);
  EXPECT_EQ(ended.status().services(0).port(), 9000);
}

TEST(ToProtoTest, EffectiveEgressInTheApiForm) {
  SandboxRecord r;
  r.id = "sb-3";
  net::EgressRule name;
  name.kind = net::EgressKind::kDnsName;
  name.dns_name = *net::DnsPattern::Parse("*.pypi.org");
  name.ports = {{net::Transport::kTcp, 443, 443}};
  net::EgressRule block;
  block.kind = net::EgressKind::kCidr;
  block.cidr = *net::ParseIpv4Prefix("203.0.113.0/24");
  block.except = {*net::ParseIpv4Prefix("203.0.113.128/25")};
  block.ports = {{net::Transport::kTcpAndUdp, 1000, 2000}};
  r.effective_egress = {name, block, net::EgressRule{}};
  v1::Sandbox s = ToProto(r, "node-1");
  const auto& egress = s.status().effective_egress();
  ASSERT_EQ(egress.size(), 3);
  EXPECT_EQ(egress[0].dns_name(), "*.pypi.org");
  ASSERT_EQ(egress[0].ports_size(), 1);
  EXPECT_EQ(egress[0].ports(0).protocol(), "tcp");
  EXPECT_EQ(egress[0].ports(0).port(), 443);
  EXPECT_EQ(egress[0].ports(0).end_port(), 0);
  EXPECT_EQ(egress[1].cidr().cidr(), "203.0.113.0/24");
  ASSERT_EQ(egress[1].cidr().except_size(), 1);
  EXPECT_EQ(egress[1].cidr().except(0), "203.0.113.128/25");
  EXPECT_EQ(egress[1].ports(0).protocol(), "");
  EXPECT_EQ(egress[1].ports(0).end_port(), 2000);
  EXPECT_TRUE(egress[2].any());
  EXPECT_EQ(egress[2].ports_size(), 0);
}

}  // namespace
}  // namespace sbx::daemon
