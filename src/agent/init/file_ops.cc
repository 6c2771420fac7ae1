#include "src/agent/init/file_ops.h"

#include <errno.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <utility>

#include "src/agent/init/files.h"
#include "src/agent/init/users.h"

namespace sbx::agent {

namespace {

// One read of a file being streamed to the host.
constexpr size_t kFileChunk = 256u << 10;
constexpr size_t kMaxDirEntries = 100000;

// The owner of files and directories created through the API: the sandbox's user (root when it
// cannot be resolved).
std::pair<uid_t, gid_t> DefaultOwner(const std::string& user_spec) {
  auto owner = ResolveSandboxUser(user_spec);
  if (!owner) return {0, 0};
  return {owner->uid, owner->gid};
}

Error NamingPath(Error error, const std::string& path) {
  if (error.MetadataValue("filepath").empty()) error.WithMetadata("filepath", path);
  return error;
}

}  // namespace

FileOps::FileOps(ServerLoop& loop, const InitConfig& config, int root_fd)
    : loop_(loop), config_(config), root_fd_(root_fd) {}

bool FileOps::Handles(MsgType type) {
  switch (type) {
    case MsgType::kFileRead:
    case MsgType::kFileWrite:
    case MsgType::kStat:
    case MsgType::kListDir:
    case MsgType::kMkdir:
    case MsgType::kSymlink:
    case MsgType::kReadlink:
      return true;
    default:
      return false;
  }
}

void FileOps::Start(Conn& conn, const Frame& frame) {
  switch (frame.type) {
    case MsgType::kFileRead:
      return StartRead(conn, frame.payload);
    case MsgType::kFileWrite:
      return StartWrite(conn, frame.payload);
    case MsgType::kStat:
      return Stat(conn, frame.payload);
    case MsgType::kListDir:
      return ListDir(conn, frame.payload);
    case MsgType::kMkdir:
      return Mkdir(conn, frame.payload);
    case MsgType::kSymlink:
      return Symlink(conn, frame.payload);
    case MsgType::kReadlink:
      return Readlink(conn, frame.payload);
    default:
      return loop_.Fail(conn, Error::InvalidArgument(std::string("unexpected request ") +
                                                     MsgTypeName(frame.type)));
  }
}

template <typename Request>
std::optional<FileOps::Resolved<Request>> FileOps::Resolve(Conn& conn, std::string_view payload) {
  auto request = Request::Decode(payload);
  if (!request) {
    loop_.Fail(conn, request.error());
    return std::nullopt;
  }
  auto path = AbsolutePath(config_.cwd, request->path);
  if (!path) {
    loop_.Fail(conn, NamingPath(std::move(path).error(), request->path));
    return std::nullopt;
  }
  return Resolved<Request>{std::move(*request), std::move(*path)};
}

void FileOps::StartRead(Conn& conn, std::string_view payload) {
  auto read = Resolve<FileRead>(conn, payload);
  if (!read) return;
  auto opened = OpenForRead(root_fd_, read->path);
  if (!opened) return loop_.Fail(conn, opened.error());
  conn.kind = Conn::Kind::kFileRead;
  conn.file = std::move(opened->first);
  FileInfo info = opened->second;
  info.path = read->request.path;
  loop_.Send(conn, MsgType::kFileInfo, info.Encode());
  if (read->request.max_bytes > 0 && info.size > read->request.max_bytes) {
    // The host refuses it anyway; do not stream it.
    if (Conn* open = loop_.FindConn(conn.id)) loop_.CloseAfterFlush(*open);
    return;
  }
  PumpRead(conn);
}

void FileOps::OnConnDrained(Conn& conn) {
  if (conn.kind == Conn::Kind::kFileRead) PumpRead(conn);
}

void FileOps::PumpRead(Conn& conn) {
  uint64_t id = conn.id;
  std::string chunk(kFileChunk, '\0');
  Conn* open = &conn;
  while ((open = loop_.FindConn(id)) != nullptr && open->kind == Conn::Kind::kFileRead &&
         open->pending() < kOutHighWater) {
    ssize_t n = read(open->file.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return loop_.Fail(*open, Error::Errno("read").WithReason("CWSANDBOX_FILE_IO_FAILED"));
    }
    if (n == 0) {
      open->file.reset();
      return loop_.Reply(*open, MsgType::kFileEnd, "");
    }
    loop_.Send(*open, MsgType::kFileData, std::string_view(chunk.data(), static_cast<size_t>(n)));
  }
}

void FileOps::StartWrite(Conn& conn, std::string_view payload) {
  auto write = Resolve<FileWrite>(conn, payload);
  if (!write) return;
  auto [uid, gid] = DefaultOwner(config_.user);
  auto pending = PendingWrite::Begin(root_fd_, write->path, write->request.mode,
                                     write->request.make_parents, uid, gid);
  if (!pending) return loop_.Fail(conn, pending.error());
  conn.kind = Conn::Kind::kFileWrite;
  conn.write = std::make_unique<PendingWrite>(std::move(*pending));
}

bool FileOps::OnFrame(Conn& conn, const Frame& frame) {
  if (frame.type == MsgType::kFileData) {
    Status written = conn.write->Write(frame.payload);
    if (!written) {
      conn.write.reset();
      loop_.Fail(conn, written.error());
    }
    return true;
  }
  if (frame.type == MsgType::kFileEnd) {
    Status committed = conn.write->Commit();
    conn.write.reset();
    if (committed) {
      loop_.Reply(conn, MsgType::kOk, "");
    } else {
      loop_.Fail(conn, committed.error());
    }
    return true;
  }
  return false;
}

void FileOps::Stat(Conn& conn, std::string_view payload) {
  auto stat = Resolve<PathRequest>(conn, payload);
  if (!stat) return;
  auto info = StatPath(root_fd_, stat->path);
  if (!info) return loop_.Fail(conn, info.error());
  loop_.Reply(conn, MsgType::kFileInfo, info->Encode());
}

void FileOps::ListDir(Conn& conn, std::string_view payload) {
  auto list = Resolve<PathRequest>(conn, payload);
  if (!list) return;
  auto entries = ListDirectory(root_fd_, list->path, kMaxDirEntries);
  if (!entries) return loop_.Fail(conn, entries.error());
  loop_.Reply(conn, MsgType::kDirEntries, entries->Encode());
}

void FileOps::Mkdir(Conn& conn, std::string_view payload) {
  auto mkdir = Resolve<MkdirRequest>(conn, payload);
  if (!mkdir) return;
  const MkdirRequest& request = mkdir->request;
  auto [uid, gid] = DefaultOwner(config_.user);
  auto info = MakeDirectory(root_fd_, mkdir->path, request.mode, request.make_parents, uid, gid);
  if (!info) return loop_.Fail(conn, NamingPath(std::move(info).error(), request.path));
  info->path = request.path;
  loop_.Reply(conn, MsgType::kFileInfo, info->Encode());
}

void FileOps::Symlink(Conn& conn, std::string_view payload) {
  auto symlink = Resolve<SymlinkRequest>(conn, payload);
  if (!symlink) return;
  const SymlinkRequest& request = symlink->request;
  auto [uid, gid] = DefaultOwner(config_.user);
  Status made =
      MakeSymlink(root_fd_, symlink->path, request.target, request.make_parents, uid, gid);
  if (!made) return loop_.Fail(conn, NamingPath(std::move(made).error(), request.path));
  loop_.Reply(conn, MsgType::kOk, "");
}

void FileOps::Readlink(Conn& conn, std::string_view payload) {
  auto readlink = Resolve<PathRequest>(conn, payload);
  if (!readlink) return;
  auto target = ReadSymlink(root_fd_, readlink->path);
  if (!target) {
    return loop_.Fail(conn, NamingPath(std::move(target).error(), readlink->request.path));
  }
  loop_.Reply(conn, MsgType::kLinkTarget, LinkTarget{std::move(*target)}.Encode());
}

}  // namespace sbx::agent
