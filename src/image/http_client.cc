#include "src/image/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <optional>
#include <vector>

#include <curl/curl.h>

#include "src/base/strings.h"

namespace sbx::image {
namespace {

std::once_flag g_curl_init;

void InitCurl() {
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  const HttpRequest* request = nullptr;
  HttpResponse response;
  CURL* curl = nullptr;
  std::optional<Error> error;
  std::optional<Error> address_error;
  bool started = false;
  bool body_too_large = false;

  Status Start() {
    if (started) return Ok();
    started = true;
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    response.status = status;
    if (status >= 200 && status < 300 && request->on_start)
      return request->on_start(status, response);
    return Ok();
  }
};

size_t HeaderCallback(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * count;
  std::string_view line(data, len);
  if (StartsWith(line, "HTTP/")) {
    // A new response (after 100 Continue): forget the interim headers.
    t->response.headers.clear();
    return len;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return len;
  std::string name(Trim(line.substr(0, colon)));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string value(Trim(line.substr(colon + 1)));
  if (t->response.headers.size() > 200 || value.size() > 16384) return len;
  auto& slot = t->response.headers[name];
  slot = slot.empty() ? value : slot + ", " + value;
  return len;
}

size_t WriteCallback(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * count;
  Status started = t->Start();
  if (!started) {
    t->error = std::move(started).error();
    return 0;
  }
  bool success = t->response.status >= 200 && t->response.status < 300;
  if (success && t->request->on_body) {
    Status s = t->request->on_body(std::string_view(data, len));
    if (!s) {
      t->error = std::move(s).error();
      return 0;
    }
    return len;
  }
  if (t->response.body.size() + len > t->request->max_body) {
    t->body_too_large = true;
    return 0;
  }
  t->response.body.append(data, len);
  return len;
}

// Creates every socket curl connects with, after vetting the address: a refused address is
// never connected to (not even a TCP handshake or a TLS hello).
curl_socket_t OpenSocketCallback(void* user, curlsocktype purpose, curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(user);
  if (purpose == CURLSOCKTYPE_IPCXN && t->request->check_address) {
    char text[INET6_ADDRSTRLEN] = {0};
    // JUSTIFICATION: curl hands a generic sockaddr; the family says which one it is.
    if (address->family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&address->addr)->sin_addr, text,
                sizeof text);
    } else if (address->family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&address->addr)->sin6_addr, text,
                sizeof text);
    }
    Status s = t->request->check_address(text);
    if (!s) {
      // Another address of the host may be acceptable; this error counts only if none is.
      if (!t->address_error) t->address_error = std::move(s).error();
      return CURL_SOCKET_BAD;
    }
    t->response.primary_ip = text;
  }
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

// Checks again before every request, since a shared connection may be reused by a request whose
// policy differs from the one that opened it.
int PrereqCallback(void* user, char* primary_ip, char* /*local_ip*/, int /*primary_port*/,
                   int /*local_port*/) {
  auto* t = static_cast<Transfer*>(user);
  t->response.primary_ip = primary_ip ? primary_ip : "";
  if (t->request->check_address) {
    Status s = t->request->check_address(t->response.primary_ip);
    if (!s) {
      if (!t->error) t->error = std::move(s).error();
      return CURL_PREREQFUNC_ABORT;
    }
  }
  return CURL_PREREQFUNC_OK;
}

Error CurlError(CURLcode code, const char* detail, const HttpRequest& request) {
  std::string msg = std::string(curl_easy_strerror(code));
  if (detail != nullptr && detail[0] != '\0') msg += ": " + std::string(detail);
  std::string what = request.method + " " + Quote(request.url, 200) + ": " + msg;
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return Error::DeadlineExceeded(what).WithReason("SBX_REGISTRY_TIMEOUT");
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
      return Error::Unavailable(what).WithReason("SBX_REGISTRY_TLS");
    default:
      return Error::Unavailable(what).WithReason("SBX_REGISTRY_UNAVAILABLE");
  }
}

}  // namespace

// The DNS cache and TLS resumption data are shared between handles; connections are not (libcurl
// does not support sharing its connection cache between concurrent threads), but a handle keeps
// its connections across curl_easy_reset, so handles are pooled and reused.
struct HttpClient::Shared {
  CURLSH* share = nullptr;
  std::mutex locks[CURL_LOCK_DATA_LAST];
  std::mutex pool_mu;
  std::vector<CURL*> pool;
  static constexpr size_t kMaxPooled = 8;

  CURL* Acquire() {
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      if (!pool.empty()) {
        CURL* curl = pool.back();
        pool.pop_back();
        curl_easy_reset(curl);
        return curl;
      }
    }
    return curl_easy_init();
  }
  void Return(CURL* curl) {
    std::lock_guard<std::mutex> lock(pool_mu);
    if (pool.size() < kMaxPooled) {
      pool.push_back(curl);
      return;
    }
    curl_easy_cleanup(curl);
  }

  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    static_cast<Shared*>(user)->locks[data].lock();
  }
  static void Unlock(CURL*, curl_lock_data data, void* user) {
    static_cast<Shared*>(user)->locks[data].unlock();
  }
};

HttpClient::HttpClient() : shared_(std::make_unique<Shared>()) {
  InitCurl();
  shared_->share = curl_share_init();
  if (shared_->share != nullptr) {
    curl_share_setopt(shared_->share, CURLSHOPT_LOCKFUNC, &Shared::Lock);
    curl_share_setopt(shared_->share, CURLSHOPT_UNLOCKFUNC, &Shared::Unlock);
    curl_share_setopt(shared_->share, CURLSHOPT_USERDATA, shared_.get());
    curl_share_setopt(shared_->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(shared_->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
}

HttpClient::~HttpClient() {
  for (CURL* curl : shared_->pool) curl_easy_cleanup(curl);
  if (shared_->share != nullptr) curl_share_cleanup(shared_->share);
}

Result<HttpResponse> HttpClient::Perform(const HttpRequest& request) {
  CURL* curl = shared_->Acquire();
  if (curl == nullptr) return Error::Internal("curl_easy_init failed");
  Transfer t;
  t.request = &request;
  t.curl = curl;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  // An empty Expect header: registries answer PUTs directly, a 100-continue round trip only slows.
  headers = curl_slist_append(headers, "Expect:");

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "sbx-image/0.1");
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &HeaderCallback);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteCallback);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, &OpenSocketCallback);
  curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &t);
  curl_easy_setopt(curl, CURLOPT_PREREQFUNCTION, &PrereqCallback);
  curl_easy_setopt(curl, CURLOPT_PREREQDATA, &t);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, static_cast<long>(request.connect_timeout_s));
  if (request.total_timeout_s > 0) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, static_cast<long>(request.total_timeout_s));
  }
  if (request.stall_timeout_s > 0) {
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(request.stall_timeout_s));
  }
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  if (!request.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, request.ca_file.c_str());
  if (request.insecure_skip_verify) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (shared_->share != nullptr) curl_easy_setopt(curl, CURLOPT_SHARE, shared_->share);
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }

  CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK && !t.started) {
    Status started = t.Start();
    if (!started) t.error = std::move(started).error();
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  t.response.status = status;
  char* redirect = nullptr;
  if (curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK && redirect) {
    t.response.redirect_url = redirect;
  }
  // Nothing may call back into this transfer's state once it is gone.
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  if (rc == CURLE_OK) {
    shared_->Return(curl);
  } else {
    curl_easy_cleanup(curl);  // a failed connection is not worth keeping
  }

  if (t.error) return std::move(*t.error);
  if (rc != CURLE_OK && t.address_error) return std::move(*t.address_error);
  if (t.body_too_large) {
    return Error::ResourceExhausted(request.method + " " + Quote(request.url, 200) +
                                    ": response body larger than " +
                                    std::to_string(request.max_body) + " bytes");
  }
  if (rc != CURLE_OK) return CurlError(rc, error_buffer, request);
  return std::move(t.response);
}

Result<UrlParts> ParseUrl(const std::string& url) {
  InitCurl();
  CURLU* h = curl_url();
  if (h == nullptr) return Error::Internal("curl_url failed");
  UrlParts parts;
  bool ok = curl_url_set(h, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK;
  auto get = [&](CURLUPart part, std::string* out, unsigned flags) {
    char* value = nullptr;
    if (curl_url_get(h, part, &value, flags) == CURLUE_OK && value) {
      *out = value;
      curl_free(value);
    }
  };
  if (ok) {
    get(CURLUPART_SCHEME, &parts.scheme, 0);
    get(CURLUPART_HOST, &parts.host, 0);
    get(CURLUPART_PORT, &parts.port, CURLU_DEFAULT_PORT);
    get(CURLUPART_PATH, &parts.path, 0);
  }
  curl_url_cleanup(h);
  if (!ok || parts.host.empty()) return Error::InvalidArgument("invalid URL " + Quote(url, 200));
  return parts;
}

Result<std::string> ResolveUrl(const std::string& base, const std::string& location) {
  InitCurl();
  CURLU* h = curl_url();
  if (h == nullptr) return Error::Internal("curl_url failed");
  std::string out;
  bool ok = curl_url_set(h, CURLUPART_URL, base.c_str(), 0) == CURLUE_OK &&
            curl_url_set(h, CURLUPART_URL, location.c_str(), 0) == CURLUE_OK;
  char* value = nullptr;
  if (ok && curl_url_get(h, CURLUPART_URL, &value, 0) == CURLUE_OK && value) {
    out = value;
    curl_free(value);
  }
  curl_url_cleanup(h);
  if (out.empty()) return Error::InvalidArgument("invalid redirect " + Quote(location, 200));
  return out;
}

std::string UrlEscape(std::string_view text) {
  InitCurl();
  char* escaped = curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  std::string out = escaped ? escaped : "";
  curl_free(escaped);
  return out;
}

std::string Base64Encode(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  while (i + 3 <= data.size()) {
    uint32_t v = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8) |
                 static_cast<uint8_t>(data[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
    i += 3;
  }
  size_t rest = data.size() - i;
  if (rest > 0) {
    uint32_t v = static_cast<uint8_t>(data[i]) << 16;
    if (rest == 2) v |= static_cast<uint8_t>(data[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace sbx::image
