// File: archive_service.h
//
// sbx.v1.ArchiveService: files and whole directory trees in and out of a sandbox as tar streams,
// for `sbx cp`. The daemon reads and writes the tar format itself (libarchive) and performs every
// entry as an sbx-init operation (write file, make directory, make symlink; stat, list, read,
// readlink), so each path is resolved inside the sandbox by sbx-init, never by the host.
//
// PutArchive refuses what an archive must not do: hard links, devices, FIFOs, absolute names and
// ".." components, and writing through a symlink, whether the archive created it or it was
// already there, so every entry lands inside the directory the archive was aimed at. Entry
// counts, total bytes and depth are bounded. GetArchive walks the tree (a single file gives a
// one-entry archive) and streams the tar as it is produced; a client that stops reading slows
// the walk down.

#pragma once

#include <string>
#include <string_view>

#include "sbx/v1/sbx.grpc.pb.h"
#include "src/base/result.h"
#include "src/daemon/sandbox_manager.h"
#include "src/daemon/services/auth.h"

namespace sbx::daemon {

// The name GetArchive gives the top entry for `path`: its last component ("/work/src" -> "src"),
// or "." when the path ends in "/." (the directory's contents, as `docker cp` does). The root
// itself and paths ending in ".." are INVALID_ARGUMENT. Exposed for tests.
Result<std::string> ArchiveTopName(std::string_view path);

class ArchiveService final : public ::sbx::v1::ArchiveService::Service {
 public:
  ArchiveService(SandboxManager* manager, const Authenticator* auth)
      : manager_(manager), auth_(auth) {}

  grpc::Status PutArchive(grpc::ServerContext* context,
                          grpc::ServerReader<::sbx::v1::PutArchiveRequest>* reader,
                          ::sbx::v1::PutArchiveResponse* response) override;
  grpc::Status GetArchive(grpc::ServerContext* context, const ::sbx::v1::GetArchiveRequest* request,
                          grpc::ServerWriter<::sbx::v1::ArchiveChunk>* writer) override;

 private:
  Result<std::string> Socket(grpc::ServerContext* context, const std::string& id,
                             SandboxManager::Access access = SandboxManager::Access::kRun);
  SandboxManager* manager_;
  const Authenticator* auth_;
};

}  // namespace sbx::daemon
