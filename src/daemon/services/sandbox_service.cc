#include "src/daemon/services/sandbox_service.h"

#include <signal.h>

#include <atomic>
#include <optional>
#include <string_view>
#include <thread>

#include "src/agent/client.h"
#include "src/base/clock.h"
#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/daemon/services/agent_failure.h"
#include "src/daemon/services/call_scope.h"
#include "src/daemon/services/create_request_parser.h"
#include "src/daemon/services/log_lines.h"
#include "src/daemon/services/sandbox_proto.h"
#include "src/daemon/services/status_mapping.h"

namespace sbx::daemon {

namespace {

constexpr int64_t kDefaultExecOutput = 16 << 20;
constexpr int64_t kMaxExecOutput = 64 << 20;
// How long a ReadFile waits for memory to hold the file in.
constexpr int64_t kResponseMemoryWaitMs = 120000;
// Output an Exec keeps without asking the response-memory budget: most commands print less.
constexpr uint64_t kUnbudgetedExecOutput = 64u << 10;

grpc::Status Fail(const Error& error) { return ToGrpcStatus(error); }

// A command that cannot start is the command's outcome, as a shell reports it: exit code 127 (not
// found) or 126 (not executable) and the reason on stderr. Every client then sees an exit code,
// not an error that reads as if the sandbox were missing.
std::optional<int> CommandStartExitCode(const Error& error) {
  if (error.reason() == agent::kReasonCommandNotFound) return 127;
  if (error.reason() == agent::kReasonCommandNotExecutable) return 126;
  return std::nullopt;
}

int64_t CallDeadline(const grpc::ServerContext* context, int64_t fallback_ms) {
  auto deadline = context->deadline();
  auto now = std::chrono::system_clock::now();
  if (deadline == std::chrono::system_clock::time_point::max() || deadline <= now) {
    return MonotonicMillis() + fallback_ms;
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
  return MonotonicMillis() + std::min<int64_t>(left, 24LL * 3600 * 1000);
}

std::string LogSessionId(const SandboxRecord& r) {
  return r.id + "." + std::to_string(r.init_start_time != 0 ? r.init_start_time : r.create_ns);
}

}  // namespace

v1::Sandbox SandboxService::Render(const SandboxRecord& r) const {
  std::vector<net::ServiceEndpoint> services;
  if (network_ != nullptr && !IsTerminal(r.state)) services = network_->Services(r.id);
  return ToProto(r, manager_->runner_id(), services);
}

Result<std::string> SandboxService::Socket(grpc::ServerContext* context, const std::string& id,
                                           SandboxManager::Access access) {
  SBX_ASSIGN_OR_RETURN(std::string tenant, auth_->Tenant(*context));
  if (id.empty()) return FieldError("sandbox_id", "required");
  return manager_->AgentSocket(tenant, id, CallDeadline(context, 300000), access);
}

grpc::Status SandboxService::CreateSandbox(grpc::ServerContext* context,
                                           const v1::CreateSandboxRequest* request,
                                           v1::Sandbox* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  auto parsed = ParseCreateRequest(*request, manager_->config());
  if (!parsed) {
    metrics_->Inc("sbx_create_errors_total", {{"reason", "INVALID_ARGUMENT"}});
    return Fail(parsed.error());
  }
  auto record = manager_->Create(*tenant, std::move(*parsed));
  if (!record) return Fail(record.error());
  // Answer as soon as the sandbox runs (usually milliseconds), so the caller need not poll; a
  // slow image pull returns the PENDING/CREATING record and the caller polls.
  auto settled =
      manager_->WaitSettled(*tenant, record->id,
                            std::min(CallDeadline(context, 60000),
                                     MonotonicMillis() + manager_->config().create_wait_ms));
  *response = Render(settled ? *settled : *record);
  return grpc::Status::OK;
}

grpc::Status SandboxService::CreateSandboxFromTemplate(grpc::ServerContext*,
                                                       const v1::CreateSandboxFromTemplateRequest*,
                                                       v1::Sandbox*) {
  return Fail(Error::Unimplemented("sandbox templates are not supported by sbx"));
}

grpc::Status SandboxService::GetSandbox(grpc::ServerContext* context,
                                        const v1::GetSandboxRequest* request,
                                        v1::Sandbox* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  if (request->sandbox_id().empty()) return Fail(FieldError("sandbox_id", "required"));
  auto record = manager_->Get(*tenant, request->sandbox_id());
  if (!record) return Fail(record.error());
  *response = Render(*record);
  FillResourceUsage(*tenant, *record, response->mutable_status());
  return grpc::Status::OK;
}

// A running sandbox's CPU (usage_sampler.h) and memory (MiB, page cache included), read from the
// kernel now. Only Get reads them: a listing would read every sandbox's cgroup.
void SandboxService::FillResourceUsage(const std::string& tenant, const SandboxRecord& record,
                                       v1::SandboxStatus* status) {
  if (record.state != State::kRunning) return;
  auto usage = manager_->Usage(tenant, record.id);
  if (!usage) return;
  status->mutable_resource_usage()->set_cpu_millicores(static_cast<int64_t>(usage->cpu_millicores));
  status->mutable_resource_usage()->set_memory_mb(static_cast<int64_t>(usage->memory_bytes >> 20));
}

grpc::Status SandboxService::ListSandboxes(grpc::ServerContext* context,
                                           const v1::ListSandboxesRequest* request,
                                           v1::ListSandboxesResponse* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  ListFilter filter;
  for (const auto& t : request->tags()) filter.tags.push_back(t);
  if (request->state() != v1::STATE_UNSPECIFIED) {
    filter.state = FromProtoState(request->state());
    if (!filter.state) return Fail(FieldError("state", "unsupported state filter"));
  }
  filter.show_terminated = request->show_terminated();
  if (request->page_size() < 0) return Fail(FieldError("page_size", "must not be negative"));
  filter.page_size = request->page_size();
  filter.page_token = request->page_token();
  auto result = manager_->List(*tenant, filter);
  if (!result) return Fail(result.error());
  for (const auto& r : result->sandboxes) *response->add_sandboxes() = Render(r);
  response->set_next_page_token(result->next_page_token);
  return grpc::Status::OK;
}

grpc::Status SandboxService::DeleteSandbox(grpc::ServerContext* context,
                                           const v1::DeleteSandboxRequest* request,
                                           v1::DeleteSandboxResponse* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  if (request->sandbox_id().empty()) return Fail(FieldError("sandbox_id", "required"));
  if (request->grace_period_seconds() < 0) {
    return Fail(FieldError("grace_period_seconds", "must not be negative"));
  }
  if (request->snapshot_volumes_size() > 0) {
    return Fail(Error::Unimplemented("snapshots are not supported by sbx"));
  }
  auto record = manager_->Stop(*tenant, request->sandbox_id(), request->grace_period_seconds(),
                               request->request_id());
  if (!record) {
    if (record.error().code() == Code::kNotFound && request->allow_missing())
      return grpc::Status::OK;
    return Fail(record.error());
  }
  *response->mutable_sandbox() = Render(*record);
  return grpc::Status::OK;
}

grpc::Status SandboxService::PurgeSandboxes(grpc::ServerContext* context,
                                            const v1::PurgeSandboxesRequest* request,
                                            v1::PurgeSandboxesResponse* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  std::vector<std::string> tags(request->tags().begin(), request->tags().end());
  auto result = manager_->Purge(*tenant, tags, request->purge_all(), request->dry_run());
  if (!result) return Fail(result.error());
  response->set_purge_count(result->count);
  for (const auto& id : result->failed) response->add_failed_sandbox_ids(id);
  return grpc::Status::OK;
}

grpc::Status SandboxService::Exec(grpc::ServerContext* context, const v1::ExecRequest* request,
                                  v1::ExecResponse* response) {
  auto process = ParseExecProcess(request->command(), request->env(), "");
  if (!process) return Fail(process.error());
  if (request->max_output_bytes() < 0)
    return Fail(FieldError("max_output_bytes", "must not be negative"));
  int64_t started = MonotonicNanos();
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  auto socket = Socket(context, request->sandbox_id());
  if (!socket) return Fail(socket.error());
  auto gone = [&](Error error) {
    return Fail(ExplainAgentFailure(*manager_, *tenant, request->sandbox_id(), std::move(error)));
  };
  agent::ExecStart start;
  start.argv = std::move(process->argv);
  start.env = std::move(process->env);
  agent::AgentClient client(*socket);
  auto stream = client.StartExec(start);
  if (!stream) {
    std::optional<int> code = CommandStartExitCode(stream.error());
    if (!code) return gone(stream.error());
    response->set_stderr("sbx: " + stream.error().message() + "\n");
    response->set_stderr_bytes_produced(static_cast<int64_t>(response->stderr().size()));
    response->set_exit_code(*code);
    return grpc::Status::OK;
  }
  int64_t limit = request->max_output_bytes() > 0
                      ? std::min<int64_t>(request->max_output_bytes(), kMaxExecOutput)
                      : kDefaultExecOutput;
  int64_t deadline = CallDeadline(context, 24LL * 3600 * 1000);
  int64_t produced[2] = {0, 0};
  std::string* sinks[2] = {response->mutable_stdout(), response->mutable_stderr()};
  // The output kept for the response, like a ReadFile's file, is held twice until the response
  // is sent: beyond a small allowance it comes out of the tenant's share of response memory.
  // Waiting for more while holding some could stall every exec of a tenant, so output for which
  // no memory is free now is dropped, and the response says it was truncated.
  auto held = std::make_shared<std::vector<ByteBudget::Reservation>>();
  uint64_t covered = kUnbudgetedExecOutput;
  auto keepable = [&](size_t wanted) -> size_t {
    uint64_t kept = sinks[0]->size() + sinks[1]->size();
    if (kept + wanted <= covered) return wanted;
    uint64_t more = std::max<uint64_t>(kept + wanted - covered, 1u << 20);
    if (auto extra = response_memory_->TryAcquire(*tenant, 2 * more)) {
      held->push_back(std::move(*extra));
      covered += more;
      return wanted;
    }
    return static_cast<size_t>(covered - kept);
  };
  while (true) {
    auto event = stream->Next(std::min(deadline, MonotonicMillis() + 200));
    if (!event) {
      if (event.error().code() == Code::kDeadlineExceeded) {
        if (context->IsCancelled() || MonotonicMillis() >= deadline) {
          // Returning closes the connection, and sbx-init kills the process tree.
          return Fail(
              Error::DeadlineExceeded("command timed out").WithReason("CWSANDBOX_COMMAND_TIMEOUT"));
        }
        continue;
      }
      return gone(event.error());
    }
    if (event->kind == agent::ExecEvent::kExit) {
      const auto& x = event->exit;
      response->set_exit_code(x.ShellCode());
      break;
    }
    int index = event->output.stream == agent::StreamId::kStderr ? 1 : 0;
    produced[index] += static_cast<int64_t>(event->output.data.size());
    int64_t room = limit - static_cast<int64_t>(sinks[index]->size());
    if (room > 0) {
      size_t keep = keepable(std::min(event->output.data.size(), static_cast<size_t>(room)));
      sinks[index]->append(event->output.data.substr(0, keep));
    }
  }
  response->set_stdout_bytes_produced(produced[0]);
  response->set_stderr_bytes_produced(produced[1]);
  response->set_stdout_truncated(produced[0] > static_cast<int64_t>(response->stdout().size()));
  response->set_stderr_truncated(produced[1] > static_cast<int64_t>(response->stderr().size()));
  metrics_->Observe("sbx_exec_seconds", static_cast<double>(MonotonicNanos() - started) / 1e9);
  HoldUntilCallEnds(context, std::move(held));
  return grpc::Status::OK;
}

grpc::Status SandboxService::StreamExec(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::ExecStreamResponse, v1::ExecStreamRequest>* stream) {
  v1::ExecStreamRequest first;
  if (!stream->Read(&first) || !first.has_init()) {
    // Read also fails for a message gRPC could not parse (a string that is not UTF-8).
    return Fail(FieldError("init", "the first message must be a valid init message"));
  }
  const v1::ExecStreamInit& init = first.init();
  auto process = ParseExecProcess(init.command(), init.env(), "init.");
  if (!process) return Fail(process.error());
  int64_t started = MonotonicNanos();
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  auto socket = Socket(context, init.sandbox_id());
  if (!socket) return Fail(socket.error());
  agent::ExecStart start;
  start.argv = std::move(process->argv);
  start.env = std::move(process->env);
  start.tty = init.tty();
  start.rows = init.tty_height();
  start.cols = init.tty_width();
  start.stdin_open = true;
  agent::AgentClient client(*socket);
  auto exec = client.StartExec(start);
  if (!exec) {
    std::optional<int> code = CommandStartExitCode(exec.error());
    if (!code)
      return Fail(ExplainAgentFailure(*manager_, *tenant, init.sandbox_id(), exec.error()));
    v1::ExecStreamResponse ready;
    *ready.mutable_ready()->mutable_ready_time() = ToTimestamp(WallNanos());
    v1::ExecStreamResponse out;
    out.mutable_output()->set_stream(v1::ExecStreamOutput::STREAM_STDERR);
    out.mutable_output()->set_data("sbx: " + exec.error().message() + "\n");
    v1::ExecStreamResponse exit;
    exit.mutable_exit()->set_exit_code(*code);
    *exit.mutable_exit()->mutable_completed_time() = ToTimestamp(WallNanos());
    (void)(stream->Write(ready) && stream->Write(out) && stream->Write(exit));
    return grpc::Status::OK;
  }

  v1::ExecStreamResponse ready;
  *ready.mutable_ready()->mutable_ready_time() = ToTimestamp(WallNanos());
  if (!stream->Write(ready)) return grpc::Status(grpc::StatusCode::CANCELLED, "client went away");

  // The client's messages (stdin, resize, close) are read on their own thread; this one streams
  // output back. Only that thread writes to sbx-init, only this one reads from it.
  std::atomic<bool> client_done{false};
  std::thread reader([&] {
    v1::ExecStreamRequest message;
    bool closed = false;
    while (stream->Read(&message)) {
      if (message.has_stdin()) {
        if (!closed && !exec->WriteStdin(message.stdin(), MonotonicMillis() + 60000)) break;
      } else if (message.has_resize()) {
        (void)exec->Resize(message.resize().height(), message.resize().width());
      } else if (message.has_close()) {
        if (!closed) (void)exec->CloseStdin();
        closed = true;
      }
    }
    if (!closed && !start.tty) (void)exec->CloseStdin();
    client_done = true;
  });
  auto finish = [&](grpc::Status status) {
    if (!client_done) {
      // Give a well-behaved client a moment to half-close, then unblock the reader.
      for (int i = 0; i < 50 && !client_done; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      if (!client_done) context->TryCancel();
    }
    reader.join();
    return status;
  };
  while (true) {
    auto event = exec->Next(MonotonicMillis() + 200);
    if (!event) {
      if (event.error().code() == Code::kDeadlineExceeded) {
        if (context->IsCancelled()) {
          (void)exec->Kill();
          return finish(
              grpc::Status(grpc::StatusCode::CANCELLED, "cancelled; the process was killed"));
        }
        continue;
      }
      // A sandbox that stopped under the exec is the answer; anything else interrupted the
      // stream.
      Error cause = ExplainAgentFailure(*manager_, *tenant, init.sandbox_id(), event.error());
      if (cause.reason() == "CWSANDBOX_SANDBOX_NOT_RUNNING" || cause.code() == Code::kNotFound) {
        return finish(Fail(cause));
      }
      v1::ExecStreamResponse error;
      error.mutable_error()->set_message(event.error().message());
      error.mutable_error()->set_code("STREAM_INTERRUPTED");
      stream->Write(error);
      return finish(grpc::Status::OK);
    }
    v1::ExecStreamResponse response;
    if (event->kind == agent::ExecEvent::kExit) {
      const auto& x = event->exit;
      response.mutable_exit()->set_exit_code(x.ShellCode());
      *response.mutable_exit()->mutable_completed_time() = ToTimestamp(WallNanos());
      stream->Write(response);
      metrics_->Observe("sbx_exec_seconds", static_cast<double>(MonotonicNanos() - started) / 1e9);
      return finish(grpc::Status::OK);
    }
    auto* out = response.mutable_output();
    out->set_stream(event->output.stream == agent::StreamId::kStderr
                        ? v1::ExecStreamOutput::STREAM_STDERR
                        : v1::ExecStreamOutput::STREAM_STDOUT);
    out->set_data(std::move(event->output.data));
    // A blocking write: a client that stops reading stops us reading from sbx-init, which stops
    // reading from the process.
    if (!stream->Write(response)) {
      (void)exec->Kill();
      return finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    }
  }
}

grpc::Status SandboxService::StreamLogs(grpc::ServerContext* context,
                                        const v1::StreamLogsRequest* request,
                                        grpc::ServerWriter<v1::LogEntry>* writer) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  if (request->sandbox_id().empty()) return Fail(FieldError("sandbox_id", "required"));
  if (request->tail_lines() < 0) return Fail(FieldError("tail_lines", "must not be negative"));
  auto record = manager_->WaitSettled(*tenant, request->sandbox_id(), CallDeadline(context, 60000));
  if (!record) return Fail(record.error());
  std::string session = LogSessionId(*record);
  auto send_error = [&](const std::string& code, const std::string& message) {
    v1::LogEntry entry;
    entry.mutable_error()->set_code(code);
    entry.mutable_error()->set_message(message);
    entry.set_log_session_id(session);
    writer->Write(entry);
    return grpc::Status::OK;
  };
  uint64_t offset = 0;
  if (!request->resume_log_session_id().empty()) {
    if (request->resume_log_session_id() != session) {
      return send_error("SESSION_NOT_FOUND",
                        "log session " + request->resume_log_session_id() + " is unknown");
    }
    offset = request->resume_log_offset();
  }
  int64_t since_ns = request->has_since_time() ? request->since_time().seconds() * 1000000000LL +
                                                     request->since_time().nanos()
                                               : 0;
  // Collect what is there now: from sbx-init while it runs, else from what was saved.
  std::vector<agent::LogChunk> chunks;
  uint64_t end = 0;
  bool live = record->state == State::kRunning;
  if (live) {
    agent::AgentClient client(record->socket_path);
    agent::LogEnd log_end;
    Status read = client.StreamLogs(
        {0, false},
        [&](const agent::LogChunk& c) {
          chunks.push_back(c);
          return true;
        },
        &log_end, MonotonicMillis() + 10000);
    if (!read) live = false;
    end = log_end.next_offset;
  }
  auto load_saved = [this, &record]() {
    std::vector<agent::LogChunk> saved_chunks;
    auto saved = manager_->SavedLogs(record->id);
    if (saved) {
      agent::FieldReader reader(saved->first);
      while (reader.Next()) {
        auto chunk = agent::LogChunk::Decode(reader.bytes());
        if (chunk) saved_chunks.push_back(std::move(*chunk));
      }
    }
    return saved_chunks;
  };
  if (!live) {
    chunks = load_saved();
    end = chunks.empty() ? 0 : chunks.back().offset + chunks.back().data.size();
  }
  uint64_t first = chunks.empty() ? end : chunks.front().offset;
  if (!request->resume_log_session_id().empty()) {
    if (offset > end)
      return send_error("INVALID_RESUME_OFFSET", "offset beyond the end of the log");
    if (offset < first)
      return send_error("REPLAY_GAP",
                        "output before offset " + std::to_string(first) + " was dropped");
  }
  // tail_lines: start where the last N lines begin.
  if (request->tail_lines() > 0 && request->resume_log_session_id().empty()) {
    std::string all;
    for (const auto& c : chunks) all += c.data;
    int lines = 0;
    size_t pos = all.size();
    if (pos > 0 && all[pos - 1] == '\n') --pos;
    while (pos > 0) {
      if (all[pos - 1] == '\n' && ++lines == request->tail_lines()) break;
      --pos;
    }
    offset = first + pos;
  }
  // Without timestamps an entry is a write of the sandbox's output, as it was made; with them
  // an entry is a line, stamped with the time it was complete.
  LogLineSplitter lines;
  uint64_t fed = offset;  // the log is read up to here
  auto send = [&](std::string data, int64_t time_ns, uint64_t next_offset) -> bool {
    v1::LogEntry entry;
    entry.set_data(std::move(data));
    *entry.mutable_timestamp() = ToTimestamp(time_ns);
    entry.set_log_session_id(session);
    entry.set_next_log_offset(next_offset);
    return writer->Write(entry);
  };
  auto send_line = [&](LogLineSplitter::Line line) -> bool {
    if (line.time_ns < since_ns) return true;
    return send(FormatUtc(line.time_ns, 9) + " " + line.data, line.time_ns, line.end_offset);
  };
  auto emit = [&](const agent::LogChunk& c) -> bool {
    uint64_t chunk_end = c.offset + c.data.size();
    if (chunk_end <= fed) return true;
    std::string_view data = c.data;
    data.remove_prefix(fed > c.offset ? fed - c.offset : 0);
    fed = chunk_end;
    if (!request->timestamps()) {
      return c.time_ns < since_ns || send(std::string(data), c.time_ns, chunk_end);
    }
    for (auto& line : lines.Feed(data, chunk_end, c.time_ns)) {
      if (!send_line(std::move(line))) return false;
    }
    return true;
  };
  auto flush = [&]() {
    if (auto line = lines.Flush()) send_line(std::move(*line));
  };
  for (const auto& c : chunks) {
    if (!emit(c)) return grpc::Status::OK;
  }
  if (!request->follow() || !live) {
    flush();
    return grpc::Status::OK;
  }
  // Follow: tail sbx-init until the main process's output ends or the client goes away.
  agent::AgentClient client(record->socket_path);
  std::atomic<bool> cancelled{false};
  Status followed = client.StreamLogs(
      {fed, true},
      [&](const agent::LogChunk& c) {
        if (context->IsCancelled()) {
          cancelled = true;
          return false;
        }
        return emit(c);
      },
      nullptr, CallDeadline(context, 30LL * 24 * 3600 * 1000));
  if (!followed && !cancelled && !context->IsCancelled()) {
    // sbx-init goes away with the sandbox: when the sandbox ended between the snapshot and the
    // follow (or during it), the rest of its output is in the saved logs.
    auto ended = manager_->WaitEnded(
        *tenant, record->id, std::min(CallDeadline(context, 30000), MonotonicMillis() + 30000));
    if (!ended || !IsTerminal(ended->state)) {
      return send_error("STREAM_INTERRUPTED", followed.error().message());
    }
    for (const auto& c : load_saved()) {
      if (!emit(c)) return grpc::Status::OK;
    }
  }
  if (!cancelled && !context->IsCancelled()) flush();
  return grpc::Status::OK;
}

grpc::Status SandboxService::WriteFile(grpc::ServerContext* context,
                                       const v1::WriteFileRequest* request,
                                       v1::WriteFileResponse*) {
  if (request->path().empty()) return Fail(FieldError("path", "required"));
  uint64_t max = manager_->config().max_file_bytes;
  if (request->content().size() > max) {
    return Fail(Error::ResourceExhausted("file of " + std::to_string(request->content().size()) +
                                         " bytes is larger than the " + std::to_string(max) +
                                         "-byte limit of WriteFile")
                    .WithReason("CWSANDBOX_FILE_TOO_LARGE")
                    .WithMetadata("filepath", request->path())
                    .WithMetadata("size_bytes", std::to_string(request->content().size()))
                    .WithMetadata("max_size_bytes", std::to_string(max)));
  }
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  auto socket = Socket(context, request->sandbox_id());
  if (!socket) return Fail(socket.error());
  agent::AgentClient client(*socket);
  Status written = client.WriteFileFromString(request->path(), request->content());
  if (!written) {
    return Fail(ExplainAgentFailure(*manager_, *tenant, request->sandbox_id(), written.error())
                    .WithMetadata("filepath", request->path()));
  }
  return grpc::Status::OK;
}

grpc::Status SandboxService::ReadFile(grpc::ServerContext* context,
                                      const v1::ReadFileRequest* request,
                                      v1::ReadFileResponse* response) {
  if (request->path().empty()) return Fail(FieldError("path", "required"));
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return Fail(tenant.error());
  auto socket = Socket(context, request->sandbox_id(), SandboxManager::Access::kReadFiles);
  if (!socket) return Fail(socket.error());
  // The whole file goes back in one message: its content, then the serialized response, are
  // in memory together until the response has been sent. That memory comes out of the tenant's
  // share of the file-transfer budget, held until the call is over.
  auto held = std::make_shared<std::vector<ByteBudget::Reservation>>();
  std::string content;
  uint64_t covered = 0;  // file bytes the reservations cover
  auto admit = [&](const agent::FileInfo& info) -> Status {
    int64_t deadline =
        std::min(CallDeadline(context, 300000), MonotonicMillis() + kResponseMemoryWaitMs);
    uint64_t size = std::min<uint64_t>(info.size, manager_->config().max_file_bytes);
    SBX_ASSIGN_OR_RETURN(ByteBudget::Reservation r,
                         response_memory_->Acquire(*tenant, 2 * size, deadline));
    held->push_back(std::move(r));
    covered = size;
    content.reserve(size);
    return Ok();
  };
  auto sink = [&](std::string_view chunk) -> Status {
    if (content.size() + chunk.size() > covered) {
      // The file grew while it was read: hold room for the rest too, if there is any now.
      uint64_t more = std::max<uint64_t>(content.size() + chunk.size() - covered, 1u << 20);
      auto extra = response_memory_->TryAcquire(*tenant, 2 * more);
      if (!extra) {
        return Error::ResourceExhausted(
                   "the file grew while it was read and no memory is free for the rest; retry")
            .WithReason("CWSANDBOX_RESOURCE_EXHAUSTED");
      }
      held->push_back(std::move(*extra));
      covered += more;
    }
    content.append(chunk);
    return Ok();
  };
  agent::AgentClient client(*socket);
  agent::FileInfo info;
  // The wait for memory happens inside the read, before any content: the read may take that
  // long on top of its own minute.
  Status read = client.ReadFile(request->path(), manager_->config().max_file_bytes, sink, &info,
                                kResponseMemoryWaitMs + 60000, admit);
  if (!read) {
    return Fail(ExplainAgentFailure(*manager_, *tenant, request->sandbox_id(), read.error())
                    .WithMetadata("filepath", request->path()));
  }
  response->set_content(std::move(content));
  HoldUntilCallEnds(context, std::move(held));
  return grpc::Status::OK;
}

grpc::Status SandboxService::CreateFileSystemSnapshot(grpc::ServerContext*,
                                                      const v1::CreateFileSystemSnapshotRequest*,
                                                      v1::FileSystemSnapshot*) {
  return Fail(Error::Unimplemented("file-system snapshots are not supported by sbx"));
}
grpc::Status SandboxService::GetFileSystemSnapshot(grpc::ServerContext*,
                                                   const v1::GetFileSystemSnapshotRequest*,
                                                   v1::FileSystemSnapshot*) {
  return Fail(Error::Unimplemented("file-system snapshots are not supported by sbx"));
}
grpc::Status SandboxService::ListFileSystemSnapshots(grpc::ServerContext*,
                                                     const v1::ListFileSystemSnapshotsRequest*,
                                                     v1::ListFileSystemSnapshotsResponse*) {
  return Fail(Error::Unimplemented("file-system snapshots are not supported by sbx"));
}
grpc::Status SandboxService::DeleteFileSystemSnapshot(grpc::ServerContext*,
                                                      const v1::DeleteFileSystemSnapshotRequest*,
                                                      v1::FileSystemSnapshot*) {
  return Fail(Error::Unimplemented("file-system snapshots are not supported by sbx"));
}

}  // namespace sbx::daemon
