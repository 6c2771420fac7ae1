#include "src/daemon/services/sandbox_proto.h"

#include <algorithm>

namespace sbx::daemon {

namespace {

v1::ServiceProtocol ProtocolOf(const std::string& name) {
  if (name == "udp") return v1::SERVICE_PROTOCOL_UDP;
  if (name == "sctp") return v1::SERVICE_PROTOCOL_SCTP;
  return v1::SERVICE_PROTOCOL_TCP;
}

}  // namespace

google::protobuf::Timestamp ToTimestamp(int64_t ns) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(ns / 1000000000);
  ts.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return ts;
}

v1::State ToProtoState(State s) {
  switch (s) {
    case State::kPending:
      return v1::STATE_PENDING;
    case State::kCreating:
      return v1::STATE_CREATING;
    case State::kRunning:
      return v1::STATE_RUNNING;
    case State::kCompleted:
      return v1::STATE_COMPLETED;
    case State::kFailed:
      return v1::STATE_FAILED;
    case State::kTerminating:
      return v1::STATE_TERMINATING;
    case State::kTerminated:
      return v1::STATE_TERMINATED;
  }
  return v1::STATE_UNSPECIFIED;
}

std::optional<State> FromProtoState(v1::State s) {
  switch (s) {
    case v1::STATE_PENDING:
      return State::kPending;
    case v1::STATE_CREATING:
      return State::kCreating;
    case v1::STATE_RUNNING:
      return State::kRunning;
    case v1::STATE_COMPLETED:
      return State::kCompleted;
    case v1::STATE_FAILED:
      return State::kFailed;
    case v1::STATE_TERMINATING:
      return State::kTerminating;
    case v1::STATE_TERMINATED:
      return State::kTerminated;
    default:
      return std::nullopt;
  }
}

std::string FormatCpu(uint64_t millis) {
  if (millis % 1000 == 0) return std::to_string(millis / 1000);
  return std::to_string(millis) + "m";
}

std::string FormatMemory(uint64_t bytes) {
  static constexpr std::pair<uint64_t, const char*> kUnits[] = {
      {1ull << 40, "Ti"}, {1ull << 30, "Gi"}, {1ull << 20, "Mi"}, {1ull << 10, "Ki"}};
  for (const auto& [size, suffix] : kUnits) {
    if (bytes >= size && bytes % size == 0) return std::to_string(bytes / size) + suffix;
  }
  return std::to_string(bytes);
}

v1::Sandbox ToProto(const SandboxRecord& r, const std::string& runner_id,
                    const std::vector<net::ServiceEndpoint>& services) {
  v1::Sandbox s;
  s.set_sandbox_id(r.id);
  s.mutable_spec()->ParseFromString(r.spec_blob);
  auto* st = s.mutable_status();
  st->set_state(ToProtoState(r.state));
  st->set_state_reason(r.StateReason());
  if (r.create_ns) *st->mutable_create_time() = ToTimestamp(r.create_ns);
  if (r.start_ns) *st->mutable_start_time() = ToTimestamp(r.start_ns);
  if (r.end_ns) *st->mutable_end_time() = ToTimestamp(r.end_ns);
  if (r.exit_code) st->set_exit_code(*r.exit_code);
  st->mutable_effective_resources()->set_cpu(FormatCpu(r.cpu_limit_millis));
  st->mutable_effective_resources()->set_memory(FormatMemory(r.memory_limit_bytes));
  auto* rr = st->mutable_effective_resource_requirements();
  rr->mutable_requests()->set_cpu(FormatCpu(r.cpu_request_millis));
  rr->mutable_requests()->set_memory(FormatMemory(r.memory_request_bytes));
  rr->mutable_limits()->set_cpu(FormatCpu(r.cpu_limit_millis));
  rr->mutable_limits()->set_memory(FormatMemory(r.memory_limit_bytes));
  st->set_effective_max_lifetime_seconds(r.lifetime_seconds);
  st->set_runner_id(runner_id);
  st->set_effective_runtime_class("sbx");
  for (const auto& e : r.effective_egress) {
    auto* rule = st->add_effective_egress();
    switch (e.kind) {
      case net::EgressKind::kDnsName:
        rule->set_dns_name(e.dns_name.text());
        break;
      case net::EgressKind::kAny:
        rule->set_any(true);
        break;
      case net::EgressKind::kCidr:
        rule->mutable_cidr()->set_cidr(e.cidr.ToString());
        for (const auto& x : e.except) rule->mutable_cidr()->add_except(x.ToString());
        break;
    }
    for (const auto& p : e.ports) {
      auto* port = rule->add_ports();
      port->set_protocol(std::string(net::TransportName(p.transport)));
      port->set_port(p.first);
      // The API's form: an end only for a range of more than one port.
      port->set_end_port(p.last != p.first ? p.last : 0);
    }
  }
  // In the spec's order: an exposed service while its endpoint is attached, with its URL; one
  // declared without a visibility always, without a URL (it is not reachable from outside).
  for (const v1::Service& declared : s.spec().services()) {
    v1::ServiceProtocol protocol = declared.protocol() == v1::SERVICE_PROTOCOL_UNSPECIFIED
                                       ? v1::SERVICE_PROTOCOL_TCP
                                       : declared.protocol();
    std::string url;
    if (declared.visibility() != v1::VISIBILITY_UNSPECIFIED) {
      auto endpoint = std::find_if(services.begin(), services.end(), [&](const auto& e) {
        return e.service.port == declared.port() && ProtocolOf(e.service.protocol) == protocol;
      });
      if (endpoint == services.end()) continue;
      url = endpoint->url;
    }
    auto* svc = st->add_services();
    svc->set_port(declared.port());
    svc->set_name(declared.name());
    svc->set_protocol(protocol);
    svc->set_visibility(declared.visibility());
    svc->set_url(url);
  }
  auto* cs = st->add_container_statuses();
  cs->set_name("main");
  cs->set_state(ToProtoState(r.state));
  if (r.exit_code) cs->set_exit_code(*r.exit_code);
  return s;
}

}  // namespace sbx::daemon
