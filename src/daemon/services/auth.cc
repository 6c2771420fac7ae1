#include "src/daemon/services/auth.h"

#include "src/base/strings.h"

namespace sbx::daemon {

Authenticator::Authenticator(const Config& config) : local_tenant_(config.local_tenant) {
  for (const auto& key : config.api_keys) tenant_by_key_[key.key] = key.tenant;
}

Result<std::string> Authenticator::Tenant(const grpc::ServerContext& context) const {
  std::string key;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    std::string value(it->second.data(), it->second.size());
    if (StartsWith(value, "Bearer ") || StartsWith(value, "bearer ")) key = value.substr(7);
  }
  if (key.empty()) {
    if (auto it = metadata.find("x-wandb-api-key"); it != metadata.end()) {
      key.assign(it->second.data(), it->second.size());
    }
  }
  if (!key.empty()) {
    auto it = tenant_by_key_.find(key);
    if (it == tenant_by_key_.end()) {
      return Error(Code::kUnauthenticated, "invalid API key")
          .WithReason("CWSANDBOX_UNAUTHENTICATED");
    }
    return it->second;
  }
  if (StartsWith(context.peer(), "unix:")) return local_tenant_;
  return Error(Code::kUnauthenticated,
               "missing API key: send \"authorization: Bearer <key>\" or \"x-wandb-api-key\"")
      .WithReason("CWSANDBOX_UNAUTHENTICATED");
}

}  // namespace sbx::daemon
