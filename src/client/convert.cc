#include "src/client/convert.h"

#include <cctype>

#include "src/base/strings.h"

namespace sbx {

std::string_view StateName(SandboxState state) {
  switch (state) {
    case SandboxState::kUnspecified:
      return "UNSPECIFIED";
    case SandboxState::kPending:
      return "PENDING";
    case SandboxState::kCreating:
      return "CREATING";
    case SandboxState::kRunning:
      return "RUNNING";
    case SandboxState::kCompleted:
      return "COMPLETED";
    case SandboxState::kFailed:
      return "FAILED";
    case SandboxState::kTerminating:
      return "TERMINATING";
    case SandboxState::kTerminated:
      return "TERMINATED";
    case SandboxState::kPaused:
      return "PAUSED";
  }
  return "UNSPECIFIED";
}

std::optional<SandboxState> ParseState(std::string_view name) {
  std::string upper;
  for (char c : name) upper += static_cast<char>(toupper(static_cast<unsigned char>(c)));
  if (StartsWith(upper, "STATE_")) upper = upper.substr(6);
  for (auto state : {SandboxState::kPending, SandboxState::kCreating, SandboxState::kRunning,
                     SandboxState::kCompleted, SandboxState::kFailed, SandboxState::kTerminating,
                     SandboxState::kTerminated, SandboxState::kPaused}) {
    if (StateName(state) == upper) return state;
  }
  return std::nullopt;
}

bool IsTerminal(SandboxState state) {
  return state == SandboxState::kCompleted || state == SandboxState::kFailed ||
         state == SandboxState::kTerminated;
}

std::string_view VisibilityName(Visibility visibility) {
  switch (visibility) {
    case Visibility::kDeclared:
      return "declared";
    case Visibility::kPrivate:
      return "private";
    case Visibility::kPublic:
      return "public";
  }
  return "declared";
}

namespace client {

namespace {

cw::ServiceProtocol ProtocolToProto(const std::string& protocol) {
  if (protocol == "udp") return cw::SERVICE_PROTOCOL_UDP;
  if (protocol == "sctp") return cw::SERVICE_PROTOCOL_SCTP;
  return cw::SERVICE_PROTOCOL_TCP;
}

std::string ProtocolFromProto(cw::ServiceProtocol protocol) {
  switch (protocol) {
    case cw::SERVICE_PROTOCOL_UDP:
      return "udp";
    case cw::SERVICE_PROTOCOL_SCTP:
      return "sctp";
    default:
      return "tcp";
  }
}

cw::Visibility VisibilityToProto(Visibility visibility) {
  switch (visibility) {
    case Visibility::kDeclared:
      return cw::VISIBILITY_UNSPECIFIED;
    case Visibility::kPrivate:
      return cw::VISIBILITY_PRIVATE;
    case Visibility::kPublic:
      return cw::VISIBILITY_PUBLIC;
  }
  return cw::VISIBILITY_UNSPECIFIED;
}

Visibility VisibilityFromProto(cw::Visibility visibility) {
  switch (visibility) {
    case cw::VISIBILITY_PRIVATE:
      return Visibility::kPrivate;
    case cw::VISIBILITY_PUBLIC:
      return Visibility::kPublic;
    default:
      return Visibility::kDeclared;
  }
}

void EgressToProto(const EgressRule& rule, cw::EgressRule* out) {
  if (rule.any) {
    out->set_any(true);
  } else if (!rule.dns_name.empty()) {
    out->set_dns_name(rule.dns_name);
  } else {
    out->mutable_cidr()->set_cidr(rule.cidr);
    for (const auto& e : rule.except) out->mutable_cidr()->add_except(e);
  }
  for (const auto& p : rule.ports) {
    auto* range = out->add_ports();
    range->set_protocol(p.protocol);
    range->set_port(p.port);
    range->set_end_port(p.end_port);
  }
}

EgressRule EgressFromProto(const cw::EgressRule& in) {
  EgressRule out;
  out.any = in.has_any() && in.any();
  out.dns_name = in.has_dns_name() ? in.dns_name() : "";
  if (in.has_cidr()) {
    out.cidr = in.cidr().cidr();
    out.except.assign(in.cidr().except().begin(), in.cidr().except().end());
  }
  for (const auto& p : in.ports()) out.ports.push_back({p.protocol(), p.port(), p.end_port()});
  return out;
}

}  // namespace

google::protobuf::Timestamp ToTimestamp(TimePoint time) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
  google::protobuf::Timestamp ts;
  ts.set_seconds(ns / 1000000000);
  ts.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return ts;
}

std::optional<TimePoint> FromTimestamp(const google::protobuf::Timestamp& ts, bool present) {
  if (!present || (ts.seconds() == 0 && ts.nanos() == 0)) return std::nullopt;
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(
      std::chrono::seconds(ts.seconds()) + std::chrono::nanoseconds(ts.nanos())));
}

std::string NewRequestId() {
  std::string hex = RandomHex(16);
  hex[12] = '4';                                                    // version 4
  hex[16] = "89ab"[std::stoi(hex.substr(16, 1), nullptr, 16) % 4];  // RFC 4122 variant
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

cw::State ToProto(SandboxState state) {
  switch (state) {
    case SandboxState::kUnspecified:
      return cw::STATE_UNSPECIFIED;
    case SandboxState::kPending:
      return cw::STATE_PENDING;
    case SandboxState::kCreating:
      return cw::STATE_CREATING;
    case SandboxState::kRunning:
      return cw::STATE_RUNNING;
    case SandboxState::kCompleted:
      return cw::STATE_COMPLETED;
    case SandboxState::kFailed:
      return cw::STATE_FAILED;
    case SandboxState::kTerminating:
      return cw::STATE_TERMINATING;
    case SandboxState::kTerminated:
      return cw::STATE_TERMINATED;
    case SandboxState::kPaused:
      return cw::STATE_PAUSED;
  }
  return cw::STATE_UNSPECIFIED;
}

SandboxState FromProto(cw::State state) {
  switch (state) {
    case cw::STATE_PENDING:
      return SandboxState::kPending;
    case cw::STATE_CREATING:
      return SandboxState::kCreating;
    case cw::STATE_RUNNING:
      return SandboxState::kRunning;
    case cw::STATE_COMPLETED:
      return SandboxState::kCompleted;
    case cw::STATE_FAILED:
      return SandboxState::kFailed;
    case cw::STATE_TERMINATING:
      return SandboxState::kTerminating;
    case cw::STATE_TERMINATED:
      return SandboxState::kTerminated;
    case cw::STATE_PAUSED:
      return SandboxState::kPaused;
    default:
      return SandboxState::kUnspecified;
  }
}

void ToProto(const SandboxSpec& spec, cw::CreateSandboxRequest* request) {
  request->set_request_id(spec.request_id.empty() ? NewRequestId() : spec.request_id);
  cw::SandboxSpec* out = request->mutable_sandbox()->mutable_spec();
  cw::Container* c = out->add_containers();
  c->set_name("main");
  c->set_image(spec.image);
  if (!spec.command.empty()) {
    c->set_command(spec.command);
    for (const auto& a : spec.args) c->add_args(a);
  } else if (spec.use_image_command || !spec.args.empty()) {
    for (const auto& a : spec.args) c->add_args(a);
  } else {
    c->set_command(kKeepAliveCommand);
    c->add_args("-c");
    c->add_args(kKeepAliveScript);
  }
  for (const auto& [k, v] : spec.env) (*c->mutable_environment_variables())[k] = v;
  c->set_working_dir(spec.working_dir);
  if (!spec.cpu.empty()) c->mutable_resources()->set_cpu(spec.cpu);
  if (!spec.memory.empty()) c->mutable_resources()->set_memory(spec.memory);
  if (!spec.cpu_request.empty() || !spec.memory_request.empty()) {
    auto* requests = c->mutable_resource_requirements()->mutable_requests();
    requests->set_cpu(spec.cpu_request);
    requests->set_memory(spec.memory_request);
  }
  for (const auto& [path, content] : spec.files) {
    auto* f = c->add_files();
    f->set_path(path);
    f->set_content(content);
  }
  std::map<std::string, cw::SecretStoreReference*> stores;
  for (const auto& secret : spec.secrets) {
    cw::SecretStoreReference*& store = stores[secret.store];
    if (store == nullptr) {
      store = c->add_secret_stores();
      store->set_store_name(secret.store);
    }
    auto* mapping = store->add_secrets();
    mapping->set_path(secret.name);
    mapping->set_field(secret.field);
    mapping->set_env_var(secret.env_var.empty() ? secret.name : secret.env_var);
  }
  for (const auto& t : spec.tags) out->add_tags(t);
  out->set_max_lifetime_seconds(spec.max_lifetime_seconds);
  if (spec.deny_egress) out->mutable_network()->set_deny_egress(true);
  for (const auto& rule : spec.egress) EgressToProto(rule, out->mutable_network()->add_egress());
  for (const auto& service : spec.services) {
    auto* s = out->add_services();
    s->set_port(service.port);
    s->set_name(service.name);
    s->set_protocol(ProtocolToProto(service.protocol));
    s->set_visibility(VisibilityToProto(service.visibility));
  }
  for (const auto& [k, v] : spec.annotations) (*out->mutable_annotations())[k] = v;
}

Sandbox FromProto(const cw::Sandbox& in) {
  Sandbox out;
  out.id = in.sandbox_id();
  const auto& st = in.status();
  out.state = FromProto(st.state());
  out.state_reason = st.state_reason();
  if (st.has_exit_code()) out.exit_code = st.exit_code();
  out.create_time = FromTimestamp(st.create_time(), st.has_create_time());
  out.start_time = FromTimestamp(st.start_time(), st.has_start_time());
  out.end_time = FromTimestamp(st.end_time(), st.has_end_time());
  out.cpu = st.effective_resources().cpu();
  out.memory = st.effective_resources().memory();
  out.max_lifetime_seconds = st.effective_max_lifetime_seconds();
  out.runner_id = st.runner_id();
  if (st.has_resource_usage()) {
    out.resource_usage = Sandbox::ResourceUsage{st.resource_usage().cpu_millicores(),
                                                st.resource_usage().memory_mb()};
  }
  for (const auto& rule : st.effective_egress()) out.egress.push_back(EgressFromProto(rule));
  for (const auto& s : st.services()) {
    out.services.push_back({s.port(), s.name(), ProtocolFromProto(s.protocol()),
                            VisibilityFromProto(s.visibility()), s.url()});
  }
  const auto& spec = in.spec();
  out.tags.assign(spec.tags().begin(), spec.tags().end());
  out.annotations.insert(spec.annotations().begin(), spec.annotations().end());
  out.deny_egress = spec.has_network() && spec.network().deny_egress();
  if (out.max_lifetime_seconds == 0) out.max_lifetime_seconds = spec.max_lifetime_seconds();
  if (spec.containers_size() > 0) {
    const auto& c = spec.containers(0);
    out.image = c.image();
    out.command = c.command();
    out.args.assign(c.args().begin(), c.args().end());
    out.env.insert(c.environment_variables().begin(), c.environment_variables().end());
    out.working_dir = c.working_dir();
  }
  return out;
}

Image FromProto(const ::sbx::v1::Image& in) {
  Image out;
  out.reference = in.reference();
  out.digest = in.digest();
  out.size_bytes = in.size_bytes();
  out.created_time = FromTimestamp(in.created_time(), in.has_created_time());
  out.references.assign(in.references().begin(), in.references().end());
  out.platform = in.platform();
  return out;
}

}  // namespace client
}  // namespace sbx
