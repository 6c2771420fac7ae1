// File: impl.h
//
// The private halves of Client and ExecSession, shared by the files of src/client.

#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "coreweave/sandbox/v1/sandbox.grpc.pb.h"
#include "sbx/client.h"
#include "sbx/v1/sbx.grpc.pb.h"
#include "src/client/channel.h"
#include "src/client/status.h"

namespace sbx {

struct Client::Impl {
  ClientOptions options;
  client::Endpoint endpoint;
  std::string api_key;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<::coreweave::sandbox::v1::SandboxService::Stub> sandboxes;
  std::unique_ptr<::sbx::v1::ImageService::Stub> images;
  std::unique_ptr<::sbx::v1::SystemService::Stub> system;
  std::unique_ptr<::sbx::v1::LifetimeService::Stub> lifetime;
  std::unique_ptr<::sbx::v1::UsageService::Stub> usage;
  std::unique_ptr<::sbx::v1::ArchiveService::Stub> archives;

  // Adds the credentials and, when `with_deadline`, the unary deadline.
  void Prepare(grpc::ClientContext* context, bool with_deadline = true) const {
    if (!api_key.empty()) context->AddMetadata("authorization", "Bearer " + api_key);
    if (with_deadline) context->set_deadline(std::chrono::system_clock::now() + options.timeout);
  }
  Error Fail(const grpc::Status& status) const {
    return client::FromGrpcStatus(status, endpoint.base_url);
  }
  // One unary call with the credentials and the unary deadline; a failure carries the server's
  // reason.
  template <typename Stub, typename Request, typename Response>
  Result<Response> Call(Stub* stub,
                        grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                     Response*),
                        const Request& request) const {
    grpc::ClientContext context;
    Prepare(&context);
    Response response;
    grpc::Status status = (stub->*method)(&context, request, &response);
    if (!status.ok()) return Fail(status);
    return response;
  }

  Result<Sandbox> WaitFor(const std::string& id, bool (*done)(SandboxState),
                          std::chrono::milliseconds timeout, const char* what);
};

struct ExecSession::Impl {
  std::string base_url;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<::coreweave::sandbox::v1::ExecStreamRequest,
                                           ::coreweave::sandbox::v1::ExecStreamResponse>>
      stream;
  ExecCallbacks callbacks;
  std::optional<::coreweave::sandbox::v1::ExecStreamResponse> pending;  // read before Wait
  std::chrono::milliseconds timeout{0};
  std::mutex write_mu;
  bool writes_closed = false;  // guarded by write_mu
  bool waited = false;
  bool finished = false;
  std::atomic<bool> cancelled{false};

  Status Send(const ::coreweave::sandbox::v1::ExecStreamRequest& message);
};

namespace client {

// A download of GetArchive, pulled chunk by chunk (libarchive reads this way).
class ArchiveDownload {
 public:
  ArchiveDownload(const Client::Impl& impl, const std::string& id, const std::string& path);
  ~ArchiveDownload();
  // The next chunk; false at the end of the stream, or after an error (see Finish).
  bool Next(std::string* chunk);
  // Stops early; Finish then reports success.
  void Cancel();
  Status Finish();

 private:
  const Client::Impl& impl_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<::sbx::v1::ArchiveChunk>> reader_;
  bool cancelled_ = false;
  bool finished_ = false;
};

}  // namespace client
}  // namespace sbx
