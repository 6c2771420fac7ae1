// File: http_client.h
//
// One HTTP request over libcurl, with what a registry client needs and nothing else: no automatic
// redirects (the caller decides, so credentials never follow a redirect to another host), bounded
// response bodies, connect/stall/total timeouts, a hook that vets the address actually connected
// to (SSRF), and TLS settings per request. One HttpClient is thread-safe; its requests share the
// DNS cache and TLS resumption data, and reuse connections through a pool of curl handles.
//
// Transport failures map to kUnavailable (kDeadlineExceeded for timeouts); an HTTP status is not
// an error here: the caller interprets it.

#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"

namespace sbx::image {

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lowercase names; repeated headers joined by ", "
  std::string body;                            // the body when no on_body sink took it (bounded)
  std::string redirect_url;                    // absolute Location of a 3xx
  std::string primary_ip;

  std::string Header(const std::string& lowercase_name) const {
    auto it = headers.find(lowercase_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // sent for PUT/POST/PATCH
  int connect_timeout_s = 30;
  int total_timeout_s = 0;      // 0: none
  int stall_timeout_s = 60;     // abort when under 1 byte/s for this long
  size_t max_body = 64u << 10;  // in-memory body bound (error bodies, documents)
  // Called once before the first body byte of a 2xx response (and at the end if it had no body);
  // an error aborts the transfer.
  std::function<Status(long status, const HttpResponse& head)> on_start;
  // Takes the body of a 2xx response instead of HttpResponse::body; an error aborts the transfer.
  std::function<Status(std::string_view)> on_body;
  // Vets the IP address of the connection before the request is sent; an error aborts.
  std::function<Status(const std::string& ip)> check_address;
  std::string ca_file;  // CA bundle instead of the system's
  bool insecure_skip_verify = false;
};

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  Result<HttpResponse> Perform(const HttpRequest& request);

 private:
  struct Shared;
  std::unique_ptr<Shared> shared_;
};

// URL helpers (libcurl's parser).
struct UrlParts {
  std::string scheme, host, port, path;  // port is explicit or the scheme's default
};
Result<UrlParts> ParseUrl(const std::string& url);
// Resolves `location` against `base`.
Result<std::string> ResolveUrl(const std::string& base, const std::string& location);
std::string UrlEscape(std::string_view text);
std::string Base64Encode(std::string_view data);

}  // namespace sbx::image
