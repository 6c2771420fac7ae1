#include "src/agent/init/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::agent {

namespace {

Error FileError(Error error, const std::string& path) {
  std::string reason = "CWSANDBOX_FILE_IO_FAILED";
  switch (error.sys_errno()) {
    case ENOENT:
    case ENOTDIR:
      reason = "CWSANDBOX_FILE_NOT_FOUND";
      error.WithCode(Code::kNotFound);
      break;
    case EISDIR:
      reason = "CWSANDBOX_FILE_IS_DIRECTORY";
      error.WithCode(Code::kInvalidArgument);
      break;
    case EACCES:
    case EPERM:
    case EROFS:
    case EBUSY:  // a read-only mounted file cannot be replaced
      reason = "CWSANDBOX_FILE_PERMISSION_DENIED";
      error.WithCode(Code::kPermissionDenied);
      break;
    default:
      break;
  }
  return std::move(error).WithReason(reason).WithMetadata("filepath", path);
}

FileType TypeOf(mode_t mode) {
  if (S_ISREG(mode)) return FileType::kRegular;
  if (S_ISDIR(mode)) return FileType::kDirectory;
  if (S_ISLNK(mode)) return FileType::kSymlink;
  return FileType::kOther;
}

FileInfo InfoOf(const std::string& path, const struct stat& st) {
  FileInfo info;
  info.path = path;
  info.type = TypeOf(st.st_mode);
  info.size = static_cast<uint64_t>(st.st_size);
  info.mode = st.st_mode & 07777;
  info.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  info.uid = st.st_uid;
  info.gid = st.st_gid;
  return info;
}

Result<UniqueFd> OpenPath(int root_fd, const std::string& path, uint64_t flags) {
  auto fd = sys::OpenInRoot(root_fd, path, flags);
  if (!fd) return FileError(std::move(fd).error(), path);
  return fd;
}

// Opens the directory `dir` inside the root, creating missing components when `create`.
Result<UniqueFd> OpenDirectory(int root_fd, const std::string& dir, bool create,
                               const std::string& for_path) {
  auto fd = sys::OpenInRoot(root_fd, dir, O_PATH | O_DIRECTORY);
  if (fd || !create || fd.error().sys_errno() != ENOENT) {
    if (!fd) return FileError(std::move(fd).error(), for_path);
    return fd;
  }
  std::string current = "/";
  for (const auto& part : Split(dir, '/')) {
    if (part.empty() || part == ".") continue;
    std::string next = sys::JoinPath(current, part);
    auto next_fd = sys::OpenInRoot(root_fd, next, O_PATH | O_DIRECTORY);
    if (!next_fd && next_fd.error().sys_errno() == ENOENT && part != "..") {
      SBX_ASSIGN_OR_RETURN(UniqueFd parent, OpenPath(root_fd, current, O_PATH | O_DIRECTORY));
      if (mkdirat(parent.get(), part.c_str(), 0755) != 0 && errno != EEXIST) {
        return FileError(Error::Errno("mkdir " + Quote(next)), for_path);
      }
      next_fd = sys::OpenInRoot(root_fd, next, O_PATH | O_DIRECTORY);
    }
    if (!next_fd) return FileError(std::move(next_fd).error(), for_path);
    current = next;
  }
  return OpenPath(root_fd, dir, O_PATH | O_DIRECTORY);
}

}  // namespace

Result<std::string> AbsolutePath(const std::string& cwd, const std::string& path) {
  if (path.empty()) return Error::InvalidArgument("empty path");
  if (path.find('\0') != std::string::npos)
    return Error::InvalidArgument("path contains a NUL byte");
  if (path.size() >= PATH_MAX) return Error::InvalidArgument("path longer than PATH_MAX");
  for (const auto& part : Split(path, '/')) {
    if (part.size() > NAME_MAX) {
      return Error::InvalidArgument("path component longer than NAME_MAX: " + Quote(part, 64));
    }
  }
  if (path[0] == '/') return path;
  return sys::JoinPath(cwd.empty() ? "/" : cwd, path);
}

Result<std::pair<UniqueFd, FileInfo>> OpenForRead(int root_fd, const std::string& path) {
  // SECURITY: open O_PATH first and inspect: opening a FIFO would block and a device could have
  // side effects. Only regular files are reopened for reading (through our own fd, which is not
  // a path the sandbox can influence).
  SBX_ASSIGN_OR_RETURN(UniqueFd opath, OpenPath(root_fd, path, O_PATH));
  struct stat st {};
  if (fstat(opath.get(), &st) != 0) return FileError(Error::Errno("stat"), path);
  if (S_ISDIR(st.st_mode)) {
    return FileError(Error::FromErrno(EISDIR, Quote(path) + " is a directory"), path);
  }
  if (!S_ISREG(st.st_mode)) {
    return Error::InvalidArgument(Quote(path) + " is not a regular file")
        .WithReason("CWSANDBOX_FILE_IO_FAILED")
        .WithMetadata("filepath", path);
  }
  std::string proc_path = "/proc/self/fd/" + std::to_string(opath.get());
  int fd = open(proc_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return FileError(Error::Errno("open " + Quote(path)), path);
  return std::make_pair(UniqueFd(fd), InfoOf(path, st));
}

Result<FileInfo> StatPath(int root_fd, const std::string& path) {
  SBX_ASSIGN_OR_RETURN(UniqueFd opath, OpenPath(root_fd, path, O_PATH | O_NOFOLLOW));
  struct stat st {};
  if (fstat(opath.get(), &st) != 0) return FileError(Error::Errno("stat"), path);
  return InfoOf(path, st);
}

Result<DirEntries> ListDirectory(int root_fd, const std::string& path, size_t max_entries) {
  SBX_ASSIGN_OR_RETURN(UniqueFd dir_fd, OpenPath(root_fd, path, O_RDONLY | O_DIRECTORY));
  DIR* dir = fdopendir(dir_fd.get());
  if (dir == nullptr) return FileError(Error::Errno("opendir"), path);
  dir_fd.release();
  DirEntries out;
  while (dirent* entry = readdir(dir)) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    if (out.entries.size() >= max_entries) {
      out.truncated = true;
      break;
    }
    DirEntry e;
    e.name = entry->d_name;
    struct stat st {};
    if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      e.type = TypeOf(st.st_mode);
      e.size = static_cast<uint64_t>(st.st_size);
      e.mode = st.st_mode & 07777;
    }
    out.entries.push_back(std::move(e));
  }
  closedir(dir);
  return out;
}

Result<FileInfo> MakeDirectory(int root_fd, const std::string& path, uint32_t mode,
                               bool make_parents, uid_t uid, gid_t gid) {
  std::string name = sys::BaseName(path);
  if (name.empty() || name == "/" || name == "." || name == "..") return StatPath(root_fd, path);
  SBX_ASSIGN_OR_RETURN(UniqueFd dir,
                       OpenDirectory(root_fd, sys::DirName(path), make_parents, path));
  struct stat st {};
  if (mkdirat(dir.get(), name.c_str(), 0700) == 0) {
    // Owner and mode are set through a descriptor of the new directory; O_NOFOLLOW refuses a
    // symlink swapped in by a process of the sandbox in between.
    int fd = openat(dir.get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return FileError(Error::Errno("open " + Quote(path)), path);
    UniqueFd created(fd);
    if (fchown(fd, uid, gid) != 0 && errno != EPERM) {
      return FileError(Error::Errno("chown " + Quote(path)), path);
    }
    // SECURITY: never setuid/setgid bits from a request.
    if (fchmod(fd, mode & 01777) != 0) return FileError(Error::Errno("chmod " + Quote(path)), path);
    if (fstat(fd, &st) != 0) return FileError(Error::Errno("stat " + Quote(path)), path);
    return InfoOf(path, st);
  }
  if (errno != EEXIST) return FileError(Error::Errno("mkdir " + Quote(path)), path);
  if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return FileError(Error::Errno("stat " + Quote(path)), path);
  }
  return InfoOf(path, st);
}

Status MakeSymlink(int root_fd, const std::string& path, const std::string& target,
                   bool make_parents, uid_t uid, gid_t gid) {
  if (target.empty() || target.size() >= PATH_MAX || target.find('\0') != std::string::npos) {
    return Error::InvalidArgument("invalid symlink target for " + Quote(path))
        .WithReason("CWSANDBOX_FILE_IO_FAILED")
        .WithMetadata("filepath", path);
  }
  std::string name = sys::BaseName(path);
  if (name.empty() || name == "/" || name == "." || name == ".." || path.back() == '/') {
    return FileError(Error::FromErrno(EISDIR, Quote(path) + " names a directory"), path);
  }
  SBX_ASSIGN_OR_RETURN(UniqueFd dir,
                       OpenDirectory(root_fd, sys::DirName(path), make_parents, path));
  struct stat existing {};
  if (fstatat(dir.get(), name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(existing.st_mode)) {
    return FileError(Error::FromErrno(EISDIR, Quote(path) + " is a directory"), path);
  }
  // Created under a temporary name and renamed over the old entry: never a moment without one.
  std::string tmp = ".sbx-link-" + RandomHex(8);
  if (symlinkat(target.c_str(), dir.get(), tmp.c_str()) != 0) {
    return FileError(Error::Errno("symlink " + Quote(path)), path);
  }
  if (fchownat(dir.get(), tmp.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0 && errno != EPERM) {
    Error error = Error::Errno("chown " + Quote(path));
    unlinkat(dir.get(), tmp.c_str(), 0);
    return FileError(std::move(error), path);
  }
  if (renameat(dir.get(), tmp.c_str(), dir.get(), name.c_str()) != 0) {
    Error error = Error::Errno("rename into " + Quote(path));
    unlinkat(dir.get(), tmp.c_str(), 0);
    return FileError(std::move(error), path);
  }
  return Ok();
}

Result<std::string> ReadSymlink(int root_fd, const std::string& path) {
  SBX_ASSIGN_OR_RETURN(UniqueFd link, OpenPath(root_fd, path, O_PATH | O_NOFOLLOW));
  struct stat st {};
  if (fstat(link.get(), &st) != 0) return FileError(Error::Errno("stat"), path);
  if (!S_ISLNK(st.st_mode)) {
    return Error::InvalidArgument(Quote(path) + " is not a symbolic link")
        .WithReason("CWSANDBOX_FILE_IO_FAILED")
        .WithMetadata("filepath", path);
  }
  char buf[PATH_MAX];
  // An empty name reads the link the O_PATH descriptor itself refers to.
  ssize_t n = readlinkat(link.get(), "", buf, sizeof buf);
  if (n < 0) return FileError(Error::Errno("readlink " + Quote(path)), path);
  if (static_cast<size_t>(n) >= sizeof buf) {
    return Error::InvalidArgument("target of " + Quote(path) + " is too long")
        .WithReason("CWSANDBOX_FILE_IO_FAILED")
        .WithMetadata("filepath", path);
  }
  return std::string(buf, static_cast<size_t>(n));
}

PendingWrite::~PendingWrite() {
  if (!committed_ && dir_ && !tmp_name_.empty()) unlinkat(dir_.get(), tmp_name_.c_str(), 0);
}

Result<PendingWrite> PendingWrite::Begin(int root_fd, const std::string& path, uint32_t mode,
                                         bool make_parents, uid_t default_uid, gid_t default_gid) {
  std::string name = sys::BaseName(path);
  if (name.empty() || name == "/" || name == "." || name == ".." || path.back() == '/') {
    return FileError(Error::FromErrno(EISDIR, Quote(path) + " names a directory"), path);
  }
  PendingWrite w;
  w.path_ = path;
  w.final_name_ = name;
  SBX_ASSIGN_OR_RETURN(w.dir_, OpenDirectory(root_fd, sys::DirName(path), make_parents, path));
  uid_t uid = default_uid;
  gid_t gid = default_gid;
  struct stat existing {};
  if (fstatat(w.dir_.get(), name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(existing.st_mode)) {
      return FileError(Error::FromErrno(EISDIR, Quote(path) + " is a directory"), path);
    }
    if (S_ISREG(existing.st_mode)) {
      // Replacing a file keeps its owner and permissions.
      uid = existing.st_uid;
      gid = existing.st_gid;
      mode = existing.st_mode & 07777;
    }
  }
  // SECURITY: never leave setuid/setgid bits on a file written through the API.
  mode &= 01777;
  w.tmp_name_ = ".sbx-write-" + RandomHex(8);
  int fd = openat(w.dir_.get(), w.tmp_name_.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    w.tmp_name_.clear();
    return FileError(Error::Errno("create " + Quote(path)), path);
  }
  w.file_.reset(fd);
  if (fchown(fd, uid, gid) != 0 && errno != EPERM) {
    return FileError(Error::Errno("chown " + Quote(path)), path);
  }
  if (fchmod(fd, mode) != 0) return FileError(Error::Errno("chmod " + Quote(path)), path);
  return w;
}

Status PendingWrite::Write(std::string_view data) {
  auto written = sys::WriteAll(file_.get(), data);
  if (!written) return FileError(std::move(written).error().Wrap("write " + Quote(path_)), path_);
  return Ok();
}

Status PendingWrite::Commit() {
  file_.reset();
  if (renameat(dir_.get(), tmp_name_.c_str(), dir_.get(), final_name_.c_str()) != 0) {
    return FileError(Error::Errno("rename into " + Quote(path_)), path_);
  }
  committed_ = true;
  return Ok();
}

}  // namespace sbx::agent
