#include "src/runtime/writable_layer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "src/base/strings.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"

namespace sbx::runtime {

std::string PoolPrefix(const DiskFormat& f) {
  return "disk-" + std::to_string(f.size_bytes) + "-" + std::to_string(f.inodes) + "-" +
         std::to_string(f.root_uid) + "-" + std::to_string(f.root_gid) + "-";
}

namespace {

Result<std::string> FindMkfs() {
  for (const char* path : {"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4", "/usr/bin/mkfs.ext4"}) {
    if (access(path, X_OK) == 0) return std::string(path);
  }
  return Error::FailedPrecondition(
      "mkfs.ext4 not found (install e2fsprogs), or use the tmpfs "
      "writable layer");
}

Status RunMkfs(const std::string& path, const DiskFormat& format) {
  SBX_ASSIGN_OR_RETURN(std::string mkfs, FindMkfs());
  {
    SBX_ASSIGN_OR_RETURN(UniqueFd fd, sys::Open(path, O_WRONLY | O_CREAT | O_EXCL, 0600));
    if (ftruncate(fd.get(), static_cast<off_t>(format.size_bytes)) != 0) {
      Error e = Error::Errno("size " + Quote(path));
      unlink(path.c_str());
      return e;
    }
  }
  std::vector<std::string> argv = {
      mkfs,
      "-q",
      "-F",
      "-O",
      "^has_journal",
      "-m",
      "0",
      "-E",
      "lazy_itable_init=1,nodiscard,root_owner=" + std::to_string(format.root_uid) + ":" +
          std::to_string(format.root_gid)};
  if (format.inodes > 0) {
    argv.push_back("-N");
    argv.push_back(std::to_string(format.inodes));
  }
  argv.push_back(path);
  auto result = sys::RunCommand(argv, {}, 60000);
  if (!result || result->status.ShellCode() != 0) {
    unlink(path.c_str());
    if (!result) return std::move(result).error().Wrap("format writable layer");
    return Error::Internal("mkfs.ext4 failed: " + std::string(Trim(result->err)));
  }
  return Ok();
}

// A fresh filesystem's metadata is a few MiB. Much more means the template's filesystem does not
// report holes (it would then be copied whole); formatting is cheaper.
constexpr off_t kMaxTemplateData = 64 << 20;

// Copies what `in` holds of its first `size` bytes to the same offsets of `out`, leaving holes.
Status CopyExtents(int in, const std::string& source, int out, off_t size) {
  if (ftruncate(out, size) != 0) return Error::Errno("size the copy of " + Quote(source));
  off_t copied = 0;
  off_t offset = 0;
  while (offset < size) {
    off_t data = lseek(in, offset, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      return Error::Errno("find data in " + Quote(source));
    }
    off_t hole = lseek(in, data, SEEK_HOLE);
    if (hole < 0) return Error::Errno("find a hole in " + Quote(source));
    copied += hole - data;
    if (copied > kMaxTemplateData) {
      return Error::FailedPrecondition(Quote(source) + " holds more than " +
                                       FormatBytes(kMaxTemplateData) + " of data");
    }
    off_t from = data;
    off_t to = data;
    while (from < hole) {
      ssize_t n = copy_file_range(in, &from, out, &to, static_cast<size_t>(hole - from), 0);
      if (n < 0) return Error::Errno("copy " + Quote(source));
      if (n == 0) return Error::Internal(Quote(source) + " shrank while being copied");
    }
    offset = hole;
  }
  return Ok();
}

// Copies the data extents of `source` to a new sparse file `target` of the same size; removes
// `target` again when the copy fails.
Status CopySparse(const std::string& source, const std::string& target) {
  SBX_ASSIGN_OR_RETURN(UniqueFd in, sys::Open(source, O_RDONLY));
  struct stat st {};
  if (fstat(in.get(), &st) != 0) return Error::Errno("stat " + Quote(source));
  SBX_ASSIGN_OR_RETURN(UniqueFd out, sys::Open(target, O_WRONLY | O_CREAT | O_EXCL, 0600));
  Status copied = CopyExtents(in.get(), source, out.get(), st.st_size);
  if (!copied) unlink(target.c_str());
  return copied;
}

// The template for `format`, made with mkfs when missing. Concurrent callers may each make one;
// the last rename wins and every one of them is complete.
Result<std::string> EnsureTemplate(const std::string& template_dir, const DiskFormat& format) {
  std::string path = TemplatePath(template_dir, format);
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<uint64_t>(st.st_size) == format.size_bytes) {
    return path;
  }
  SBX_TRY(sys::MakeDirs(template_dir, 0700));
  std::string tmp = template_dir + "/.tmp-" + RandomHex(8);
  SBX_TRY(RunMkfs(tmp, format));
  // Durable before it is named: a template is copied for as long as the state directory lives.
  auto fd = sys::Open(tmp, O_RDONLY);
  if (!fd || fsync(fd->get()) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    Error e = fd ? Error::Errno("store the disk template " + Quote(path)) : fd.error();
    unlink(tmp.c_str());
    return e;
  }
  return path;
}

}  // namespace

std::string TemplatePath(const std::string& template_dir, const DiskFormat& format) {
  // Versioned: a change of mkfs options must not reuse an old template.
  return template_dir + "/template-v1-" + PoolPrefix(format) + "ext4.img";
}

Status FormatDiskImage(const std::string& path, const DiskFormat& format,
                       const std::string& template_dir) {
  if (!template_dir.empty()) {
    auto source = EnsureTemplate(template_dir, format);
    if (source && CopySparse(*source, path)) return Ok();
    // Without a usable template, mkfs directly: slower, never wrong.
  }
  return RunMkfs(path, format);
}

Result<bool> TakeFromPool(const std::string& pool_dir, const DiskFormat& format,
                          const std::string& path) {
  if (pool_dir.empty()) return false;
  std::string prefix = PoolPrefix(format);
  DIR* dir = opendir(pool_dir.c_str());
  if (dir == nullptr) return false;
  std::vector<std::string> candidates;
  while (dirent* e = readdir(dir)) {
    std::string name = e->d_name;
    if (StartsWith(name, prefix) && EndsWith(name, ".img")) candidates.push_back(name);
  }
  closedir(dir);
  for (const auto& name : candidates) {
    // rename is atomic: when two creates race for one image, one of them gets ENOENT.
    if (rename((pool_dir + "/" + name).c_str(), path.c_str()) == 0) return true;
    if (errno == EXDEV) return false;
  }
  return false;
}

Status FillPool(const std::string& pool_dir, const DiskFormat& format, int count) {
  SBX_TRY(sys::MakeDirs(pool_dir, 0700));
  std::string prefix = PoolPrefix(format);
  int have = 0;
  if (DIR* dir = opendir(pool_dir.c_str())) {
    while (dirent* e = readdir(dir)) {
      std::string name = e->d_name;
      if (StartsWith(name, prefix) && EndsWith(name, ".img")) ++have;
    }
    closedir(dir);
  }
  for (; have < count; ++have) {
    // Format under a temporary name so a half-made image is never taken.
    std::string tmp = pool_dir + "/.tmp-" + RandomHex(8);
    SBX_TRY(FormatDiskImage(tmp, format, pool_dir));
    std::string final_path = pool_dir + "/" + prefix + RandomHex(8) + ".img";
    if (rename(tmp.c_str(), final_path.c_str()) != 0) {
      unlink(tmp.c_str());
      return Error::Errno("rename pooled image");
    }
  }
  return Ok();
}

Status PrunePool(const std::string& pool_dir, const DiskFormat& format) {
  std::string prefix = PoolPrefix(format);
  std::string template_name = sys::BaseName(TemplatePath(pool_dir, format));
  std::vector<std::string> stale;
  if (DIR* dir = opendir(pool_dir.c_str())) {
    while (dirent* e = readdir(dir)) {
      std::string name = e->d_name;
      bool image = StartsWith(name, "disk-") && EndsWith(name, ".img");
      bool a_template = StartsWith(name, "template-");
      if ((image && !StartsWith(name, prefix)) || (a_template && name != template_name) ||
          StartsWith(name, ".tmp-")) {
        stale.push_back(name);
      }
    }
    closedir(dir);
  }
  Status result;
  for (const auto& name : stale) {
    std::string path = pool_dir + "/" + name;
    if (unlink(path.c_str()) != 0 && errno != ENOENT && result) {
      result = Error::Errno("remove " + Quote(path));
    }
  }
  return result;
}

Status MakeOverlayDirs(int layer_dir, uint32_t root_uid, uint32_t root_gid) {
  for (const char* dir : {"upper", "work"}) {
    if (mkdirat(layer_dir, dir, 0755) != 0 && errno != EEXIST) {
      return Error::Errno(std::string("mkdir ") + dir + " in the writable layer");
    }
  }
  struct stat st {};
  if (fstatat(layer_dir, "upper", &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Error::Errno("stat upper in the writable layer");
  }
  if (!S_ISDIR(st.st_mode)) return Error::Internal("upper in the writable layer is no directory");
  if ((st.st_uid != root_uid || st.st_gid != root_gid) &&
      fchownat(layer_dir, "upper", root_uid, root_gid, AT_SYMLINK_NOFOLLOW) != 0) {
    return Error::Errno("chown upper in the writable layer");
  }
  return Ok();
}

Result<LoopDevice> AttachLoop(const std::string& image_path) {
  SBX_ASSIGN_OR_RETURN(UniqueFd image, sys::Open(image_path, O_RDWR));
  SBX_ASSIGN_OR_RETURN(UniqueFd control, sys::Open("/dev/loop-control", O_RDWR));
  for (int attempt = 0; attempt < 64; ++attempt) {
    int n = ioctl(control.get(), LOOP_CTL_GET_FREE);
    if (n < 0) return Error::Errno("get a free loop device");
    std::string path = "/dev/loop" + std::to_string(n);
    auto dev = sys::Open(path, O_RDWR);
    if (!dev) {
      if (dev.error().sys_errno() == ENOENT) continue;
      return std::move(dev).error();
    }
    loop_config config{};
    config.fd = static_cast<uint32_t>(image.get());
    config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
    strncpy(reinterpret_cast<char*>(config.info.lo_file_name), image_path.c_str(),
            LO_NAME_SIZE - 1);
    if (ioctl(dev->get(), LOOP_CONFIGURE, &config) == 0) {
      return LoopDevice{path, std::move(*dev)};
    }
    // Another attach took the device between GET_FREE and CONFIGURE.
    if (errno != EBUSY) return Error::Errno("attach " + Quote(image_path) + " to " + path);
  }
  return Error::ResourceExhausted("no free loop device after 64 attempts");
}

std::string LoopBackingFile(const std::string& device) {
  std::string name = sys::BaseName(device);
  auto backing = sys::ReadFile("/sys/block/" + name + "/loop/backing_file", 4096);
  if (!backing) return "";
  return std::string(Trim(*backing));
}

}  // namespace sbx::runtime
