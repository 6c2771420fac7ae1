#include "src/daemon/services/create_request_parser.h"

#include <set>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "src/base/quantity.h"
#include "src/base/strings.h"
#include "src/daemon/node_shape.h"
#include "src/daemon/secrets.h"
#include "src/daemon/services/sandbox_proto.h"
#include "src/daemon/services/status_mapping.h"
#include "src/image/digest.h"
#include "src/image/reference.h"
#include "src/net/egress_rule.h"
#include "src/net/host_ports.h"
#include "src/net/ipv4.h"
#include "src/runtime/capabilities.h"
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

// A quantity the node can never give is refused as capacity, like a request that can never fit;
// the field is named all the same.
Error MoreThanTheNode(const std::string& field, const std::string& what) {
  return Error::ResourceExhausted(field + ": " + what)
      .WithReason("CWSANDBOX_RUNNER_CAPACITY_EXHAUSTED")
      .WithMetadata("field", field);
}

Status ParseQuantities(const v1::Resources& resources, const std::string& field,
                       const NodeShape& node, uint64_t* cpu, uint64_t* memory) {
  if (!resources.cpu().empty()) {
    auto v = ParseCpuMillis(resources.cpu());
    if (!v || *v == 0)
      return FieldError(field + ".cpu", "invalid CPU quantity " + Quote(resources.cpu()));
    if (*v > node.cpu_millis) {
      return MoreThanTheNode(field + ".cpu", Quote(resources.cpu()) + " is more than this node's " +
                                                 FormatCpu(node.cpu_millis) + " CPUs");
    }
    *cpu = *v;
  }
  if (!resources.memory().empty()) {
    auto v = ParseBytes(resources.memory());
    if (!v || *v == 0) {
      return FieldError(field + ".memory", "invalid memory quantity " + Quote(resources.memory()));
    }
    if (*v > node.memory_bytes) {
      return MoreThanTheNode(field + ".memory", Quote(resources.memory()) +
                                                    " is more than this node's " +
                                                    FormatMemory(node.memory_bytes) + " of memory");
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

Status ParsePorts(const google::protobuf::RepeatedPtrField<v1::PortRange>& ports,
                  const std::string& field, std::vector<net::PortRange>* out) {
  for (int i = 0; i < ports.size(); ++i) {
    const auto& p = ports[i];
    std::string f = field + ".ports[" + std::to_string(i) + "]";
    auto transport = net::ParseTransport(p.protocol());
    if (!transport) return FieldError(f + ".protocol", "must be \"tcp\" or \"udp\"");
    auto range = net::MakePortRange(*transport, p.port(), p.end_port());
    if (!range) return FieldError(f, "invalid port range");
    out->push_back(*range);
  }
  return Ok();
}

Status ParseNetwork(const v1::NetworkOptions& network, net::NetworkRequest* out) {
  if (network.ingress_size() > 0) {
    return Error::Unimplemented("ingress rules are not supported by sbx yet");
  }
  if (network.deny_egress()) {
    if (network.egress_size() > 0) {
      return FieldError("sandbox.spec.network.egress", "egress rules contradict deny_egress");
    }
    out->mode = net::NetworkMode::kNone;
    return Ok();
  }
  if (network.egress_size() == 0) return Ok();
  out->mode = net::NetworkMode::kAllowlist;
  for (int i = 0; i < network.egress_size(); ++i) {
    const auto& rule = network.egress(i);
    std::string field = "sandbox.spec.network.egress[" + std::to_string(i) + "]";
    net::EgressRule parsed;
    switch (rule.destination_case()) {
      case v1::EgressRule::kCidr: {
        parsed.kind = net::EgressKind::kCidr;
        const std::string& cidr = rule.cidr().cidr();
        // Sandboxes have IPv4 only; an IPv6 rule could never be honoured.
        auto prefix = net::ParseIpv4Prefix(cidr);
        if (cidr.find('/') == std::string::npos || !prefix) {
          return FieldError(field + ".cidr", "not an IPv4 CIDR block: " + Quote(cidr));
        }
        parsed.cidr = *prefix;
        for (const auto& x : rule.cidr().except()) {
          auto except = net::ParseIpv4Prefix(x);
          if (!except) {
            return FieldError(field + ".cidr.except", "not an IPv4 CIDR block: " + Quote(x));
          }
          parsed.except.push_back(*except);
        }
        break;
      }
      case v1::EgressRule::kDnsName: {
        parsed.kind = net::EgressKind::kDnsName;
        auto pattern = net::DnsPattern::Parse(rule.dns_name());
        if (!pattern) return FieldError(field + ".dns_name", pattern.error().message());
        parsed.dns_name = *pattern;
        break;
      }
      case v1::EgressRule::kAny:
        if (!rule.any()) return FieldError(field + ".any", "must be true when it is set");
        parsed.kind = net::EgressKind::kAny;
        break;
      case v1::EgressRule::kTenant:
      case v1::EgressRule::kSelector:
        return Error::Unimplemented(field + ": tenant and selector destinations are not supported");
      default:
        return FieldError(field, "no destination");
    }
    SBX_TRY(ParsePorts(rule.ports(), field, &parsed.ports));
    // A name without ports means HTTPS, as in the hosted product.
    if (parsed.kind == net::EgressKind::kDnsName && parsed.ports.empty()) {
      parsed.ports.push_back({net::Transport::kTcp, 443, 443});
    }
    out->egress.push_back(std::move(parsed));
  }
  return Ok();
}

Status ParseServices(const v1::SandboxSpec& spec, const Config& config, net::NetworkRequest* out) {
  if (spec.services_size() == 0) return Ok();
  if (static_cast<size_t>(spec.services_size()) > kMaxServices) {
    return FieldError("sandbox.spec.services", "at most 16 services");
  }
  // Like the hosted service: one sandbox's exposed ports are all public or all private.
  std::optional<int> first_visibility;
  std::set<std::string> declared;
  for (int i = 0; i < spec.services_size(); ++i) {
    const v1::Service& s = spec.services(i);
    std::string field = "sandbox.spec.services[" + std::to_string(i) + "]";
    net::ServiceSpec svc;
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
      case v1::SERVICE_PROTOCOL_SCTP:
        svc.protocol = "sctp";
        break;
      default:
        return FieldError(field + ".protocol", "unknown protocol " + std::to_string(s.protocol()));
    }
    bool exposed = true;
    switch (s.visibility()) {
      case v1::VISIBILITY_UNSPECIFIED:
        // Declared, not exposed: no host port, no URL, as with the hosted service. The status
        // lists it from the spec.
        exposed = false;
        break;
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
    std::string key = std::to_string(svc.port) + "/" + svc.protocol;
    if (!declared.insert(key).second) {
      return FieldError(field + ".port", "port " + key + " is declared twice");
    }
    if (exposed) {
      if (first_visibility && *first_visibility != svc.visibility) {
        return FieldError(field + ".visibility",
                          "PUBLIC and PRIVATE services cannot be mixed in one sandbox");
      }
      first_visibility = svc.visibility;
      if (config.network != "bridge") {
        return Error::FailedPrecondition(
            "exposed services need a sandbox network; this node runs with network \"none\"");
      }
      if (spec.network().has_deny_ingress() && spec.network().deny_ingress()) {
        return FieldError("sandbox.spec.network.deny_ingress", "contradicts exposed services");
      }
      if (svc.protocol == "sctp") {
        if (Status sctp = net::SctpAvailable(); !sctp) {
          return Error::FailedPrecondition(
              field + ": SCTP services cannot be exposed on this node: " + sctp.error().message());
        }
      }
      out->services.push_back(std::move(svc));
    }
  }
  return Ok();
}

// Every field of the security context is honoured or refused; none is echoed back unapplied.
Status ParseSecurityContext(const v1::SecurityContext& sc, const std::string& base,
                            uint32_t id_range, CreateRequest* out) {
  const std::string field = base + ".security_context";
  if (sc.has_privileged() && sc.privileged()) {
    return FieldError(field + ".privileged", "privileged sandboxes are not allowed");
  }
  if (sc.capabilities_add_size() > 0) {
    return FieldError(field + ".capabilities_add", "adding capabilities is not allowed");
  }
  if (sc.has_allow_privilege_escalation() && sc.allow_privilege_escalation()) {
    return FieldError(field + ".allow_privilege_escalation",
                      "privilege escalation is never allowed (every process runs with "
                      "no_new_privs)");
  }
  if (!sc.seccomp_profile().empty() && sc.seccomp_profile() != "RuntimeDefault" &&
      sc.seccomp_profile() != "runtime/default") {
    return FieldError(field + ".seccomp_profile",
                      Quote(sc.seccomp_profile()) +
                          " is not offered; sbx runs every sandbox under its own default profile "
                          "(\"RuntimeDefault\")");
  }
  // Ids are the sandbox's own: 0 is its root, an unprivileged host id like every other.
  auto sandbox_id = [&](const char* name, uint32_t id) -> Result<uint32_t> {
    if (id >= id_range) {
      return FieldError(field + "." + name, std::to_string(id) +
                                                " is outside the sandbox's ids (0 to " +
                                                std::to_string(id_range - 1) + ")");
    }
    return id;
  };
  if (sc.has_run_as_user()) {
    SBX_ASSIGN_OR_RETURN(out->run_as_user, sandbox_id("run_as_user", sc.run_as_user()));
  }
  if (sc.has_run_as_group()) {
    SBX_ASSIGN_OR_RETURN(out->run_as_group, sandbox_id("run_as_group", sc.run_as_group()));
  }
  out->read_only_root = sc.has_read_only_root_filesystem() && sc.read_only_root_filesystem();
  for (int i = 0; i < sc.capabilities_drop_size(); ++i) {
    const std::string& name = sc.capabilities_drop(i);
    if (name != "ALL" && !runtime::ParseCapability(name)) {
      return FieldError(field + ".capabilities_drop[" + std::to_string(i) + "]",
                        "unknown capability " + Quote(name));
    }
    out->drop_capabilities.push_back(name);
  }
  return Ok();
}

// Map entries (environment variables, annotations) in key order: the same spec serializes the
// same however the client ordered them.
std::string SpecFingerprint(const v1::SandboxSpec& spec) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    spec.SerializeToCodedStream(&coded);
  }
  image::Sha256 hasher;
  hasher.Update(bytes);
  return hasher.Digest();
}

}  // namespace

bool ValidEnvName(const std::string& name) {
  if (name.empty() || name.size() > 1024) return false;
  for (char c : name) {
    if (c == '=' || c == '\0') return false;
  }
  return true;
}

Result<ExecProcess> ParseExecProcess(const google::protobuf::RepeatedPtrField<std::string>& command,
                                     const google::protobuf::Map<std::string, std::string>& env,
                                     const std::string& prefix) {
  if (command.empty()) return FieldError(prefix + "command", "required");
  if (static_cast<size_t>(env.size()) > kMaxEnv) {
    return FieldError(prefix + "env", "at most 1000 variables");
  }
  ExecProcess out;
  for (int i = 0; i < command.size(); ++i) {
    if (command[i].find('\0') != std::string::npos) {
      return FieldError(prefix + "command[" + std::to_string(i) + "]", "contains a NUL byte");
    }
    out.argv.push_back(command[i]);
  }
  if (out.argv[0].empty()) return FieldError(prefix + "command[0]", "empty");
  for (const auto& [k, v] : env) {
    if (!ValidEnvName(k)) return FieldError(prefix + "env", "invalid name " + Quote(k));
    if (v.find('\0') != std::string::npos) {
      return FieldError(prefix + "env", Quote(k) + " contains a NUL byte");
    }
    out.env.push_back(k + "=" + v);
  }
  return out;
}

Result<CreateRequest> ParseCreateRequest(const v1::CreateSandboxRequest& request,
                                         const Config& config) {
  CreateRequest out;
  out.request_id = request.request_id();
  if (out.request_id.size() > 256) return FieldError("request_id", "longer than 256 characters");
  const v1::SandboxSpec& spec = request.sandbox().spec();
  out.spec_blob = spec.SerializeAsString();
  out.fingerprint = SpecFingerprint(spec);
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
  for (int i = 0; i < c.secret_stores_size(); ++i) {
    const auto& store = c.secret_stores(i);
    for (int j = 0; j < store.secrets_size(); ++j) {
      const auto& m = store.secrets(j);
      if (!m.env_var().empty() && !ValidEnvName(m.env_var())) {
        return FieldError(base + ".secret_stores[" + std::to_string(i) + "].secrets[" +
                              std::to_string(j) + "].env_var",
                          "invalid name " + Quote(m.env_var()));
      }
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
  NodeShape node = NodeShapeFromConfig(config);
  if (c.has_resources()) {
    SBX_TRY(ParseQuantities(c.resources(), base + ".resources", node, &cpu_limit, &mem_limit));
  }
  if (c.has_resource_requirements()) {
    const auto& rr = c.resource_requirements();
    SBX_TRY(ParseQuantities(rr.limits(), base + ".resource_requirements.limits", node, &cpu_limit,
                            &mem_limit));
    SBX_TRY(ParseQuantities(rr.requests(), base + ".resource_requirements.requests", node,
                            &cpu_request, &mem_request));
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
  if (c.has_security_context())
    SBX_TRY(ParseSecurityContext(c.security_context(), base, config.id_map_size, &out));
  return out;
}

}  // namespace sbx::daemon
