#include "sbx/client.h"

#include <algorithm>
#include <thread>

#include "src/client/convert.h"
#include "src/client/impl.h"

namespace sbx {

namespace cw = ::coreweave::sandbox::v1;
namespace pb = ::sbx::v1;

namespace {

// Upload chunks: well below the 100 MiB message limit, large enough to keep the stream busy.
constexpr size_t kUploadChunk = 1u << 20;

using client::FormatTimeout;

Error CommandTimeout(std::chrono::milliseconds timeout) {
  return Error::DeadlineExceeded("the command did not finish within " + FormatTimeout(timeout) +
                                 "; it was killed")
      .WithReason("CWSANDBOX_COMMAND_TIMEOUT");
}

bool IsRunningOrDone(SandboxState s) { return s == SandboxState::kRunning || IsTerminal(s); }

}  // namespace

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::Connect(ClientOptions options) {
  auto impl = std::make_unique<Impl>();
  std::string base_url = client::ResolveBaseUrl(options.base_url);
  SBX_ASSIGN_OR_RETURN(impl->endpoint, client::ParseBaseUrl(base_url));
  impl->api_key = client::ResolveApiKey(options.api_key);
  if (options.timeout.count() <= 0) options.timeout = std::chrono::minutes(5);
  impl->options = std::move(options);
  impl->channel = client::MakeChannel(impl->endpoint);
  impl->sandboxes = cw::SandboxService::NewStub(impl->channel);
  impl->images = pb::ImageService::NewStub(impl->channel);
  impl->system = pb::SystemService::NewStub(impl->channel);
  impl->lifetime = pb::LifetimeService::NewStub(impl->channel);
  impl->usage = pb::UsageService::NewStub(impl->channel);
  impl->archives = pb::ArchiveService::NewStub(impl->channel);
  return Client(std::move(impl));
}

const std::string& Client::base_url() const { return impl_->endpoint.base_url; }

// ---------------------------------------------------------------------------------------------
// Sandboxes

Result<Sandbox> Client::Create(const SandboxSpec& spec, bool wait_running) {
  cw::CreateSandboxRequest request;
  client::ToProto(spec, &request);
  SBX_ASSIGN_OR_RETURN(
      cw::Sandbox response,
      impl_->Call(impl_->sandboxes.get(), &cw::SandboxService::Stub::CreateSandbox, request));
  Sandbox sandbox = client::FromProto(response);
  if (wait_running && !IsRunningOrDone(sandbox.state)) {
    // A slow image pull: the daemon answered before the sandbox ran.
    return WaitUntilRunning(sandbox.id, impl_->options.timeout);
  }
  return sandbox;
}

Result<Sandbox> Client::Get(const std::string& id) {
  cw::GetSandboxRequest request;
  request.set_sandbox_id(id);
  SBX_ASSIGN_OR_RETURN(
      cw::Sandbox response,
      impl_->Call(impl_->sandboxes.get(), &cw::SandboxService::Stub::GetSandbox, request));
  return client::FromProto(response);
}

Result<std::vector<Sandbox>> Client::List(const ListOptions& options) {
  std::vector<Sandbox> out;
  std::string token;
  do {
    cw::ListSandboxesRequest request;
    for (const auto& t : options.tags) request.add_tags(t);
    if (options.state) request.set_state(client::ToProto(*options.state));
    request.set_show_terminated(options.include_terminated);
    request.set_page_size(1000);
    request.set_page_token(token);
    SBX_ASSIGN_OR_RETURN(
        cw::ListSandboxesResponse response,
        impl_->Call(impl_->sandboxes.get(), &cw::SandboxService::Stub::ListSandboxes, request));
    for (const auto& s : response.sandboxes()) out.push_back(client::FromProto(s));
    token = response.next_page_token();
  } while (!token.empty());
  return out;
}

Result<Sandbox> Client::Impl::WaitFor(const std::string& id, bool (*done)(SandboxState),
                                      std::chrono::milliseconds timeout, const char* what) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto interval = std::chrono::milliseconds(20);
  while (true) {
    cw::GetSandboxRequest request;
    request.set_sandbox_id(id);
    grpc::ClientContext context;
    Prepare(&context);
    cw::Sandbox response;
    grpc::Status status = sandboxes->GetSandbox(&context, request, &response);
    if (!status.ok()) return Fail(status);
    Sandbox sandbox = client::FromProto(response);
    if (done(sandbox.state)) return sandbox;
    if (std::chrono::steady_clock::now() + interval > deadline) {
      return Error::DeadlineExceeded(
                 "sandbox " + id + " is still " + std::string(StateName(sandbox.state)) +
                 " after " + std::to_string(timeout.count() / 1000) + " s waiting for " + what)
          .WithMetadata("sandbox_id", id);
    }
    std::this_thread::sleep_for(interval);
    interval = std::min(interval * 2, std::chrono::milliseconds(500));
  }
}

Result<Sandbox> Client::WaitUntilRunning(const std::string& id, std::chrono::milliseconds timeout) {
  return impl_->WaitFor(id, IsRunningOrDone, timeout, "it to run");
}

Result<Sandbox> Client::WaitUntilDone(const std::string& id, std::chrono::milliseconds timeout) {
  return impl_->WaitFor(id, IsTerminal, timeout, "it to end");
}

Result<std::optional<Sandbox>> Client::Stop(const std::string& id, const StopOptions& options) {
  cw::DeleteSandboxRequest request;
  request.set_sandbox_id(id);
  request.set_grace_period_seconds(std::max(options.grace_seconds, 0));
  request.set_allow_missing(options.missing_ok);
  request.set_request_id(client::NewRequestId());
  grpc::ClientContext context;
  impl_->Prepare(&context);
  cw::DeleteSandboxResponse response;
  grpc::Status status = impl_->sandboxes->DeleteSandbox(&context, request, &response);
  if (!status.ok()) {
    if (options.missing_ok && status.error_code() == grpc::StatusCode::NOT_FOUND) {
      return std::optional<Sandbox>();
    }
    return impl_->Fail(status);
  }
  if (!response.has_sandbox() || response.sandbox().sandbox_id().empty()) {
    return std::optional<Sandbox>();  // allow_missing and there was nothing to stop
  }
  Sandbox sandbox = client::FromProto(response.sandbox());
  if (!options.wait || IsTerminal(sandbox.state)) return std::optional<Sandbox>(sandbox);
  auto wait = std::chrono::seconds(std::max(options.grace_seconds, 0) + 60);
  SBX_ASSIGN_OR_RETURN(Sandbox done, WaitUntilDone(id, wait));
  return std::optional<Sandbox>(std::move(done));
}

Status Client::Delete(const std::string& id, bool missing_ok) {
  StopOptions options;
  options.grace_seconds = 0;
  options.missing_ok = missing_ok;
  options.wait = false;
  SBX_TRY(Stop(id, options));
  return Ok();
}

Result<PurgeResult> Client::Purge(const std::vector<std::string>& tags, bool all, bool dry_run) {
  cw::PurgeSandboxesRequest request;
  for (const auto& t : tags) request.add_tags(t);
  request.set_purge_all(all);
  request.set_dry_run(dry_run);
  request.set_request_id(client::NewRequestId());
  SBX_ASSIGN_OR_RETURN(
      cw::PurgeSandboxesResponse response,
      impl_->Call(impl_->sandboxes.get(), &cw::SandboxService::Stub::PurgeSandboxes, request));
  PurgeResult out;
  out.count = response.purge_count();
  out.failed_ids.assign(response.failed_sandbox_ids().begin(), response.failed_sandbox_ids().end());
  for (const auto& id : response.retryable_failed_sandbox_ids()) out.failed_ids.push_back(id);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Commands

Result<ExecResult> Client::Run(const std::string& id, const ExecOptions& options) {
  cw::ExecRequest request;
  request.set_sandbox_id(id);
  for (const auto& a : options.command) request.add_command(a);
  for (const auto& [k, v] : options.env) (*request.mutable_env())[k] = v;
  grpc::ClientContext context;
  impl_->Prepare(&context, false);
  if (options.timeout.count() > 0) {
    context.set_deadline(std::chrono::system_clock::now() + options.timeout);
  }
  cw::ExecResponse response;
  grpc::Status status = impl_->sandboxes->Exec(&context, request, &response);
  if (!status.ok()) {
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && options.timeout.count() > 0) {
      return CommandTimeout(options.timeout);
    }
    return impl_->Fail(status);
  }
  ExecResult out;
  out.exit_code = response.exit_code();
  out.stdout_data = std::move(*response.mutable_stdout());
  out.stderr_data = std::move(*response.mutable_stderr());
  out.stdout_truncated = response.stdout_truncated();
  out.stderr_truncated = response.stderr_truncated();
  return out;
}

Result<std::unique_ptr<ExecSession>> Client::StartExec(const std::string& id,
                                                       const ExecOptions& options,
                                                       ExecCallbacks callbacks) {
  if (options.command.empty()) return Error::InvalidArgument("exec: empty command");
  auto impl = std::make_unique<ExecSession::Impl>();
  impl->base_url = impl_->endpoint.base_url;
  impl->callbacks = std::move(callbacks);
  impl->timeout = options.timeout;
  impl_->Prepare(&impl->context, false);
  if (options.timeout.count() > 0) {
    impl->context.set_deadline(std::chrono::system_clock::now() + options.timeout);
  }
  impl->stream = impl_->sandboxes->StreamExec(&impl->context);
  cw::ExecStreamRequest init;
  auto* i = init.mutable_init();
  i->set_sandbox_id(id);
  for (const auto& a : options.command) i->add_command(a);
  for (const auto& [k, v] : options.env) (*i->mutable_env())[k] = v;
  i->set_tty(options.tty);
  i->set_tty_width(options.cols);
  i->set_tty_height(options.rows);
  impl->stream->Write(init);
  // The first answer tells whether the command started: a missing sandbox fails here.
  cw::ExecStreamResponse first;
  if (!impl->stream->Read(&first)) {
    impl->writes_closed = true;
    grpc::Status status = impl->stream->Finish();
    impl->finished = true;
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && options.timeout.count() > 0) {
      return CommandTimeout(options.timeout);
    }
    if (status.ok()) return Error::Internal("exec: the stream ended before the command started");
    return impl_->Fail(status);
  }
  if (!first.has_ready()) impl->pending = std::move(first);
  return std::make_unique<ExecSession>(std::move(impl));
}

Result<int> Client::Exec(const std::string& id, const ExecOptions& options,
                         ExecCallbacks callbacks) {
  SBX_ASSIGN_OR_RETURN(auto session, StartExec(id, options, std::move(callbacks)));
  (void)session->CloseStdin();
  return session->Wait();
}

// ---------------------------------------------------------------------------------------------
// Files and logs

Result<std::string> Client::ReadFile(const std::string& id, const std::string& path) {
  cw::ReadFileRequest request;
  request.set_sandbox_id(id);
  request.set_path(path);
  SBX_ASSIGN_OR_RETURN(
      cw::ReadFileResponse response,
      impl_->Call(impl_->sandboxes.get(), &cw::SandboxService::Stub::ReadFile, request));
  return std::move(*response.mutable_content());
}

Status Client::WriteFile(const std::string& id, const std::string& path, std::string_view content) {
  cw::WriteFileRequest request;
  request.set_sandbox_id(id);
  request.set_path(path);
  request.set_content(std::string(content));
  grpc::ClientContext context;
  impl_->Prepare(&context);
  cw::WriteFileResponse response;
  return client::ToStatus(impl_->sandboxes->WriteFile(&context, request, &response),
                          impl_->endpoint.base_url);
}

Status Client::StreamLogs(const std::string& id, const LogOptions& options,
                          const std::function<bool(std::string_view)>& sink) {
  cw::StreamLogsRequest request;
  request.set_sandbox_id(id);
  request.set_follow(options.follow);
  request.set_tail_lines(std::max(options.tail_lines, 0));
  request.set_timestamps(options.timestamps);
  if (options.since) *request.mutable_since_time() = client::ToTimestamp(*options.since);
  grpc::ClientContext context;
  impl_->Prepare(&context, !options.follow);
  auto reader = impl_->sandboxes->StreamLogs(&context, request);
  cw::LogEntry entry;
  std::optional<Error> stream_error;
  bool stopped = false;
  while (reader->Read(&entry)) {
    if (entry.has_error() && !entry.error().code().empty()) {
      stream_error =
          Error(Code::kAborted, entry.error().message()).WithReason(entry.error().code());
      break;
    }
    if (!entry.data().empty() && !sink(entry.data())) {
      stopped = true;
      break;
    }
  }
  if (stopped || stream_error) {
    context.TryCancel();
    while (reader->Read(&entry)) {
    }
  }
  grpc::Status status = reader->Finish();
  if (stream_error) return *stream_error;
  if (stopped) return Ok();
  return client::ToStatus(status, impl_->endpoint.base_url);
}

// ---------------------------------------------------------------------------------------------
// Archives

Result<CopyStats> Client::PutArchive(const std::string& id, const std::string& dir,
                                     const ChunkProducer& tar) {
  grpc::ClientContext context;
  impl_->Prepare(&context, false);
  pb::PutArchiveResponse response;
  auto writer = impl_->archives->PutArchive(&context, &response);
  pb::PutArchiveRequest first;
  first.set_sandbox_id(id);
  first.set_path(dir);
  bool open = writer->Write(first);
  std::string pending;
  auto send = [&]() -> bool {
    pb::PutArchiveRequest message;
    message.set_data(std::move(pending));
    pending.clear();
    open = open && writer->Write(message);
    return open;
  };
  Status produced = tar([&](std::string_view data) -> Status {
    while (!data.empty()) {
      size_t n = std::min(data.size(), kUploadChunk - pending.size());
      pending.append(data.substr(0, n));
      data.remove_prefix(n);
      // A closed stream means the daemon refused the archive; its status says why.
      if (pending.size() >= kUploadChunk && !send()) return Error(Code::kAborted, "stream closed");
    }
    return Ok();
  });
  if (produced && open && !pending.empty()) send();
  if (!produced && produced.error().code() != Code::kAborted) {
    context.TryCancel();
    (void)writer->Finish();
    return std::move(produced).error();
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return impl_->Fail(status);
  if (!produced) return Error::Internal("upload: the stream closed before the archive was sent");
  return CopyStats{response.files(), response.bytes()};
}

namespace client {

ArchiveDownload::ArchiveDownload(const Client::Impl& impl, const std::string& id,
                                 const std::string& path)
    : impl_(impl) {
  impl.Prepare(&context_, false);
  pb::GetArchiveRequest request;
  request.set_sandbox_id(id);
  request.set_path(path);
  reader_ = impl.archives->GetArchive(&context_, request);
}

ArchiveDownload::~ArchiveDownload() {
  if (!finished_) {
    Cancel();
    (void)Finish();
  }
}

bool ArchiveDownload::Next(std::string* chunk) {
  pb::ArchiveChunk message;
  while (!cancelled_ && reader_->Read(&message)) {
    if (message.data().empty()) continue;
    *chunk = std::move(*message.mutable_data());
    return true;
  }
  return false;
}

void ArchiveDownload::Cancel() {
  if (cancelled_) return;
  cancelled_ = true;
  context_.TryCancel();
}

Status ArchiveDownload::Finish() {
  if (finished_) return Ok();
  pb::ArchiveChunk rest;
  while (reader_->Read(&rest)) {
  }
  grpc::Status status = reader_->Finish();
  finished_ = true;
  if (cancelled_) return Ok();
  return ToStatus(status, impl_.endpoint.base_url);
}

}  // namespace client

Status Client::GetArchive(const std::string& id, const std::string& path, const ChunkSink& tar) {
  client::ArchiveDownload download(*impl_, id, path);
  std::string chunk;
  while (download.Next(&chunk)) {
    Status sunk = tar(chunk);
    if (!sunk) {
      download.Cancel();
      (void)download.Finish();
      return sunk;
    }
  }
  return download.Finish();
}

// ---------------------------------------------------------------------------------------------
// Images and the node

Result<Image> Client::PullImage(
    const std::string& reference,
    const std::function<void(const std::vector<LayerProgress>&)>& progress,
    const std::string& platform, bool if_missing) {
  pb::PullImageRequest request;
  request.set_reference(reference);
  request.set_platform(platform);
  request.set_if_missing(if_missing);
  grpc::ClientContext context;
  impl_->Prepare(&context, false);
  auto reader = impl_->images->PullImage(&context, request);
  pb::PullImageProgress message;
  std::optional<Image> image;
  while (reader->Read(&message)) {
    if (message.done()) {
      image = client::FromProto(message.image());
      continue;
    }
    if (progress) {
      std::vector<LayerProgress> layers;
      for (const auto& l : message.layers()) {
        layers.push_back({l.digest(), l.total_bytes(), l.done_bytes(), l.phase()});
      }
      progress(layers);
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return impl_->Fail(status);
  if (!image) return Error::Internal("pull: the daemon ended the stream without the image");
  return *image;
}

Result<std::vector<Image>> Client::ListImages() {
  SBX_ASSIGN_OR_RETURN(pb::ListImagesResponse response,
                       impl_->Call(impl_->images.get(), &pb::ImageService::Stub::ListImages,
                                   pb::ListImagesRequest()));
  std::vector<Image> out;
  for (const auto& i : response.images()) out.push_back(client::FromProto(i));
  return out;
}

Result<int64_t> Client::RemoveImage(const std::string& reference, bool force) {
  pb::RemoveImageRequest request;
  request.set_reference(reference);
  request.set_force(force);
  SBX_ASSIGN_OR_RETURN(
      pb::RemoveImageResponse response,
      impl_->Call(impl_->images.get(), &pb::ImageService::Stub::RemoveImage, request));
  return response.reclaimed_bytes();
}

Result<std::vector<Image>> Client::LoadImage(const ChunkProducer& archive, const std::string& tag) {
  grpc::ClientContext context;
  impl_->Prepare(&context, false);
  pb::LoadImageResponse response;
  auto writer = impl_->images->LoadImage(&context, &response);
  bool first = true;
  bool open = true;
  Status produced = archive([&](std::string_view data) -> Status {
    while (!data.empty()) {
      size_t n = std::min(data.size(), kUploadChunk);
      pb::LoadImageChunk chunk;
      chunk.set_data(std::string(data.substr(0, n)));
      if (first) chunk.set_tag(tag);
      first = false;
      data.remove_prefix(n);
      if (!writer->Write(chunk)) {
        open = false;
        return Error(Code::kAborted, "stream closed");
      }
    }
    return Ok();
  });
  if (!produced && open) {
    context.TryCancel();
    (void)writer->Finish();
    return std::move(produced).error();
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return impl_->Fail(status);
  std::vector<Image> out;
  for (const auto& i : response.images()) out.push_back(client::FromProto(i));
  return out;
}

std::optional<TimePoint> Sandbox::expire_time() const {
  if (!create_time || max_lifetime_seconds <= 0 || IsTerminal(state)) return std::nullopt;
  return *create_time + std::chrono::seconds(max_lifetime_seconds);
}

Result<TimePoint> Client::ExtendLifetime(const std::string& id, std::chrono::seconds by) {
  if (by.count() <= 0 || by.count() > INT32_MAX) {
    return Error::InvalidArgument("the extension must be a positive number of seconds");
  }
  pb::ExtendLifetimeRequest request;
  request.set_sandbox_id(id);
  request.set_seconds(static_cast<int32_t>(by.count()));
  SBX_ASSIGN_OR_RETURN(
      pb::ExtendLifetimeResponse response,
      impl_->Call(impl_->lifetime.get(), &pb::LifetimeService::Stub::ExtendLifetime, request));
  return *client::FromTimestamp(response.expire_time(), true);
}

Result<SandboxUsage> Client::GetUsage(const std::string& id) {
  pb::GetUsageRequest request;
  request.set_sandbox_id(id);
  SBX_ASSIGN_OR_RETURN(pb::SandboxUsage response,
                       impl_->Call(impl_->usage.get(), &pb::UsageService::Stub::GetUsage, request));
  SandboxUsage out;
  out.id = response.sandbox_id();
  out.cpu_millicores = response.cpu_millicores();
  out.cpu_usage = std::chrono::nanoseconds(response.cpu_usage_ns());
  out.memory_bytes = response.memory_bytes();
  out.memory_limit_bytes = response.memory_limit_bytes();
  out.pids = response.pids();
  out.disk_used_bytes = response.disk_used_bytes();
  out.disk_total_bytes = response.disk_total_bytes();
  out.read_time = client::FromTimestamp(response.read_time(), response.has_read_time());
  return out;
}

Result<SystemInfo> Client::GetInfo() {
  SBX_ASSIGN_OR_RETURN(
      pb::GetInfoResponse response,
      impl_->Call(impl_->system.get(), &pb::SystemService::Stub::GetInfo, pb::GetInfoRequest()));
  SystemInfo out;
  out.version = response.version();
  out.runner_id = response.runner_id();
  for (const auto& c : response.checks()) out.checks.push_back({c.name(), c.ok(), c.detail()});
  out.capacity_cpu_millicores = response.capacity_cpu_millicores();
  out.capacity_memory_bytes = response.capacity_memory_bytes();
  out.allocated_cpu_millicores = response.allocated_cpu_millicores();
  out.allocated_memory_bytes = response.allocated_memory_bytes();
  out.running_sandboxes = response.running_sandboxes();
  out.disk_free_bytes = response.disk_free_bytes();
  out.cgroup_version = response.cgroup_version();
  if (response.config().present()) {
    const auto& c = response.config();
    SystemInfo::Config config;
    config.registry_mirrors.assign(c.registry_mirrors().begin(), c.registry_mirrors().end());
    config.insecure_registries.assign(c.insecure_registries().begin(),
                                      c.insecure_registries().end());
    config.state_dir = c.state_dir();
    config.network = c.network();
    config.default_lifetime_seconds = c.default_lifetime_seconds();
    config.max_lifetime_seconds = c.max_lifetime_seconds();
    config.files_retention_seconds = c.files_retention_seconds();
    out.config = std::move(config);
  }
  return out;
}

}  // namespace sbx
