// File: channel.h
//
// Where sbxd is and how to reach it, with the Python SDK's rules: an explicit base URL, else
// $SBX_BASE_URL, else $CWSANDBOX_BASE_URL, else the local socket; an explicit API key, else
// $SBX_API_KEY, $CWSANDBOX_API_KEY or $WANDB_API_KEY.

#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "src/base/result.h"

namespace sbx::client {

struct Endpoint {
  std::string base_url;  // as given, trimmed
  std::string target;    // for gRPC: "unix:/path" or "host:port"
  bool secure = false;   // TLS
  bool unix_socket = false;
};

// Parses "unix:///path" (or "unix:/path"), "http://host[:port]" and "https://host[:port]".
Result<Endpoint> ParseBaseUrl(std::string_view base_url);

// The base URL and API key to use when the caller gives `explicit_value` (may be empty).
std::string ResolveBaseUrl(const std::string& explicit_value);
std::string ResolveApiKey(const std::string& explicit_value);

std::shared_ptr<grpc::Channel> MakeChannel(const Endpoint& endpoint);

}  // namespace sbx::client
