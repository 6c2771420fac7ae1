#include "src/agent/protocol.h"

namespace sbx::agent {

const char* MsgTypeName(MsgType type) {
  switch (type) {
    case MsgType::kExecStart:
      return "exec-start";
    case MsgType::kStdin:
      return "stdin";
    case MsgType::kStdinClose:
      return "stdin-close";
    case MsgType::kResize:
      return "resize";
    case MsgType::kSignal:
      return "signal";
    case MsgType::kKill:
      return "kill";
    case MsgType::kFileRead:
      return "file-read";
    case MsgType::kFileWrite:
      return "file-write";
    case MsgType::kFileData:
      return "file-data";
    case MsgType::kFileEnd:
      return "file-end";
    case MsgType::kStat:
      return "stat";
    case MsgType::kListDir:
      return "list-dir";
    case MsgType::kMkdir:
      return "mkdir";
    case MsgType::kSymlink:
      return "symlink";
    case MsgType::kReadlink:
      return "readlink";
    case MsgType::kStatus:
      return "status";
    case MsgType::kWaitMain:
      return "wait-main";
    case MsgType::kAckExit:
      return "ack-exit";
    case MsgType::kSignalMain:
      return "signal-main";
    case MsgType::kLogs:
      return "logs";
    case MsgType::kStartMain:
      return "start-main";
    case MsgType::kSetDeadline:
      return "set-deadline";
    case MsgType::kExecStarted:
      return "exec-started";
    case MsgType::kOutput:
      return "output";
    case MsgType::kExit:
      return "exit";
    case MsgType::kError:
      return "error";
    case MsgType::kOk:
      return "ok";
    case MsgType::kFileInfo:
      return "file-info";
    case MsgType::kDirEntries:
      return "dir-entries";
    case MsgType::kStatusReply:
      return "status-reply";
    case MsgType::kLogChunk:
      return "log-chunk";
    case MsgType::kLogEnd:
      return "log-end";
    case MsgType::kLinkTarget:
      return "link-target";
  }
  return "unknown";
}

// Field tags are per message; they only need to be unique within one message.

std::string ExecStart::Encode() const {
  FieldWriter w;
  w.PutStrings(1, argv);
  w.PutStrings(2, env);
  w.PutString(3, cwd);
  w.PutString(4, user);
  w.PutBool(5, tty);
  w.PutU64(6, rows);
  w.PutU64(7, cols);
  w.PutBool(8, stdin_open);
  w.PutI64(9, timeout_ms);
  return w.Take();
}

Result<ExecStart> ExecStart::Decode(std::string_view payload) {
  ExecStart m;
  FieldReader r(payload);
  while (r.Next()) {
    switch (r.tag()) {
      case 1:
        r.AppendTo(m.argv);
        break;
      case 2:
        r.AppendTo(m.env);
        break;
      case 3:
        m.cwd = r.str();
        break;
      case 4:
        m.user = r.str();
        break;
      case 5:
        m.tty = r.boolean();
        break;
      case 6:
        m.rows = static_cast<uint32_t>(r.u64());
        break;
      case 7:
        m.cols = static_cast<uint32_t>(r.u64());
        break;
      case 8:
        m.stdin_open = r.boolean();
        break;
      case 9:
        m.timeout_ms = r.i64();
        break;
      default:
        break;
    }
  }
  SBX_TRY(r.status("exec-start"));
  return m;
}

std::string Resize::Encode() const {
  FieldWriter w;
  w.PutU64(1, rows);
  w.PutU64(2, cols);
  return w.Take();
}

Result<Resize> Resize::Decode(std::string_view payload) {
  Resize m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.rows = static_cast<uint32_t>(r.u64());
    if (r.tag() == 2) m.cols = static_cast<uint32_t>(r.u64());
  }
  SBX_TRY(r.status("resize"));
  return m;
}

std::string SignalRequest::Encode() const {
  FieldWriter w;
  w.PutI64(1, signal);
  return w.Take();
}

Result<SignalRequest> SignalRequest::Decode(std::string_view payload) {
  SignalRequest m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.signal = static_cast<int32_t>(r.i64());
  }
  SBX_TRY(r.status("signal"));
  return m;
}

std::string ExecStarted::Encode() const {
  FieldWriter w;
  w.PutI64(1, pid);
  return w.Take();
}

Result<ExecStarted> ExecStarted::Decode(std::string_view payload) {
  ExecStarted m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.pid = r.i64();
  }
  SBX_TRY(r.status("exec-started"));
  return m;
}

std::string Output::Encode() const {
  FieldWriter w;
  w.PutU64(1, static_cast<uint64_t>(stream));
  w.PutBytes(2, data);
  return w.Take();
}

Result<Output> Output::Decode(std::string_view payload) {
  Output m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.stream = r.u64() == 2 ? StreamId::kStderr : StreamId::kStdout;
    if (r.tag() == 2) m.data = r.str();
  }
  SBX_TRY(r.status("output"));
  return m;
}

std::string ExitInfo::Encode() const {
  FieldWriter w;
  w.PutI64(1, exit_code);
  w.PutI64(2, signal);
  w.PutBool(3, signaled);
  w.PutBool(4, timed_out);
  return w.Take();
}

Result<ExitInfo> ExitInfo::Decode(std::string_view payload) {
  ExitInfo m;
  FieldReader r(payload);
  while (r.Next()) {
    switch (r.tag()) {
      case 1:
        m.exit_code = static_cast<int32_t>(r.i64());
        break;
      case 2:
        m.signal = static_cast<int32_t>(r.i64());
        break;
      case 3:
        m.signaled = r.boolean();
        break;
      case 4:
        m.timed_out = r.boolean();
        break;
      default:
        break;
    }
  }
  SBX_TRY(r.status("exit"));
  if (m.signaled && (m.signal <= 0 || m.signal > 64)) {
    return Error::InvalidArgument("exit reports signal " + std::to_string(m.signal));
  }
  if (!m.signaled && (m.exit_code < 0 || m.exit_code > 255)) {
    return Error::InvalidArgument("exit reports code " + std::to_string(m.exit_code));
  }
  return m;
}

std::string ErrorReply::Encode() const {
  FieldWriter w;
  w.PutI64(1, code);
  w.PutI64(2, sys_errno);
  w.PutString(3, message);
  w.PutString(4, reason);
  return w.Take();
}

Result<ErrorReply> ErrorReply::Decode(std::string_view payload) {
  ErrorReply m;
  FieldReader r(payload);
  while (r.Next()) {
    switch (r.tag()) {
      case 1:
        m.code = static_cast<int32_t>(r.i64());
        break;
      case 2:
        m.sys_errno = static_cast<int32_t>(r.i64());
        break;
      case 3:
        m.message = r.str();
        break;
      case 4:
        m.reason = r.str();
        break;
      default:
        break;
    }
  }
  SBX_TRY(r.status("error"));
  if (m.message.size() > 4096) m.message.resize(4096);
  if (m.reason.size() > 128) m.reason.resize(128);
  return m;
}

ErrorReply ErrorReply::FromError(const Error& error) {
  ErrorReply m;
  m.code = static_cast<int32_t>(error.code());
  m.sys_errno = error.sys_errno();
  m.message = error.message();
  m.reason = error.reason();
  return m;
}

Error ErrorReply::ToError() const {
  Code c = (code >= 1 && code <= 16) ? static_cast<Code>(code) : Code::kUnknown;
  Error e(c, message, sys_errno);
  if (!reason.empty()) e.WithReason(reason);
  return e;
}

std::string FileRead::Encode() const {
  FieldWriter w;
  w.PutString(1, path);
  w.PutU64(2, max_bytes);
  return w.Take();
}

Result<FileRead> FileRead::Decode(std::string_view payload) {
  FileRead m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.path = r.str();
    if (r.tag() == 2) m.max_bytes = r.u64();
  }
  SBX_TRY(r.status("file-read"));
  return m;
}

std::string FileWrite::Encode() const {
  FieldWriter w;
  w.PutString(1, path);
  w.PutU64(2, mode);
  w.PutBool(3, make_parents);
  return w.Take();
}

Result<FileWrite> FileWrite::Decode(std::string_view payload) {
  FileWrite m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.path = r.str();
    if (r.tag() == 2) m.mode = static_cast<uint32_t>(r.u64()) & 07777;
    if (r.tag() == 3) m.make_parents = r.boolean();
  }
  SBX_TRY(r.status("file-write"));
  return m;
}

std::string FileInfo::Encode() const {
  FieldWriter w;
  w.PutString(1, path);
  w.PutU64(2, static_cast<uint64_t>(type));
  w.PutU64(3, size);
  w.PutU64(4, mode);
  w.PutI64(5, mtime_ns);
  w.PutU64(6, uid);
  w.PutU64(7, gid);
  return w.Take();
}

namespace {
FileType ToFileType(uint64_t v) { return v <= 4 ? static_cast<FileType>(v) : FileType::kUnknown; }
}  // namespace

Result<FileInfo> FileInfo::Decode(std::string_view payload) {
  FileInfo m;
  FieldReader r(payload);
  while (r.Next()) {
    switch (r.tag()) {
      case 1:
        m.path = r.str();
        break;
      case 2:
        m.type = ToFileType(r.u64());
        break;
      case 3:
        m.size = r.u64();
        break;
      case 4:
        m.mode = static_cast<uint32_t>(r.u64());
        break;
      case 5:
        m.mtime_ns = r.i64();
        break;
      case 6:
        m.uid = static_cast<uint32_t>(r.u64());
        break;
      case 7:
        m.gid = static_cast<uint32_t>(r.u64());
        break;
      default:
        break;
    }
  }
  SBX_TRY(r.status("file-info"));
  return m;
}

std::string PathRequest::Encode() const {
  FieldWriter w;
  w.PutString(1, path);
  return w.Take();
}

Result<PathRequest> PathRequest::Decode(std::string_view payload) {
  PathRequest m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.path = r.str();
  }
  SBX_TRY(r.status("path"));
  return m;
}

namespace {
// Linux's PATH_MAX, including the terminating NUL.
constexpr size_t kMaxPathBytes = 4096;
}  // namespace

std::string MkdirRequest::Encode() const {
  FieldWriter w;
  w.PutString(1, path);
  w.PutU64(2, mode);
  w.PutBool(3, make_parents);
  return w.Take();
}

Result<MkdirRequest> MkdirRequest::Decode(std::string_view payload) {
  MkdirRequest m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.path = r.str();
    if (r.tag() == 2) m.mode = static_cast<uint32_t>(r.u64()) & 07777;
    if (r.tag() == 3) m.make_parents = r.boolean();
  }
  SBX_TRY(r.status("mkdir"));
  return m;
}

std::string SymlinkRequest::Encode() const {
  FieldWriter w;
  w.PutString(1, path);
  w.PutString(2, target);
  w.PutBool(3, make_parents);
  return w.Take();
}

Result<SymlinkRequest> SymlinkRequest::Decode(std::string_view payload) {
  SymlinkRequest m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.path = r.str();
    if (r.tag() == 2) m.target = r.str();
    if (r.tag() == 3) m.make_parents = r.boolean();
  }
  SBX_TRY(r.status("symlink"));
  if (m.target.empty()) return Error::InvalidArgument("symlink: empty target");
  if (m.target.size() >= kMaxPathBytes) return Error::InvalidArgument("symlink: target too long");
  if (m.target.find('\0') != std::string::npos) {
    return Error::InvalidArgument("symlink: target contains a NUL byte");
  }
  return m;
}

std::string LinkTarget::Encode() const {
  FieldWriter w;
  w.PutString(1, target);
  return w.Take();
}

Result<LinkTarget> LinkTarget::Decode(std::string_view payload) {
  LinkTarget m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.target = r.str();
  }
  SBX_TRY(r.status("link-target"));
  if (m.target.empty() || m.target.size() >= kMaxPathBytes ||
      m.target.find('\0') != std::string::npos) {
    return Error::InvalidArgument("link-target: invalid target of " +
                                  std::to_string(m.target.size()) + " bytes");
  }
  return m;
}

std::string DirEntries::Encode() const {
  FieldWriter w;
  for (const auto& e : entries) {
    FieldWriter entry;
    entry.PutString(1, e.name);
    entry.PutU64(2, static_cast<uint64_t>(e.type));
    entry.PutU64(3, e.size);
    entry.PutU64(4, e.mode);
    w.PutBytes(1, entry.data());
  }
  w.PutBool(2, truncated);
  return w.Take();
}

Result<DirEntries> DirEntries::Decode(std::string_view payload) {
  DirEntries m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) {
      if (m.entries.size() >= kMaxRepeated) return Error::InvalidArgument("too many entries");
      DirEntry e;
      FieldReader er(r.bytes());
      while (er.Next()) {
        switch (er.tag()) {
          case 1:
            e.name = er.str();
            break;
          case 2:
            e.type = ToFileType(er.u64());
            break;
          case 3:
            e.size = er.u64();
            break;
          case 4:
            e.mode = static_cast<uint32_t>(er.u64());
            break;
          default:
            break;
        }
      }
      SBX_TRY(er.status("dir-entry"));
      m.entries.push_back(std::move(e));
    } else if (r.tag() == 2) {
      m.truncated = r.boolean();
    }
  }
  SBX_TRY(r.status("dir-entries"));
  return m;
}

std::string StatusReply::Encode() const {
  FieldWriter w;
  w.PutU64(1, init_version);
  w.PutI64(2, main_pid);
  w.PutBool(3, main_running);
  w.PutBool(4, main_exited);
  w.PutBytes(5, main_exit.Encode());
  w.PutI64(6, main_started_ns);
  w.PutI64(7, main_exited_ns);
  w.PutBool(8, exit_acknowledged);
  w.PutBool(9, lifetime_exceeded);
  w.PutString(10, start_error);
  w.PutU64(11, log_start);
  w.PutU64(12, log_end);
  return w.Take();
}

Result<StatusReply> StatusReply::Decode(std::string_view payload) {
  StatusReply m;
  std::string exit_bytes;
  bool has_exit = false;
  FieldReader r(payload);
  while (r.Next()) {
    switch (r.tag()) {
      case 1:
        m.init_version = static_cast<uint32_t>(r.u64());
        break;
      case 2:
        m.main_pid = r.i64();
        break;
      case 3:
        m.main_running = r.boolean();
        break;
      case 4:
        m.main_exited = r.boolean();
        break;
      case 5:
        exit_bytes = r.str();
        has_exit = true;
        break;
      case 6:
        m.main_started_ns = r.i64();
        break;
      case 7:
        m.main_exited_ns = r.i64();
        break;
      case 8:
        m.exit_acknowledged = r.boolean();
        break;
      case 9:
        m.lifetime_exceeded = r.boolean();
        break;
      case 10:
        m.start_error = r.str();
        break;
      case 11:
        m.log_start = r.u64();
        break;
      case 12:
        m.log_end = r.u64();
        break;
      default:
        break;
    }
  }
  SBX_TRY(r.status("status"));
  if (m.main_exited && has_exit) {
    SBX_ASSIGN_OR_RETURN(m.main_exit, ExitInfo::Decode(exit_bytes));
  }
  if (m.start_error.size() > 4096) m.start_error.resize(4096);
  if (m.log_start > m.log_end) return Error::InvalidArgument("status: log start after log end");
  return m;
}

std::string LogsRequest::Encode() const {
  FieldWriter w;
  w.PutU64(1, offset);
  w.PutBool(2, follow);
  return w.Take();
}

std::string DeadlineRequest::Encode() const {
  FieldWriter w;
  w.PutI64(1, deadline_unix_ns);
  return w.Take();
}

Result<DeadlineRequest> DeadlineRequest::Decode(std::string_view payload) {
  DeadlineRequest m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.deadline_unix_ns = r.i64();
  }
  SBX_TRY(r.status("deadline"));
  if (m.deadline_unix_ns < 0) return Error::InvalidArgument("deadline: negative");
  return m;
}

Result<LogsRequest> LogsRequest::Decode(std::string_view payload) {
  LogsRequest m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.offset = r.u64();
    if (r.tag() == 2) m.follow = r.boolean();
  }
  SBX_TRY(r.status("logs"));
  return m;
}

std::string LogChunk::Encode() const {
  FieldWriter w;
  w.PutU64(1, offset);
  w.PutI64(2, time_ns);
  w.PutU64(3, static_cast<uint64_t>(stream));
  w.PutBytes(4, data);
  return w.Take();
}

Result<LogChunk> LogChunk::Decode(std::string_view payload) {
  LogChunk m;
  FieldReader r(payload);
  while (r.Next()) {
    switch (r.tag()) {
      case 1:
        m.offset = r.u64();
        break;
      case 2:
        m.time_ns = r.i64();
        break;
      case 3:
        m.stream = r.u64() == 2 ? StreamId::kStderr : StreamId::kStdout;
        break;
      case 4:
        m.data = r.str();
        break;
      default:
        break;
    }
  }
  SBX_TRY(r.status("log-chunk"));
  return m;
}

std::string LogEnd::Encode() const {
  FieldWriter w;
  w.PutU64(1, next_offset);
  w.PutU64(2, first_available);
  return w.Take();
}

Result<LogEnd> LogEnd::Decode(std::string_view payload) {
  LogEnd m;
  FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.next_offset = r.u64();
    if (r.tag() == 2) m.first_available = r.u64();
  }
  SBX_TRY(r.status("log-end"));
  return m;
}

std::string InitConfig::Encode() const {
  FieldWriter w;
  w.PutStrings(1, argv);
  w.PutStrings(2, env);
  w.PutString(3, cwd);
  w.PutString(4, user);
  w.PutU64(5, log_ring_bytes);
  w.PutI64(6, deadline_unix_ns);
  w.PutI64(7, stop_grace_ms);
  w.PutBool(8, await_start);
  w.PutU64(9, dropped_capabilities);
  return w.Take();
}

Result<InitConfig> InitConfig::Decode(std::string_view payload) {
  InitConfig m;
  m.cwd.clear();
  FieldReader r(payload);
  while (r.Next()) {
    switch (r.tag()) {
      case 1:
        r.AppendTo(m.argv);
        break;
      case 2:
        r.AppendTo(m.env);
        break;
      case 3:
        m.cwd = r.str();
        break;
      case 4:
        m.user = r.str();
        break;
      case 5:
        m.log_ring_bytes = r.u64();
        break;
      case 6:
        m.deadline_unix_ns = r.i64();
        break;
      case 7:
        m.stop_grace_ms = r.i64();
        break;
      case 8:
        m.await_start = r.boolean();
        break;
      case 9:
        m.dropped_capabilities = r.u64();
        break;
      default:
        break;
    }
  }
  SBX_TRY(r.status("init-config"));
  if (m.cwd.empty()) m.cwd = "/";
  if (m.log_ring_bytes < 4096) m.log_ring_bytes = 4096;
  if (m.log_ring_bytes > (256u << 20)) m.log_ring_bytes = 256u << 20;
  return m;
}

}  // namespace sbx::agent
