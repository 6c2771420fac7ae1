#include "src/image/layer_unpacker.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "src/base/strings.h"
#include "src/sys/entry_path.h"
#include "src/sys/fs.h"

namespace sbx::image {
namespace {

constexpr size_t kPathMax = 4096;
constexpr size_t kReadChunk = 256u << 10;
constexpr size_t kMaxXattrs = 128;
constexpr size_t kMaxXattrValue = 64u << 10;
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr uint64_t kResolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

Error Invalid(std::string_view path, const std::string& why) {
  return Error::InvalidArgument("layer entry " + Quote(path, 200) + ": " + why)
      .WithReason("SBX_IMAGE_LAYER_INVALID");
}

// A tar path as components below the layer root: a leading "/" is dropped (tar strips it too),
// ".." that would climb above the root is refused.
Result<std::vector<std::string>> CleanPath(std::string_view raw) {
  auto components = sys::CleanEntryPath(raw, sys::kLayerEntryRules);
  if (!components) return Invalid(raw.substr(0, 200), components.error().message());
  return components;
}

std::string JoinComponents(const std::vector<std::string>& comps, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += '/';
    out += comps[i];
  }
  return out;
}

bool XattrAllowed(std::string_view name) {
  // SECURITY: overlayfs reads trusted.overlay.* (opaque, redirect, metacopy) from lower layers;
  // only whiteout processing may set them. security.* (capabilities, SELinux labels) would be
  // interpreted by the host kernel and means nothing useful under no_new_privs.
  return StartsWith(name, "user.") && !StartsWith(name, "user.overlay.");
}

class Unpacker {
 public:
  Unpacker(const UnpackOptions& options, UniqueFd root) : opts_(options), root_(std::move(root)) {
    buf_.resize(kReadChunk);
  }
  ~Unpacker() {
    if (archive_) archive_read_free(archive_);
  }

  Result<UnpackStats> Run(int blob_fd) {
    SBX_ASSIGN_OR_RETURN(stream_, LayerStream::Open(blob_fd, opts_.limits));
    stats_.compression = stream_->compression();
    archive_ = archive_read_new();
    if (archive_ == nullptr) return Error::Internal("archive_read_new failed");
    archive_read_support_format_tar(archive_);
    archive_read_support_filter_none(archive_);
    if (archive_read_open(archive_, this, nullptr, &Unpacker::ReadCallback, nullptr) !=
        ARCHIVE_OK) {
      return ArchiveError("open layer");
    }
    while (true) {
      archive_entry* entry = nullptr;
      int rc = archive_read_next_header(archive_, &entry);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) return ArchiveError("read layer");
      if (++stats_.entries > opts_.max_entries) {
        return Error::ResourceExhausted("layer has more than " + std::to_string(opts_.max_entries) +
                                        " entries")
            .WithReason("SBX_IMAGE_TOO_LARGE");
      }
      SBX_TRY(HandleEntry(entry));
    }
    // The diff_id covers the whole decoded stream, including anything after the end-of-archive
    // blocks; it is read (and bounded) the same way whatever the archive says.
    while (true) {
      SBX_ASSIGN_OR_RETURN(size_t n, stream_->Read(buf_.data(), buf_.size()));
      if (n == 0) break;
    }
    stats_.diff_id = stream_->DiffId();
    stats_.decoded_bytes = stream_->decoded_bytes();
    if (!opts_.expected_diff_id.empty() && stats_.diff_id != opts_.expected_diff_id) {
      return Error::DataLoss("layer content does not match its diff_id: expected " +
                             opts_.expected_diff_id + ", got " + stats_.diff_id)
          .WithReason("SBX_IMAGE_DIGEST_MISMATCH");
    }
    SetDirectoryTimes();
    if (opts_.progress) opts_.progress(stream_->compressed_bytes());
    return stats_;
  }

 private:
  struct DirTime {
    std::string path;
    timespec mtime;
  };

  static la_ssize_t ReadCallback(archive* a, void* data, const void** out) {
    auto* self = static_cast<Unpacker*>(data);
    auto n = self->stream_->Read(self->buf_.data(), self->buf_.size());
    if (!n) {
      self->stream_error_ = std::move(n).error();
      archive_set_error(a, EIO, "layer stream failed");
      return -1;
    }
    *out = self->buf_.data();
    if (self->opts_.progress) {
      uint64_t done = self->stream_->compressed_bytes();
      if (done - self->last_progress_ >= (1u << 20)) {
        self->last_progress_ = done;
        self->opts_.progress(done);
      }
    }
    return static_cast<la_ssize_t>(*n);
  }

  Error ArchiveError(const std::string& what) {
    if (stream_error_) return *stream_error_;
    const char* msg = archive_error_string(archive_);
    return Error::DataLoss(what + ": invalid tar: " + (msg ? msg : "unknown error"))
        .WithReason("SBX_IMAGE_LAYER_CORRUPT");
  }

  uid_t MapUid(int64_t id) const {
    if (id < 0 || id >= static_cast<int64_t>(opts_.id_range)) return opts_.host_uid + 65534;
    return opts_.host_uid + static_cast<uint32_t>(id);
  }
  gid_t MapGid(int64_t id) const {
    if (id < 0 || id >= static_cast<int64_t>(opts_.id_range)) return opts_.host_gid + 65534;
    return opts_.host_gid + static_cast<uint32_t>(id);
  }

  // The directory holding the first `n` components, resolved inside the root; missing
  // directories are created (owned by the sandbox's root) when `create`. The descriptor is owned
  // by the cache; valid until the next call or InvalidateCache().
  Result<int> ParentFd(const std::vector<std::string>& comps, size_t n, bool create) {
    if (n == 0) return root_.get();
    std::string key = JoinComponents(comps, n);
    if (cache_fd_ && key == cache_key_) return cache_fd_.get();
    InvalidateCache();
    auto fd = sys::OpenAt2(root_.get(), key, O_PATH | O_DIRECTORY, 0, kResolve);
    if (!fd && fd.error().sys_errno() == ENOENT && create) {
      UniqueFd current;
      for (size_t i = 0; i < n; ++i) {
        auto next = sys::OpenAt2(root_.get(), JoinComponents(comps, i + 1), O_PATH | O_DIRECTORY, 0,
                                 kResolve);
        if (next) {
          current = std::move(*next);
          continue;
        }
        if (next.error().sys_errno() != ENOENT) return std::move(next).error();
        int parent = i == 0 ? root_.get() : current.get();
        const char* name = comps[i].c_str();
        if (::mkdirat(parent, name, 0755) != 0) {
          if (errno == EEXIST) {
            return Invalid(JoinComponents(comps, i + 1),
                           "exists but does not resolve to a directory");
          }
          return Error::Errno("mkdir " + Quote(JoinComponents(comps, i + 1)));
        }
        if (opts_.map_ids &&
            ::fchownat(parent, name, opts_.host_uid, opts_.host_gid, AT_SYMLINK_NOFOLLOW) != 0) {
          return Error::Errno("chown " + Quote(JoinComponents(comps, i + 1)));
        }
        SBX_ASSIGN_OR_RETURN(current, sys::OpenAt(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW));
      }
      fd = std::move(current);
    }
    if (!fd) {
      if (fd.error().sys_errno() == ENOTDIR || fd.error().sys_errno() == ELOOP) {
        return Invalid(key, "a parent is not a directory");
      }
      return std::move(fd).error().Wrap("resolve " + Quote(key));
    }
    cache_key_ = std::move(key);
    cache_fd_ = std::move(*fd);
    return cache_fd_.get();
  }

  void InvalidateCache() {
    cache_fd_.reset();
    cache_key_.clear();
  }

  // Removes whatever is at `name` (a directory with its contents), never following symlinks.
  Status RemoveExisting(int parent, const std::string& name) {
    struct stat st {};
    if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return Ok();
      return Error::Errno("stat " + Quote(name));
    }
    // The cached descriptor is the parent of the current entry, never inside what is removed.
    return sys::RemoveTreeAt(parent, name);
  }

  Status ApplyMetadata(int fd, archive_entry* e) {
    if (opts_.map_ids) {
      if (::fchown(fd, MapUid(archive_entry_uid(e)), MapGid(archive_entry_gid(e))) != 0) {
        return Error::Errno("chown");
      }
    }
    // After chown, which clears setuid/setgid.
    if (::fchmod(fd, archive_entry_mode(e) & 07777) != 0) return Error::Errno("chmod");
    archive_entry_xattr_reset(e);
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    size_t count = 0;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
      if (++count > kMaxXattrs) return Error::InvalidArgument("too many xattrs");
      if (name == nullptr || !XattrAllowed(name) || size > kMaxXattrValue) {
        ++stats_.skipped;
        continue;
      }
      if (::fsetxattr(fd, name, value, size, 0) != 0) {
        if (errno == ENOTSUP || errno == EPERM || errno == E2BIG || errno == ERANGE) {
          ++stats_.skipped;
          continue;
        }
        return Error::Errno("setxattr " + Quote(name, 64));
      }
    }
    return Ok();
  }

  static timespec MtimeOf(archive_entry* e) {
    timespec ts{};
    if (archive_entry_mtime_is_set(e)) {
      ts.tv_sec = archive_entry_mtime(e);
      ts.tv_nsec = archive_entry_mtime_nsec(e);
      if (ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000) ts.tv_nsec = 0;
    }
    return ts;
  }

  Status HandleEntry(archive_entry* e) {
    const char* raw = archive_entry_pathname(e);
    if (raw == nullptr) raw = archive_entry_pathname_utf8(e);
    if (raw == nullptr) return Invalid("", "entry without a name");
    std::string_view path(raw);
    SBX_ASSIGN_OR_RETURN(std::vector<std::string> comps, CleanPath(path));
    Status status = HandleCleanEntry(e, path, comps);
    if (!status && status.error().reason().empty()) {
      return std::move(status).error().Wrap("layer entry " + Quote(path, 200));
    }
    return status;
  }

  Status HandleCleanEntry(archive_entry* e, std::string_view path,
                          const std::vector<std::string>& comps) {
    const char* hardlink = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);
    if (comps.empty()) {
      if (hardlink == nullptr && type == AE_IFDIR) {
        SBX_ASSIGN_OR_RETURN(UniqueFd fd, sys::OpenAt(root_.get(), ".", O_RDONLY | O_DIRECTORY));
        return ApplyMetadata(fd.get(), e);
      }
      return Invalid(path, "names the layer root");
    }
    const std::string& base = comps.back();
    if (StartsWith(base, kWhiteoutPrefix)) return HandleWhiteout(path, comps);
    if (hardlink != nullptr) return HandleHardlink(e, path, comps, hardlink);
    switch (type) {
      case AE_IFDIR:
        return HandleDirectory(e, comps);
      case AE_IFREG:
        return HandleFile(e, comps);
      case AE_IFLNK:
        return HandleSymlink(e, path, comps);
      case AE_IFIFO:
        return HandleFifo(e, comps);
      default:
        // SECURITY: no device nodes from images (they would be usable inside the sandbox if the
        // mount allowed devices); sockets are meaningless in a layer.
        ++stats_.skipped;
        return Ok();
    }
  }

  Status HandleWhiteout(std::string_view path, const std::vector<std::string>& comps) {
    const std::string& base = comps.back();
    SBX_ASSIGN_OR_RETURN(int parent, ParentFd(comps, comps.size() - 1, /*create=*/true));
    if (base == kOpaqueMarker) {
      SBX_ASSIGN_OR_RETURN(UniqueFd dir, sys::OpenAt(parent, ".", O_RDONLY | O_DIRECTORY));
      if (::fsetxattr(dir.get(), opts_.opaque_xattr.c_str(), "y", 1, 0) != 0) {
        return Error::Errno("set " + opts_.opaque_xattr);
      }
      return Ok();
    }
    if (StartsWith(base, kWhiteoutMetaPrefix)) {
      ++stats_.skipped;  // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs)
      return Ok();
    }
    std::string name = base.substr(kWhiteoutPrefix.size());
    if (name.empty() || name == "." || name == "..") {
      return Invalid(path, "whiteout of " + Quote(name) + " is not allowed");
    }
    SBX_TRY(RemoveExisting(parent, name));
    SBX_ASSIGN_OR_RETURN(parent, ParentFd(comps, comps.size() - 1, /*create=*/true));
    if (::mknodat(parent, name.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0) {
      return Error::Errno("create whiteout " + Quote(name));
    }
    if (opts_.map_ids && ::fchownat(parent, name.c_str(), opts_.host_uid, opts_.host_gid,
                                    AT_SYMLINK_NOFOLLOW) != 0) {
      return Error::Errno("chown whiteout " + Quote(name));
    }
    return Ok();
  }

  Status HandleDirectory(archive_entry* e, const std::vector<std::string>& comps) {
    SBX_ASSIGN_OR_RETURN(int parent, ParentFd(comps, comps.size() - 1, /*create=*/true));
    const char* name = comps.back().c_str();
    struct stat st {};
    bool exists = ::fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (exists && !S_ISDIR(st.st_mode)) {
      SBX_TRY(RemoveExisting(parent, comps.back()));
      exists = false;
    }
    if (!exists && ::mkdirat(parent, name, 0700) != 0) return Error::Errno("mkdir");
    SBX_ASSIGN_OR_RETURN(UniqueFd fd,
                         sys::OpenAt(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    SBX_TRY(ApplyMetadata(fd.get(), e));
    dir_times_.push_back({JoinComponents(comps, comps.size()), MtimeOf(e)});
    return Ok();
  }

  Status HandleFile(archive_entry* e, const std::vector<std::string>& comps) {
    SBX_ASSIGN_OR_RETURN(int parent, ParentFd(comps, comps.size() - 1, /*create=*/true));
    SBX_TRY(RemoveExisting(parent, comps.back()));
    SBX_ASSIGN_OR_RETURN(parent, ParentFd(comps, comps.size() - 1, /*create=*/true));
    SBX_ASSIGN_OR_RETURN(UniqueFd fd, sys::OpenAt(parent, comps.back(),
                                                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
    int64_t declared = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    if (declared < 0 || static_cast<uint64_t>(declared) > opts_.limits.max_bytes) {
      return Error::ResourceExhausted("file size " + std::to_string(declared) +
                                      " exceeds the layer limit")
          .WithReason("SBX_IMAGE_TOO_LARGE");
    }
    int64_t end = 0;
    while (true) {
      const void* block = nullptr;
      size_t len = 0;
      la_int64_t offset = 0;
      int rc = archive_read_data_block(archive_, &block, &len, &offset);
      if (rc == ARCHIVE_EOF) break;
      if (rc < ARCHIVE_WARN) return ArchiveError("read file data");
      if (offset < 0 || offset + static_cast<int64_t>(len) > declared) {
        return Invalid(JoinComponents(comps, comps.size()), "data beyond the declared size");
      }
      const char* p = static_cast<const char*>(block);
      size_t left = len;
      int64_t at = offset;
      while (left > 0) {
        ssize_t n = ::pwrite(fd.get(), p, left, at);
        if (n < 0) {
          if (errno == EINTR) continue;
          return Error::Errno("write");
        }
        p += n;
        left -= static_cast<size_t>(n);
        at += n;
      }
      end = std::max<int64_t>(end, offset + static_cast<int64_t>(len));
    }
    if (declared > end && ::ftruncate(fd.get(), declared) != 0) return Error::Errno("truncate");
    stats_.file_bytes += static_cast<uint64_t>(declared);
    SBX_TRY(ApplyMetadata(fd.get(), e));
    timespec times[2] = {MtimeOf(e), MtimeOf(e)};
    (void)::futimens(fd.get(), times);
    return Ok();
  }

  Status HandleSymlink(archive_entry* e, std::string_view path,
                       const std::vector<std::string>& comps) {
    const char* target = archive_entry_symlink(e);
    if (target == nullptr) target = archive_entry_symlink_utf8(e);
    if (target == nullptr || target[0] == '\0') return Invalid(path, "symlink without a target");
    if (strlen(target) >= kPathMax) return Invalid(path, "symlink target too long");
    SBX_ASSIGN_OR_RETURN(int parent, ParentFd(comps, comps.size() - 1, /*create=*/true));
    SBX_TRY(RemoveExisting(parent, comps.back()));
    SBX_ASSIGN_OR_RETURN(parent, ParentFd(comps, comps.size() - 1, /*create=*/true));
    const char* name = comps.back().c_str();
    // SECURITY: the link is stored as data; nothing here ever follows it outside RESOLVE_IN_ROOT.
    if (::symlinkat(target, parent, name) != 0) return Error::Errno("symlink");
    if (opts_.map_ids && ::fchownat(parent, name, MapUid(archive_entry_uid(e)),
                                    MapGid(archive_entry_gid(e)), AT_SYMLINK_NOFOLLOW) != 0) {
      return Error::Errno("chown symlink");
    }
    timespec times[2] = {MtimeOf(e), MtimeOf(e)};
    (void)::utimensat(parent, name, times, AT_SYMLINK_NOFOLLOW);
    return Ok();
  }

  Status HandleHardlink(archive_entry* e, std::string_view path,
                        const std::vector<std::string>& comps, const char* link) {
    (void)e;
    SBX_ASSIGN_OR_RETURN(std::vector<std::string> target, CleanPath(link));
    if (target.empty()) return Invalid(path, "hardlink to the layer root");
    // The target's directory is resolved inside the root; the target itself is never followed
    // (linkat without AT_SYMLINK_FOLLOW links a symlink, not what it points to).
    std::string target_dir = JoinComponents(target, target.size() - 1);
    auto target_parent = sys::OpenAt2(root_.get(), target_dir.empty() ? "." : target_dir,
                                      O_PATH | O_DIRECTORY, 0, kResolve);
    if (!target_parent) return Invalid(path, "hardlink target " + Quote(link) + " does not exist");
    struct stat tst {};
    if (::fstatat(target_parent->get(), target.back().c_str(), &tst, AT_SYMLINK_NOFOLLOW) != 0) {
      return Invalid(path, "hardlink target " + Quote(link) + " does not exist");
    }
    if (S_ISDIR(tst.st_mode)) return Invalid(path, "hardlink to a directory");
    SBX_ASSIGN_OR_RETURN(int parent, ParentFd(comps, comps.size() - 1, /*create=*/true));
    struct stat st {};
    if (::fstatat(parent, comps.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_dev == tst.st_dev && st.st_ino == tst.st_ino) {
      return Ok();  // already the same file
    }
    SBX_TRY(RemoveExisting(parent, comps.back()));
    SBX_ASSIGN_OR_RETURN(parent, ParentFd(comps, comps.size() - 1, /*create=*/true));
    if (::linkat(target_parent->get(), target.back().c_str(), parent, comps.back().c_str(), 0) !=
        0) {
      if (errno == ENOENT) return Invalid(path, "hardlink target " + Quote(link) + " vanished");
      return Error::Errno("link to " + Quote(link));
    }
    return Ok();
  }

  Status HandleFifo(archive_entry* e, const std::vector<std::string>& comps) {
    SBX_ASSIGN_OR_RETURN(int parent, ParentFd(comps, comps.size() - 1, /*create=*/true));
    SBX_TRY(RemoveExisting(parent, comps.back()));
    SBX_ASSIGN_OR_RETURN(parent, ParentFd(comps, comps.size() - 1, /*create=*/true));
    const char* name = comps.back().c_str();
    if (::mkfifoat(parent, name, 0600) != 0) return Error::Errno("mkfifo");
    // O_PATH: opening a FIFO for reading would block; chown/chmod through the path descriptor.
    SBX_ASSIGN_OR_RETURN(UniqueFd fd, sys::OpenAt(parent, name, O_PATH | O_NOFOLLOW));
    if (opts_.map_ids && ::fchownat(fd.get(), "", MapUid(archive_entry_uid(e)),
                                    MapGid(archive_entry_gid(e)), AT_EMPTY_PATH) != 0) {
      return Error::Errno("chown fifo");
    }
    std::string proc = "/proc/self/fd/" + std::to_string(fd.get());
    if (::chmod(proc.c_str(), archive_entry_mode(e) & 07777) != 0)
      return Error::Errno("chmod fifo");
    return Ok();
  }

  void SetDirectoryTimes() {
    for (const auto& d : dir_times_) {
      auto fd = sys::OpenAt2(root_.get(), d.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, kResolve);
      if (!fd) continue;
      timespec times[2] = {d.mtime, d.mtime};
      (void)::futimens(fd->get(), times);
    }
  }

  const UnpackOptions& opts_;
  UniqueFd root_;
  archive* archive_ = nullptr;
  std::unique_ptr<LayerStream> stream_;
  std::optional<Error> stream_error_;
  std::vector<char> buf_;
  UnpackStats stats_;
  uint64_t last_progress_ = 0;
  std::string cache_key_;
  UniqueFd cache_fd_;
  std::vector<DirTime> dir_times_;
};

}  // namespace

Result<UnpackStats> UnpackLayer(int blob_fd, const std::string& dest_dir,
                                const UnpackOptions& options) {
  SBX_ASSIGN_OR_RETURN(UniqueFd root, sys::Open(dest_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW));
  if (options.map_ids &&
      ::fchownat(root.get(), "", options.host_uid, options.host_gid, AT_EMPTY_PATH) != 0) {
    return Error::Errno("chown " + Quote(dest_dir));
  }
  Unpacker unpacker(options, std::move(root));
  return unpacker.Run(blob_fd);
}

}  // namespace sbx::image
