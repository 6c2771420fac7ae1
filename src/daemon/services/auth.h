// File: auth.h
//
// Who is calling. Every TCP request carries an API key (`authorization: Bearer <key>` or
// `x-wandb-api-key: <key>`) that names its tenant. Callers on the unix socket are trusted by the
// socket's file permissions and act as the local tenant unless they present a key.

#pragma once

#include <map>
#include <string>

#include <grpcpp/grpcpp.h>

#include "src/base/result.h"
#include "src/daemon/config.h"

namespace sbx::daemon {

class Authenticator {
 public:
  explicit Authenticator(const Config& config);
  // The caller's tenant, or UNAUTHENTICATED.
  Result<std::string> Tenant(const grpc::ServerContext& context) const;

 private:
  std::map<std::string, std::string> tenant_by_key_;
  std::string local_tenant_;
};

}  // namespace sbx::daemon
