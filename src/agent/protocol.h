// File: protocol.h
//
// The messages of the sbx-init protocol. The host opens one connection to the sandbox's socket per
// operation and sends one request frame; what follows depends on the request:
//
//   kExecStart  -> kExecStarted, then kOutput* and finally kExit (or kError). The host may send
//                  kStdin*, kStdinClose, kResize, kSignal and kKill while the process runs. Closing
//                  the connection kills the exec's process tree.
//   kFileRead   -> kFileInfo, kFileData*, kFileEnd   (or kError)
//   kFileWrite  -> host sends kFileData*, kFileEnd; init answers kOk (or kError)
//   kStat       -> kFileInfo (or kError)
//   kListDir    -> kDirEntries (or kError)
//   kMkdir      -> kFileInfo of what is at the path afterwards, not following a final symlink
//                  (or kError)
//   kSymlink    -> kOk (or kError)
//   kReadlink   -> kLinkTarget (or kError)
//   kStatus     -> kStatusReply
//   kWaitMain   -> kStatusReply once the main process has exited
//   kAckExit    -> kOk
//   kSignalMain -> kOk
//   kLogs       -> kLogChunk* then kLogEnd (or, with follow, until the main process exits)
//   kStartMain  -> kOk once the main process is started (or kError). Only a sandbox created
//                  with InitConfig.await_start takes it, and only once: the payload is the
//                  InitConfig of the main process, replacing the one sbx-init started with.
//
// Decode functions treat the payload as hostile: malformed input is an error, never a crash.

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/agent/wire.h"
#include "src/base/result.h"
#include "src/sys/process.h"

namespace sbx::agent {

enum class MsgType : uint8_t {
  // host -> init
  kExecStart = 1,
  kStdin = 2,
  kStdinClose = 3,
  kResize = 4,
  kSignal = 5,
  kKill = 6,
  kFileRead = 10,
  kFileWrite = 11,
  kFileData = 12,
  kFileEnd = 13,
  kStat = 14,
  kListDir = 15,
  kMkdir = 16,
  kSymlink = 17,
  kReadlink = 18,
  kStatus = 20,
  kWaitMain = 21,
  kAckExit = 22,
  kSignalMain = 23,
  kLogs = 24,
  kStartMain = 25,
  kSetDeadline = 26,
  // init -> host
  kExecStarted = 64,
  kOutput = 65,
  kExit = 66,
  kError = 67,
  kOk = 68,
  kFileInfo = 69,
  kDirEntries = 70,
  kStatusReply = 71,
  kLogChunk = 72,
  kLogEnd = 73,
  kLinkTarget = 74,
};

const char* MsgTypeName(MsgType type);

enum class StreamId : uint8_t { kStdout = 1, kStderr = 2 };

struct ExecStart {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // KEY=VALUE, added to (and overriding) the sandbox environment
  std::string cwd;               // empty: the sandbox working directory
  std::string user;              // "" (sandbox default), "name", "uid", "uid:gid", "name:group"
  bool tty = false;
  uint32_t rows = 0;
  uint32_t cols = 0;
  bool stdin_open = false;  // false: stdin is /dev/null
  int64_t timeout_ms = 0;   // 0: none; on expiry the process tree is killed
  std::string Encode() const;
  static Result<ExecStart> Decode(std::string_view payload);
  bool operator==(const ExecStart&) const = default;
};

struct Resize {
  uint32_t rows = 0;
  uint32_t cols = 0;
  std::string Encode() const;
  static Result<Resize> Decode(std::string_view payload);
  bool operator==(const Resize&) const = default;
};

struct SignalRequest {
  int32_t signal = 0;
  std::string Encode() const;
  static Result<SignalRequest> Decode(std::string_view payload);
  bool operator==(const SignalRequest&) const = default;
};

struct ExecStarted {
  int64_t pid = 0;
  std::string Encode() const;
  static Result<ExecStarted> Decode(std::string_view payload);
  bool operator==(const ExecStarted&) const = default;
};

struct Output {
  StreamId stream = StreamId::kStdout;
  std::string data;
  std::string Encode() const;
  static Result<Output> Decode(std::string_view payload);
  bool operator==(const Output&) const = default;
};

struct ExitInfo {
  int32_t exit_code = -1;  // valid unless signaled
  int32_t signal = 0;
  bool signaled = false;
  bool timed_out = false;
  // The exit code, or 128 + signal (sys::ShellExitCode).
  int ShellCode() const { return sys::ShellExitCode(signaled, exit_code, signal); }
  std::string Encode() const;
  static Result<ExitInfo> Decode(std::string_view payload);
  bool operator==(const ExitInfo&) const = default;
};

struct ErrorReply {
  int32_t code = 0;  // sbx::Code
  int32_t sys_errno = 0;
  std::string message;
  std::string reason;  // e.g. CWSANDBOX_FILE_NOT_FOUND
  std::string Encode() const;
  static Result<ErrorReply> Decode(std::string_view payload);
  bool operator==(const ErrorReply&) const = default;
  static ErrorReply FromError(const Error& error);
  Error ToError() const;
};

struct FileRead {
  std::string path;
  uint64_t max_bytes = 0;  // 0: no limit beyond the caller's own
  std::string Encode() const;
  static Result<FileRead> Decode(std::string_view payload);
  bool operator==(const FileRead&) const = default;
};

struct FileWrite {
  std::string path;
  uint32_t mode = 0644;
  bool make_parents = true;
  std::string Encode() const;
  static Result<FileWrite> Decode(std::string_view payload);
  bool operator==(const FileWrite&) const = default;
};

enum class FileType : uint8_t {
  kUnknown = 0,
  kRegular = 1,
  kDirectory = 2,
  kSymlink = 3,
  kOther = 4
};

struct FileInfo {
  std::string path;
  FileType type = FileType::kUnknown;
  uint64_t size = 0;
  uint32_t mode = 0;
  int64_t mtime_ns = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string Encode() const;
  static Result<FileInfo> Decode(std::string_view payload);
  bool operator==(const FileInfo&) const = default;
};

struct PathRequest {
  std::string path;
  std::string Encode() const;
  static Result<PathRequest> Decode(std::string_view payload);
  bool operator==(const PathRequest&) const = default;
};

// Creates a directory; an existing one is left as it is.
struct MkdirRequest {
  std::string path;
  uint32_t mode = 0755;
  bool make_parents = false;  // create missing parent directories (0755)
  std::string Encode() const;
  static Result<MkdirRequest> Decode(std::string_view payload);
  bool operator==(const MkdirRequest&) const = default;
};

// Creates (or atomically replaces) the symbolic link `path` pointing at `target`.
struct SymlinkRequest {
  std::string path;
  std::string target;
  bool make_parents = false;
  std::string Encode() const;
  static Result<SymlinkRequest> Decode(std::string_view payload);
  bool operator==(const SymlinkRequest&) const = default;
};

// The answer to kReadlink.
struct LinkTarget {
  std::string target;
  std::string Encode() const;
  static Result<LinkTarget> Decode(std::string_view payload);
  bool operator==(const LinkTarget&) const = default;
};

struct DirEntry {
  std::string name;
  FileType type = FileType::kUnknown;
  uint64_t size = 0;
  uint32_t mode = 0;
  bool operator==(const DirEntry&) const = default;
};

struct DirEntries {
  std::vector<DirEntry> entries;
  bool truncated = false;
  std::string Encode() const;
  static Result<DirEntries> Decode(std::string_view payload);
  bool operator==(const DirEntries&) const = default;
};

struct StatusReply {
  uint32_t init_version = 0;
  int64_t main_pid = 0;  // in the sandbox's pid namespace
  bool main_running = false;
  bool main_exited = false;
  ExitInfo main_exit;
  int64_t main_started_ns = 0;  // wall clock
  int64_t main_exited_ns = 0;
  bool exit_acknowledged = false;
  bool lifetime_exceeded = false;
  std::string start_error;  // the main process could not be started
  uint64_t log_start = 0;   // oldest log offset still held
  uint64_t log_end = 0;     // next log offset
  std::string Encode() const;
  static Result<StatusReply> Decode(std::string_view payload);
  bool operator==(const StatusReply&) const = default;
};

// A new lifetime deadline for the main process (its sandbox's lifetime was extended).
struct DeadlineRequest {
  int64_t deadline_unix_ns = 0;  // 0: none
  std::string Encode() const;
  static Result<DeadlineRequest> Decode(std::string_view payload);
  bool operator==(const DeadlineRequest&) const = default;
};

struct LogsRequest {
  uint64_t offset = 0;
  bool follow = false;
  std::string Encode() const;
  static Result<LogsRequest> Decode(std::string_view payload);
  bool operator==(const LogsRequest&) const = default;
};

struct LogChunk {
  uint64_t offset = 0;
  int64_t time_ns = 0;
  StreamId stream = StreamId::kStdout;
  std::string data;
  std::string Encode() const;
  static Result<LogChunk> Decode(std::string_view payload);
  bool operator==(const LogChunk&) const = default;
};

struct LogEnd {
  uint64_t next_offset = 0;
  uint64_t first_available = 0;  // > requested offset: the ring dropped older output
  std::string Encode() const;
  static Result<LogEnd> Decode(std::string_view payload);
  bool operator==(const LogEnd&) const = default;
};

// What sbx-init is told at start (read from the config descriptor).
// Reasons of an exec whose command could not start. sbxd reports them as the command's outcome
// (a shell's exit codes 127 and 126, the message on stderr), not as a failure of the call.
inline constexpr const char* kReasonCommandNotFound = "SBX_COMMAND_NOT_FOUND";
inline constexpr const char* kReasonCommandNotExecutable = "SBX_COMMAND_NOT_EXECUTABLE";

struct InitConfig {
  std::vector<std::string> argv;  // the main process; empty means "wait for stop"
  std::vector<std::string> env;
  std::string cwd = "/";
  std::string user;
  uint64_t log_ring_bytes = 1u << 20;
  int64_t deadline_unix_ns = 0;  // 0: none; at the deadline the main process is stopped
  int64_t stop_grace_ms = 10000;
  // A pre-started sandbox: no main process until the host sends kStartMain with the real one.
  bool await_start = false;
  // Bit n: capability n is dropped from the bounding set of every process sbx-init starts (main
  // and execs). sbx-init keeps its own: it needs them to start processes as other users.
  uint64_t dropped_capabilities = 0;
  std::string Encode() const;
  static Result<InitConfig> Decode(std::string_view payload);
  bool operator==(const InitConfig&) const = default;
};

}  // namespace sbx::agent
