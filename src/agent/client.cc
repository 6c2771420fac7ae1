#include "src/agent/client.h"

#include <algorithm>

#include "src/base/clock.h"

namespace sbx::agent {

Error UnexpectedFrame(const Frame& frame, std::string_view while_doing) {
  if (frame.type == MsgType::kError) {
    auto reply = ErrorReply::Decode(frame.payload);
    if (reply) return reply->ToError();
    return std::move(reply).error().Wrap(while_doing);
  }
  return Error::Internal(std::string(while_doing) + ": unexpected " + MsgTypeName(frame.type) +
                         " frame from sbx-init");
}

Result<Connection> AgentClient::Open(MsgType type, std::string_view payload, int timeout_ms) {
  SBX_ASSIGN_OR_RETURN(Connection conn, Connection::Dial(socket_path_, connect_timeout_ms_));
  SBX_TRY(conn.Send(type, payload, MonotonicMillis() + timeout_ms));
  return conn;
}

Result<StatusReply> AgentClient::GetStatus(int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_ASSIGN_OR_RETURN(Connection conn, Open(MsgType::kStatus, "", timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kStatusReply) return UnexpectedFrame(frame, "status");
  return StatusReply::Decode(frame.payload);
}

Result<StatusReply> AgentClient::WaitMain(int64_t deadline_ms) {
  SBX_ASSIGN_OR_RETURN(Connection conn, Open(MsgType::kWaitMain, "", 5000));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline_ms));
  if (frame.type != MsgType::kStatusReply) return UnexpectedFrame(frame, "wait for main process");
  return StatusReply::Decode(frame.payload);
}

Status AgentClient::AckExit(int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_ASSIGN_OR_RETURN(Connection conn, Open(MsgType::kAckExit, "", timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kOk) return UnexpectedFrame(frame, "acknowledge exit");
  return Ok();
}

Status AgentClient::SignalMain(int sig, int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_ASSIGN_OR_RETURN(Connection conn,
                       Open(MsgType::kSignalMain, SignalRequest{sig}.Encode(), timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kOk) return UnexpectedFrame(frame, "signal main process");
  return Ok();
}

Status AgentClient::SetDeadline(int64_t deadline_unix_ns, int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_ASSIGN_OR_RETURN(
      Connection conn,
      Open(MsgType::kSetDeadline, DeadlineRequest{deadline_unix_ns}.Encode(), timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kOk) return UnexpectedFrame(frame, "set the lifetime deadline");
  return Ok();
}

Status AgentClient::StartMain(const InitConfig& config, int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_ASSIGN_OR_RETURN(Connection conn, Open(MsgType::kStartMain, config.Encode(), timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kOk) return UnexpectedFrame(frame, "start the main process");
  return Ok();
}

Result<ExecStream> AgentClient::StartExec(const ExecStart& request, int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_ASSIGN_OR_RETURN(Connection conn, Open(MsgType::kExecStart, request.Encode(), timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kExecStarted) return UnexpectedFrame(frame, "start exec");
  SBX_ASSIGN_OR_RETURN(ExecStarted started, ExecStarted::Decode(frame.payload));
  return ExecStream(std::move(conn), started.pid);
}

Result<ExecEvent> ExecStream::Next(int64_t deadline_ms) {
  if (finished_) return Error::FailedPrecondition("exec already finished");
  SBX_ASSIGN_OR_RETURN(Frame frame, conn_.Receive(deadline_ms));
  ExecEvent event;
  if (frame.type == MsgType::kOutput) {
    event.kind = ExecEvent::kOutput;
    SBX_ASSIGN_OR_RETURN(event.output, Output::Decode(frame.payload));
    return event;
  }
  if (frame.type == MsgType::kExit) {
    event.kind = ExecEvent::kExit;
    SBX_ASSIGN_OR_RETURN(event.exit, ExitInfo::Decode(frame.payload));
    finished_ = true;
    return event;
  }
  finished_ = true;
  return UnexpectedFrame(frame, "exec");
}

Status ExecStream::WriteStdin(std::string_view data, int64_t deadline_ms) {
  while (!data.empty()) {
    size_t n = std::min<size_t>(data.size(), 64u << 10);
    SBX_TRY(conn_.Send(MsgType::kStdin, data.substr(0, n), deadline_ms));
    data.remove_prefix(n);
  }
  return Ok();
}

Status ExecStream::CloseStdin() {
  return conn_.Send(MsgType::kStdinClose, "", MonotonicMillis() + 5000);
}

Status ExecStream::Resize(uint32_t rows, uint32_t cols) {
  return conn_.Send(MsgType::kResize, agent::Resize{rows, cols}.Encode(), MonotonicMillis() + 5000);
}

Status ExecStream::Signal(int sig) {
  return conn_.Send(MsgType::kSignal, SignalRequest{sig}.Encode(), MonotonicMillis() + 5000);
}

Status ExecStream::Kill() { return conn_.Send(MsgType::kKill, "", MonotonicMillis() + 5000); }

Result<FileInfo> AgentClient::Stat(const std::string& path, int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_ASSIGN_OR_RETURN(Connection conn,
                       Open(MsgType::kStat, PathRequest{path}.Encode(), timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kFileInfo) return UnexpectedFrame(frame, "stat");
  return FileInfo::Decode(frame.payload);
}

Result<DirEntries> AgentClient::ListDir(const std::string& path, int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_ASSIGN_OR_RETURN(Connection conn,
                       Open(MsgType::kListDir, PathRequest{path}.Encode(), timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kDirEntries) return UnexpectedFrame(frame, "list directory");
  return DirEntries::Decode(frame.payload);
}

Result<FileInfo> AgentClient::MakeDirectory(const std::string& path, uint32_t mode,
                                            bool make_parents, int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  MkdirRequest request{path, mode, make_parents};
  SBX_ASSIGN_OR_RETURN(Connection conn, Open(MsgType::kMkdir, request.Encode(), timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kFileInfo) return UnexpectedFrame(frame, "make directory");
  return FileInfo::Decode(frame.payload);
}

Status AgentClient::MakeSymlink(const std::string& path, const std::string& target,
                                bool make_parents, int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SymlinkRequest request{path, target, make_parents};
  SBX_ASSIGN_OR_RETURN(Connection conn, Open(MsgType::kSymlink, request.Encode(), timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kOk) return UnexpectedFrame(frame, "make symlink");
  return Ok();
}

Result<std::string> AgentClient::ReadSymlink(const std::string& path, int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_ASSIGN_OR_RETURN(Connection conn,
                       Open(MsgType::kReadlink, PathRequest{path}.Encode(), timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kLinkTarget) return UnexpectedFrame(frame, "read symlink");
  SBX_ASSIGN_OR_RETURN(LinkTarget link, LinkTarget::Decode(frame.payload));
  return std::move(link.target);
}

Status AgentClient::ReadFile(const std::string& path, uint64_t max_bytes,
                             const std::function<Status(std::string_view)>& sink, FileInfo* info,
                             int timeout_ms,
                             const std::function<Status(const FileInfo&)>& on_info) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_ASSIGN_OR_RETURN(Connection conn,
                       Open(MsgType::kFileRead, FileRead{path, max_bytes}.Encode(), timeout_ms));
  SBX_ASSIGN_OR_RETURN(Frame first, conn.Receive(deadline));
  if (first.type != MsgType::kFileInfo) return UnexpectedFrame(first, "read file");
  SBX_ASSIGN_OR_RETURN(FileInfo file_info, FileInfo::Decode(first.payload));
  if (max_bytes > 0 && file_info.size > max_bytes) {
    return Error::ResourceExhausted("file " + path + " is " + std::to_string(file_info.size) +
                                    " bytes, more than the limit of " + std::to_string(max_bytes))
        .WithReason("CWSANDBOX_FILE_TOO_LARGE")
        .WithMetadata("size_bytes", std::to_string(file_info.size))
        .WithMetadata("max_size_bytes", std::to_string(max_bytes));
  }
  if (info != nullptr) *info = file_info;
  if (on_info) SBX_TRY(on_info(file_info));
  uint64_t total = 0;
  while (true) {
    SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
    if (frame.type == MsgType::kFileData) {
      total += frame.payload.size();
      if (max_bytes > 0 && total > max_bytes) {
        return Error::ResourceExhausted("file " + path + " grew past the limit of " +
                                        std::to_string(max_bytes) + " bytes while being read")
            .WithReason("CWSANDBOX_FILE_TOO_LARGE");
      }
      SBX_TRY(sink(frame.payload));
      continue;
    }
    if (frame.type == MsgType::kFileEnd) return Ok();
    return UnexpectedFrame(frame, "read file");
  }
}

Result<std::string> AgentClient::ReadFileToString(const std::string& path, uint64_t max_bytes,
                                                  int timeout_ms) {
  std::string out;
  FileInfo info;
  SBX_TRY(ReadFile(
      path, max_bytes,
      [&out](std::string_view chunk) {
        out.append(chunk);
        return Ok();
      },
      &info, timeout_ms));
  return out;
}

Status AgentClient::WriteFile(const std::string& path, uint32_t mode,
                              const std::function<Result<std::string_view>()>& next,
                              int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  FileWrite request;
  request.path = path;
  request.mode = mode;
  SBX_ASSIGN_OR_RETURN(Connection conn, Open(MsgType::kFileWrite, request.Encode(), timeout_ms));
  while (true) {
    SBX_ASSIGN_OR_RETURN(std::string_view chunk, next());
    if (chunk.empty()) break;
    while (!chunk.empty()) {
      size_t n = std::min<size_t>(chunk.size(), 256u << 10);
      Status sent = conn.Send(MsgType::kFileData, chunk.substr(0, n), deadline);
      if (!sent) {
        // sbx-init may have refused the write early (e.g. a bad path); prefer its reason.
        auto frame = conn.Receive(MonotonicMillis() + 1000);
        if (frame && frame->type == MsgType::kError) return UnexpectedFrame(*frame, "write file");
        return sent;
      }
      chunk.remove_prefix(n);
    }
  }
  SBX_TRY(conn.Send(MsgType::kFileEnd, "", deadline));
  SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline));
  if (frame.type != MsgType::kOk) return UnexpectedFrame(frame, "write file");
  return Ok();
}

Status AgentClient::WriteFileFromString(const std::string& path, std::string_view content,
                                        uint32_t mode, int timeout_ms) {
  bool sent = false;
  return WriteFile(
      path, mode,
      [&]() -> Result<std::string_view> {
        if (sent) return std::string_view();
        sent = true;
        return content;
      },
      timeout_ms);
}

Status AgentClient::StreamLogs(const LogsRequest& request,
                               const std::function<bool(const LogChunk&)>& sink, LogEnd* end,
                               int64_t deadline_ms) {
  SBX_ASSIGN_OR_RETURN(Connection conn, Open(MsgType::kLogs, request.Encode(), 5000));
  while (true) {
    SBX_ASSIGN_OR_RETURN(Frame frame, conn.Receive(deadline_ms));
    if (frame.type == MsgType::kLogChunk) {
      SBX_ASSIGN_OR_RETURN(LogChunk chunk, LogChunk::Decode(frame.payload));
      if (!sink(chunk)) return Ok();
      continue;
    }
    if (frame.type == MsgType::kLogEnd) {
      SBX_ASSIGN_OR_RETURN(LogEnd log_end, LogEnd::Decode(frame.payload));
      if (end != nullptr) *end = log_end;
      return Ok();
    }
    return UnexpectedFrame(frame, "logs");
  }
}

}  // namespace sbx::agent
