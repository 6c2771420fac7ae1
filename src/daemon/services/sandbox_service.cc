#include "src/daemon/services/sandbox_service.h"

#include <signal.h>

#include <atomic>
#include <thread>

#include "src/agent/client.h"
#include "src/base/clock.h"
#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/daemon/secrets.h"
#include "src/daemon/services/status_mapping.h"
#include "src/image/reference.h"
#include "src/net/ipv4.h"
#include "src/runtime/spec.h"

namespace sbx::daemon {

namespace {

constexpr size_t kMaxTags = 64;
constexpr size_t kMaxTagBytes = 256;
constexpr size_t kMaxAnnotations = 100;
constexpr size_t kMaxFiles = 100;
constexpr size_t kMaxFileMountBytes = 16u << 20;
constexpr size_t kMaxEnv = 1000;
constexpr size_t kMaxServices = 16;
constexpr int64_t kDefaultExecOutput = 16 << 20;
constexpr int64_t kMaxExecOutput = 64 << 20;

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

bool ValidEnvName(const std::string& name) {
  if (name.empty() || name.size() > 1024) return false;
  for (char c : name) {
    if (c == '=' || c == '\0') return false;
  }
  return true;
}

Status ParseQuantities(const v1::Resources& resources, const std::string& field, uint64_t* cpu,
                       uint64_t* memory) {
  if (!resources.cpu().empty()) {
    auto v = runtime::ParseCpuMillis(resources.cpu());
    if (!v || *v == 0)
      return FieldError(field + ".cpu", "invalid CPU quantity " + Quote(resources.cpu()));
    *cpu = *v;
  }
  if (!resources.memory().empty()) {
    auto v = runtime::ParseBytes(resources.memory());
    if (!v || *v == 0) {
      return FieldError(field + ".memory", "invalid memory quantity " + Quote(resources.memory()));
    }
    *memory = *v;
  }
  if (resources.has_gpu() && resources.gpu().count() > 0) {
    return FieldError(field + ".gpu", "this node has no GPUs")
        .WithReason("CWSANDBOX_GPU_NOT_ALLOWED")
        .WithCode(Code::kInvalidArgument);
  }
  return Ok();
}

grpc::Status Fail(const Error& error) { return ToGrpcStatus(error); }

Status ParsePorts(const google::protobuf::RepeatedPtrField<v1::PortRange>& ports,
                  const std::string& field, std::vector<PortRange>* out) {
  for (int i = 0; i < ports.size(); ++i) {
    const auto& p = ports[i];
    std::string f = field + ".ports[" + std::to_string(i) + "]";
    std::string protocol = p.protocol();
    for (auto& c : protocol) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    if (!protocol.empty() && protocol != "tcp" && protocol != "udp") {
      return FieldError(f + ".protocol", "must be \"tcp\" or \"udp\"");
    }
    if (p.port() < 0 || p.port() > 65535 || p.end_port() < 0 || p.end_port() > 65535 ||
        (p.end_port() != 0 && p.end_port() < p.port())) {
      return FieldError(f, "invalid port range");
    }
    out->push_back({protocol, p.port(), p.end_port()});
  }
  return Ok();
}

bool ValidDnsName(const std::string& name) {
  std::string n = name.rfind("*.", 0) == 0 ? name.substr(2) : name;
  if (n.empty() || n.size() > 253) return false;
  for (const auto& label : Split(n, '.')) {
    if (label.empty() || label.size() > 63) return false;
    for (char c : label) {
      if (!(isalnum(static_cast<unsigned char>(c)) || c == '-')) return false;
    }
  }
  return true;
}

Status ParseNetwork(const v1::NetworkOptions& network, NetworkRequest* out) {
  if (network.ingress_size() > 0) {
    return Error::Unimplemented("ingress rules are not supported by sbx yet");
  }
  if (network.deny_egress()) {
    if (network.egress_size() > 0) {
      return FieldError("sandbox.spec.network.egress", "egress rules contradict deny_egress");
    }
    out->mode = NetworkMode::kNone;
    return Ok();
  }
  if (network.egress_size() == 0) return Ok();
  out->mode = NetworkMode::kAllowlist;
  for (int i = 0; i < network.egress_size(); ++i) {
    const auto& rule = network.egress(i);
    std::string field = "sandbox.spec.network.egress[" + std::to_string(i) + "]";
    EgressRuleSpec spec;
    switch (rule.destination_case()) {
      case v1::EgressRule::kCidr:
        spec.cidr = rule.cidr().cidr();
        spec.except.assign(rule.cidr().except().begin(), rule.cidr().except().end());
        // Sandboxes have IPv4 only; an IPv6 rule could never be honoured.
        if (spec.cidr.find('/') == std::string::npos || !net::ParseIpv4Prefix(spec.cidr)) {
          return FieldError(field + ".cidr", "not an IPv4 CIDR block: " + Quote(spec.cidr));
        }
        for (const auto& x : spec.except) {
          if (!net::ParseIpv4Prefix(x)) {
            return FieldError(field + ".cidr.except", "not an IPv4 CIDR block: " + Quote(x));
          }
        }
        break;
      case v1::EgressRule::kDnsName:
        spec.dns_name = rule.dns_name();
        if (!ValidDnsName(spec.dns_name)) {
          return FieldError(field + ".dns_name", "not a DNS name: " + Quote(spec.dns_name));
        }
        break;
      case v1::EgressRule::kAny:
        spec.any = rule.any();
        break;
      case v1::EgressRule::kTenant:
      case v1::EgressRule::kSelector:
        return Error::Unimplemented(field + ": tenant and selector destinations are not supported");
      default:
        return FieldError(field, "no destination");
    }
    SBX_TRY(ParsePorts(rule.ports(), field, &spec.ports));
    out->egress.push_back(std::move(spec));
  }
  return Ok();
}

Status ParseServices(const v1::SandboxSpec& spec, const Config& config, NetworkRequest* out) {
  if (spec.services_size() == 0) return Ok();
  if (static_cast<size_t>(spec.services_size()) > kMaxServices) {
    return FieldError("sandbox.spec.services", "at most 16 services");
  }
  if (config.network != "bridge") {
    return Error::FailedPrecondition(
        "exposed services need a sandbox network; this node runs with network \"none\"");
  }
  if (spec.network().has_deny_ingress() && spec.network().deny_ingress()) {
    return FieldError("sandbox.spec.network.deny_ingress", "contradicts exposed services");
  }
  for (int i = 0; i < spec.services_size(); ++i) {
    const v1::Service& s = spec.services(i);
    std::string field = "sandbox.spec.services[" + std::to_string(i) + "]";
    ServiceSpec svc;
    if (s.port() < 1 || s.port() > 65535) return FieldError(field + ".port", "must be 1-65535");
    svc.port = s.port();
    if (s.name().size() > 63) return FieldError(field + ".name", "longer than 63 characters");
    svc.name = s.name();
    switch (s.protocol()) {
      case v1::SERVICE_PROTOCOL_UNSPECIFIED:
      case v1::SERVICE_PROTOCOL_TCP:
        svc.protocol = "tcp";
        break;
      case v1::SERVICE_PROTOCOL_UDP:
        svc.protocol = "udp";
        break;
      default:
        return Error::Unimplemented(field + ".protocol: only TCP and UDP services are supported");
    }
    switch (s.visibility()) {
      case v1::VISIBILITY_UNSPECIFIED:
      case v1::VISIBILITY_PRIVATE:
        break;
      case v1::VISIBILITY_PUBLIC:
        svc.public_access = true;
        break;
      default:
        return Error::Unimplemented(field + ".visibility: custom visibility is not supported");
    }
    svc.visibility = s.visibility();
    if (s.has_endpoint() && s.endpoint().kind() != v1::ENDPOINT_KIND_UNSPECIFIED) {
      return Error::Unimplemented(field +
                                  ".endpoint: managed endpoints are not supported by sbx; the "
                                  "port is exposed on the host and its URL is in the status");
    }
    for (const auto& other : out->services) {
      if (other.port == svc.port && other.protocol == svc.protocol) {
        return FieldError(field + ".port", "port " + std::to_string(svc.port) + "/" + svc.protocol +
                                               " is exposed twice");
      }
    }
    out->services.push_back(std::move(svc));
  }
  return Ok();
}

// How long a request may wait for a sandbox to start, from the call's own deadline.
int64_t CallDeadline(const grpc::ServerContext* context, int64_t fallback_ms) {
  auto deadline = context->deadline();
  auto now = std::chrono::system_clock::now();
  if (deadline == std::chrono::system_clock::time_point::max() || deadline <= now) {
    return MonotonicMillis() + fallback_ms;
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
  return MonotonicMillis() + std::min<int64_t>(left, 24LL * 3600 * 1000);
}

std::string LogSessionId(const SandboxRecord& r) {
  return r.id + "." + std::to_string(r.init_start_time != 0 ? r.init_start_time : r.create_ns);
}

}  // namespace

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

Result<CreateRequest> ParseCreateRequest(const v1::CreateSandboxRequest& request,
                                         const Config& config) {
  CreateRequest out;
  out.request_id = request.request_id();
  if (out.request_id.size() > 256) return FieldError("request_id", "longer than 256 characters");
  const v1::SandboxSpec& spec = request.sandbox().spec();
  out.spec_blob = spec.SerializeAsString();
  if (spec.containers_size() > 1) {
    return FieldError("sandbox.spec.containers", "only one container per sandbox is supported");
  }
  if (spec.init_containers_size() > 0) {
    return Error::Unimplemented("init containers are not supported by sbx");
  }
  if (spec.volumes_size() > 0) return Error::Unimplemented("volumes are not supported by sbx yet");
  SBX_TRY(ParseServices(spec, config, &out.network));
  if (!spec.network_ids().empty())
    return Error::Unimplemented("network_ids are not supported by sbx");
  if (spec.max_lifetime_seconds() < 0) {
    return FieldError("sandbox.spec.max_lifetime_seconds", "must not be negative");
  }
  if (spec.max_lifetime_seconds() > config.max_lifetime_seconds) {
    return FieldError("sandbox.spec.max_lifetime_seconds",
                      std::to_string(spec.max_lifetime_seconds()) +
                          "s is more than the maximum of " +
                          std::to_string(config.max_lifetime_seconds) + "s");
  }
  out.lifetime_seconds = spec.max_lifetime_seconds();
  if (static_cast<size_t>(spec.tags_size()) > kMaxTags) {
    return FieldError("sandbox.spec.tags", "at most 64 tags");
  }
  for (int i = 0; i < spec.tags_size(); ++i) {
    const std::string& tag = spec.tags(i);
    std::string field = "sandbox.spec.tags[" + std::to_string(i) + "]";
    if (tag.empty()) return FieldError(field, "empty tag");
    if (tag.size() > kMaxTagBytes) return FieldError(field, "longer than 256 bytes");
    if (tag.find('\0') != std::string::npos) return FieldError(field, "contains a NUL byte");
    out.tags.push_back(tag);
  }
  if (static_cast<size_t>(spec.annotations_size()) > kMaxAnnotations) {
    return FieldError("sandbox.spec.annotations", "at most 100 annotations");
  }
  for (const auto& [k, v] : spec.annotations()) out.annotations[k] = v;
  const std::string& runtime_class = spec.runtime_class();
  if (!runtime_class.empty() && runtime_class != "sbx" && runtime_class != "runc" &&
      runtime_class != "default") {
    return FieldError("sandbox.spec.runtime_class",
                      Quote(runtime_class) + " is not available on this node (available: \"sbx\")");
  }
  out.runtime_class = "sbx";
  if (spec.has_network()) {
    SBX_TRY(ParseNetwork(spec.network(), &out.network));
  }
  if (spec.containers_size() == 0) {
    out.image = config.default_image;
    return out;
  }
  const v1::Container& c = spec.containers(0);
  const std::string base = "sandbox.spec.containers[0]";
  out.image = c.image().empty() ? config.default_image : c.image();
  if (auto ref = image::Reference::Parse(out.image); !ref) {
    return FieldError(base + ".image", ref.error().message());
  }
  out.command = c.command();
  for (const auto& a : c.args()) out.args.push_back(a);
  out.args_given = c.args_size() > 0;
  if (static_cast<size_t>(c.environment_variables_size()) > kMaxEnv) {
    return FieldError(base + ".environment_variables", "at most 1000 variables");
  }
  for (const auto& [k, v] : c.environment_variables()) {
    if (!ValidEnvName(k))
      return FieldError(base + ".environment_variables", "invalid name " + Quote(k));
    if (v.find('\0') != std::string::npos) {
      return FieldError(base + ".environment_variables", Quote(k) + " contains a NUL byte");
    }
    out.env[k] = v;
  }
  if (!c.working_dir().empty() && c.working_dir()[0] != '/') {
    return FieldError(base + ".working_dir", "must be an absolute path");
  }
  out.working_dir = c.working_dir();
  if (static_cast<size_t>(c.files_size()) > kMaxFiles) {
    return FieldError(base + ".files", "at most 100 mounted files");
  }
  for (int i = 0; i < c.files_size(); ++i) {
    std::string field = base + ".files[" + std::to_string(i) + "]";
    const auto& f = c.files(i);
    if (f.path().empty() || f.path().find('\0') != std::string::npos || f.path().size() > 4000) {
      return FieldError(field + ".path", "invalid path");
    }
    if (f.path() == "/" || f.path().back() == '/') {
      return FieldError(field + ".path", Quote(f.path()) + " does not name a file");
    }
    if (f.content().size() > kMaxFileMountBytes) {
      return FieldError(field + ".content", "larger than 16 MiB");
    }
    out.files.push_back({f.path(), f.content()});
  }
  for (const auto& store : c.secret_stores()) {
    for (const auto& m : store.secrets()) {
      out.secrets.push_back({store.store_name(), m.path(), m.field(), m.env_var()});
    }
  }
  // Secrets are checked now, so a missing one fails the create instead of the sandbox.
  if (auto resolved = ResolveSecrets(config.secrets_dir, out.secrets); !resolved) {
    return std::move(resolved)
        .error()
        .WithReason("CWSANDBOX_INVALID_REQUEST")
        .WithMetadata("field", base + ".secret_stores");
  }
  uint64_t cpu_limit = 0, mem_limit = 0, cpu_request = 0, mem_request = 0;
  if (c.has_resources()) {
    SBX_TRY(ParseQuantities(c.resources(), base + ".resources", &cpu_limit, &mem_limit));
  }
  if (c.has_resource_requirements()) {
    const auto& rr = c.resource_requirements();
    SBX_TRY(ParseQuantities(rr.limits(), base + ".resource_requirements.limits", &cpu_limit,
                            &mem_limit));
    SBX_TRY(ParseQuantities(rr.requests(), base + ".resource_requirements.requests", &cpu_request,
                            &mem_request));
  }
  if (cpu_request && cpu_limit && cpu_request > cpu_limit) {
    return FieldError(base + ".resource_requirements", "CPU request exceeds the limit");
  }
  if (mem_request && mem_limit && mem_request > mem_limit) {
    return FieldError(base + ".resource_requirements", "memory request exceeds the limit");
  }
  if ((mem_limit && mem_limit < (16u << 20)) || (mem_request && mem_request < (16u << 20))) {
    return FieldError(base + ".resource_requirements", "memory must be at least 16Mi");
  }
  if ((cpu_limit && cpu_limit < 10) || (cpu_request && cpu_request < 10)) {
    return FieldError(base + ".resource_requirements", "CPU must be at least 10m");
  }
  out.cpu_limit_millis = cpu_limit;
  out.memory_limit_bytes = mem_limit;
  out.cpu_request_millis = cpu_request;
  out.memory_request_bytes = mem_request;
  if (c.has_security_context()) {
    const auto& sc = c.security_context();
    if (sc.has_privileged() && sc.privileged()) {
      return FieldError(base + ".security_context.privileged",
                        "privileged sandboxes are not allowed");
    }
    if (sc.capabilities_add_size() > 0) {
      return FieldError(base + ".security_context.capabilities_add",
                        "adding capabilities is not allowed");
    }
  }
  return out;
}

v1::Sandbox ToProto(const SandboxRecord& r, const std::string& runner_id,
                    const std::vector<ServiceEndpoint>& services) {
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
    if (!e.dns_name.empty()) {
      rule->set_dns_name(e.dns_name);
    } else if (e.any) {
      rule->set_any(true);
    } else {
      rule->mutable_cidr()->set_cidr(e.cidr);
      for (const auto& x : e.except) rule->mutable_cidr()->add_except(x);
    }
    for (const auto& p : e.ports) {
      auto* port = rule->add_ports();
      port->set_protocol(p.protocol);
      port->set_port(p.port);
      port->set_end_port(p.end_port);
    }
  }
  for (const auto& e : services) {
    auto* svc = st->add_services();
    svc->set_port(e.service.port);
    svc->set_name(e.service.name);
    svc->set_protocol(e.service.protocol == "udp" ? v1::SERVICE_PROTOCOL_UDP
                                                  : v1::SERVICE_PROTOCOL_TCP);
    svc->set_visibility(static_cast<v1::Visibility>(e.service.visibility));
    svc->set_url(e.url);
  }
  auto* cs = st->add_container_statuses();
  cs->set_name("main");
  cs->set_state(ToProtoState(r.state));
  if (r.exit_code) cs->set_exit_code(*r.exit_code);
  return s;
}

v1::Sandbox SandboxService::Render(const SandboxRecord& r) const {
  std::vector<ServiceEndpoint> services;
  if (network_ != nullptr && !IsTerminal(r.state)) services = network_->Services(r.id);
  return ToProto(r, manager_->runner_id(), services);
}

Result<std::string> SandboxService::Socket(grpc::ServerContext* context, const std::string& id) {
  SBX_ASSIGN_OR_RETURN(std::string tenant, auth_->Tenant(*context));
  if (id.empty()) return FieldError("sandbox_id", "required");
  return manager_->AgentSocket(tenant, id, CallDeadline(context, 300000));
}

grpc::Status SandboxService::CreateSandbox(grpc::ServerContext* context,
                                           const v1::CreateSandboxRequest* request,
                                           v1::Sandbox* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  auto parsed = ParseCreateRequest(*request, manager_->config());
  if (!parsed) {
    metrics_->Inc("sbx_create_errors_total", {{"reason", "INVALID_ARGUMENT"}});
    return Fail(parsed.error());
  }
  auto record = manager_->Create(*tenant, std::move(*parsed));
  if (!record) return Fail(record.error());
  // Answer as soon as the sandbox runs (usually milliseconds), so the caller need not poll; a
  // slow image pull returns the PENDING/CREATING record and the caller polls.
  auto settled =
      manager_->WaitSettled(*tenant, record->id,
                            std::min(CallDeadline(context, 60000),
                                     MonotonicMillis() + manager_->config().create_wait_ms));
  *response = Render(settled ? *settled : *record);
  return grpc::Status::OK;
}

grpc::Status SandboxService::CreateSandboxFromTemplate(grpc::ServerContext*,
                                                       const v1::CreateSandboxFromTemplateRequest*,
                                                       v1::Sandbox*) {
  return Fail(Error::Unimplemented("sandbox templates are not supported by sbx"));
}

grpc::Status SandboxService::GetSandbox(grpc::ServerContext* context,
                                        const v1::GetSandboxRequest* request,
                                        v1::Sandbox* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  if (request->sandbox_id().empty()) return Fail(FieldError("sandbox_id", "required"));
  auto record = manager_->Get(*tenant, request->sandbox_id());
  if (!record) return Fail(record.error());
  *response = Render(*record);
  return grpc::Status::OK;
}

grpc::Status SandboxService::ListSandboxes(grpc::ServerContext* context,
                                           const v1::ListSandboxesRequest* request,
                                           v1::ListSandboxesResponse* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  ListFilter filter;
  for (const auto& t : request->tags()) filter.tags.push_back(t);
  if (request->state() != v1::STATE_UNSPECIFIED) {
    filter.state = FromProtoState(request->state());
    if (!filter.state) return Fail(FieldError("state", "unsupported state filter"));
  }
  filter.show_terminated = request->show_terminated();
  if (request->page_size() < 0) return Fail(FieldError("page_size", "must not be negative"));
  filter.page_size = request->page_size();
  filter.page_token = request->page_token();
  auto result = manager_->List(*tenant, filter);
  if (!result) return Fail(result.error());
  for (const auto& r : result->sandboxes) *response->add_sandboxes() = Render(r);
  response->set_next_page_token(result->next_page_token);
  return grpc::Status::OK;
}

grpc::Status SandboxService::DeleteSandbox(grpc::ServerContext* context,
                                           const v1::DeleteSandboxRequest* request,
                                           v1::DeleteSandboxResponse* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  if (request->sandbox_id().empty()) return Fail(FieldError("sandbox_id", "required"));
  if (request->grace_period_seconds() < 0) {
    return Fail(FieldError("grace_period_seconds", "must not be negative"));
  }
  if (request->snapshot_volumes_size() > 0) {
    return Fail(Error::Unimplemented("snapshots are not supported by sbx"));
  }
  auto record = manager_->Stop(*tenant, request->sandbox_id(), request->grace_period_seconds());
  if (!record) {
    if (record.error().code() == Code::kNotFound && request->allow_missing())
      return grpc::Status::OK;
    return Fail(record.error());
  }
  *response->mutable_sandbox() = Render(*record);
  return grpc::Status::OK;
}

grpc::Status SandboxService::PurgeSandboxes(grpc::ServerContext* context,
                                            const v1::PurgeSandboxesRequest* request,
                                            v1::PurgeSandboxesResponse* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  std::vector<std::string> tags(request->tags().begin(), request->tags().end());
  auto result = manager_->Purge(*tenant, tags, request->purge_all(), request->dry_run());
  if (!result) return Fail(result.error());
  response->set_purge_count(result->count);
  for (const auto& id : result->failed) response->add_failed_sandbox_ids(id);
  return grpc::Status::OK;
}

grpc::Status SandboxService::Exec(grpc::ServerContext* context, const v1::ExecRequest* request,
                                  v1::ExecResponse* response) {
  if (request->command_size() == 0) return Fail(FieldError("command", "required"));
  if (request->max_output_bytes() < 0)
    return Fail(FieldError("max_output_bytes", "must not be negative"));
  int64_t started = MonotonicNanos();
  auto socket = Socket(context, request->sandbox_id());
  if (!socket) return Fail(socket.error());
  agent::ExecStart start;
  start.argv.assign(request->command().begin(), request->command().end());
  for (const auto& [k, v] : request->env()) {
    if (!ValidEnvName(k)) return Fail(FieldError("env", "invalid name " + Quote(k)));
    start.env.push_back(k + "=" + v);
  }
  agent::AgentClient client(*socket);
  auto stream = client.StartExec(start);
  if (!stream) return Fail(stream.error());
  int64_t limit = request->max_output_bytes() > 0
                      ? std::min<int64_t>(request->max_output_bytes(), kMaxExecOutput)
                      : kDefaultExecOutput;
  int64_t deadline = CallDeadline(context, 24LL * 3600 * 1000);
  int64_t produced[2] = {0, 0};
  std::string* sinks[2] = {response->mutable_stdout(), response->mutable_stderr()};
  while (true) {
    auto event = stream->Next(std::min(deadline, MonotonicMillis() + 200));
    if (!event) {
      if (event.error().code() == Code::kDeadlineExceeded) {
        if (context->IsCancelled() || MonotonicMillis() >= deadline) {
          // Returning closes the connection, and sbx-init kills the process tree.
          return Fail(
              Error::DeadlineExceeded("command timed out").WithReason("CWSANDBOX_COMMAND_TIMEOUT"));
        }
        continue;
      }
      return Fail(event.error());
    }
    if (event->kind == agent::ExecEvent::kExit) {
      const auto& x = event->exit;
      response->set_exit_code(x.signaled ? 128 + x.signal : x.exit_code);
      break;
    }
    int index = event->output.stream == agent::StreamId::kStderr ? 1 : 0;
    produced[index] += static_cast<int64_t>(event->output.data.size());
    int64_t room = limit - static_cast<int64_t>(sinks[index]->size());
    if (room > 0) sinks[index]->append(event->output.data.substr(0, static_cast<size_t>(room)));
  }
  response->set_stdout_bytes_produced(produced[0]);
  response->set_stderr_bytes_produced(produced[1]);
  response->set_stdout_truncated(produced[0] > static_cast<int64_t>(response->stdout().size()));
  response->set_stderr_truncated(produced[1] > static_cast<int64_t>(response->stderr().size()));
  metrics_->Observe("sbx_exec_seconds", static_cast<double>(MonotonicNanos() - started) / 1e9);
  return grpc::Status::OK;
}

grpc::Status SandboxService::StreamExec(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::ExecStreamResponse, v1::ExecStreamRequest>* stream) {
  v1::ExecStreamRequest first;
  if (!stream->Read(&first)) return grpc::Status(grpc::StatusCode::CANCELLED, "no init message");
  if (!first.has_init()) return Fail(FieldError("init", "the first message must be init"));
  const v1::ExecStreamInit& init = first.init();
  if (init.command_size() == 0) return Fail(FieldError("init.command", "required"));
  int64_t started = MonotonicNanos();
  auto socket = Socket(context, init.sandbox_id());
  if (!socket) return Fail(socket.error());
  agent::ExecStart start;
  start.argv.assign(init.command().begin(), init.command().end());
  for (const auto& [k, v] : init.env()) {
    if (!ValidEnvName(k)) return Fail(FieldError("init.env", "invalid name " + Quote(k)));
    start.env.push_back(k + "=" + v);
  }
  start.tty = init.tty();
  start.rows = init.tty_height();
  start.cols = init.tty_width();
  start.stdin_open = true;
  agent::AgentClient client(*socket);
  auto exec = client.StartExec(start);
  if (!exec) return Fail(exec.error());

  v1::ExecStreamResponse ready;
  *ready.mutable_ready()->mutable_ready_time() = ToTimestamp(WallNanos());
  if (!stream->Write(ready)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");

  // The client's messages (stdin, resize, close) are read on their own thread; this one streams
  // output back. Only that thread writes to sbx-init, only this one reads from it.
  std::atomic<bool> client_done{false};
  std::thread reader([&] {
    v1::ExecStreamRequest message;
    bool closed = false;
    while (stream->Read(&message)) {
      if (message.has_stdin()) {
        if (!closed && !exec->WriteStdin(message.stdin(), MonotonicMillis() + 60000)) break;
      } else if (message.has_resize()) {
        (void)exec->Resize(message.resize().height(), message.resize().width());
      } else if (message.has_close()) {
        if (!closed) (void)exec->CloseStdin();
        closed = true;
      }
    }
    if (!closed && !start.tty) (void)exec->CloseStdin();
    client_done = true;
  });
  auto finish = [&](grpc::Status status) {
    if (!client_done) {
      // Give a well-behaved client a moment to half-close, then unblock the reader.
      for (int i = 0; i < 50 && !client_done; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      if (!client_done) context->TryCancel();
    }
    reader.join();
    return status;
  };
  while (true) {
    auto event = exec->Next(MonotonicMillis() + 200);
    if (!event) {
      if (event.error().code() == Code::kDeadlineExceeded) {
        if (context->IsCancelled()) {
          (void)exec->Kill();
          return finish(
              grpc::Status(grpc::StatusCode::CANCELLED, "cancelled; the process was killed"));
        }
        continue;
      }
      v1::ExecStreamResponse error;
      error.mutable_error()->set_message(event.error().message());
      error.mutable_error()->set_code("STREAM_INTERRUPTED");
      stream->Write(error);
      return finish(grpc::Status::OK);
    }
    v1::ExecStreamResponse response;
    if (event->kind == agent::ExecEvent::kExit) {
      const auto& x = event->exit;
      response.mutable_exit()->set_exit_code(x.signaled ? 128 + x.signal : x.exit_code);
      *response.mutable_exit()->mutable_completed_time() = ToTimestamp(WallNanos());
      stream->Write(response);
      metrics_->Observe("sbx_exec_seconds", static_cast<double>(MonotonicNanos() - started) / 1e9);
      return finish(grpc::Status::OK);
    }
    auto* out = response.mutable_output();
    out->set_stream(event->output.stream == agent::StreamId::kStderr
                        ? v1::ExecStreamOutput::STREAM_STDERR
                        : v1::ExecStreamOutput::STREAM_STDOUT);
    out->set_data(std::move(event->output.data));
    // A blocking write: a client that stops reading stops us reading from sbx-init, which stops
    // reading from the process.
    if (!stream->Write(response)) {
      (void)exec->Kill();
      return finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    }
  }
}

grpc::Status SandboxService::StreamLogs(grpc::ServerContext* context,
                                        const v1::StreamLogsRequest* request,
                                        grpc::ServerWriter<v1::LogEntry>* writer) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  if (request->sandbox_id().empty()) return Fail(FieldError("sandbox_id", "required"));
  if (request->tail_lines() < 0) return Fail(FieldError("tail_lines", "must not be negative"));
  auto record = manager_->WaitSettled(*tenant, request->sandbox_id(), CallDeadline(context, 60000));
  if (!record) return Fail(record.error());
  std::string session = LogSessionId(*record);
  auto send_error = [&](const std::string& code, const std::string& message) {
    v1::LogEntry entry;
    entry.mutable_error()->set_code(code);
    entry.mutable_error()->set_message(message);
    entry.set_log_session_id(session);
    writer->Write(entry);
    return grpc::Status::OK;
  };
  uint64_t offset = 0;
  if (!request->resume_log_session_id().empty()) {
    if (request->resume_log_session_id() != session) {
      return send_error("SESSION_NOT_FOUND",
                        "log session " + request->resume_log_session_id() + " is unknown");
    }
    offset = request->resume_log_offset();
  }
  int64_t since_ns = request->has_since_time() ? request->since_time().seconds() * 1000000000LL +
                                                     request->since_time().nanos()
                                               : 0;
  // Collect what is there now: from sbx-init while it runs, else from what was saved.
  std::vector<agent::LogChunk> chunks;
  uint64_t end = 0;
  bool live = record->state == State::kRunning;
  if (live) {
    agent::AgentClient client(record->socket_path);
    agent::LogEnd log_end;
    Status read = client.StreamLogs(
        {0, false},
        [&](const agent::LogChunk& c) {
          chunks.push_back(c);
          return true;
        },
        &log_end, MonotonicMillis() + 10000);
    if (!read) live = false;
    end = log_end.next_offset;
  }
  auto load_saved = [this, &record]() {
    std::vector<agent::LogChunk> saved_chunks;
    auto saved = manager_->SavedLogs(record->id);
    if (saved) {
      agent::FieldReader reader(saved->first);
      while (reader.Next()) {
        auto chunk = agent::LogChunk::Decode(reader.bytes());
        if (chunk) saved_chunks.push_back(std::move(*chunk));
      }
    }
    return saved_chunks;
  };
  if (!live) {
    chunks = load_saved();
    end = chunks.empty() ? 0 : chunks.back().offset + chunks.back().data.size();
  }
  uint64_t first = chunks.empty() ? end : chunks.front().offset;
  if (!request->resume_log_session_id().empty()) {
    if (offset > end)
      return send_error("INVALID_RESUME_OFFSET", "offset beyond the end of the log");
    if (offset < first)
      return send_error("REPLAY_GAP",
                        "output before offset " + std::to_string(first) + " was dropped");
  }
  // tail_lines: start where the last N lines begin.
  if (request->tail_lines() > 0 && request->resume_log_session_id().empty()) {
    std::string all;
    for (const auto& c : chunks) all += c.data;
    int lines = 0;
    size_t pos = all.size();
    if (pos > 0 && all[pos - 1] == '\n') --pos;
    while (pos > 0) {
      if (all[pos - 1] == '\n' && ++lines == request->tail_lines()) break;
      --pos;
    }
    offset = first + pos;
  }
  auto emit = [&](const agent::LogChunk& c) -> bool {
    if (c.time_ns < since_ns) return true;
    uint64_t chunk_end = c.offset + c.data.size();
    if (chunk_end <= offset) return true;
    std::string data = c.data.substr(offset > c.offset ? offset - c.offset : 0);
    v1::LogEntry entry;
    if (request->timestamps()) {
      std::string stamped;
      time_t secs = static_cast<time_t>(c.time_ns / 1000000000);
      tm utc{};
      gmtime_r(&secs, &utc);
      char prefix[64];
      snprintf(prefix, sizeof prefix, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ ", utc.tm_year + 1900,
               utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
               static_cast<long long>(c.time_ns % 1000000000));
      bool line_start = true;
      for (char ch : data) {
        if (line_start) stamped += prefix;
        stamped += ch;
        line_start = ch == '\n';
      }
      data = std::move(stamped);
    }
    entry.set_data(std::move(data));
    *entry.mutable_timestamp() = ToTimestamp(c.time_ns);
    entry.set_log_session_id(session);
    entry.set_next_log_offset(chunk_end);
    offset = chunk_end;
    return writer->Write(entry);
  };
  for (const auto& c : chunks) {
    if (!emit(c)) return grpc::Status::OK;
  }
  if (!request->follow() || !live) return grpc::Status::OK;
  // Follow: tail sbx-init until the main process's output ends or the client goes away.
  agent::AgentClient client(record->socket_path);
  std::atomic<bool> cancelled{false};
  Status followed = client.StreamLogs(
      {offset, true},
      [&](const agent::LogChunk& c) {
        if (context->IsCancelled()) {
          cancelled = true;
          return false;
        }
        return emit(c);
      },
      nullptr, CallDeadline(context, 30LL * 24 * 3600 * 1000));
  if (!followed && !cancelled && !context->IsCancelled()) {
    // sbx-init goes away with the sandbox: when the sandbox ended between the snapshot and the
    // follow (or during it), the rest of its output is in the saved logs.
    auto ended = manager_->WaitEnded(
        *tenant, record->id, std::min(CallDeadline(context, 30000), MonotonicMillis() + 30000));
    if (!ended || !IsTerminal(ended->state)) {
      return send_error("STREAM_INTERRUPTED", followed.error().message());
    }
    for (const auto& c : load_saved()) {
      if (!emit(c)) break;
    }
  }
  return grpc::Status::OK;
}

grpc::Status SandboxService::WriteFile(grpc::ServerContext* context,
                                       const v1::WriteFileRequest* request,
                                       v1::WriteFileResponse*) {
  if (request->path().empty()) return Fail(FieldError("path", "required"));
  uint64_t max = manager_->config().max_file_bytes;
  if (request->content().size() > max) {
    return Fail(Error::ResourceExhausted("file of " + std::to_string(request->content().size()) +
                                         " bytes is larger than the " + std::to_string(max) +
                                         "-byte limit of WriteFile")
                    .WithReason("CWSANDBOX_FILE_TOO_LARGE")
                    .WithMetadata("filepath", request->path())
                    .WithMetadata("size_bytes", std::to_string(request->content().size()))
                    .WithMetadata("max_size_bytes", std::to_string(max)));
  }
  auto socket = Socket(context, request->sandbox_id());
  if (!socket) return Fail(socket.error());
  agent::AgentClient client(*socket);
  Status written = client.WriteFileFromString(request->path(), request->content());
  if (!written) return Fail(Error(written.error()).WithMetadata("filepath", request->path()));
  return grpc::Status::OK;
}

grpc::Status SandboxService::ReadFile(grpc::ServerContext* context,
                                      const v1::ReadFileRequest* request,
                                      v1::ReadFileResponse* response) {
  if (request->path().empty()) return Fail(FieldError("path", "required"));
  auto socket = Socket(context, request->sandbox_id());
  if (!socket) return Fail(socket.error());
  agent::AgentClient client(*socket);
  auto content = client.ReadFileToString(request->path(), manager_->config().max_file_bytes);
  if (!content) return Fail(Error(content.error()).WithMetadata("filepath", request->path()));
  response->set_content(std::move(*content));
  return grpc::Status::OK;
}

grpc::Status SandboxService::CreateFileSystemSnapshot(grpc::ServerContext*,
                                                      const v1::CreateFileSystemSnapshotRequest*,
                                                      v1::FileSystemSnapshot*) {
  return Fail(Error::Unimplemented("file-system snapshots are not supported by sbx"));
}
grpc::Status SandboxService::GetFileSystemSnapshot(grpc::ServerContext*,
                                                   const v1::GetFileSystemSnapshotRequest*,
                                                   v1::FileSystemSnapshot*) {
  return Fail(Error::Unimplemented("file-system snapshots are not supported by sbx"));
}
grpc::Status SandboxService::ListFileSystemSnapshots(grpc::ServerContext*,
                                                     const v1::ListFileSystemSnapshotsRequest*,
                                                     v1::ListFileSystemSnapshotsResponse*) {
  return Fail(Error::Unimplemented("file-system snapshots are not supported by sbx"));
}
grpc::Status SandboxService::DeleteFileSystemSnapshot(grpc::ServerContext*,
                                                      const v1::DeleteFileSystemSnapshotRequest*,
                                                      v1::FileSystemSnapshot*) {
  return Fail(Error::Unimplemented("file-system snapshots are not supported by sbx"));
}

}  // namespace sbx::daemon
