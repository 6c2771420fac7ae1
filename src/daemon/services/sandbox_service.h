// File: sandbox_service.h
//
// coreweave.sandbox.v1.SandboxService on top of SandboxManager: a thin adapter that
// authenticates, parses requests into domain terms (create_request_parser.h), and converts
// records (sandbox_proto.h) and errors (status_mapping.h) back. Exec, files and logs go to the
// sandbox's sbx-init.

#pragma once

#include "coreweave/sandbox/v1/sandbox.grpc.pb.h"
#include "src/daemon/byte_budget.h"
#include "src/daemon/metrics.h"
#include "src/daemon/sandbox_manager.h"
#include "src/daemon/services/auth.h"
#include "src/net/network_provider.h"

namespace sbx::daemon {

namespace v1 = ::coreweave::sandbox::v1;

class SandboxService final : public v1::SandboxService::Service {
 public:
  // `response_memory` bounds what ReadFile (the file) and Exec (the output) hold in memory for
  // their one-message responses.
  SandboxService(SandboxManager* manager, const Authenticator* auth, Metrics* metrics,
                 net::NetworkProvider* network, ByteBudget* response_memory)
      : manager_(manager),
        auth_(auth),
        metrics_(metrics),
        network_(network),
        response_memory_(response_memory) {}

  grpc::Status CreateSandbox(grpc::ServerContext* context, const v1::CreateSandboxRequest* request,
                             v1::Sandbox* response) override;
  grpc::Status CreateSandboxFromTemplate(grpc::ServerContext* context,
                                         const v1::CreateSandboxFromTemplateRequest* request,
                                         v1::Sandbox* response) override;
  grpc::Status GetSandbox(grpc::ServerContext* context, const v1::GetSandboxRequest* request,
                          v1::Sandbox* response) override;
  grpc::Status ListSandboxes(grpc::ServerContext* context, const v1::ListSandboxesRequest* request,
                             v1::ListSandboxesResponse* response) override;
  grpc::Status DeleteSandbox(grpc::ServerContext* context, const v1::DeleteSandboxRequest* request,
                             v1::DeleteSandboxResponse* response) override;
  grpc::Status PurgeSandboxes(grpc::ServerContext* context,
                              const v1::PurgeSandboxesRequest* request,
                              v1::PurgeSandboxesResponse* response) override;
  grpc::Status Exec(grpc::ServerContext* context, const v1::ExecRequest* request,
                    v1::ExecResponse* response) override;
  grpc::Status StreamExec(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::ExecStreamResponse, v1::ExecStreamRequest>* stream) override;
  grpc::Status StreamLogs(grpc::ServerContext* context, const v1::StreamLogsRequest* request,
                          grpc::ServerWriter<v1::LogEntry>* writer) override;
  grpc::Status WriteFile(grpc::ServerContext* context, const v1::WriteFileRequest* request,
                         v1::WriteFileResponse* response) override;
  grpc::Status ReadFile(grpc::ServerContext* context, const v1::ReadFileRequest* request,
                        v1::ReadFileResponse* response) override;
  grpc::Status CreateFileSystemSnapshot(grpc::ServerContext* context,
                                        const v1::CreateFileSystemSnapshotRequest* request,
                                        v1::FileSystemSnapshot* response) override;
  grpc::Status GetFileSystemSnapshot(grpc::ServerContext* context,
                                     const v1::GetFileSystemSnapshotRequest* request,
                                     v1::FileSystemSnapshot* response) override;
  grpc::Status ListFileSystemSnapshots(grpc::ServerContext* context,
                                       const v1::ListFileSystemSnapshotsRequest* request,
                                       v1::ListFileSystemSnapshotsResponse* response) override;
  grpc::Status DeleteFileSystemSnapshot(grpc::ServerContext* context,
                                        const v1::DeleteFileSystemSnapshotRequest* request,
                                        v1::FileSystemSnapshot* response) override;

 private:
  v1::Sandbox Render(const SandboxRecord& record) const;
  void FillResourceUsage(const std::string& tenant, const SandboxRecord& record,
                         v1::SandboxStatus* status);
  // The agent socket of a running sandbox the caller owns, waiting for it to start.
  Result<std::string> Socket(grpc::ServerContext* context, const std::string& id,
                             SandboxManager::Access access = SandboxManager::Access::kRun);
  SandboxManager* manager_;
  const Authenticator* auth_;
  Metrics* metrics_;
  net::NetworkProvider* network_;
  ByteBudget* response_memory_;
};

}  // namespace sbx::daemon
