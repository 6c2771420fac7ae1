#include "src/sys/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "src/base/strings.h"

namespace sbx::sys {

Result<UniqueFd> Open(const std::string& path, int flags, mode_t mode) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return Error::Errno("open " + Quote(path));
  return UniqueFd(fd);
}

Result<UniqueFd> OpenAt(int dirfd, const std::string& path, int flags, mode_t mode) {
  int fd = ::openat(dirfd, path.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return Error::Errno("openat " + Quote(path));
  return UniqueFd(fd);
}

Result<UniqueFd> OpenAt2(int dirfd, const std::string& path, uint64_t flags, uint64_t mode,
                         uint64_t resolve) {
  open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = resolve;
  for (int attempt = 0; attempt < 32; ++attempt) {
    // JUSTIFICATION: glibc 2.36 has no openat2 wrapper.
    long fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno != EAGAIN && errno != EINTR) break;
  }
  return Error::Errno("openat2 " + Quote(path));
}

Result<UniqueFd> OpenInRoot(int root_fd, const std::string& path, uint64_t flags, uint64_t mode) {
  // SECURITY: RESOLVE_IN_ROOT clamps "..", absolute paths and absolute symlinks to root_fd;
  // RESOLVE_NO_MAGICLINKS refuses /proc/<pid>/{root,fd/N,exe}, which could name host objects.
  return OpenAt2(root_fd, path.empty() ? "." : path, flags, mode,
                 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

Result<std::string> ReadFd(int fd, size_t max_bytes) {
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("read");
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      return Error::ResourceExhausted("file larger than " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, Open(path, O_RDONLY));
  auto content = ReadFd(fd.get(), max_bytes);
  if (!content) return std::move(content).error().Wrap("read " + Quote(path));
  return content;
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Ok();
}

Status WriteKnob(const std::string& path, std::string_view content) {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, Open(path, O_WRONLY));
  // Kernel knobs take the whole value in one write; a short write is an error.
  ssize_t n = ::write(fd.get(), content.data(), content.size());
  if (n < 0) return Error::Errno("write " + Quote(content, 64) + " to " + Quote(path));
  return Ok();
}

Status WriteKnobAt(int dirfd, const std::string& name, std::string_view content) {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, OpenAt(dirfd, name, O_WRONLY));
  ssize_t n = ::write(fd.get(), content.data(), content.size());
  if (n < 0) return Error::Errno("write " + Quote(content, 64) + " to " + Quote(name));
  return Ok();
}

Status WriteFile(const std::string& path, std::string_view content, mode_t mode) {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, Open(path, O_WRONLY | O_CREAT | O_TRUNC, mode));
  SBX_TRY_CTX(WriteAll(fd.get(), content), "write " + Quote(path));
  return Ok();
}

Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode, bool sync) {
  std::string tmp = path + ".tmp-" + RandomHex(6);
  {
    SBX_ASSIGN_OR_RETURN(UniqueFd fd, Open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode));
    Status written = WriteAll(fd.get(), content);
    if (written && sync && ::fsync(fd.get()) != 0) written = Error::Errno("fsync");
    if (!written) {
      ::unlink(tmp.c_str());
      return std::move(written).error().Wrap("write " + Quote(tmp));
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = Error::Errno("rename " + Quote(tmp) + " to " + Quote(path));
    ::unlink(tmp.c_str());
    return e;
  }
  return Ok();
}

Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return Error::InvalidArgument("mkdir: empty path");
  std::string current;
  for (const auto& part : Split(path, '/')) {
    if (part.empty()) {
      if (current.empty()) current = "/";
      continue;
    }
    if (!current.empty() && current.back() != '/') current += '/';
    current += part;
    if (::mkdir(current.c_str(), mode) != 0 && errno != EEXIST) {
      return Error::Errno("mkdir " + Quote(current));
    }
  }
  return Ok();
}

namespace {

Status RemoveTreeOnDevice(int parent_fd, const char* name, dev_t dev, int depth) {
  if (depth > 4096) return Error::ResourceExhausted("directory tree too deep");
  struct stat st {};
  if (::fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Ok();
    return Error::Errno("stat " + Quote(name));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(parent_fd, name, 0) != 0 && errno != ENOENT) {
      return Error::Errno("unlink " + Quote(name));
    }
    return Ok();
  }
  if (st.st_dev != dev) {
    return Error::FailedPrecondition("refusing to remove " + Quote(name) +
                                     ": it is on another mount");
  }
  int fd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Error::Errno("open " + Quote(name));
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return Error::Errno("fdopendir " + Quote(name));
  }
  Status status;
  while (dirent* entry = ::readdir(dir)) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    status = RemoveTreeOnDevice(::dirfd(dir), entry->d_name, dev, depth + 1);
    if (!status) break;
  }
  ::closedir(dir);
  if (!status) return status;
  if (::unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return Error::Errno("rmdir " + Quote(name));
  }
  return Ok();
}

}  // namespace

Status RemoveTreeAt(int parent_fd, const std::string& name) {
  struct stat st {};
  if (::fstatat(parent_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return Ok();
    return Error::Errno("stat " + Quote(name));
  }
  return RemoveTreeOnDevice(parent_fd, name.c_str(), st.st_dev, 0);
}

Status RemoveTree(const std::string& path) {
  std::string parent = DirName(path);
  UniqueFd parent_fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent_fd) {
    if (errno == ENOENT) return Ok();
    return Error::Errno("open " + Quote(parent));
  }
  SBX_TRY_CTX(RemoveTreeAt(parent_fd.get(), BaseName(path)), "remove " + Quote(path));
  return Ok();
}

Result<FilesystemSpace> SpaceOf(const std::string& path) {
  struct statvfs fs {};
  if (::statvfs(path.c_str(), &fs) != 0) return Error::Errno("statvfs " + Quote(path));
  return FilesystemSpace{static_cast<uint64_t>(fs.f_blocks) * fs.f_frsize,
                         static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize};
}

Result<uint64_t> AvailableMemory(const std::string& meminfo) {
  SBX_ASSIGN_OR_RETURN(std::string text, ReadFile(meminfo, 64 << 10));
  static constexpr std::string_view kKey = "MemAvailable:";
  size_t at = text.find(kKey);
  if (at == std::string::npos || (at > 0 && text[at - 1] != '\n')) {
    return Error::NotFound(meminfo + " has no MemAvailable");
  }
  const char* p = text.c_str() + at + kKey.size();
  char* end = nullptr;
  errno = 0;
  unsigned long long kib = std::strtoull(p, &end, 10);
  if (end == p || errno != 0) return Error::DataLoss(meminfo + ": MemAvailable is not a number");
  return static_cast<uint64_t>(kib) * 1024;
}

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::string DirName(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t pos = path.rfind('/');
  if (pos == std::string_view::npos) return ".";
  if (pos == 0) return "/";
  return std::string(path.substr(0, pos));
}

std::string BaseName(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  size_t pos = path.rfind('/');
  if (pos == std::string_view::npos) return std::string(path);
  return std::string(path.substr(pos + 1));
}

std::string JoinPath(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  if (b.empty()) return std::string(a);
  std::string out(a);
  if (out.back() != '/') out += '/';
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  out += b;
  return out;
}

Result<std::string> SelfExeDir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n < 0) return Error::Errno("readlink /proc/self/exe");
  buf[n] = '\0';
  return DirName(buf);
}

Status SetCloexec(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) return Error::Errno("fcntl F_GETFD");
  flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (::fcntl(fd, F_SETFD, flags) < 0) return Error::Errno("fcntl F_SETFD");
  return Ok();
}

Status SetNonBlocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return Error::Errno("fcntl F_GETFL");
  flags = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, flags) < 0) return Error::Errno("fcntl F_SETFL");
  return Ok();
}

}  // namespace sbx::sys
