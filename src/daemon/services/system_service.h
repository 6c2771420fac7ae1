// File: system_service.h
//
// sbx.v1.SystemService: the daemon's version, this host's checks (what works, what will not and
// why), capacity and disk space, for `sbx doctor` and operators.

#pragma once

#include "sbx/v1/sbx.grpc.pb.h"
#include "src/daemon/sandbox_manager.h"
#include "src/daemon/services/auth.h"

namespace sbx::daemon {

class SystemService final : public ::sbx::v1::SystemService::Service {
 public:
  SystemService(SandboxManager* manager, const Authenticator* auth, std::string cgroup_version)
      : manager_(manager), auth_(auth), cgroup_version_(std::move(cgroup_version)) {}
  grpc::Status GetInfo(grpc::ServerContext* context, const ::sbx::v1::GetInfoRequest* request,
                       ::sbx::v1::GetInfoResponse* response) override;

 private:
  SandboxManager* manager_;
  const Authenticator* auth_;
  std::string cgroup_version_;
};

}  // namespace sbx::daemon
