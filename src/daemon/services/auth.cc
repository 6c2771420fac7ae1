#include "src/daemon/services/auth.h"

#include "src/base/strings.h"

namespace sbx::daemon {

bool IsOperatorMethod(std::string_view method) {
  return StartsWith(method, "/sbx.v1.ImageService/");
}

Authenticator::Authenticator(const Config& config, ApiSide side)
    : side_(side), local_tenant_(config.local_tenant), local_operator_(config.local_operator) {
  for (const auto& key : config.api_keys) keys_[key.key] = {key.tenant, key.is_operator};
}

Result<Caller> Authenticator::Identify(const MetadataLookup& metadata) const {
  std::string key;
  if (auto value = metadata("authorization")) {
    if (StartsWith(*value, "Bearer ") || StartsWith(*value, "bearer ")) key = value->substr(7);
  }
  if (key.empty()) {
    if (auto value = metadata("x-wandb-api-key")) key = *value;
  }
  if (!key.empty()) {
    auto it = keys_.find(key);
    if (it == keys_.end()) {
      return Error(Code::kUnauthenticated, "invalid API key")
          .WithReason("CWSANDBOX_UNAUTHENTICATED");
    }
    return Caller{it->second.tenant, it->second.is_operator};
  }
  if (side_ == ApiSide::kLocal) return Caller{local_tenant_, local_operator_};
  return Error(Code::kUnauthenticated,
               "missing API key: send \"authorization: Bearer <key>\" or \"x-wandb-api-key\"")
      .WithReason("CWSANDBOX_UNAUTHENTICATED");
}

Result<Caller> Authenticator::Identify(const grpc::ServerContextBase& context) const {
  const auto& entries = context.client_metadata();
  return Identify([&entries](std::string_view key) -> std::optional<std::string> {
    auto it = entries.find(grpc::string_ref(key.data(), key.size()));
    if (it == entries.end()) return std::nullopt;
    return std::string(it->second.data(), it->second.size());
  });
}

Result<std::string> Authenticator::Tenant(const grpc::ServerContextBase& context) const {
  SBX_ASSIGN_OR_RETURN(Caller caller, Identify(context));
  return std::move(caller.tenant);
}

Status Authenticator::RequireOperator(const grpc::ServerContextBase& context) const {
  SBX_ASSIGN_OR_RETURN(Caller caller, Identify(context));
  if (!caller.is_operator) return OperatorRequired(caller);
  return Ok();
}

Error OperatorRequired(const Caller& caller) {
  return Error::PermissionDenied("image management needs the operator right, which tenant " +
                                 Quote(caller.tenant) +
                                 " does not have: use an API key marked \"operator\" (or the "
                                 "local socket)")
      .WithReason("SBX_OPERATOR_REQUIRED");
}

}  // namespace sbx::daemon
