// File: auth_challenge.h
//
// Parses WWW-Authenticate headers (RFC 7235) as registries send them:
//
//   Bearer
//   realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull"
//   Basic realm="registry"
//
// One header may carry several challenges; schemes and parameter names are case-insensitive
// (returned lowercase), values keep their case. The header is untrusted: its size and the number
// of challenges and parameters are bounded, and malformed text is kInvalidArgument.

#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"

namespace sbx::image {

struct AuthChallenge {
  std::string scheme;                         // "bearer", "basic"
  std::map<std::string, std::string> params;  // "realm", "service", "scope", "error"

  std::string Param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
};

Result<std::vector<AuthChallenge>> ParseAuthChallenges(std::string_view header);

}  // namespace sbx::image
