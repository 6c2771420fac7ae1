// File: lifetime_service.h
//
// sbx.v1.LifetimeService: extending a running sandbox's lifetime (the hosted protocol has no
// call for it).

#pragma once

#include "sbx/v1/sbx.grpc.pb.h"
#include "src/daemon/sandbox_manager.h"
#include "src/daemon/services/auth.h"

namespace sbx::daemon {

class LifetimeService final : public ::sbx::v1::LifetimeService::Service {
 public:
  LifetimeService(SandboxManager* manager, const Authenticator* auth)
      : manager_(manager), auth_(auth) {}
  grpc::Status ExtendLifetime(grpc::ServerContext* context,
                              const ::sbx::v1::ExtendLifetimeRequest* request,
                              ::sbx::v1::ExtendLifetimeResponse* response) override;

 private:
  SandboxManager* manager_;
  const Authenticator* auth_;
};

}  // namespace sbx::daemon
