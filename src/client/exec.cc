#include <algorithm>

#include "src/client/impl.h"

namespace sbx {

namespace cw = ::coreweave::sandbox::v1;

namespace {
constexpr size_t kStdinChunk = 1u << 20;
}  // namespace

ExecSession::ExecSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ExecSession::~ExecSession() {
  if (!impl_ || impl_->finished) return;
  impl_->context.TryCancel();
  {
    std::lock_guard lock(impl_->write_mu);
    impl_->writes_closed = true;
  }
  cw::ExecStreamResponse rest;
  while (impl_->stream->Read(&rest)) {
  }
  (void)impl_->stream->Finish();
}

Status ExecSession::Impl::Send(const cw::ExecStreamRequest& message) {
  std::lock_guard lock(write_mu);
  if (writes_closed) return Error::FailedPrecondition("the command has finished");
  if (!stream->Write(message)) return Error::Unavailable("the command's stream is closed");
  return Ok();
}

Status ExecSession::WriteStdin(std::string_view data) {
  while (!data.empty()) {
    size_t n = std::min(data.size(), kStdinChunk);
    cw::ExecStreamRequest message;
    message.set_stdin(std::string(data.substr(0, n)));
    SBX_TRY(impl_->Send(message));
    data.remove_prefix(n);
  }
  return Ok();
}

Status ExecSession::CloseStdin() {
  cw::ExecStreamRequest message;
  message.mutable_close();
  return impl_->Send(message);
}

Status ExecSession::Resize(uint32_t rows, uint32_t cols) {
  cw::ExecStreamRequest message;
  message.mutable_resize()->set_width(cols);
  message.mutable_resize()->set_height(rows);
  return impl_->Send(message);
}

void ExecSession::Cancel() {
  impl_->cancelled = true;
  impl_->context.TryCancel();
}

Result<int> ExecSession::Wait() {
  Impl& s = *impl_;
  if (s.waited || s.finished) return Error::FailedPrecondition("Wait() was already called");
  s.waited = true;
  std::optional<int> exit_code;
  std::optional<Error> stream_error;
  auto handle = [&](const cw::ExecStreamResponse& r) {
    if (r.has_output()) {
      bool is_stderr = r.output().stream() == cw::ExecStreamOutput::STREAM_STDERR;
      const auto& sink = is_stderr ? s.callbacks.on_stderr : s.callbacks.on_stdout;
      if (sink && !r.output().data().empty()) sink(r.output().data());
    } else if (r.has_exit()) {
      exit_code = r.exit().exit_code();
    } else if (r.has_error()) {
      stream_error =
          Error(Code::kAborted, "exec: " + r.error().message())
              .WithReason(r.error().code().empty() ? "STREAM_INTERRUPTED" : r.error().code());
    }
  };
  if (s.pending) handle(*s.pending);
  s.pending.reset();
  cw::ExecStreamResponse response;
  while (!exit_code && !stream_error && s.stream->Read(&response)) handle(response);
  {
    // Waits for a Write in flight on another thread, then half-closes.
    std::lock_guard lock(s.write_mu);
    if (!s.writes_closed) {
      s.writes_closed = true;
      s.stream->WritesDone();
    }
  }
  while (s.stream->Read(&response)) {
  }
  grpc::Status status = s.stream->Finish();
  s.finished = true;
  if (exit_code) return *exit_code;
  if (stream_error) return *stream_error;
  if (s.cancelled) return Error(Code::kCancelled, "the command was cancelled and killed");
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED && s.timeout.count() > 0) {
    return Error::DeadlineExceeded("the command did not finish within " +
                                   client::FormatTimeout(s.timeout) + "; it was killed")
        .WithReason("CWSANDBOX_COMMAND_TIMEOUT");
  }
  if (!status.ok()) return client::FromGrpcStatus(status, s.base_url);
  return Error::Internal("exec: the stream ended without an exit status");
}

}  // namespace sbx
