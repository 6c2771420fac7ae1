#include "src/client/copy.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "src/base/strings.h"
#include "src/base/unique_fd.h"
#include "src/client/impl.h"
#include "src/sys/entry_path.h"
#include "src/sys/fs.h"

namespace sbx::client {

namespace {

constexpr size_t kIoChunk = 256u << 10;
// Below the destination: never leave it, never follow a link.
constexpr uint64_t kBeneath = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

using ArchivePtr = std::unique_ptr<archive, int (*)(archive*)>;
using EntryPtr = std::unique_ptr<archive_entry, void (*)(archive_entry*)>;

std::string ArchiveMessage(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? message : "unknown error";
}

// ---------------------------------------------------------------------------------------------
// Writing a host tree

struct WriteSink {
  const ChunkWriter* write = nullptr;
  std::optional<Error> error;
};

la_ssize_t WriteCallback(archive* a, void* data, const void* buffer, size_t size) {
  auto* sink = static_cast<WriteSink*>(data);
  Status written = (*sink->write)(std::string_view(static_cast<const char*>(buffer), size));
  if (!written) {
    sink->error = std::move(written).error();
    archive_set_error(a, ECANCELED, "upload failed");
    return -1;
  }
  return static_cast<la_ssize_t>(size);
}

class TreeArchiver {
 public:
  TreeArchiver(archive* a, WriteSink* sink, const CopyOptions& options, CopyStats* stats)
      : a_(a), sink_(sink), options_(options), stats_(stats) {}

  Status Run(const std::string& path, const std::string& top, bool follow_top) {
    struct stat st {};
    if ((follow_top ? stat(path.c_str(), &st) : lstat(path.c_str(), &st)) != 0) {
      if (errno == ENOENT) {
        return Error(Code::kNotFound, Quote(path) + " does not exist on this machine", ENOENT);
      }
      return Error::Errno("stat " + Quote(path));
    }
    if (top.empty()) {
      if (!S_ISDIR(st.st_mode)) return Error::InvalidArgument(Quote(path) + " is not a directory");
      SBX_TRY(Children(path, ""));
    } else {
      SBX_TRY(Node(path, top, st, follow_top));
    }
    while (!stack_.empty()) {
      auto [child, name] = std::move(stack_.back());
      stack_.pop_back();
      struct stat child_st {};
      if (lstat(child.c_str(), &child_st) != 0) {
        if (errno == ENOENT) continue;  // removed while we walked
        return Error::Errno("stat " + Quote(child));
      }
      SBX_TRY(Node(child, name, child_st, false));
    }
    return Ok();
  }

 private:
  Error Failure() const {
    if (sink_->error) return *sink_->error;
    return Error::Internal("write archive: " + ArchiveMessage(a_));
  }

  Status Header(const std::string& name, const struct stat& st, const std::string& link) {
    EntryPtr entry(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), st.st_mode & S_IFMT);
    archive_entry_set_perm(entry.get(), st.st_mode & 07777);
    archive_entry_set_mtime(entry.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    // Owners mean nothing inside the sandbox: files there belong to its user.
    archive_entry_set_uid(entry.get(), 0);
    archive_entry_set_gid(entry.get(), 0);
    archive_entry_set_size(entry.get(), S_ISREG(st.st_mode) ? st.st_size : 0);
    if (S_ISLNK(st.st_mode)) archive_entry_set_symlink(entry.get(), link.c_str());
    if (archive_write_header(a_, entry.get()) < ARCHIVE_WARN) return Failure();
    return Ok();
  }

  Status Node(const std::string& path, const std::string& name, const struct stat& st,
              bool follow) {
    if (S_ISREG(st.st_mode)) return File(path, name, follow);
    if (S_ISDIR(st.st_mode)) {
      SBX_TRY(Header(name, st, ""));
      return Children(path, name);
    }
    if (S_ISLNK(st.st_mode)) {
      std::string target(PATH_MAX, '\0');
      ssize_t n = readlink(path.c_str(), target.data(), target.size());
      if (n < 0) return Error::Errno("readlink " + Quote(path));
      target.resize(static_cast<size_t>(n));
      SBX_TRY(Header(name, st, target));
      ++stats_->files;
      return Ok();
    }
    if (options_.on_skip) options_.on_skip(path, "not a regular file, directory or symlink");
    return Ok();
  }

  Status Children(const std::string& path, const std::string& name) {
    DIR* dir = opendir(path.c_str());
    if (dir == nullptr) return Error::Errno("open directory " + Quote(path));
    std::vector<std::string> names;
    while (dirent* e = readdir(dir)) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      names.emplace_back(e->d_name);
    }
    closedir(dir);
    // Depth first, in name order: pushed in reverse.
    std::sort(names.begin(), names.end(), std::greater<>());
    for (const auto& n : names) {
      stack_.emplace_back(sys::JoinPath(path, n), name.empty() ? n : name + "/" + n);
    }
    return Ok();
  }

  Status File(const std::string& path, const std::string& name, bool follow) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | (follow ? 0 : O_NOFOLLOW));
    if (fd < 0) return Error::Errno("open " + Quote(path));
    UniqueFd file(fd);
    struct stat st {};
    if (fstat(fd, &st) != 0) return Error::Errno("stat " + Quote(path));
    if (!S_ISREG(st.st_mode)) return Node(path, name, st, follow);  // replaced meanwhile
    SBX_TRY(Header(name, st, ""));
    // The header promised st_size bytes: a file growing meanwhile is cut there, one shrinking
    // is padded with zeros by libarchive.
    uint64_t left = static_cast<uint64_t>(st.st_size);
    std::string buffer(kIoChunk, '\0');
    while (left > 0) {
      ssize_t n = read(fd, buffer.data(), std::min<uint64_t>(buffer.size(), left));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::Errno("read " + Quote(path));
      if (n == 0) break;
      if (archive_write_data(a_, buffer.data(), static_cast<size_t>(n)) < 0) return Failure();
      left -= static_cast<uint64_t>(n);
      stats_->bytes += n;
    }
    ++stats_->files;
    return Ok();
  }

  archive* a_;
  WriteSink* sink_;
  const CopyOptions& options_;
  CopyStats* stats_;
  std::vector<std::pair<std::string, std::string>> stack_;  // host path, archive name
};

// ---------------------------------------------------------------------------------------------
// Extracting onto the host

struct ReadSource {
  const std::function<bool(std::string*)>* next = nullptr;
  std::string buffer;
};

la_ssize_t ReadCallback(archive*, void* data, const void** out) {
  auto* source = static_cast<ReadSource*>(data);
  while ((*source->next)(&source->buffer)) {
    if (source->buffer.empty()) continue;
    *out = source->buffer.data();
    return static_cast<la_ssize_t>(source->buffer.size());
  }
  return 0;
}

std::string FirstComponent(const std::string& rel) { return rel.substr(0, rel.find('/')); }

class HostWriter {
 public:
  HostWriter(UniqueFd dest, std::string dest_path, const CopyOptions& options)
      : dest_(std::move(dest)), dest_path_(std::move(dest_path)), options_(options) {}

  // `rel` is clean and non-empty.
  Status Entry(archive* a, archive_entry* entry, const std::string& rel) {
    std::string shown = sys::JoinPath(dest_path_, rel);
    if (archive_entry_hardlink(entry) != nullptr) {
      Skip(shown, "hard links are not copied");
      return Ok();
    }
    SBX_ASSIGN_OR_RETURN(UniqueFd parent, Parent(rel));
    std::string name = sys::BaseName(rel);
    mode_t mode = archive_entry_perm(entry);
    switch (archive_entry_filetype(entry)) {
      case AE_IFDIR: {
        if (mkdirat(parent.get(), name.c_str(), 0700) != 0) {
          if (errno != EEXIST) return Error::Errno("mkdir " + Quote(shown));
          struct stat st {};
          if (fstatat(parent.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
              !S_ISDIR(st.st_mode)) {
            return Error::FailedPrecondition(Quote(shown) + " exists and is not a directory");
          }
        }
        // Modes and times of directories are applied at the end: adding children changes the
        // time, and a read-only mode would stop them being added.
        dirs_.push_back(
            {rel, mode & 01777, archive_entry_mtime(entry), archive_entry_mtime_nsec(entry)});
        return Ok();
      }
      case AE_IFREG:
        return File(a, entry, parent.get(), name, shown, mode);
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(entry);
        if (target == nullptr || *target == '\0') return Error::InvalidArgument("empty symlink");
        std::string tmp = ".sbx-cp-" + RandomHex(8);
        if (symlinkat(target, parent.get(), tmp.c_str()) != 0) {
          return Error::Errno("symlink " + Quote(shown));
        }
        if (renameat(parent.get(), tmp.c_str(), parent.get(), name.c_str()) != 0) {
          Error error = Error::Errno("create " + Quote(shown));
          unlinkat(parent.get(), tmp.c_str(), 0);
          return error;
        }
        ++stats_.files;
        return Ok();
      }
      default:
        Skip(shown, "devices, FIFOs and sockets are not copied");
        return Ok();
    }
  }

  Status Finish() {
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      SBX_ASSIGN_OR_RETURN(UniqueFd parent, Parent(it->rel));
      std::string name = sys::BaseName(it->rel);
      if (fchmodat(parent.get(), name.c_str(), it->mode, 0) != 0) {
        return Error::Errno("chmod " + Quote(sys::JoinPath(dest_path_, it->rel)));
      }
      timespec times[2] = {{0, UTIME_OMIT}, {it->mtime, it->mtime_nsec}};
      (void)utimensat(parent.get(), name.c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
    return Ok();
  }

  const CopyStats& stats() const { return stats_; }

 private:
  struct Dir {
    std::string rel;
    mode_t mode;
    time_t mtime;
    long mtime_nsec;
  };

  void Skip(const std::string& path, const std::string& why) {
    if (options_.on_skip) options_.on_skip(path, why);
  }

  // The directory holding `rel`, created (0755) where missing. SECURITY: resolved beneath the
  // destination without following any symlink, so an archive that plants "a -> /etc" cannot then
  // write "a/passwd" through it.
  Result<UniqueFd> Parent(const std::string& rel) {
    std::string dir = sys::DirName(rel);
    if (dir == ".") return sys::OpenAt(dest_.get(), ".", O_PATH | O_DIRECTORY);
    auto fd = sys::OpenAt2(dest_.get(), dir, O_PATH | O_DIRECTORY, 0, kBeneath);
    if (fd || fd.error().sys_errno() != ENOENT) return Refuse(std::move(fd), dir);
    std::string current;
    for (const auto& part : Split(dir, '/')) {
      std::string next = current.empty() ? part : current + "/" + part;
      auto next_fd = sys::OpenAt2(dest_.get(), next, O_PATH | O_DIRECTORY, 0, kBeneath);
      if (!next_fd && next_fd.error().sys_errno() == ENOENT) {
        SBX_ASSIGN_OR_RETURN(UniqueFd at, current.empty()
                                              ? sys::OpenAt(dest_.get(), ".", O_PATH | O_DIRECTORY)
                                              : sys::OpenAt2(dest_.get(), current,
                                                             O_PATH | O_DIRECTORY, 0, kBeneath));
        if (mkdirat(at.get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
          return Error::Errno("mkdir " + Quote(sys::JoinPath(dest_path_, next)));
        }
        next_fd = sys::OpenAt2(dest_.get(), next, O_PATH | O_DIRECTORY, 0, kBeneath);
      }
      if (!next_fd) return Refuse(std::move(next_fd), next);
      current = next;
    }
    return sys::OpenAt2(dest_.get(), dir, O_PATH | O_DIRECTORY, 0, kBeneath);
  }

  Result<UniqueFd> Refuse(Result<UniqueFd> fd, const std::string& dir) const {
    if (fd) return fd;
    if (fd.error().sys_errno() == ELOOP || fd.error().sys_errno() == EXDEV) {
      return Error::PermissionDenied("refusing to write through the symbolic link in " +
                                     Quote(sys::JoinPath(dest_path_, dir)));
    }
    if (fd.error().sys_errno() == ENOTDIR) {
      return Error::FailedPrecondition(Quote(sys::JoinPath(dest_path_, dir)) +
                                       " is not a directory");
    }
    return std::move(fd).error();
  }

  Status File(archive* a, archive_entry* entry, int parent, const std::string& name,
              const std::string& shown, mode_t mode) {
    std::string tmp = ".sbx-cp-" + RandomHex(8);
    int fd =
        openat(parent, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return Error::Errno("create " + Quote(shown));
    UniqueFd file(fd);
    bool committed = false;
    auto cleanup = [&] {
      if (!committed) unlinkat(parent, tmp.c_str(), 0);
    };
    std::string buffer(kIoChunk, '\0');
    while (true) {
      la_ssize_t n = archive_read_data(a, buffer.data(), buffer.size());
      if (n < 0) {
        cleanup();
        return Error::DataLoss("read archive: " + ArchiveMessage(a));
      }
      if (n == 0) break;
      if (Status w = sys::WriteAll(fd, std::string_view(buffer.data(), static_cast<size_t>(n)));
          !w) {
        cleanup();
        return std::move(w).error().Wrap("write " + Quote(shown));
      }
      stats_.bytes += n;
    }
    // SECURITY: a file out of a sandbox never becomes setuid or setgid here.
    if (fchmod(fd, mode & 0777) != 0) {
      cleanup();
      return Error::Errno("chmod " + Quote(shown));
    }
    timespec times[2] = {{0, UTIME_OMIT},
                         {archive_entry_mtime(entry), archive_entry_mtime_nsec(entry)}};
    (void)futimens(fd, times);
    if (renameat(parent, tmp.c_str(), parent, name.c_str()) != 0) {
      Error error = Error::Errno("create " + Quote(shown));
      cleanup();
      return error;
    }
    committed = true;
    ++stats_.files;
    return Ok();
  }

  UniqueFd dest_;
  std::string dest_path_;
  const CopyOptions& options_;
  std::vector<Dir> dirs_;
  CopyStats stats_;
};

// Where an archive goes on the host, decided by its first entry.
struct Placement {
  std::string dir;   // extract into this directory
  std::string from;  // the archive's top component ("" for contents)...
  std::string to;    // ... is renamed to this ("" = kept)
};

std::string TrimSlashes(const std::string& path) {
  std::string out = path;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

Result<Placement> Place(const std::string& host_path, const std::string& top, bool top_is_dir) {
  struct stat st {};
  bool exists = stat(host_path.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) return Error::Errno("stat " + Quote(host_path));
  bool slash = EndsWith(host_path, "/");
  Placement p;
  p.from = top;
  if (exists && S_ISDIR(st.st_mode)) {
    p.dir = host_path;
    return p;
  }
  if (exists) {
    if (top.empty() || top_is_dir) {
      return Error::FailedPrecondition("cannot copy a directory onto the file " + Quote(host_path));
    }
    p.dir = sys::DirName(host_path);
    p.to = sys::BaseName(host_path);
    return p;
  }
  // Only the destination itself may be made, never the directories above it: a mistyped parent
  // would otherwise become a new tree somewhere unexpected.
  std::string trimmed = TrimSlashes(host_path);
  std::string parent = sys::DirName(trimmed);
  struct stat parent_st {};
  if (stat(parent.c_str(), &parent_st) != 0 || !S_ISDIR(parent_st.st_mode)) {
    return Error(Code::kNotFound,
                 "the directory " + Quote(parent) + " does not exist on this machine", ENOENT);
  }
  if (top.empty() || slash) {
    if (mkdir(trimmed.c_str(), 0755) != 0 && errno != EEXIST) {
      return Error::Errno("mkdir " + Quote(trimmed));
    }
    p.dir = trimmed;
    return p;
  }
  p.dir = parent;
  p.to = sys::BaseName(trimmed);
  return p;
}

uint64_t ParseOctal(std::string_view field) {
  uint64_t value = 0;
  for (char c : field) {
    if (c == '\0' || c == ' ') {
      if (value > 0) break;
      continue;
    }
    if (c < '0' || c > '7') break;
    value = value * 8 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

Status WriteHostTree(const std::string& path, const std::string& top, bool follow_top,
                     const CopyOptions& options, const ChunkWriter& write, CopyStats* stats) {
  ArchivePtr a(archive_write_new(), archive_write_free);
  archive_write_set_format_pax_restricted(a.get());
  archive_write_set_bytes_per_block(a.get(), 0);
  WriteSink sink;
  sink.write = &write;
  if (archive_write_open(a.get(), &sink, nullptr, WriteCallback, nullptr) != ARCHIVE_OK) {
    return Error::Internal("write archive: " + ArchiveMessage(a.get()));
  }
  CopyStats local;
  TreeArchiver archiver(a.get(), &sink, options, stats != nullptr ? stats : &local);
  SBX_TRY(archiver.Run(path, top, follow_top));
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    if (sink.error) return *sink.error;
    return Error::Internal("write archive: " + ArchiveMessage(a.get()));
  }
  return Ok();
}

Result<CopyStats> ExtractToHost(const std::function<bool(std::string*)>& next,
                                const std::string& host_path, const CopyOptions& options) {
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_format_tar(a.get());
  ReadSource source;
  source.next = &next;
  if (archive_read_open(a.get(), &source, nullptr, ReadCallback, nullptr) != ARCHIVE_OK) {
    return Error::DataLoss("read archive: " + ArchiveMessage(a.get()));
  }
  std::optional<Placement> placement;
  std::unique_ptr<HostWriter> writer;
  archive_entry* entry = nullptr;
  while (true) {
    int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) return Error::DataLoss("read archive: " + ArchiveMessage(a.get()));
    const char* raw = archive_entry_pathname(entry);
    SBX_ASSIGN_OR_RETURN(std::string rel,
                         sys::CleanEntryName(raw != nullptr ? raw : "", sys::kArchiveEntryRules));
    if (!placement) {
      std::string top = FirstComponent(rel);
      bool top_is_dir = archive_entry_filetype(entry) == AE_IFDIR || rel != top;
      SBX_ASSIGN_OR_RETURN(placement, Place(host_path, top, top_is_dir));
      SBX_ASSIGN_OR_RETURN(UniqueFd dest,
                           sys::Open(placement->dir, O_PATH | O_DIRECTORY | O_CLOEXEC));
      writer = std::make_unique<HostWriter>(std::move(dest), placement->dir, options);
    }
    if (!placement->to.empty() && FirstComponent(rel) == placement->from) {
      rel = placement->to + rel.substr(placement->from.size());
    }
    if (rel.empty()) continue;  // "." itself: the destination directory
    SBX_TRY(writer->Entry(a.get(), entry, rel));
  }
  if (!writer) return Error::DataLoss("the archive is empty");
  SBX_TRY(writer->Finish());
  return writer->stats();
}

Result<std::optional<char>> FirstEntryType(std::string_view data) {
  size_t offset = 0;
  while (data.size() >= offset + 512) {
    std::string_view header = data.substr(offset, 512);
    if (header.find_first_not_of('\0') == std::string_view::npos) {
      return Error::DataLoss("the archive is empty");
    }
    if (header.substr(257, 5) != "ustar") return Error::DataLoss("not a tar archive");
    char type = header[156];
    if (type != 'x' && type != 'g' && type != 'L' && type != 'K') {
      return std::optional<char>(type == '\0' ? '0' : type);
    }
    // An extended header: skip it and its data.
    uint64_t size = ParseOctal(header.substr(124, 12));
    if (size > (1u << 20)) return Error::DataLoss("oversized extended header");
    offset += 512 + (size + 511) / 512 * 512;
  }
  return std::optional<char>();
}

}  // namespace sbx::client

namespace sbx {

namespace {

enum class RemoteKind { kMissing, kDirectory, kOther };

bool FileNotFound(const Error& error) {
  return error.code() == Code::kNotFound && error.reason() == "CWSANDBOX_FILE_NOT_FOUND";
}

// What is at `path` in the sandbox: the first header of GetArchive(path), read and cancelled.
Result<char> RemoteType(const Client::Impl& impl, const std::string& id, const std::string& path) {
  client::ArchiveDownload download(impl, id, path);
  std::string data;
  std::string chunk;
  while (download.Next(&chunk)) {
    data += chunk;
    auto type = client::FirstEntryType(data);
    if (!type) return std::move(type).error();
    if (*type) {
      download.Cancel();
      (void)download.Finish();
      return **type;
    }
  }
  SBX_TRY(download.Finish());
  return Error::DataLoss("the daemon sent no archive for " + Quote(path));
}

Result<RemoteKind> Probe(const Client::Impl& impl, const std::string& id, const std::string& path) {
  // "<path>/." resolves through a symlink to a directory, like a destination should.
  auto dir = RemoteType(impl, id, EndsWith(path, "/") ? path + "." : path + "/.");
  if (dir) return *dir == '5' ? RemoteKind::kDirectory : RemoteKind::kOther;
  if (!FileNotFound(dir.error())) return std::move(dir).error();
  auto any = RemoteType(impl, id, path);
  if (any) return RemoteKind::kOther;
  if (FileNotFound(any.error())) return RemoteKind::kMissing;
  return std::move(any).error();
}

}  // namespace

Result<CopyStats> Client::CopyToSandbox(const std::string& id, const std::string& host_path,
                                        const std::string& sandbox_path,
                                        const CopyOptions& options) {
  if (host_path.empty()) return Error::InvalidArgument("empty source path");
  if (sandbox_path.empty()) return Error::InvalidArgument("empty destination path");
  std::string source = client::TrimSlashes(host_path);
  bool contents = source == "." || EndsWith(source, "/.");
  if (source == "/" || source == "/.") {
    return Error::InvalidArgument("copying this machine's whole root file system is not supported");
  }
  struct stat st {};
  if ((options.follow_links ? stat(source.c_str(), &st) : lstat(source.c_str(), &st)) != 0) {
    if (errno == ENOENT) {
      return Error(Code::kNotFound, Quote(host_path) + " does not exist on this machine", ENOENT);
    }
    return Error::Errno("stat " + Quote(host_path));
  }
  bool source_is_dir = S_ISDIR(st.st_mode);
  if (contents && !source_is_dir)
    return Error::InvalidArgument(Quote(host_path) + " is not a directory");
  SBX_ASSIGN_OR_RETURN(RemoteKind kind, Probe(*impl_, id, sandbox_path));
  std::string dir;
  std::string top;
  if (contents) {
    if (kind == RemoteKind::kOther) {
      return Error::FailedPrecondition("cannot copy a directory onto the file " +
                                       Quote(sandbox_path));
    }
    dir = sandbox_path;
  } else if (kind == RemoteKind::kDirectory ||
             (kind == RemoteKind::kMissing && EndsWith(sandbox_path, "/"))) {
    dir = sandbox_path;
    top = sys::BaseName(source);
  } else {
    if (kind == RemoteKind::kOther && source_is_dir) {
      return Error::FailedPrecondition("cannot copy a directory onto the file " +
                                       Quote(sandbox_path));
    }
    dir = sys::DirName(sandbox_path);
    top = sys::BaseName(sandbox_path);
  }
  return PutArchive(id, dir, [&](const ChunkWriter& write) {
    int64_t sent = 0;
    ChunkWriter counted = [&](std::string_view chunk) {
      sent += static_cast<int64_t>(chunk.size());
      if (options.on_progress) options.on_progress(sent);
      return write(chunk);
    };
    return client::WriteHostTree(source, top, options.follow_links, options,
                                 options.on_progress ? counted : write, nullptr);
  });
}

Result<CopyStats> Client::CopyFromSandbox(const std::string& id, const std::string& sandbox_path,
                                          const std::string& host_path,
                                          const CopyOptions& options) {
  if (sandbox_path.empty()) return Error::InvalidArgument("empty source path");
  if (host_path.empty()) return Error::InvalidArgument("empty destination path");
  client::ArchiveDownload download(*impl_, id, sandbox_path);
  bool ended = false;
  int64_t received = 0;
  auto extracted = client::ExtractToHost(
      [&](std::string* chunk) {
        if (download.Next(chunk)) {
          received += static_cast<int64_t>(chunk->size());
          if (options.on_progress) options.on_progress(received);
          return true;
        }
        ended = true;
        return false;
      },
      host_path, options);
  if (!extracted) {
    // A stream the daemon ended with an error looks truncated to the tar reader: its error is
    // the one that explains.
    if (!ended) download.Cancel();
    Status finished = download.Finish();
    if (ended && !finished) return std::move(finished).error();
    return std::move(extracted).error();
  }
  SBX_TRY(download.Finish());
  return *extracted;
}

}  // namespace sbx
