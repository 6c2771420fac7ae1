#include "src/daemon/services/archive_service.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <set>
#include <vector>

#include "src/agent/client.h"
#include "src/base/clock.h"
#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/daemon/services/agent_failure.h"
#include "src/daemon/services/status_mapping.h"
#include "src/sys/entry_path.h"
#include "src/sys/fs.h"

namespace sbx::daemon {

namespace pb = ::sbx::v1;

namespace {

constexpr uint64_t kMaxEntries = 250000;
constexpr uint64_t kMaxArchiveBytes = 64ull << 30;
constexpr size_t kMaxDepth = 256;
constexpr size_t kChunkBytes = 256u << 10;

using ArchivePtr = std::unique_ptr<archive, int (*)(archive*)>;
using Entry = std::unique_ptr<archive_entry, void (*)(archive_entry*)>;

// How long one sbx-init operation may take: what is left of the call, at most a day.
int OperationTimeoutMs(const grpc::ServerContext* context) {
  constexpr int64_t kDayMs = 24LL * 3600 * 1000;
  auto deadline = context->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return static_cast<int>(kDayMs);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::system_clock::now())
                  .count();
  return static_cast<int>(std::clamp<int64_t>(left, 1, kDayMs));
}

// An sbx-init from before these operations existed answers "unexpected request".
Error FromAgent(Error error) {
  if (error.code() == Code::kInvalidArgument && StartsWith(error.message(), "unexpected request")) {
    return Error::FailedPrecondition(
               "this sandbox runs an sbx-init without directory copies; recreate the sandbox")
        .WithReason("CWSANDBOX_FAILED_PRECONDITION");
  }
  return error;
}

Error EntryError(const std::string& entry, const std::string& what) {
  return Error::InvalidArgument("archive entry " + Quote(entry) + ": " + what)
      .WithReason("CWSANDBOX_INVALID_REQUEST")
      .WithMetadata("entry", entry);
}

std::string ArchiveMessage(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unknown error";
}

// ---------------------------------------------------------------------------------------------
// PutArchive

// Feeds libarchive from the request stream, one message at a time.
struct TarInput {
  grpc::ServerReader<pb::PutArchiveRequest>* reader = nullptr;
  std::string buffer;
  bool first_pending = false;  // the first message's data is in `buffer`, not yet handed out
  uint64_t received = 0;
  bool too_large = false;
};

la_ssize_t ReadTar(archive* a, void* data, const void** out) {
  auto* in = static_cast<TarInput*>(data);
  if (in->first_pending) {
    in->first_pending = false;
    if (!in->buffer.empty()) {
      *out = in->buffer.data();
      return static_cast<la_ssize_t>(in->buffer.size());
    }
  }
  pb::PutArchiveRequest message;
  while (in->reader->Read(&message)) {
    if (message.data().empty()) continue;
    in->received += message.data().size();
    if (in->received > kMaxArchiveBytes) {
      in->too_large = true;
      archive_set_error(a, EFBIG, "archive larger than 64 GiB");
      return -1;
    }
    in->buffer = std::move(*message.mutable_data());
    *out = in->buffer.data();
    return static_cast<la_ssize_t>(in->buffer.size());
  }
  return 0;
}

// Performs the entries of an archive inside the sandbox, below `dir`.
class Extractor {
 public:
  Extractor(agent::AgentClient* agent, std::string dir, int timeout_ms)
      : agent_(agent), dir_(std::move(dir)), timeout_ms_(timeout_ms) {}

  // The target directory: created with its parents when missing. A symlink is accepted here
  // (the caller aimed at it); below it, links are never written through.
  Status Prepare() {
    auto info = agent_->MakeDirectory(dir_, 0755, true, timeout_ms_);
    if (!info) return FromAgent(std::move(info).error());
    if (info->type != agent::FileType::kDirectory && info->type != agent::FileType::kSymlink) {
      return Error::FailedPrecondition(Quote(dir_) + " exists and is not a directory")
          .WithReason("CWSANDBOX_FILE_IO_FAILED")
          .WithMetadata("filepath", dir_);
    }
    return Ok();
  }

  Status Run(archive* a, const TarInput& input) {
    archive_entry* entry = nullptr;
    uint64_t count = 0;
    while (true) {
      int r = archive_read_next_header(a, &entry);
      if (r == ARCHIVE_EOF) return Ok();
      if (r < ARCHIVE_WARN) {
        if (input.too_large) {
          return Error::ResourceExhausted("archive larger than 64 GiB")
              .WithReason("CWSANDBOX_FILE_TOO_LARGE");
        }
        return Error::InvalidArgument("read archive: " + ArchiveMessage(a))
            .WithReason("CWSANDBOX_INVALID_REQUEST");
      }
      if (++count > kMaxEntries) {
        return Error::ResourceExhausted("archive has more than " + std::to_string(kMaxEntries) +
                                        " entries")
            .WithReason("CWSANDBOX_RESOURCE_EXHAUSTED");
      }
      SBX_TRY(Perform(a, entry));
    }
  }

  int64_t files() const { return files_; }
  int64_t bytes() const { return bytes_; }

 private:
  std::string Path(const std::string& rel) const {
    return rel.empty() ? dir_ : sys::JoinPath(dir_, rel);
  }

  Status Perform(archive* a, archive_entry* entry) {
    const char* raw = archive_entry_pathname(entry);
    std::string name = raw != nullptr ? raw : "";
    auto rel = sys::CleanEntryName(name, sys::kArchiveEntryRules);
    if (!rel) return EntryError(name, rel.error().message());
    // SECURITY: a hard link names another path (possibly outside the target) as its source.
    if (archive_entry_hardlink(entry) != nullptr) {
      return EntryError(name, "hard links are not supported");
    }
    unsigned type = archive_entry_filetype(entry);
    if (rel->empty()) {
      if (type == AE_IFDIR) return Ok();  // the target directory itself
      return EntryError(name, "names the target directory");
    }
    if (static_cast<size_t>(std::count(rel->begin(), rel->end(), '/')) >= kMaxDepth) {
      return EntryError(name, "nested deeper than " + std::to_string(kMaxDepth) + " directories");
    }
    SBX_TRY(EnsureParents(*rel, name));
    uint32_t mode = archive_entry_perm(entry) & 07777;
    switch (type) {
      case AE_IFDIR:
        return Directory(*rel, mode, name);
      case AE_IFREG:
        SBX_TRY(File(a, *rel, mode, name));
        ++files_;
        return Ok();
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(entry);
        if (target == nullptr || *target == '\0') return EntryError(name, "symlink without target");
        Status made = agent_->MakeSymlink(Path(*rel), target, false, timeout_ms_);
        if (!made) return FromAgent(std::move(made).error()).Wrap("archive entry " + Quote(name));
        ++files_;
        return Ok();
      }
      default:
        return EntryError(name, "devices, FIFOs and sockets are not supported");
    }
  }

  // SECURITY: every directory an entry goes through must be a real directory, not a symlink,
  // whether the archive made it a link a moment ago or it already was one; otherwise an archive
  // could write anywhere in the sandbox.
  Status EnsureParents(const std::string& rel, const std::string& entry) {
    for (size_t pos = rel.find('/'); pos != std::string::npos; pos = rel.find('/', pos + 1)) {
      std::string prefix = rel.substr(0, pos);
      if (dirs_.count(prefix)) continue;
      SBX_TRY(Directory(prefix, 0755, entry));
    }
    return Ok();
  }

  Status Directory(const std::string& rel, uint32_t mode, const std::string& entry) {
    if (dirs_.count(rel)) return Ok();
    auto info = agent_->MakeDirectory(Path(rel), mode, false, timeout_ms_);
    if (!info) return FromAgent(std::move(info).error()).Wrap("archive entry " + Quote(entry));
    if (info->type == agent::FileType::kSymlink) {
      return EntryError(entry, Quote(Path(rel)) + " is a symbolic link in the sandbox");
    }
    if (info->type != agent::FileType::kDirectory) {
      return EntryError(entry, Quote(Path(rel)) + " exists and is not a directory");
    }
    dirs_.insert(rel);
    return Ok();
  }

  Status File(archive* a, const std::string& rel, uint32_t mode, const std::string& entry) {
    std::string buffer(kChunkBytes, '\0');
    Status written = agent_->WriteFile(
        Path(rel), mode,
        [&]() -> Result<std::string_view> {
          la_ssize_t n = archive_read_data(a, buffer.data(), buffer.size());
          if (n < 0) {
            return Error::InvalidArgument("read archive: " + ArchiveMessage(a))
                .WithReason("CWSANDBOX_INVALID_REQUEST");
          }
          bytes_ += n;
          return std::string_view(buffer.data(), static_cast<size_t>(n));
        },
        timeout_ms_);
    if (!written)
      return FromAgent(std::move(written).error()).Wrap("archive entry " + Quote(entry));
    return Ok();
  }

  agent::AgentClient* agent_;
  std::string dir_;
  int timeout_ms_;
  std::set<std::string> dirs_;  // below dir_, known to be real directories
  int64_t files_ = 0;
  int64_t bytes_ = 0;
};

// ---------------------------------------------------------------------------------------------
// GetArchive

// Collects libarchive's output and sends it in chunks; a blocking Write is the backpressure.
struct TarOutput {
  grpc::ServerWriter<pb::ArchiveChunk>* writer = nullptr;
  std::string pending;
  bool closed = false;  // the client went away, or the call failed: write nothing more

  bool Flush() {
    if (closed) return false;
    if (pending.empty()) return true;
    pb::ArchiveChunk chunk;
    chunk.set_data(std::move(pending));
    pending.clear();
    if (!writer->Write(chunk)) closed = true;
    return !closed;
  }
};

la_ssize_t WriteTar(archive* a, void* data, const void* buffer, size_t size) {
  auto* out = static_cast<TarOutput*>(data);
  if (out->closed) {
    archive_set_error(a, ECANCELED, "the client stopped reading");
    return -1;
  }
  out->pending.append(static_cast<const char*>(buffer), size);
  if (out->pending.size() >= kChunkBytes && !out->Flush()) {
    archive_set_error(a, ECANCELED, "the client stopped reading");
    return -1;
  }
  return static_cast<la_ssize_t>(size);
}

// Walks a tree of the sandbox depth-first (names sorted) and writes it as tar entries.
class TreeWriter {
 public:
  TreeWriter(agent::AgentClient* agent, archive* a, TarOutput* out,
             const grpc::ServerContext* context, int timeout_ms)
      : agent_(agent), a_(a), out_(out), context_(context), timeout_ms_(timeout_ms) {}

  Status Run(const std::string& path, const std::string& top_name) {
    auto top = agent_->Stat(path, timeout_ms_);
    if (!top) return FromAgent(std::move(top).error());
    std::vector<Node> stack;
    stack.push_back({path, top_name, top->type, 0});
    bool first = true;
    while (!stack.empty()) {
      Node node = std::move(stack.back());
      stack.pop_back();
      Status done = Visit(node, &stack);
      if (!done) {
        // Something that vanished while the tree was walked is left out; the top must exist.
        if (first || done.error().code() != Code::kNotFound) return done;
      }
      if (first) {
        // The first header goes out at once: a client asking only "what is at this path?"
        // reads one chunk and cancels.
        if (!out_->Flush()) return Cancelled();
        first = false;
      }
    }
    if (skipped_ > 0) {
      SBX_LOG_DEBUG("archive of {} left out {} devices, FIFOs or sockets", path, skipped_);
    }
    return Ok();
  }

 private:
  struct Node {
    std::string path;  // in the sandbox
    std::string name;  // in the archive
    agent::FileType type;
    size_t depth;
  };

  Error Cancelled() const { return Error(Code::kCancelled, "the client stopped reading"); }

  Error ArchiveFailure() const {
    if (out_->closed) return Cancelled();
    return Error::Internal("write archive: " + ArchiveMessage(a_));
  }

  Status Visit(const Node& node, std::vector<Node>* stack) {
    if (context_->IsCancelled()) return Cancelled();
    if (++entries_ > kMaxEntries) {
      return Error::ResourceExhausted("more than " + std::to_string(kMaxEntries) +
                                      " entries below the path")
          .WithReason("CWSANDBOX_RESOURCE_EXHAUSTED");
    }
    switch (node.type) {
      case agent::FileType::kRegular:
        return FileEntry(node);
      case agent::FileType::kDirectory: {
        SBX_ASSIGN_OR_RETURN(agent::FileInfo info, agent_->Stat(node.path, timeout_ms_));
        if (info.type != agent::FileType::kDirectory) return Ok();  // replaced meanwhile
        SBX_TRY(Header(node.name, info, AE_IFDIR, ""));
        SBX_ASSIGN_OR_RETURN(agent::DirEntries listing, agent_->ListDir(node.path, timeout_ms_));
        if (listing.truncated) {
          return Error::ResourceExhausted(Quote(node.path) + " has too many entries to copy")
              .WithReason("CWSANDBOX_RESOURCE_EXHAUSTED");
        }
        if (!listing.entries.empty() && node.depth + 1 > kMaxDepth) {
          return Error::ResourceExhausted(Quote(node.path) + " is nested deeper than " +
                                          std::to_string(kMaxDepth) + " directories")
              .WithReason("CWSANDBOX_RESOURCE_EXHAUSTED");
        }
        std::sort(listing.entries.begin(), listing.entries.end(),
                  [](const auto& x, const auto& y) { return x.name > y.name; });
        for (auto& e : listing.entries) {
          if (e.name.empty() || e.name.find('/') != std::string::npos || e.name == "." ||
              e.name == "..") {
            continue;  // not a name readdir can return: a confused or hostile sbx-init
          }
          stack->push_back(
              {sys::JoinPath(node.path, e.name), node.name + "/" + e.name, e.type, node.depth + 1});
        }
        return Ok();
      }
      case agent::FileType::kSymlink: {
        SBX_ASSIGN_OR_RETURN(agent::FileInfo info, agent_->Stat(node.path, timeout_ms_));
        SBX_ASSIGN_OR_RETURN(std::string target, agent_->ReadSymlink(node.path, timeout_ms_));
        return Header(node.name, info, AE_IFLNK, target);
      }
      default:
        ++skipped_;
        return Ok();
    }
  }

  Status FileEntry(const Node& node) {
    agent::FileInfo info;
    bool header_written = false;
    uint64_t left = 0;
    auto header = [&]() -> Status {
      SBX_TRY(Header(node.name, info, AE_IFREG, ""));
      header_written = true;
      left = info.size;
      return Ok();
    };
    Status read = agent_->ReadFile(
        node.path, 0,
        [&](std::string_view chunk) -> Status {
          if (!header_written) SBX_TRY(header());
          // The header promised info.size bytes: a file growing while it is read is cut there,
          // one shrinking is padded (by libarchive) to it.
          size_t n = static_cast<size_t>(std::min<uint64_t>(chunk.size(), left));
          if (n > 0 && archive_write_data(a_, chunk.data(), n) < 0) return ArchiveFailure();
          left -= n;
          return Ok();
        },
        &info, timeout_ms_);
    if (!read) return read;
    if (!header_written) SBX_TRY(header());
    return Ok();
  }

  Status Header(const std::string& name, const agent::FileInfo& info, unsigned type,
                const std::string& link) {
    Entry entry(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), type);
    archive_entry_set_perm(entry.get(), info.mode & 07777);
    archive_entry_set_uid(entry.get(), info.uid);
    archive_entry_set_gid(entry.get(), info.gid);
    archive_entry_set_mtime(entry.get(), info.mtime_ns / 1000000000, info.mtime_ns % 1000000000);
    archive_entry_set_size(entry.get(), type == AE_IFREG ? static_cast<la_int64_t>(info.size) : 0);
    if (type == AE_IFLNK) archive_entry_set_symlink(entry.get(), link.c_str());
    if (archive_write_header(a_, entry.get()) < ARCHIVE_WARN) return ArchiveFailure();
    return Ok();
  }

  agent::AgentClient* agent_;
  archive* a_;
  TarOutput* out_;
  const grpc::ServerContext* context_;
  int timeout_ms_;
  uint64_t entries_ = 0;
  uint64_t skipped_ = 0;
};

}  // namespace

Result<std::string> ArchiveTopName(std::string_view path) {
  if (path.empty()) return Error::InvalidArgument("empty path");
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path == "/" || path == "/.") {
    return Error::InvalidArgument("copying the whole root file system is not supported");
  }
  if (path == "." || EndsWith(path, "/.")) return std::string(".");
  std::string name = sys::BaseName(path);
  if (name == "..") return Error::InvalidArgument("the path must not end in \"..\"");
  return name;
}

Result<std::string> ArchiveService::Socket(grpc::ServerContext* context, const std::string& id,
                                           SandboxManager::Access access) {
  SBX_ASSIGN_OR_RETURN(std::string tenant, auth_->Tenant(*context));
  if (id.empty()) return FieldError("sandbox_id", "required");
  return manager_->AgentSocket(tenant, id, MonotonicMillis() + OperationTimeoutMs(context), access);
}

grpc::Status ArchiveService::PutArchive(grpc::ServerContext* context,
                                        grpc::ServerReader<pb::PutArchiveRequest>* reader,
                                        pb::PutArchiveResponse* response) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return ToGrpcStatus(tenant.error());
  pb::PutArchiveRequest first;
  if (!reader->Read(&first)) {
    // Read also fails for a message gRPC could not parse (a string that is not UTF-8).
    return ToGrpcStatus(
        FieldError("sandbox_id", "the first message must be valid and name the sandbox"));
  }
  if (first.sandbox_id().empty()) return ToGrpcStatus(FieldError("sandbox_id", "required"));
  if (first.path().empty()) return ToGrpcStatus(FieldError("path", "required"));
  auto socket = Socket(context, first.sandbox_id());
  if (!socket) return ToGrpcStatus(socket.error());
  agent::AgentClient agent(*socket);
  Extractor extractor(&agent, first.path(), OperationTimeoutMs(context));
  if (Status prepared = extractor.Prepare(); !prepared) {
    return ToGrpcStatus(
        ExplainAgentFailure(*manager_, *tenant, first.sandbox_id(), prepared.error())
            .WithMetadata("sandbox_id", first.sandbox_id()));
  }
  TarInput input;
  input.reader = reader;
  input.buffer = std::move(*first.mutable_data());
  input.received = input.buffer.size();
  input.first_pending = true;
  ArchivePtr a(archive_read_new(), archive_read_free);
  // Plain tar only: no decompression filters, some of which would run external programs.
  archive_read_support_format_tar(a.get());
  if (archive_read_open(a.get(), &input, nullptr, ReadTar, nullptr) != ARCHIVE_OK) {
    return ToGrpcStatus(Error::InvalidArgument("read archive: " + ArchiveMessage(a.get()))
                            .WithReason("CWSANDBOX_INVALID_REQUEST"));
  }
  Status extracted = extractor.Run(a.get(), input);
  if (!extracted) {
    return ToGrpcStatus(
        ExplainAgentFailure(*manager_, *tenant, first.sandbox_id(), extracted.error())
            .WithMetadata("sandbox_id", first.sandbox_id()));
  }
  response->set_files(extractor.files());
  response->set_bytes(extractor.bytes());
  return grpc::Status::OK;
}

grpc::Status ArchiveService::GetArchive(grpc::ServerContext* context,
                                        const pb::GetArchiveRequest* request,
                                        grpc::ServerWriter<pb::ArchiveChunk>* writer) {
  auto tenant = auth_->Tenant(*context);
  if (!tenant) return ToGrpcStatus(tenant.error());
  if (request->sandbox_id().empty()) return ToGrpcStatus(FieldError("sandbox_id", "required"));
  if (request->path().empty()) return ToGrpcStatus(FieldError("path", "required"));
  auto top = ArchiveTopName(request->path());
  if (!top) return ToGrpcStatus(FieldError("path", top.error().message()));
  auto socket = Socket(context, request->sandbox_id(), SandboxManager::Access::kReadFiles);
  if (!socket) return ToGrpcStatus(socket.error());
  agent::AgentClient agent(*socket);
  TarOutput out;
  out.writer = writer;
  ArchivePtr a(archive_write_new(), archive_write_free);
  archive_write_set_format_pax_restricted(a.get());
  // No blocking inside libarchive: TarOutput chunks the stream, and the first header must be
  // sent on its own.
  archive_write_set_bytes_per_block(a.get(), 0);
  if (archive_write_open(a.get(), &out, nullptr, WriteTar, nullptr) != ARCHIVE_OK) {
    return ToGrpcStatus(Error::Internal("write archive: " + ArchiveMessage(a.get())));
  }
  TreeWriter tree(&agent, a.get(), &out, context, OperationTimeoutMs(context));
  Status walked = tree.Run(request->path(), *top);
  if (!walked) {
    out.closed = true;  // nothing more goes out, not even the trailer
    return ToGrpcStatus(
        ExplainAgentFailure(*manager_, *tenant, request->sandbox_id(), walked.error())
            .WithMetadata("sandbox_id", request->sandbox_id()));
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK || !out.Flush()) {
    bool cancelled = out.closed;
    out.closed = true;
    if (cancelled) return grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading");
    return ToGrpcStatus(Error::Internal("write archive: " + ArchiveMessage(a.get())));
  }
  return grpc::Status::OK;
}

}  // namespace sbx::daemon
