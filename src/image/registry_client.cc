#include "src/image/registry_client.h"

#include <arpa/inet.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/image/auth_challenge.h"
#include "src/image/digest.h"

namespace sbx::image {
namespace {

using Json = nlohmann::json;

constexpr int kMaxRedirects = 5;

Error UnauthenticatedError(std::string message) {
  return {Code::kUnauthenticated, std::move(message)};
}
Error AbortedError(std::string message) { return {Code::kAborted, std::move(message)}; }
constexpr int64_t kMaxRetryAfterMs = 60000;
constexpr size_t kMaxTokenResponse = 1u << 20;

enum class AddressClass { kPublic, kPrivate, kLinkLocal };

AddressClass ClassifyAddress(const std::string& ip) {
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) {
    uint32_t a = ntohl(v4.s_addr);
    auto in = [&](uint32_t net, int bits) { return (a >> (32 - bits)) == (net >> (32 - bits)); };
    if (in(0xA9FE0000, 16)) return AddressClass::kLinkLocal;  // 169.254/16 (cloud metadata)
    if (in(0x7F000000, 8) || in(0x0A000000, 8) || in(0xAC100000, 12) || in(0xC0A80000, 16) ||
        in(0x64400000, 10) || in(0x00000000, 8)) {
      return AddressClass::kPrivate;
    }
    return AddressClass::kPublic;
  }
  if (inet_pton(AF_INET6, ip.c_str(), &v6) == 1) {
    const uint8_t* b = v6.s6_addr;
    bool v4_mapped =
        std::all_of(b, b + 10, [](uint8_t x) { return x == 0; }) && b[10] == 0xff && b[11] == 0xff;
    if (v4_mapped) {
      char text[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, b + 12, text, sizeof text);
      return ClassifyAddress(text);
    }
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return AddressClass::kLinkLocal;  // fe80::/10
    bool loopback = std::all_of(b, b + 15, [](uint8_t x) { return x == 0; }) && b[15] == 1;
    bool unspecified = std::all_of(b, b + 16, [](uint8_t x) { return x == 0; });
    if (loopback || unspecified || (b[0] & 0xfe) == 0xfc) return AddressClass::kPrivate;
    return AddressClass::kPublic;
  }
  return AddressClass::kPrivate;  // unparsable: treat as internal
}

bool IsRetryable(const Error& e) {
  switch (e.code()) {
    case Code::kUnavailable:
    case Code::kDeadlineExceeded:
    case Code::kAborted:
      return true;
    case Code::kResourceExhausted:
      return e.reason() == "SBX_REGISTRY_RATE_LIMITED";
    default:
      return false;
  }
}

// One source's failure, and where it came from ("mirror http://…", "registry docker.io").
struct SourceError {
  std::string where;
  Error error;
};

// What each source answered, in order: a pull through mirrors fails only when every source did,
// and the one that matters (a mirror's "manifest unknown") is often not the last (an origin the
// node cannot reach). The code and reason are those of the first source that answered, else of
// the first one.
Error FromEverySource(std::vector<SourceError> failures) {
  if (failures.size() == 1) return std::move(failures[0].error);
  auto answered = std::find_if(failures.begin(), failures.end(), [](const SourceError& f) {
    return f.error.code() != Code::kUnavailable && f.error.code() != Code::kDeadlineExceeded;
  });
  const Error& chosen = answered != failures.end() ? answered->error : failures[0].error;
  std::string message = "every source failed: ";
  for (size_t i = 0; i < failures.size(); ++i) {
    const SourceError& f = failures[i];
    if (i > 0) message += "; ";
    // The registry's answers name their source already ("… not found in mirror …").
    if (f.error.message().find(f.where) == std::string::npos) {
      message += f.where + ": ";
    }
    message += f.error.message();
  }
  Error out(chosen.code(), std::move(message));
  if (!chosen.reason().empty()) out.WithReason(chosen.reason());
  for (const auto& [key, value] : chosen.metadata()) out.WithMetadata(key, value);
  return out;
}

int64_t ParseRetryAfterMs(const std::string& value) {
  if (value.empty()) return -1;
  if (auto seconds = ParseUint64(value)) {
    return std::min<int64_t>(static_cast<int64_t>(*seconds) * 1000, kMaxRetryAfterMs);
  }
  time_t when = curl_getdate(value.c_str(), nullptr);
  if (when < 0) return -1;
  int64_t delta = (static_cast<int64_t>(when) - WallNanos() / 1000000000) * 1000;
  return std::clamp<int64_t>(delta, 0, kMaxRetryAfterMs);
}

// "MANIFEST_UNKNOWN: manifest unknown" from a registry error body, or a short snippet.
std::string DescribeErrorBody(const std::string& body) {
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    auto errors = j.find("errors");
    if (errors != j.end() && errors->is_array() && !errors->empty() && (*errors)[0].is_object()) {
      const Json& first = (*errors)[0];
      std::string code = first.value("code", "");
      std::string message = first.contains("message") && first["message"].is_string()
                                ? first["message"].get<std::string>()
                                : "";
      return Quote(code + (message.empty() ? "" : ": " + message), 200);
    }
  }
  return body.empty() ? std::string("empty body") : Quote(body, 120);
}

std::string BracketedHost(const UrlParts& u) {
  std::string host = u.host;
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  return host;
}

std::string HostOf(const UrlParts& u) {
  bool default_port =
      (u.scheme == "https" && u.port == "443") || (u.scheme == "http" && u.port == "80");
  std::string host = BracketedHost(u);
  return default_port ? host : host + ":" + u.port;
}

bool SameOrigin(const std::string& a, const std::string& b) {
  auto pa = ParseUrl(a);
  auto pb = ParseUrl(b);
  return pa && pb && pa->scheme == pb->scheme && pa->host == pb->host && pa->port == pb->port;
}

}  // namespace

std::string NormalizeRegistryHost(std::string_view registry) {
  std::string_view r = Trim(registry);
  size_t scheme = r.find("://");
  if (scheme != std::string_view::npos) r = r.substr(scheme + 3);
  size_t slash = r.find('/');
  if (slash != std::string_view::npos) r = r.substr(0, slash);
  return std::string(r);
}

RegistryClient::RegistryClient(RegistryOptions options) : options_(std::move(options)) {
  for (const auto& m : options_.mirrors) configured_hosts_.insert(NormalizeRegistryHost(m));
  for (const auto& r : options_.insecure_registries)
    configured_hosts_.insert(NormalizeRegistryHost(r));
  for (const auto& a : options_.auths) configured_hosts_.insert(NormalizeRegistryHost(a.registry));
  for (const auto& t : options_.tls) configured_hosts_.insert(NormalizeRegistryHost(t.registry));
  if (options_.docker_hub_endpoint != kDockerHubEndpoint) {
    configured_hosts_.insert(NormalizeRegistryHost(options_.docker_hub_endpoint));
  }
}

std::vector<RegistryClient::Endpoint> RegistryClient::EndpointsFor(const Reference& ref) const {
  std::vector<Endpoint> out;
  auto make = [&](std::string base, bool mirror) {
    while (!base.empty() && base.back() == '/') base.pop_back();
    if (base.find("://") == std::string::npos) base = "https://" + base;
    Endpoint ep;
    ep.base = base;
    ep.scheme = base.substr(0, base.find("://"));
    ep.host = NormalizeRegistryHost(base);
    ep.mirror = mirror;
    ep.configured = configured_hosts_.count(ep.host) > 0;
    out.push_back(std::move(ep));
  };
  if (ref.registry == kDockerHub) {
    for (const auto& m : options_.mirrors) make(m, true);
    make(options_.docker_hub_endpoint, false);
    return out;
  }
  bool insecure =
      std::any_of(options_.insecure_registries.begin(), options_.insecure_registries.end(),
                  [&](const std::string& r) { return NormalizeRegistryHost(r) == ref.registry; });
  make((insecure ? "http://" : "https://") + ref.registry, false);
  return out;
}

const RegistryAuth* RegistryClient::FindAuth(const Endpoint& ep) const {
  bool hub = !ep.mirror && ep.base == options_.docker_hub_endpoint;
  for (const auto& a : options_.auths) {
    std::string host = NormalizeRegistryHost(a.registry);
    if (host == ep.host) return &a;
    if (hub &&
        (host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io")) {
      return &a;
    }
  }
  return nullptr;
}

const RegistryTls* RegistryClient::FindTls(const std::string& host) const {
  for (const auto& t : options_.tls) {
    if (NormalizeRegistryHost(t.registry) == host) return &t;
  }
  return nullptr;
}

bool RegistryClient::Configured(const UrlParts& url) const {
  // Configured hosts are written with or without the scheme's default port.
  return configured_hosts_.count(HostOf(url)) > 0 ||
         configured_hosts_.count(BracketedHost(url) + ":" + url.port) > 0;
}

Status RegistryClient::CheckAddress(const UrlParts& url, const std::string& ip) const {
  AddressClass c = ClassifyAddress(ip);
  if (c == AddressClass::kPublic) return Ok();
  // SECURITY: a registry reference, a redirect or a token realm must not turn the daemon into a
  // proxy into the host's networks. Every connection is judged on its own host: a configured
  // registry vouches for its own address only, never for where it redirects to.
  if (Configured(url)) return Ok();
  if (c == AddressClass::kPrivate && options_.allow_private_networks) return Ok();
  std::string host = HostOf(url);
  return Error::PermissionDenied("refusing to connect to " + Quote(host) + " at " + ip + ": a " +
                                 (c == AddressClass::kLinkLocal ? "link-local" : "private") +
                                 " address; list " + Quote(host) +
                                 " in the registry configuration to allow it")
      .WithReason("SBX_REGISTRY_ADDRESS_BLOCKED")
      .WithMetadata("host", host);
}

int RegistryClient::StallTimeout() const { return std::min(options_.timeout_seconds, 60); }

Result<HttpResponse> RegistryClient::FollowRedirects(const Call& call,
                                                     const std::string& authorization) {
  const Endpoint& ep = *call.endpoint;
  std::string url = ep.base + call.path;
  for (int hop = 0; hop <= kMaxRedirects; ++hop) {
    SBX_ASSIGN_OR_RETURN(UrlParts parts, ParseUrl(url));
    std::string host = HostOf(parts);
    HttpRequest req;
    req.url = url;
    req.headers = call.headers;
    // SECURITY: credentials go only to the registry's own origin, never to blob storage.
    if (!authorization.empty() && SameOrigin(url, ep.base + "/")) {
      req.headers.push_back("Authorization: " + authorization);
    }
    req.connect_timeout_s = std::min(options_.timeout_seconds, 30);
    req.stall_timeout_s = StallTimeout();
    req.total_timeout_s = call.document ? options_.timeout_seconds : 0;
    req.max_body = call.max_body;
    req.on_start = call.on_start;
    req.on_body = call.on_body;
    req.check_address = [this, parts](const std::string& ip) { return CheckAddress(parts, ip); };
    if (const RegistryTls* tls = FindTls(host)) {
      req.ca_file = tls->ca_file;
      req.insecure_skip_verify = tls->insecure_skip_verify;
    }
    SBX_ASSIGN_OR_RETURN(HttpResponse resp, http_.Perform(req));
    bool redirect = resp.status == 301 || resp.status == 302 || resp.status == 303 ||
                    resp.status == 307 || resp.status == 308;
    if (!redirect) return resp;
    std::string next = resp.redirect_url;
    if (next.empty()) {
      std::string location = resp.Header("location");
      if (location.empty()) return resp;
      SBX_ASSIGN_OR_RETURN(next, ResolveUrl(url, location));
    }
    SBX_ASSIGN_OR_RETURN(UrlParts target, ParseUrl(next));
    if (target.scheme != "https" && target.scheme != "http") {
      return Error::PermissionDenied("registry redirected to a non-HTTP URL " + Quote(next, 200));
    }
    if (parts.scheme == "https" && target.scheme == "http") {
      return Error::PermissionDenied("registry redirected from HTTPS to plain HTTP " +
                                     Quote(next, 200));
    }
    url = next;
  }
  return Error::Unavailable("too many redirects fetching " + Quote(ep.base + call.path, 200));
}

std::string RegistryClient::AuthorizationFor(const std::string& host, const std::string& scope) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tokens_.find(host + " " + scope);
  if (it != tokens_.end() &&
      (it->second.expires_ms == 0 || it->second.expires_ms > MonotonicMillis())) {
    return it->second.header;
  }
  auto any = tokens_.find(host + " *");
  if (any != tokens_.end()) return any->second.header;
  return "";
}

Status RegistryClient::FetchToken(const Endpoint& ep,
                                  const std::map<std::string, std::string>& params,
                                  const std::string& scope, const RegistryAuth* creds) {
  auto param = [&](const char* name) {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  };
  std::string realm = param("realm");
  if (realm.empty()) {
    return UnauthenticatedError("registry " + ep.host + " sent a bearer challenge without a realm");
  }
  auto realm_parts = ParseUrl(realm);
  if (!realm_parts ||
      (realm_parts->scheme != "https" && !(realm_parts->scheme == "http" && ep.scheme == "http"))) {
    return Error::PermissionDenied("registry " + ep.host + " names an unacceptable token realm " +
                                   Quote(realm, 200));
  }
  std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
  std::string service = param("service");
  if (!service.empty()) url += "service=" + UrlEscape(service) + "&";
  url += "scope=" + UrlEscape(scope);

  std::string realm_host = HostOf(*realm_parts);
  HttpRequest req;
  req.url = url;
  req.connect_timeout_s = std::min(options_.timeout_seconds, 30);
  req.total_timeout_s = options_.timeout_seconds;
  req.stall_timeout_s = StallTimeout();
  req.max_body = kMaxTokenResponse;
  req.check_address = [this, realm = *realm_parts](const std::string& ip) {
    return CheckAddress(realm, ip);
  };
  if (const RegistryTls* tls = FindTls(realm_host)) {
    req.ca_file = tls->ca_file;
    req.insecure_skip_verify = tls->insecure_skip_verify;
  }
  if (creds != nullptr && !creds->username.empty()) {
    req.headers.push_back("Authorization: Basic " +
                          Base64Encode(creds->username + ":" + creds->password));
  }
  SBX_ASSIGN_OR_RETURN(HttpResponse resp, http_.Perform(req));
  if (resp.status == 401 || resp.status == 403) {
    return UnauthenticatedError(
               "authentication to " + ep.host + " failed: the token server " + realm_host +
               " answered HTTP " + std::to_string(resp.status) +
               (creds ? " for the configured credentials" : " to an anonymous request"))
        .WithReason("SBX_REGISTRY_AUTH_FAILED");
  }
  if (resp.status >= 500 || resp.status == 429) {
    return Error::Unavailable("token server " + realm_host + " answered HTTP " +
                              std::to_string(resp.status))
        .WithMetadata("retry_after_ms",
                      std::to_string(ParseRetryAfterMs(resp.Header("retry-after"))));
  }
  if (resp.status != 200) {
    return UnauthenticatedError("token server " + realm_host + " answered HTTP " +
                                std::to_string(resp.status));
  }
  Json j = Json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  std::string token;
  if (j.is_object()) {
    for (const char* key : {"token", "access_token"}) {
      auto it = j.find(key);
      if (it != j.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) {
        token = it->get<std::string>();
        break;
      }
    }
  }
  if (token.empty() || token.size() > 64 * 1024 ||
      token.find_first_of("\r\n") != std::string::npos) {
    return UnauthenticatedError("token server " + realm_host + " returned no usable token");
  }
  int64_t expires_in = 60;
  if (j.contains("expires_in") && j["expires_in"].is_number_integer()) {
    expires_in = std::max<int64_t>(60, j["expires_in"].get<int64_t>());
  }
  std::lock_guard<std::mutex> lock(mu_);
  // Refresh a little early so a token never expires in flight.
  tokens_[ep.host + " " + scope] = {"Bearer " + token,
                                    MonotonicMillis() + expires_in * 1000 - 10000};
  return Ok();
}

Status RegistryClient::Authenticate(const Endpoint& ep, const std::string& header,
                                    const std::string& scope) {
  const RegistryAuth* creds = FindAuth(ep);
  if (creds != nullptr && !creds->token.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_[ep.host + " *"] = {"Bearer " + creds->token, 0};
    return Ok();
  }
  if (header.empty()) {
    return UnauthenticatedError("registry " + ep.host + " answered 401 without a challenge")
        .WithReason("SBX_REGISTRY_AUTH_FAILED");
  }
  SBX_ASSIGN_OR_RETURN_CTX(auto challenges, ParseAuthChallenges(header), "registry " + ep.host);
  for (const auto& challenge : challenges) {
    if (challenge.scheme == "bearer") return FetchToken(ep, challenge.params, scope, creds);
  }
  for (const auto& challenge : challenges) {
    if (challenge.scheme != "basic") continue;
    if (creds == nullptr || creds->username.empty()) {
      return UnauthenticatedError("registry " + ep.host +
                                  " requires authentication and no credentials are configured")
          .WithReason("SBX_REGISTRY_AUTH_REQUIRED");
    }
    std::lock_guard<std::mutex> lock(mu_);
    tokens_[ep.host + " *"] = {"Basic " + Base64Encode(creds->username + ":" + creds->password), 0};
    return Ok();
  }
  return UnauthenticatedError("registry " + ep.host + " asks for unsupported authentication " +
                              Quote(header, 120));
}

Result<HttpResponse> RegistryClient::Execute(const Call& call, bool* used_basic) {
  const Endpoint& ep = *call.endpoint;
  std::string scope = "repository:" + call.repository + ":pull";
  bool retried = false;
  while (true) {
    std::string authorization = AuthorizationFor(ep.host, scope);
    *used_basic = StartsWith(authorization, "Basic ");
    SBX_ASSIGN_OR_RETURN(HttpResponse resp, FollowRedirects(call, authorization));
    if (resp.status == 401 && !retried) {
      retried = true;
      SBX_TRY(Authenticate(ep, resp.Header("www-authenticate"), scope));
      continue;
    }
    return resp;
  }
}

std::string RegistryClient::SourceName(const Endpoint& ep, const Reference& ref) {
  return ep.mirror ? "mirror " + ep.base : "registry " + ref.registry;
}

Error RegistryClient::StatusError(const HttpResponse& resp, const Reference& ref,
                                  const Endpoint& ep, const std::string& what,
                                  bool used_basic) const {
  std::string where = SourceName(ep, ref);
  std::string detail = DescribeErrorBody(resp.body);
  switch (resp.status) {
    case 404:
      return Error::NotFound(what + " not found in " + where + " (" + detail + ")")
          .WithReason("SBX_IMAGE_NOT_FOUND")
          .WithMetadata("reference", ref.String())
          .WithMetadata("registry", ref.registry);
    case 401:
      if (used_basic) {
        return UnauthenticatedError("authentication to " + where +
                                    " failed: the credentials were rejected")
            .WithReason("SBX_REGISTRY_AUTH_FAILED");
      }
      return Error::NotFound(what + " not found in " + where +
                             " (or pull access denied: it may need credentials; " + detail + ")")
          .WithReason("SBX_IMAGE_NOT_FOUND")
          .WithMetadata("reference", ref.String())
          .WithMetadata("registry", ref.registry);
    case 403:
      return Error::PermissionDenied(where + " denied access to " + what + " (" + detail + ")")
          .WithReason("SBX_REGISTRY_ACCESS_DENIED");
    case 429:
      return Error::ResourceExhausted(where + " is rate limiting requests (" + detail + ")")
          .WithReason("SBX_REGISTRY_RATE_LIMITED")
          .WithMetadata("retry_after_ms",
                        std::to_string(ParseRetryAfterMs(resp.Header("retry-after"))));
    default:
      break;
  }
  if (resp.status >= 500 || resp.status == 408) {
    return Error::Unavailable(where + " answered HTTP " + std::to_string(resp.status) + " for " +
                              what + " (" + detail + ")")
        .WithReason("SBX_REGISTRY_UNAVAILABLE")
        .WithMetadata("retry_after_ms",
                      std::to_string(ParseRetryAfterMs(resp.Header("retry-after"))));
  }
  return Error::FailedPrecondition(where + " answered HTTP " + std::to_string(resp.status) +
                                   " for " + what + " (" + detail + ")")
      .WithReason("SBX_REGISTRY_ERROR");
}

template <typename Fn>
auto RegistryClient::WithRetries(const Endpoint& ep, Fn&& fn) -> decltype(fn()) {
  int attempts =
      std::max(1, ep.mirror ? std::min(2, options_.max_attempts) : options_.max_attempts);
  thread_local std::mt19937 rng(std::random_device{}());
  for (int attempt = 1;; ++attempt) {
    auto result = fn();
    if (result.has_value() || attempt >= attempts || !IsRetryable(result.error())) return result;
    int64_t delay = -1;
    if (auto hint = ParseInt64(result.error().MetadataValue("retry_after_ms"));
        hint && *hint >= 0) {
      delay = *hint;
    }
    if (delay < 0) {
      int64_t base = std::min<int64_t>(options_.backoff_max_ms,
                                       static_cast<int64_t>(options_.backoff_initial_ms)
                                           << std::min(attempt - 1, 20));
      std::uniform_int_distribution<int64_t> jitter(base / 2, std::max<int64_t>(base / 2, base));
      delay = jitter(rng);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
}

Result<FetchedManifest> RegistryClient::GetManifestFrom(const Endpoint& ep, const Reference& ref,
                                                        const std::string& tag_or_digest) {
  Call call;
  call.endpoint = &ep;
  call.repository = ref.repository;
  call.path = "/v2/" + ref.repository + "/manifests/" + tag_or_digest;
  call.headers = {"Accept: " + ManifestAcceptHeader()};
  call.document = true;
  call.max_body = kMaxManifestBytes;
  bool used_basic = false;
  SBX_ASSIGN_OR_RETURN(HttpResponse resp, Execute(call, &used_basic));
  std::string what =
      "image " + ref.Name() + (StartsWith(tag_or_digest, "sha256:") ? "@" : ":") + tag_or_digest;
  if (resp.status != 200) return StatusError(resp, ref, ep, what, used_basic);
  FetchedManifest out;
  out.body = std::move(resp.body);
  out.content_type = resp.Header("content-type");
  out.digest = Sha256Digest(out.body);
  out.endpoint = ep.base;
  // SECURITY: a manifest asked for by digest must be exactly that; one asked for by tag must
  // match the digest the registry claims for it.
  if (StartsWith(tag_or_digest, "sha256:") && out.digest != tag_or_digest) {
    return Error::DataLoss("manifest of " + what + " from " + ep.base + " hashes to " + out.digest)
        .WithReason("SBX_IMAGE_DIGEST_MISMATCH");
  }
  std::string claimed = resp.Header("docker-content-digest");
  if (!claimed.empty() && ValidateDigest(claimed) && claimed != out.digest) {
    return Error::DataLoss("manifest of " + what + " from " + ep.base + " hashes to " + out.digest +
                           " but the registry says " + claimed)
        .WithReason("SBX_IMAGE_DIGEST_MISMATCH");
  }
  return out;
}

Result<FetchedManifest> RegistryClient::GetManifest(const Reference& ref,
                                                    const std::string& tag_or_digest) {
  std::vector<SourceError> failures;
  for (const auto& ep : EndpointsFor(ref)) {
    auto result = WithRetries(ep, [&] { return GetManifestFrom(ep, ref, tag_or_digest); });
    if (result) return result;
    failures.push_back({SourceName(ep, ref), std::move(result).error()});
  }
  return FromEverySource(std::move(failures));
}

Status RegistryClient::GetBlobFrom(const Endpoint& ep, const Reference& ref, const Descriptor& desc,
                                   BlobSink& sink, const std::function<void(uint64_t)>& progress) {
  uint64_t offset = sink.written();
  if (offset == desc.size && offset > 0) return Ok();
  Call call;
  call.endpoint = &ep;
  call.repository = ref.repository;
  call.path = "/v2/" + ref.repository + "/blobs/" + desc.digest;
  call.document = false;
  if (offset > 0) call.headers.push_back("Range: bytes=" + std::to_string(offset) + "-");
  call.on_start = [&](long status, const HttpResponse& head) -> Status {
    if (status == 206) {
      std::string range = head.Header("content-range");
      std::string want = "bytes " + std::to_string(offset) + "-";
      if (!StartsWith(range, want)) {
        SBX_TRY(sink.Restart());
        return AbortedError("registry resumed at the wrong offset (" + Quote(range, 80) + ")");
      }
    } else if (sink.written() > 0) {
      SBX_TRY(sink.Restart());  // a full response: start over
    }
    return Ok();
  };
  call.on_body = [&](std::string_view data) -> Status {
    SBX_TRY(sink.Write(data));
    if (progress) progress(sink.written());
    return Ok();
  };
  bool used_basic = false;
  auto resp = Execute(call, &used_basic);
  if (!resp) return std::move(resp).error().Wrap("blob " + desc.digest);
  if (resp->status == 200 || resp->status == 206) return Ok();
  if (resp->status == 416) {
    SBX_TRY(sink.Restart());
    return AbortedError("registry refused to resume blob " + desc.digest);
  }
  return StatusError(*resp, ref, ep, "blob " + desc.digest + " of " + ref.Name(), used_basic);
}

Status RegistryClient::GetBlob(const Reference& ref, const Descriptor& desc, BlobSink& sink,
                               const std::function<void(uint64_t)>& progress) {
  std::vector<SourceError> failures;
  for (const auto& ep : EndpointsFor(ref)) {
    Status status = WithRetries(ep, [&] { return GetBlobFrom(ep, ref, desc, sink, progress); });
    if (status) {
      std::string actual = sink.Digest();
      if (sink.written() == desc.size && actual == desc.digest) return Ok();
      failures.push_back({SourceName(ep, ref),
                          Error::DataLoss(sink.written() != desc.size
                                              ? "blob " + desc.digest + " from " + ep.base +
                                                    " is " + std::to_string(sink.written()) +
                                                    " bytes, expected " + std::to_string(desc.size)
                                              : "digest mismatch: expected " + desc.digest +
                                                    ", got " + actual + " from " + ep.base)
                              .WithReason("SBX_IMAGE_DIGEST_MISMATCH")});
    } else {
      failures.push_back({SourceName(ep, ref), std::move(status).error()});
    }
    SBX_TRY(sink.Restart());
  }
  return FromEverySource(std::move(failures));
}

namespace {

class MemorySink : public BlobSink {
 public:
  explicit MemorySink(size_t max) : max_(max) {}
  Status Write(std::string_view data) override {
    if (data_.size() + data.size() > max_) {
      return Error::ResourceExhausted("blob larger than " + std::to_string(max_) + " bytes");
    }
    data_.append(data);
    return Ok();
  }
  Status Restart() override {
    data_.clear();
    return Ok();
  }
  uint64_t written() const override { return data_.size(); }
  std::string Digest() const override { return Sha256Digest(data_); }
  std::string& data() { return data_; }

 private:
  size_t max_;
  std::string data_;
};

}  // namespace

Result<std::string> RegistryClient::GetSmallBlob(const Reference& ref, const Descriptor& desc,
                                                 size_t max_bytes) {
  if (desc.size > max_bytes) {
    return Error::ResourceExhausted("blob " + desc.digest + " is larger than " +
                                    std::to_string(max_bytes) + " bytes");
  }
  MemorySink sink(max_bytes);
  SBX_TRY(GetBlob(ref, desc, sink));
  return std::move(sink.data());
}

}  // namespace sbx::image
