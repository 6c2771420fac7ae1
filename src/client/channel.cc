#include "src/client/channel.h"

#include <cstdlib>

#include "sbx/client.h"
#include "src/base/strings.h"

namespace sbx::client {

namespace {

constexpr int kMaxMessageBytes = 100 << 20;

std::string FromEnv(const char* const* names) {
  for (const char* const* name = names; *name != nullptr; ++name) {
    const char* value = getenv(*name);
    if (value != nullptr && !Trim(value).empty()) return std::string(Trim(value));
  }
  return "";
}

Error BadUrl(std::string_view base_url, const std::string& why) {
  return Error::InvalidArgument("base URL " + Quote(base_url) + " " + why +
                                "; use unix:///path/to/sbxd.sock, http://host:port or "
                                "https://host:port");
}

}  // namespace

Result<Endpoint> ParseBaseUrl(std::string_view base_url) {
  Endpoint endpoint;
  std::string_view url = Trim(base_url);
  endpoint.base_url = std::string(url);
  if (StartsWith(url, "unix:")) {
    std::string_view rest = url.substr(5);
    if (StartsWith(rest, "//")) rest.remove_prefix(2);
    if (rest.empty() || rest.front() != '/')
      return BadUrl(base_url, "names no absolute socket path");
    endpoint.unix_socket = true;
    endpoint.target = "unix:" + std::string(rest);
    return endpoint;
  }
  std::string_view rest;
  if (StartsWith(url, "http://")) {
    rest = url.substr(7);
  } else if (StartsWith(url, "https://")) {
    rest = url.substr(8);
    endpoint.secure = true;
  } else {
    return BadUrl(base_url, "is not supported");
  }
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) {
    return BadUrl(base_url, "must not have a path, query, fragment or user");
  }
  std::string host;
  std::string port;
  if (StartsWith(rest, "[")) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos)
      return BadUrl(base_url, "has an unterminated IPv6 address");
    host = std::string(rest.substr(0, close + 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return BadUrl(base_url, "has junk after the address");
      port = std::string(after.substr(1));
    }
  } else {
    size_t colon = rest.rfind(':');
    host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = std::string(rest.substr(colon + 1));
  }
  if (host.empty() || host == "[]") return BadUrl(base_url, "names no host");
  if (port.empty()) {
    port = endpoint.secure ? "443" : "80";
  } else {
    auto number = ParseUint64(port);
    if (!number || *number == 0 || *number > 65535) return BadUrl(base_url, "has an invalid port");
  }
  endpoint.target = host + ":" + port;
  return endpoint;
}

std::string ResolveBaseUrl(const std::string& explicit_value) {
  if (!Trim(explicit_value).empty()) return std::string(Trim(explicit_value));
  static const char* const kNames[] = {"SBX_BASE_URL", "CWSANDBOX_BASE_URL", nullptr};
  std::string from_env = FromEnv(kNames);
  return from_env.empty() ? kDefaultBaseUrl : from_env;
}

std::string ResolveApiKey(const std::string& explicit_value) {
  if (!Trim(explicit_value).empty()) return std::string(Trim(explicit_value));
  static const char* const kNames[] = {"SBX_API_KEY", "CWSANDBOX_API_KEY", "WANDB_API_KEY",
                                       nullptr};
  return FromEnv(kNames);
}

std::shared_ptr<grpc::Channel> MakeChannel(const Endpoint& endpoint) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  args.SetUserAgentPrefix(std::string("sbx-cpp/") + kClientVersion);
  if (endpoint.unix_socket) args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, "localhost");
  // Fail fast instead of retrying a refused connection for the whole deadline; the first call
  // reports an absent daemon at once.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  std::shared_ptr<grpc::ChannelCredentials> creds =
      endpoint.secure ? grpc::SslCredentials(grpc::SslCredentialsOptions())
                      : grpc::InsecureChannelCredentials();
  return grpc::CreateCustomChannel(endpoint.target, creds, args);
}

}  // namespace sbx::client
