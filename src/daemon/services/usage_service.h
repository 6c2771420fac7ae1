// File: usage_service.h
//
// sbx.v1.UsageService: a running sandbox's CPU, memory, processes and disk, for `sbx stats` (the
// hosted protocol's ResourceUsage has CPU and memory only).

#pragma once

#include "sbx/v1/sbx.grpc.pb.h"
#include "src/daemon/sandbox_manager.h"
#include "src/daemon/services/auth.h"

namespace sbx::daemon {

class UsageService final : public ::sbx::v1::UsageService::Service {
 public:
  UsageService(SandboxManager* manager, const Authenticator* auth)
      : manager_(manager), auth_(auth) {}
  grpc::Status GetUsage(grpc::ServerContext* context, const ::sbx::v1::GetUsageRequest* request,
                        ::sbx::v1::SandboxUsage* response) override;

 private:
  SandboxManager* manager_;
  const Authenticator* auth_;
};

}  // namespace sbx::daemon
