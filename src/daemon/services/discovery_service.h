// File: discovery_service.h
//
// coreweave.sandbox.v1.DiscoveryService: this node reports itself as the one runner, with its
// capacity and what is free.

#pragma once

#include "coreweave/sandbox/v1/discovery.grpc.pb.h"
#include "src/daemon/sandbox_manager.h"
#include "src/daemon/services/auth.h"

namespace sbx::daemon {

class DiscoveryService final : public ::coreweave::sandbox::v1::DiscoveryService::Service {
 public:
  DiscoveryService(SandboxManager* manager, const Authenticator* auth)
      : manager_(manager), auth_(auth) {}
  grpc::Status ListAvailableRunners(
      grpc::ServerContext* context,
      const ::coreweave::sandbox::v1::ListAvailableRunnersRequest* request,
      ::coreweave::sandbox::v1::ListAvailableRunnersResponse* response) override;
  grpc::Status GetAvailableRunner(
      grpc::ServerContext* context,
      const ::coreweave::sandbox::v1::GetAvailableRunnerRequest* request,
      ::coreweave::sandbox::v1::AvailableRunner* response) override;

 private:
  ::coreweave::sandbox::v1::AvailableRunner Self();
  SandboxManager* manager_;
  const Authenticator* auth_;
  int64_t started_ns_ = 0;
};

}  // namespace sbx::daemon
