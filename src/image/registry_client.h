// File: registry_client.h
//
// A client for the OCI distribution API (v2) that fetches manifests and blobs:
//
//   * endpoints: for docker.io, the configured mirrors in order, then the origin (Docker's
//     `registry-mirrors` convention); other registries over HTTPS, or plain HTTP when listed in
//     `insecure_registries`;
//   * auth: the anonymous or credentialed bearer-token flow of Docker Hub (401 + WWW-Authenticate
//     Bearer -> token from the realm -> retry), HTTP basic auth, or a configured bearer token;
//     tokens are cached per host and scope until they expire;
//   * redirects (blob storage) are followed by hand: Authorization is dropped when the target is
//     another origin, and HTTPS never downgrades to HTTP;
//   * SSRF: connections to loopback, private and link-local addresses are refused unless the
//     host connected to is itself configured (mirror, insecure, credentials, TLS settings) or
//     allow_private_networks is set. The rule applies to every hop alike: a redirect or a token
//     realm is judged on its own host, not on the registry that named it;
//   * retries with exponential backoff and jitter for transport errors, timeouts, 429 and 5xx,
//     honouring Retry-After; blob downloads resume with Range requests;
//   * every manifest and blob is verified against its digest (and a blob against its size);
//     mismatches are kDataLoss and the next endpoint is tried.
//
// Error codes: image absent -> kNotFound naming the reference and the registry; registry
// unreachable -> kUnavailable; bad credentials -> kUnauthenticated; refused -> kPermissionDenied;
// digest mismatch -> kDataLoss. Thread-safe.

#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/image/content_store.h"
#include "src/image/http_client.h"
#include "src/image/manifest.h"
#include "src/image/reference.h"

namespace sbx::image {

struct RegistryAuth {
  std::string registry;  // "docker.io", "ghcr.io", "localhost:5000" (a URL is reduced to its host)
  std::string username, password;
  std::string token;  // a bearer token sent as is, instead of username/password
};

struct RegistryTls {
  std::string registry;  // host[:port]
  std::string ca_file;   // CA bundle used instead of the system's
  bool insecure_skip_verify = false;
};

inline constexpr std::string_view kDockerHubEndpoint = "https://registry-1.docker.io";

struct RegistryOptions {
  std::vector<std::string>
      mirrors;  // docker.io mirrors: "https://mirror.example", "http://host:port"
  std::string docker_hub_endpoint = std::string(kDockerHubEndpoint);
  std::vector<std::string> insecure_registries;  // host[:port] spoken to over plain HTTP
  std::vector<RegistryAuth> auths;
  std::vector<RegistryTls> tls;
  int timeout_seconds = 300;  // total for documents and tokens; also bounds stalls (<= 60 s)
  int max_attempts = 5;       // per endpoint (mirrors get at most 2)
  int backoff_initial_ms = 250;
  int backoff_max_ms = 10000;
  bool allow_private_networks = false;
};

struct FetchedManifest {
  std::string body;
  std::string content_type;
  std::string digest;    // sha256 of body (verified against the request and the header)
  std::string endpoint;  // base URL that served it
};

class RegistryClient {
 public:
  explicit RegistryClient(RegistryOptions options);

  Result<FetchedManifest> GetManifest(const Reference& ref, const std::string& tag_or_digest);
  // Streams blob `desc` into `sink`, resuming after dropped connections; on success the sink
  // holds exactly desc.size bytes whose digest is desc.digest. `progress` gets bytes written.
  Status GetBlob(const Reference& ref, const Descriptor& desc, BlobSink& sink,
                 const std::function<void(uint64_t)>& progress = {});
  // A small blob (the config) into memory, verified.
  Result<std::string> GetSmallBlob(const Reference& ref, const Descriptor& desc, size_t max_bytes);

  struct Endpoint {
    std::string base;    // "https://registry-1.docker.io"
    std::string host;    // "registry-1.docker.io", "127.0.0.1:5000"
    std::string scheme;  // "https" or "http"
    bool mirror = false;
    bool configured = false;  // explicitly configured: its own private address is allowed
  };
  std::vector<Endpoint> EndpointsFor(const Reference& ref) const;
  // "mirror http://…" or "registry docker.io", as errors name a source.
  static std::string SourceName(const Endpoint& ep, const Reference& ref);

 private:
  struct Call {
    const Endpoint* endpoint = nullptr;
    std::string repository;
    std::string path;
    std::vector<std::string> headers;
    bool document = true;
    size_t max_body = 64u << 10;
    std::function<Status(long, const HttpResponse&)> on_start;
    std::function<Status(std::string_view)> on_body;
  };

  Result<HttpResponse> Execute(const Call& call, bool* used_basic);
  Result<HttpResponse> FollowRedirects(const Call& call, const std::string& authorization);
  Status Authenticate(const Endpoint& ep, const std::string& header, const std::string& scope);
  Status FetchToken(const Endpoint& ep, const std::map<std::string, std::string>& params,
                    const std::string& scope, const RegistryAuth* creds);
  std::string AuthorizationFor(const std::string& host, const std::string& scope);
  const RegistryAuth* FindAuth(const Endpoint& ep) const;
  const RegistryTls* FindTls(const std::string& host) const;
  bool Configured(const UrlParts& url) const;
  Status CheckAddress(const UrlParts& url, const std::string& ip) const;
  Error StatusError(const HttpResponse& resp, const Reference& ref, const Endpoint& ep,
                    const std::string& what, bool used_basic) const;
  Result<FetchedManifest> GetManifestFrom(const Endpoint& ep, const Reference& ref,
                                          const std::string& tag_or_digest);
  Status GetBlobFrom(const Endpoint& ep, const Reference& ref, const Descriptor& desc,
                     BlobSink& sink, const std::function<void(uint64_t)>& progress);
  template <typename Fn>
  auto WithRetries(const Endpoint& ep, Fn&& fn) -> decltype(fn());
  int StallTimeout() const;

  RegistryOptions options_;
  HttpClient http_;
  std::set<std::string> configured_hosts_;
  std::mutex mu_;
  struct Token {
    std::string header;
    int64_t expires_ms = 0;
  };
  std::map<std::string, Token> tokens_;  // host + " " + scope, or host + " *" for any scope
};

// Reduces "https://index.docker.io/v1/" or "host:5000" to "index.docker.io" / "host:5000".
std::string NormalizeRegistryHost(std::string_view registry);

}  // namespace sbx::image
