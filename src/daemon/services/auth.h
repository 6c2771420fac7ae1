// File: auth.h
//
// Who is calling. Each of sbxd's two gRPC servers has its own Authenticator:
//
//   * the local one (unix socket): callers are trusted by the socket's file permissions and act
//     as the local tenant, with the operator right unless `local_operator` is off; a caller that
//     presents an API key acts as that key's tenant instead;
//   * the remote one (TCP): every request carries an API key (`authorization: Bearer <key>` or
//     `x-wandb-api-key: <key>`) that names its tenant; keys marked `operator` also carry the
//     operator right. The remote server checks the key on the request's metadata before it reads
//     the request's body (api_key_credentials.h) and the handlers check it again here.
//
// The operator right is what image management (sbx.v1.ImageService) needs: images are shared by
// every tenant of the node, so listing, pulling, loading or removing them is the node operator's
// business, not a tenant's.

#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <grpcpp/grpcpp.h>

#include "src/base/result.h"
#include "src/daemon/config.h"

namespace sbx::daemon {

struct Caller {
  std::string tenant;
  bool is_operator = false;
};

enum class ApiSide { kLocal, kRemote };

// Whether the RPC with the full method name `method` ("/sbx.v1.ImageService/PullImage") needs
// the operator right.
bool IsOperatorMethod(std::string_view method);

class Authenticator {
 public:
  Authenticator(const Config& config, ApiSide side);

  // The value of one request metadata entry (lowercase key), if present.
  using MetadataLookup = std::function<std::optional<std::string>(std::string_view key)>;

  // The caller of a request with this metadata, or UNAUTHENTICATED.
  Result<Caller> Identify(const MetadataLookup& metadata) const;
  Result<Caller> Identify(const grpc::ServerContextBase& context) const;
  // The caller's tenant, or UNAUTHENTICATED.
  Result<std::string> Tenant(const grpc::ServerContextBase& context) const;
  // OK for an operator; UNAUTHENTICATED or PERMISSION_DENIED otherwise.
  Status RequireOperator(const grpc::ServerContextBase& context) const;

  ApiSide side() const { return side_; }

 private:
  struct Key {
    std::string tenant;
    bool is_operator = false;
  };
  ApiSide side_;
  std::map<std::string, Key, std::less<>> keys_;
  std::string local_tenant_;
  bool local_operator_;
};

// PERMISSION_DENIED for a caller without the operator right.
Error OperatorRequired(const Caller& caller);

}  // namespace sbx::daemon
