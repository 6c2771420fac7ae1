#include "src/runtime/container.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "src/agent/protocol.h"
#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/runtime/capabilities.h"
#include "src/runtime/devices.h"
#include "src/runtime/mounts.h"
#include "src/runtime/seccomp_policy.h"
#include "src/runtime/writable_layer.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"
#include "src/sys/socket.h"

namespace sbx::runtime {

namespace {

constexpr int kInitListenFd = 3;
constexpr int kInitConfigFd = 4;
constexpr int kInitExecFd = 5;

// Docker's masked and read-only paths, and its current additions (SECURITY.md).
constexpr const char* kMaskedPaths[] = {
    "/proc/acpi",       "/proc/asound",        "/proc/interrupts",  "/proc/kcore",
    "/proc/keys",       "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi",
    "/proc/timer_list", "/proc/timer_stats",   "/sys/firmware",     "/sys/devices/virtual/powercap",
};
constexpr const char* kReadOnlyPaths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

// ---------------------------------------------------------------------------------------------
// Everything the child needs, prepared by the parent before clone.

struct ChildContext {
  const RuntimeSpec* spec = nullptr;
  const std::string* seccomp_bpf = nullptr;
  std::string bundle;
  int writable_mount_fd = -1;  // the writable layer's filesystem, mounted; -1: a tmpfs
  int sync_fd = -1;            // child's end of the socketpair with the parent
  int error_fd = -1;           // write end of the CLOEXEC error pipe
  int listen_fd = -1;
  int config_fd = -1;
  int init_fd = -1;
  int netns_fd = -1;
  int layers_userns_fd = -1;  // carries the shift of idmapped layers; -1: none needed
  std::vector<int> file_fds;  // contents of spec->files, in order
};

// The child reports a failure as one text record on the error pipe and exits. The parent
// turns it back into an Error; the pipe closing on exec without a record means success.
[[noreturn]] void ChildFail(const ChildContext& ctx, const Error& error) {
  std::string record = std::to_string(static_cast<int>(error.code())) + "\n" +
                       std::to_string(error.sys_errno()) + "\n" + error.message();
  if (record.size() > 4000) record.resize(4000);
  (void)!write(ctx.error_fd, record.data(), record.size());
  _exit(1);
}

#define CHILD_TRY(ctx, expr)                   \
  do {                                         \
    auto&& child_result_ = (expr);             \
    if (!child_result_.has_value()) {          \
      ChildFail((ctx), child_result_.error()); \
    }                                          \
  } while (0)

Status SyncWrite(int fd, char c) {
  if (write(fd, &c, 1) != 1) return Error::Errno("sync with the runtime");
  return Ok();
}

Status SyncRead(int fd, char expected) {
  char c = 0;
  ssize_t n;
  do {
    n = read(fd, &c, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return Error::Unavailable("the other side of the setup went away");
  if (c != expected) return Error::Internal(std::string("unexpected sync byte ") + c);
  return Ok();
}

// Opens `path` inside the new root, refusing symlinks anywhere in it (a mount target or a file we
// write must be what the image says it is, not where a symlink points).
Result<UniqueFd> OpenNoSymlinks(int root, const std::string& path, int flags) {
  return sys::OpenAt2(root, path, static_cast<uint64_t>(flags) | O_NOFOLLOW, 0,
                      RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
}

// mkdir -p inside the root without following symlinks; new directories belong to the sandbox's
// root user.
Result<UniqueFd> EnsureDir(int root, const std::string& path, mode_t mode, const IdMap& ids) {
  std::string current;
  for (const auto& part : Split(path, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") return Error::InvalidArgument("path " + Quote(path) + " contains ..");
    std::string parent = current.empty() ? "/" : current;
    current += "/" + part;
    auto fd = OpenNoSymlinks(root, current, O_PATH | O_DIRECTORY);
    if (fd) continue;
    if (fd.error().sys_errno() != ENOENT) {
      return std::move(fd).error().Wrap(Quote(current) + " must be a plain directory");
    }
    SBX_ASSIGN_OR_RETURN(UniqueFd parent_fd, OpenNoSymlinks(root, parent, O_PATH | O_DIRECTORY));
    if (mkdirat(parent_fd.get(), part.c_str(), mode) != 0 && errno != EEXIST) {
      return Error::Errno("mkdir " + Quote(current));
    }
    if (fchownat(parent_fd.get(), part.c_str(), ids.host_uid, ids.host_gid, AT_SYMLINK_NOFOLLOW) !=
        0) {
      return Error::Errno("chown " + Quote(current));
    }
  }
  return OpenNoSymlinks(root, current.empty() ? "/" : current, O_PATH | O_DIRECTORY);
}

// Replaces `name` in `dir_fd` with a regular file holding `content`, owned by the sandbox root.
Status ReplaceFile(int dir_fd, const std::string& name, std::string_view content, mode_t mode,
                   const IdMap& ids, int content_fd = -1) {
  struct stat st {};
  if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode)) return Error::InvalidArgument(Quote(name) + " is a directory");
    if (unlinkat(dir_fd, name.c_str(), 0) != 0) return Error::Errno("remove " + Quote(name));
  }
  UniqueFd fd(
      openat(dir_fd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) return Error::Errno("create " + Quote(name));
  if (content_fd >= 0) {
    while (true) {
      ssize_t n = sendfile(fd.get(), content_fd, nullptr, 1u << 20);
      if (n == 0) break;
      if (n < 0) return Error::Errno("copy content of " + Quote(name));
    }
  } else {
    SBX_TRY(sys::WriteAll(fd.get(), content));
  }
  if (fchown(fd.get(), ids.host_uid, ids.host_gid) != 0)
    return Error::Errno("chown " + Quote(name));
  if (fchmod(fd.get(), mode) != 0) return Error::Errno("chmod " + Quote(name));
  return Ok();
}

Status MountProc(int root) {
  SBX_ASSIGN_OR_RETURN(UniqueFd target, OpenNoSymlinks(root, "/proc", O_PATH | O_DIRECTORY));
  return MountOn(target.get(), "proc", {}, kMountNoSuid | kMountNoDev | kMountNoExec, "/proc");
}

// Per-network-namespace knobs, set while /proc/sys is still writable: binding ports below 1024
// and unprivileged ICMP sockets, as root in a container expects.
void TuneNetworkNamespace(int root) {
  for (auto [path, value] : {std::pair{"/proc/sys/net/ipv4/ip_unprivileged_port_start", "0"},
                             std::pair{"/proc/sys/net/ipv4/ping_group_range", "0 2147483647"}}) {
    auto fd = OpenNoSymlinks(root, path, O_WRONLY);
    if (fd) (void)!write(fd->get(), value, strlen(value));
  }
}

// The limits the sandbox's user namespace gets, as sysctl files of /proc/sys/user (`dir`, read
// before the namespace exists, so with the host's values): no namespace of any kind (seccomp
// refuses them first; the kernel would too), and the host's per-user inotify and fanotify
// limits, which is what the sandbox as a whole gets in the host's namespace.
Result<std::vector<std::pair<std::string, std::string>>> NamespaceLimits(int dir) {
  std::vector<std::pair<std::string, std::string>> limits;
  for (const char* kind : {"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"}) {
    std::string name = std::string("max_") + kind + "_namespaces";
    if (faccessat(dir, name.c_str(), F_OK, 0) == 0) limits.emplace_back(name, "0");
  }
  for (const char* name : {"max_inotify_instances", "max_inotify_watches", "max_fanotify_groups",
                           "max_fanotify_marks"}) {
    auto fd = sys::OpenAt(dir, name, O_RDONLY);
    if (!fd) {
      if (fd.error().sys_errno() == ENOENT) continue;  // an older kernel
      return std::move(fd).error().Wrap("read /proc/sys/user");
    }
    SBX_ASSIGN_OR_RETURN(std::string value, sys::ReadFd(fd->get(), 64));
    limits.emplace_back(name, std::string(Trim(value)));
  }
  return limits;
}

// A sandbox with a read-only root has no volume to write to (yet): /tmp is a tmpfs of its own,
// charged to its memory like /dev/shm and as large.
Status MountScratchTmp(int root, const RuntimeSpec& spec) {
  const IdMap& ids = spec.id_map;
  SBX_ASSIGN_OR_RETURN(UniqueFd tmp, EnsureDir(root, "/tmp", 01777, ids));
  return MountOn(tmp.get(), "tmpfs",
                 {{"mode", "1777"},
                  {"size", std::to_string(spec.resources.shm_bytes)},
                  {"uid", std::to_string(ids.host_uid)},
                  {"gid", std::to_string(ids.host_gid)}},
                 kMountNoSuid | kMountNoDev, "/tmp");
}

Status SetupDev(int root, const RuntimeSpec& spec) {
  const IdMap& ids = spec.id_map;
  SBX_ASSIGN_OR_RETURN(UniqueFd target, EnsureDir(root, "/dev", 0755, ids));
  SBX_TRY(MountOn(target.get(), "tmpfs",
                  {{"mode", "755"},
                   {"size", "65536k"},
                   {"uid", std::to_string(ids.host_uid)},
                   {"gid", std::to_string(ids.host_gid)}},
                  kMountNoSuid | kMountNoExec, "/dev"));
  SBX_ASSIGN_OR_RETURN(UniqueFd dev, OpenNoSymlinks(root, "/dev", O_RDONLY | O_DIRECTORY));
  for (const DeviceNode& node : kDevNodes) {
    if (mknodat(dev.get(), node.name, S_IFCHR | 0666, makedev(node.major, node.minor)) != 0) {
      return Error::Errno(std::string("mknod /dev/") + node.name);
    }
    if (fchmodat(dev.get(), node.name, 0666, 0) != 0) return Error::Errno("chmod device");
  }
  for (const char* dir : {"pts", "shm", "mqueue"}) {
    if (mkdirat(dev.get(), dir, 0755) != 0) return Error::Errno(std::string("mkdir /dev/") + dir);
  }
  for (auto [link, target_path] :
       {std::pair{"ptmx", "pts/ptmx"}, std::pair{"fd", "/proc/self/fd"},
        std::pair{"stdin", "/proc/self/fd/0"}, std::pair{"stdout", "/proc/self/fd/1"},
        std::pair{"stderr", "/proc/self/fd/2"}}) {
    if (symlinkat(target_path, dev.get(), link) != 0) {
      return Error::Errno(std::string("symlink /dev/") + link);
    }
  }
  // The tty group is gid 5 inside the sandbox.
  uint32_t tty_gid = ids.host_gid + (ids.size > 5 ? 5 : 0);
  SBX_ASSIGN_OR_RETURN(UniqueFd pts, OpenNoSymlinks(root, "/dev/pts", O_PATH | O_DIRECTORY));
  SBX_TRY(MountOn(pts.get(), "devpts",
                  {{"newinstance", ""},
                   {"ptmxmode", "0666"},
                   {"mode", "0620"},
                   {"gid", std::to_string(tty_gid)}},
                  kMountNoSuid | kMountNoExec, "/dev/pts"));
  SBX_ASSIGN_OR_RETURN(UniqueFd shm, OpenNoSymlinks(root, "/dev/shm", O_PATH | O_DIRECTORY));
  SBX_TRY(MountOn(shm.get(), "tmpfs",
                  {{"mode", "1777"},
                   {"size", std::to_string(spec.resources.shm_bytes)},
                   {"uid", std::to_string(ids.host_uid)},
                   {"gid", std::to_string(ids.host_gid)}},
                  kMountNoSuid | kMountNoDev | kMountNoExec, "/dev/shm"));
  SBX_ASSIGN_OR_RETURN(UniqueFd mq, OpenNoSymlinks(root, "/dev/mqueue", O_PATH | O_DIRECTORY));
  SBX_TRY(
      MountOn(mq.get(), "mqueue", {}, kMountNoSuid | kMountNoDev | kMountNoExec, "/dev/mqueue"));
  return Ok();
}

// SECURITY: the mask source must really be the null device we created (CVE-2025-31133: a /dev/null
// replaced by a symlink turned masks into writable binds of procfs files).
Result<UniqueFd> OpenVerifiedDevNull(int root) {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, OpenNoSymlinks(root, "/dev/null", O_PATH));
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return Error::Errno("stat /dev/null");
  if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3)) {
    return Error::Internal("/dev/null is not the null device");
  }
  return fd;
}

Status MaskPath(int root, int devnull, const std::string& path) {
  auto target = OpenNoSymlinks(root, path, O_PATH);
  if (!target) {
    if (target.error().sys_errno() == ENOENT) return Ok();
    return std::move(target).error().Wrap("mask " + path);
  }
  struct stat st {};
  if (fstat(target->get(), &st) != 0) return Error::Errno("stat " + path);
  if (S_ISDIR(st.st_mode)) {
    return MountOn(target->get(), "tmpfs", {{"size", "4k"}, {"mode", "0555"}},
                   kMountReadOnly | kMountNoSuid | kMountNoDev | kMountNoExec, "mask " + path);
  }
  return BindOn(devnull, target->get(), true, false, "mask " + path);
}

Status SetupSys(int root, const IdMap& ids) {
  SBX_ASSIGN_OR_RETURN(UniqueFd target, EnsureDir(root, "/sys", 0555, ids));
  return MountOn(target.get(), "sysfs", {},
                 kMountReadOnly | kMountNoSuid | kMountNoDev | kMountNoExec, "/sys");
}

Status MaskAndProtect(int root) {
  SBX_ASSIGN_OR_RETURN(UniqueFd devnull, OpenVerifiedDevNull(root));
  std::vector<std::string> masked(std::begin(kMaskedPaths), std::end(kMaskedPaths));
  // Per-CPU thermal interrupt counters are a side channel (GHSA-6fw5-f8r9-fgfm).
  if (auto cpus = OpenNoSymlinks(root, "/sys/devices/system/cpu", O_RDONLY | O_DIRECTORY)) {
    DIR* dir = fdopendir(dup(cpus->get()));
    if (dir != nullptr) {
      while (dirent* e = readdir(dir)) {
        std::string name = e->d_name;
        if (StartsWith(name, "cpu") && name.size() > 3 &&
            isdigit(static_cast<unsigned char>(name[3]))) {
          masked.push_back("/sys/devices/system/cpu/" + name + "/thermal_throttle");
        }
      }
      closedir(dir);
    }
  }
  for (const auto& path : masked) SBX_TRY(MaskPath(root, devnull.get(), path));
  for (const char* path : kReadOnlyPaths) {
    auto target = OpenNoSymlinks(root, path, O_PATH);
    if (!target) {
      if (target.error().sys_errno() == ENOENT) continue;
      return std::move(target).error().Wrap(std::string("protect ") + path);
    }
    SBX_TRY(RemountReadOnly(target->get(), path));
  }
  return Ok();
}

Status WriteEtcFiles(int root, const RuntimeSpec& spec) {
  SBX_TRY(EnsureDir(root, "/etc", 0755, spec.id_map));
  SBX_ASSIGN_OR_RETURN(UniqueFd etc_dir, OpenNoSymlinks(root, "/etc", O_RDONLY | O_DIRECTORY));
  std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  if (!spec.hostname.empty()) hosts += "127.0.1.1\t" + spec.hostname + "\n";
  for (const auto& line : spec.network.extra_hosts) hosts += line + "\n";
  SBX_TRY(ReplaceFile(etc_dir.get(), "hosts", hosts, 0644, spec.id_map));
  SBX_TRY(ReplaceFile(etc_dir.get(), "hostname", spec.hostname + "\n", 0644, spec.id_map));
  std::string resolv;
  for (const auto& server : spec.network.dns_servers) resolv += "nameserver " + server + "\n";
  if (!spec.network.dns_search.empty())
    resolv += "search " + Join(spec.network.dns_search, " ") + "\n";
  if (resolv.empty()) resolv = "# no network resolver for this sandbox\n";
  SBX_TRY(ReplaceFile(etc_dir.get(), "resolv.conf", resolv, 0644, spec.id_map));
  return Ok();
}

Status PlaceMountedFiles(int root, const ChildContext& ctx) {
  const RuntimeSpec& spec = *ctx.spec;
  for (size_t i = 0; i < spec.files.size(); ++i) {
    const MountedFile& file = spec.files[i];
    std::string dir = sys::DirName(file.path);
    std::string name = sys::BaseName(file.path);
    if (name.empty() || name == "." || name == "..") {
      return Error::InvalidArgument("files: " + Quote(file.path) + " does not name a file");
    }
    auto parent = EnsureDir(root, dir, 0755, spec.id_map);
    if (!parent) return std::move(parent).error().Wrap("place " + Quote(file.path));
    SBX_ASSIGN_OR_RETURN(UniqueFd dir_fd, OpenNoSymlinks(root, dir, O_RDONLY | O_DIRECTORY));
    Status placed =
        ReplaceFile(dir_fd.get(), name, "", file.mode & 0777, spec.id_map, ctx.file_fds[i]);
    if (!placed) return std::move(placed).error().Wrap("place " + Quote(file.path));
    // Read-only inside: a read-only bind of the file onto itself.
    SBX_ASSIGN_OR_RETURN(UniqueFd target, OpenNoSymlinks(root, file.path, O_PATH));
    SBX_TRY(BindOn(target.get(), target.get(), true, false, file.path));
  }
  return Ok();
}

Status BringUpLoopback() {
  UniqueFd sock(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return Error::Errno("socket for loopback");
  ifreq ifr{};
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) return Error::Errno("get lo flags");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  if (ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) return Error::Errno("bring lo up");
  return Ok();
}

Status SetRlimits(const RuntimeSpec& spec) {
  rlimit nofile{spec.resources.nofile, spec.resources.nofile};
  if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) {
    // Raising the hard limit needs CAP_SYS_RESOURCE, which a confined host may not grant the
    // runtime; the sandbox then gets the runtime's own hard limit.
    rlimit current{};
    if (errno != EPERM || getrlimit(RLIMIT_NOFILE, &current) != 0) {
      return Error::Errno("setrlimit NOFILE");
    }
    nofile.rlim_max = current.rlim_max;
    nofile.rlim_cur = std::min<rlim_t>(spec.resources.nofile, current.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) return Error::Errno("setrlimit NOFILE");
  }
  rlimit core{0, 0};
  if (setrlimit(RLIMIT_CORE, &core) != 0) return Error::Errno("setrlimit CORE");
  // Real-time scheduling cannot starve the host.
  rlimit rtprio{0, 0};
  if (setrlimit(RLIMIT_RTPRIO, &rtprio) != 0) return Error::Errno("setrlimit RTPRIO");
  return Ok();
}

// Places `fd` at number `target` (clearing CLOEXEC), via a high temporary so sources and targets
// never collide.
Status MoveFd(int fd, int target) {
  if (fd == target) return sys::SetCloexec(fd, false);
  if (dup2(fd, target) < 0) return Error::Errno("dup2");
  return Ok();
}

Status ArrangeInitDescriptors(const ChildContext& ctx) {
  int listen = fcntl(ctx.listen_fd, F_DUPFD_CLOEXEC, 100);
  int config = fcntl(ctx.config_fd, F_DUPFD_CLOEXEC, 100);
  int init = fcntl(ctx.init_fd, F_DUPFD_CLOEXEC, 100);
  if (listen < 0 || config < 0 || init < 0) return Error::Errno("dup init descriptors");
  UniqueFd devnull(open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) return Error::Errno("open /dev/null");
  for (int std_fd = 0; std_fd <= 2; ++std_fd) SBX_TRY(MoveFd(devnull.get(), std_fd));
  SBX_TRY(MoveFd(listen, kInitListenFd));
  SBX_TRY(MoveFd(config, kInitConfigFd));
  SBX_TRY(MoveFd(init, kInitExecFd));
  // sbx-init re-marks the listening socket CLOEXEC; the exec descriptor needs it only for
  // execveat itself.
  SBX_TRY(sys::SetCloexec(kInitExecFd, true));
  // SECURITY: nothing else of the runtime survives the exec (CVE-2024-21626 class).
  if (syscall(SYS_close_range, kInitExecFd + 1, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) != 0) {
    return Error::Errno("close_range");
  }
  return Ok();
}

// The child: runs the whole in-sandbox setup, then becomes sbx-init. Never returns.
[[noreturn]] void ChildMain(const ChildContext& ctx) {
  const RuntimeSpec& spec = *ctx.spec;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  umask(0);
  CHILD_TRY(ctx, SyncRead(ctx.sync_fd, 'G'));

  if (ctx.netns_fd >= 0 && setns(ctx.netns_fd, CLONE_NEWNET) != 0) {
    ChildFail(ctx, Error::Errno("join network namespace " + Quote(spec.network.netns_path)));
  }
  // Nothing mounted from here on propagates back to the host.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    ChildFail(ctx, Error::Errno("make mounts private"));
  }

  // Image layers of another range (every sandbox shares them) appear in this sandbox's: each is
  // covered, in this mount namespace only, by an idmapped mount of itself.
  if (ctx.layers_userns_fd >= 0) {
    std::set<std::string> done;
    for (const auto& layer : spec.rootfs.layers) {
      if (!done.insert(layer).second) continue;
      auto dir = sys::Open(layer, O_PATH | O_DIRECTORY | O_NOFOLLOW);
      CHILD_TRY(ctx, dir);
      CHILD_TRY(ctx, IdmapOnItself(dir->get(), ctx.layers_userns_fd, "layer " + Quote(layer)));
    }
  }

  // The writable layer's own filesystem, then the overlay root on top of the image layers.
  std::string disk_dir = ctx.bundle + "/disk";
  {
    auto disk = sys::Open(disk_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    CHILD_TRY(ctx, disk);
    const IdMap& ids = spec.id_map;
    if (ctx.writable_mount_fd >= 0) {
      CHILD_TRY(ctx, AttachMount(ctx.writable_mount_fd, disk->get(), "writable layer"));
    } else {
      std::vector<FsOption> options = {{"size", std::to_string(spec.rootfs.writable.size_bytes)},
                                       {"mode", "0755"},
                                       {"uid", std::to_string(ids.host_uid)},
                                       {"gid", std::to_string(ids.host_gid)}};
      if (spec.rootfs.writable.inodes > 0) {
        options.push_back({"nr_inodes", std::to_string(spec.rootfs.writable.inodes)});
      }
      CHILD_TRY(ctx, MountOn(disk->get(), "tmpfs", options, kMountNoSuid | kMountNoDev,
                             "writable layer"));
    }
  }
  {
    auto disk = sys::Open(disk_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    CHILD_TRY(ctx, disk);
    CHILD_TRY(ctx, MakeOverlayDirs(disk->get(), spec.id_map.host_uid, spec.id_map.host_gid));
  }
  std::vector<std::string> lowers(spec.rootfs.layers.rbegin(), spec.rootfs.layers.rend());
  {
    auto rootfs = sys::Open(ctx.bundle + "/rootfs", O_PATH | O_DIRECTORY | O_NOFOLLOW);
    CHILD_TRY(ctx, rootfs);
    CHILD_TRY(ctx, MountOverlay(rootfs->get(), lowers, disk_dir + "/upper", disk_dir + "/work",
                                kMountNoSuid | kMountNoDev));
  }
  if (chdir((ctx.bundle + "/rootfs").c_str()) != 0) ChildFail(ctx, Error::Errno("chdir rootfs"));
  // JUSTIFICATION: pivot_root has no glibc wrapper. Pivoting "." onto "." stacks the old root
  // on top of the new one, where it is detached right away.
  if (syscall(SYS_pivot_root, ".", ".") != 0) ChildFail(ctx, Error::Errno("pivot_root"));
  if (umount2(".", MNT_DETACH) != 0) ChildFail(ctx, Error::Errno("detach the host root"));
  if (chdir("/") != 0) ChildFail(ctx, Error::Errno("chdir /"));

  // From here every path is inside the sandbox.
  auto root_result = sys::Open("/", O_PATH | O_DIRECTORY);
  CHILD_TRY(ctx, root_result);
  int root = root_result->get();
  {
    auto proc_dir = EnsureDir(root, "/proc", 0555, spec.id_map);
    CHILD_TRY(ctx, proc_dir);
  }
  CHILD_TRY(ctx, MountProc(root));
  // The user namespace's own limits are written from inside it, through this descriptor of the
  // proc mount: /proc/sys is read-only for the sandbox by then.
  auto sysctl_user = OpenNoSymlinks(root, "/proc/sys/user", O_RDONLY | O_DIRECTORY);
  CHILD_TRY(ctx, sysctl_user);
  auto namespace_limits = NamespaceLimits(sysctl_user->get());
  CHILD_TRY(ctx, namespace_limits);
  if (ctx.netns_fd < 0) TuneNetworkNamespace(root);
  CHILD_TRY(ctx, SetupDev(root, spec));
  CHILD_TRY(ctx, SetupSys(root, spec.id_map));
  CHILD_TRY(ctx, WriteEtcFiles(root, spec));
  CHILD_TRY(ctx, PlaceMountedFiles(root, ctx));
  CHILD_TRY(ctx, MaskAndProtect(root));
  {
    // The working directory must exist (the image's WorkingDir is created like Docker does).
    auto cwd = EnsureDir(root, spec.process.cwd, 0755, spec.id_map);
    if (!cwd) ChildFail(ctx, std::move(cwd).error().Wrap("working directory"));
  }
  if (spec.rootfs.readonly) {
    CHILD_TRY(ctx, MountScratchTmp(root, spec));
    CHILD_TRY(ctx, SetMountAttributes(root, kMountReadOnly | kMountNoSuid | kMountNoDev, "/"));
  }
  if (!spec.hostname.empty() && sethostname(spec.hostname.data(), spec.hostname.size()) != 0) {
    ChildFail(ctx, Error::Errno("sethostname"));
  }
  if (ctx.netns_fd < 0) CHILD_TRY(ctx, BringUpLoopback());
  CHILD_TRY(ctx, SetRlimits(spec));

  // The cgroup namespace makes the sandbox's cgroup its root; the parent placed us there.
  if (unshare(CLONE_NEWCGROUP) != 0) ChildFail(ctx, Error::Errno("unshare cgroup namespace"));
  // SECURITY: the user namespace belongs to the sandbox's root host user, not to host root. The
  // kernel charges what everything in it holds of the per-user counters (inotify instances and
  // watches, pending signals, message queue bytes, ...) to the namespace's owner in the host's
  // namespace, so a sandbox that exhausts them exhausts only its own. Only the effective ids
  // change here; the real and saved ones stay root's until the namespace's ids are taken below.
  if (setresgid(-1, spec.id_map.host_gid, -1) != 0) {
    ChildFail(ctx, Error::Errno("take the sandbox's host gid"));
  }
  if (setresuid(-1, spec.id_map.host_uid, -1) != 0) {
    ChildFail(ctx, Error::Errno("take the sandbox's host uid"));
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // a change of credentials clears it
  // Last, the user namespace: it owns none of the namespaces created above.
  if (unshare(CLONE_NEWUSER) != 0) ChildFail(ctx, Error::Errno("unshare user namespace"));
  CHILD_TRY(ctx, SyncWrite(ctx.sync_fd, 'U'));
  CHILD_TRY(ctx, SyncRead(ctx.sync_fd, 'M'));
  if (setresgid(0, 0, 0) != 0) ChildFail(ctx, Error::Errno("setresgid 0"));
  if (setgroups(0, nullptr) != 0) ChildFail(ctx, Error::Errno("setgroups"));
  if (setresuid(0, 0, 0) != 0) ChildFail(ctx, Error::Errno("setresuid 0"));
  // Written from inside: the limits of a user namespace are the files its own members see.
  for (const auto& [name, value] : *namespace_limits) {
    Status set = sys::WriteKnobAt(sysctl_user->get(), name, value);
    if (!set) ChildFail(ctx, std::move(set).error().Wrap("limit of the user namespace"));
  }
  CHILD_TRY(ctx, ApplyCapabilities(DefaultCapabilities()));
  CHILD_TRY(ctx, ArrangeInitDescriptors(ctx));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ChildFail(ctx, Error::Errno("no_new_privs"));
  prctl(PR_SET_PDEATHSIG, 0);
  CHILD_TRY(ctx, LoadBpf(*ctx.seccomp_bpf));
  // What the sandbox's processes create comes out as Docker's does (the setup above sets every
  // mode explicitly).
  umask(022);
  const char* argv[] = {"sbx-init", nullptr};
  const char* envp[] = {nullptr};
  // JUSTIFICATION: execveat has no glibc 2.36 wrapper; it runs the sealed in-memory copy of
  // sbx-init, so no host binary is ever mapped into the sandbox.
  syscall(SYS_execveat, kInitExecFd, "", argv, envp, AT_EMPTY_PATH);
  ChildFail(ctx, Error::Errno("exec sbx-init"));
}

// ---------------------------------------------------------------------------------------------
// Parent side.

}  // namespace

Result<UniqueFd> SealedCopyOfInit(const std::string& path) {
  SBX_ASSIGN_OR_RETURN(UniqueFd src, sys::Open(path, O_RDONLY));
  struct stat st {};
  if (fstat(src.get(), &st) != 0) return Error::Errno("stat " + Quote(path));
  UniqueFd mem(memfd_create("sbx-init", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!mem) return Error::Errno("memfd_create");
  off_t left = st.st_size;
  while (left > 0) {
    ssize_t n = sendfile(mem.get(), src.get(), nullptr, static_cast<size_t>(left));
    if (n <= 0) return Error::Errno("copy sbx-init");
    left -= n;
  }
  // SECURITY: sealed, so nothing (not even root in the sandbox via /proc/1/exe) can modify it.
  if (fcntl(mem.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) !=
      0) {
    return Error::Errno("seal sbx-init copy");
  }
  return mem;
}

namespace {

// Lowers this (single-threaded) process to the background nice level for its lifetime, and
// restores the nice level it had: a runtime helper serves many creates.
class BackgroundPriority {
 public:
  explicit BackgroundPriority(bool enabled) {
    if (!enabled) return;
    errno = 0;
    int current = getpriority(PRIO_PROCESS, 0);
    if (current == -1 && errno != 0) return;
    if (setpriority(PRIO_PROCESS, 0, sys::kBackgroundNice) == 0) saved_ = current;
  }
  ~BackgroundPriority() {
    if (saved_) (void)setpriority(PRIO_PROCESS, 0, *saved_);
  }
  BackgroundPriority(const BackgroundPriority&) = delete;
  BackgroundPriority& operator=(const BackgroundPriority&) = delete;

 private:
  std::optional<int> saved_;
};

Result<UniqueFd> InitConfigFd(const RuntimeSpec& spec) {
  agent::InitConfig config;
  config.argv = spec.process.args;
  config.env = spec.process.env;
  config.cwd = spec.process.cwd;
  config.user = spec.process.user;
  config.log_ring_bytes = spec.log_ring_bytes;
  config.deadline_unix_ns = spec.deadline_unix_ns;
  config.stop_grace_ms = spec.stop_grace_ms;
  config.await_start = spec.process.await_start;
  SBX_ASSIGN_OR_RETURN(config.dropped_capabilities,
                       DroppedCapabilityMask(spec.process.drop_capabilities));
  UniqueFd mem(memfd_create("sbx-init-config", MFD_CLOEXEC));
  if (!mem) return Error::Errno("memfd_create");
  SBX_TRY(sys::WriteAll(mem.get(), config.Encode()));
  if (lseek(mem.get(), 0, SEEK_SET) != 0) return Error::Errno("lseek");
  return mem;
}

// oom_score_adj has a floor (oom_score_adj_min) that only CAP_SYS_RESOURCE goes below; a
// privileged write of oom_score_adj sets the floor as well, and children inherit both. sbx-init
// must survive an OOM in its sandbox to report it, while everything it starts is the kernel's
// first victim and must not be able to lower that. So the children's score is written first,
// setting the floor, and sbx-init's own then goes below it through the legacy oom_adj file,
// which leaves the floor alone (-16 there is an oom_score_adj of -941). Without CAP_SYS_RESOURCE
// (a confined host) sbx-init keeps the runtime's score; its children still raise theirs.
constexpr int kInitOomAdj = -16;

Status ProtectInitFromOom(pid_t pid) {
  if (!HasEffectiveCapability(CAP_SYS_RESOURCE)) return Ok();
  std::string proc = "/proc/" + std::to_string(pid);
  SBX_TRY(sys::WriteKnob(proc + "/oom_score_adj", std::to_string(sys::kSandboxOomScoreAdj)));
  return sys::WriteKnob(proc + "/oom_adj", std::to_string(kInitOomAdj));
}

Status WriteIdMaps(pid_t pid, const IdMap& ids) {
  std::string uid_map = "0 " + std::to_string(ids.host_uid) + " " + std::to_string(ids.size) + "\n";
  std::string gid_map = "0 " + std::to_string(ids.host_gid) + " " + std::to_string(ids.size) + "\n";
  SBX_TRY(sys::WriteKnob("/proc/" + std::to_string(pid) + "/uid_map", uid_map));
  SBX_TRY(sys::WriteKnob("/proc/" + std::to_string(pid) + "/gid_map", gid_map));
  return Ok();
}

Error ParseChildError(const std::string& record) {
  size_t first = record.find('\n');
  size_t second = first == std::string::npos ? std::string::npos : record.find('\n', first + 1);
  if (second == std::string::npos) return Error::Internal("sandbox setup failed: " + record);
  int code = static_cast<int>(ParseInt64(record.substr(0, first)).value_or(13));
  int err = static_cast<int>(ParseInt64(record.substr(first + 1, second - first - 1)).value_or(0));
  Code c = (code >= 1 && code <= 16) ? static_cast<Code>(code) : Code::kInternal;
  return Error(c, record.substr(second + 1), err);
}

// Undoes a failed create: everything CreateSandbox made, nothing the caller made.
class CreateRollback {
 public:
  CreateRollback(std::string id, std::string bundle, CgroupDriver& cgroups)
      : id_(std::move(id)), bundle_(std::move(bundle)), cgroups_(cgroups) {}
  ~CreateRollback() {
    if (committed_) return;
    if (child_ > 0) {
      kill(child_, SIGKILL);
      int status;
      while (waitpid(child_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    if (cgroup_created_) {
      (void)cgroups_.KillAll(id_, 5000);
      (void)cgroups_.Remove(id_);
    }
    if (!disk_image_.empty()) unlink(disk_image_.c_str());
    for (const char* name : {"init.sock", "state.json"}) {
      unlink((bundle_ + "/" + name).c_str());
    }
    for (const char* name : {"rootfs", "disk"}) rmdir((bundle_ + "/" + name).c_str());
  }
  void set_child(pid_t pid) { child_ = pid; }
  void set_cgroup_created() { cgroup_created_ = true; }
  void set_disk_image(std::string path) { disk_image_ = std::move(path); }
  void Commit() { committed_ = true; }

 private:
  std::string id_;
  std::string bundle_;
  CgroupDriver& cgroups_;
  pid_t child_ = -1;
  std::string disk_image_;
  bool cgroup_created_ = false;
  bool committed_ = false;
};

}  // namespace

uint64_t ProcessStartTime(pid_t pid, bool include_zombies) {
  auto stat = sys::ReadFile("/proc/" + std::to_string(pid) + "/stat", 4096);
  if (!stat) return 0;
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return 0;
  auto fields = Split(std::string(Trim(std::string_view(*stat).substr(close + 1))), ' ');
  // Field 22 overall is starttime; after "pid (comm)" it is index 19.
  if (fields.size() < 20) return 0;
  if (!include_zombies && (fields[0] == "Z" || fields[0] == "X")) return 0;
  return ParseUint64(fields[19]).value_or(0);
}

bool ProcessAlive(pid_t pid, uint64_t start_time) {
  if (pid <= 0) return false;
  uint64_t now = ProcessStartTime(pid);
  return now != 0 && now == start_time;
}

std::string StateToJson(const SandboxState& state) {
  nlohmann::json j = {{"id", state.id},
                      {"init_pid", state.init_pid},
                      {"init_start_time", state.init_start_time},
                      {"socket_path", state.socket_path},
                      {"loop_device", state.loop_device},
                      {"disk_image", state.disk_image},
                      {"created_unix_ns", state.created_unix_ns}};
  return j.dump(2);
}

Result<SandboxState> StateFromJson(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error::DataLoss("state is not a JSON object");
  SandboxState state;
  try {
    state.id = j.at("id").get<std::string>();
    state.init_pid = j.at("init_pid").get<pid_t>();
    state.init_start_time = j.value("init_start_time", uint64_t{0});
    state.socket_path = j.at("socket_path").get<std::string>();
    state.loop_device = j.value("loop_device", std::string());
    state.disk_image = j.value("disk_image", std::string());
    state.created_unix_ns = j.value("created_unix_ns", int64_t{0});
  } catch (const nlohmann::json::exception& e) {
    return Error::DataLoss(std::string("state: ") + e.what());
  }
  return state;
}

Result<SandboxState> ReadState(const std::string& bundle_dir) {
  SBX_ASSIGN_OR_RETURN(std::string text, sys::ReadFile(bundle_dir + "/state.json", 1u << 20));
  return StateFromJson(text);
}

Result<SandboxState> CreateSandbox(const RuntimeSpec& spec, const CreateOptions& options,
                                   CgroupDriver& cgroups) {
  SBX_TRY(Validate(spec));
  const std::string& bundle = options.bundle_dir;
  if (bundle.empty() || bundle[0] != '/') {
    return Error::InvalidArgument("bundle directory must be an absolute path");
  }
  for (size_t i = 0; i < spec.rootfs.layers.size(); ++i) {
    struct stat st {};
    if (stat(spec.rootfs.layers[i].c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return Error::InvalidArgument("rootfs.layers[" + std::to_string(i) +
                                    "]: " + Quote(spec.rootfs.layers[i]) + " is not a directory");
    }
  }
  if (sys::PathExists(bundle + "/state.json")) {
    return Error::AlreadyExists("sandbox " + spec.id + " already exists in " + Quote(bundle));
  }
  SBX_TRY(sys::MakeDirs(bundle, 0700));
  CreateRollback rollback(spec.id, bundle, cgroups);

  // Everything the child needs is opened now, while host paths are still reachable.
  std::vector<UniqueFd> file_fds;
  for (size_t i = 0; i < spec.files.size(); ++i) {
    auto fd = sys::Open(spec.files[i].source, O_RDONLY);
    if (!fd) return std::move(fd).error().Wrap("files[" + std::to_string(i) + "].source");
    file_fds.push_back(std::move(*fd));
  }
  UniqueFd netns;
  if (spec.network.mode == "netns") {
    SBX_ASSIGN_OR_RETURN_CTX(netns, sys::Open(spec.network.netns_path, O_RDONLY),
                             "network namespace");
  }
  UniqueFd init_fd;
  if (options.init_fd >= 0) {
    init_fd.reset(fcntl(options.init_fd, F_DUPFD_CLOEXEC, 3));
    if (!init_fd) return Error::Errno("dup sbx-init descriptor");
  } else {
    SBX_ASSIGN_OR_RETURN_CTX(init_fd, SealedCopyOfInit(options.init_path), "sbx-init binary");
  }
  SBX_ASSIGN_OR_RETURN(UniqueFd config_fd, InitConfigFd(spec));
  for (const char* dir : {"rootfs", "disk"}) {
    std::string path = bundle + "/" + dir;
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
      return Error::Errno("mkdir " + Quote(path));
  }

  // A sandbox made ahead of time sets up at nice 19 (its child and sbx-init inherit it until
  // sbx-init is put back below) in a cgroup of the lowest CPU weight.
  BackgroundPriority background(spec.background);
  CgroupLimits limits{spec.resources.memory_bytes, spec.resources.cpu_millis, spec.resources.pids,
                      spec.background ? kBackgroundCpuWeight : 0};
  SBX_TRY_CTX(cgroups.Create(spec.id, limits), "create cgroup");
  rollback.set_cgroup_created();

  LayerIds layer_ids =
      spec.rootfs.layer_ids.value_or(LayerIds{spec.id_map.host_uid, spec.id_map.host_gid});
  LoopDevice loop;
  UniqueFd writable_mount;
  std::string disk_image;
  if (options.writable_mount_fd >= 0) {
    disk_image = options.writable_image;
    rollback.set_disk_image(disk_image);
  } else if (spec.rootfs.writable.kind == WritableKind::kLoop) {
    // Formatted for the layers' owner, as sbxd's pool is, whichever range the sandbox has: the
    // child gives the overlay's upper directory to the sandbox's root (MakeOverlayDirs).
    DiskFormat format{spec.rootfs.writable.size_bytes, spec.rootfs.writable.inodes,
                      layer_ids.host_uid, layer_ids.host_gid};
    std::string image =
        (options.disk_dir.empty() ? bundle : options.disk_dir) + "/" + spec.id + ".img";
    rollback.set_disk_image(image);
    disk_image = image;
    SBX_ASSIGN_OR_RETURN(bool pooled, TakeFromPool(options.disk_pool_dir, format, image));
    if (!pooled) SBX_TRY(FormatDiskImage(image, format, options.disk_pool_dir));
    SBX_ASSIGN_OR_RETURN_CTX(loop, AttachLoop(image), "writable layer");
    // Mounted here, not by the child: the child is in the sandbox's cgroup by then, whose devices
    // controller (cgroup v1) allows it no block device.
    SBX_ASSIGN_OR_RETURN_CTX(
        writable_mount,
        MakeMount("ext4", {{"source", loop.path}}, kMountNoSuid | kMountNoDev, "writable layer"),
        "writable layer");
    // The mount holds the device now; with autoclear it detaches when the mount goes.
    loop.fd.reset();
  }

  // Layers owned by another range than the sandbox's are mounted idmapped (in the child); the
  // user namespace that carries the shift is made now, while this process is still alone.
  UniqueFd layers_userns;
  if (layer_ids.host_uid != spec.id_map.host_uid || layer_ids.host_gid != spec.id_map.host_gid) {
    SBX_ASSIGN_OR_RETURN_CTX(
        layers_userns,
        MakeIdmapUserNamespace({layer_ids.host_uid, layer_ids.host_gid, spec.id_map.host_uid,
                                spec.id_map.host_gid, spec.id_map.size}),
        "idmapped layers");
  }

  std::string socket_path = bundle + "/init.sock";
  SBX_ASSIGN_OR_RETURN(UniqueFd listen_fd, sys::ListenUnix(socket_path, 1024, 0600));

  SBX_ASSIGN_OR_RETURN(auto sync, sys::SocketPair());
  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) return Error::Errno("pipe");
  UniqueFd error_read(error_pipe[0]);
  UniqueFd error_write(error_pipe[1]);

  std::string seccomp_bpf = options.seccomp_bpf;
  if (seccomp_bpf.empty()) {
    SBX_ASSIGN_OR_RETURN(seccomp_bpf, DefaultPolicyBpf());
  }
  ChildContext ctx;
  ctx.spec = &spec;
  ctx.seccomp_bpf = &seccomp_bpf;
  ctx.bundle = bundle;
  ctx.writable_mount_fd =
      options.writable_mount_fd >= 0 ? options.writable_mount_fd : writable_mount.get();
  ctx.sync_fd = sync.second.get();
  ctx.error_fd = error_write.get();
  ctx.listen_fd = listen_fd.get();
  ctx.config_fd = config_fd.get();
  ctx.init_fd = init_fd.get();
  ctx.netns_fd = netns.get();
  ctx.layers_userns_fd = layers_userns.get();
  for (const auto& fd : file_fds) ctx.file_fds.push_back(fd.get());

  unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (!netns) flags |= CLONE_NEWNET;
  // JUSTIFICATION: a fork-like clone (no new stack): the child continues here with a copy of this
  // single-threaded process, in new namespaces.
  long pid = syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) return Error::Errno("clone sandbox namespaces");
  if (pid == 0) {
    sync.first.reset();
    error_read.reset();
    ChildMain(ctx);
  }
  rollback.set_child(static_cast<pid_t>(pid));
  sync.second.reset();
  error_write.reset();
  int sync_fd = sync.first.get();

  auto child_error = [&]() -> Error {
    auto record = sys::ReadFd(error_read.get(), 8192);
    if (record && !record->empty()) return ParseChildError(*record);
    return Error::Internal("sandbox setup process died");
  };
  // The child sets up its mounts while it is moved into its cgroup: a cgroup v1 migration waits
  // for an RCU grace period (milliseconds), and the setup runs only the runtime's own code. The
  // child cannot proceed to its user namespace, and so to anything of the sandbox's, until the
  // move is done (it waits for 'M' below).
  if (!SyncWrite(sync_fd, 'G')) return child_error();
  SBX_TRY_CTX(cgroups.AddProcess(spec.id, static_cast<pid_t>(pid)), "join cgroup");
  SBX_TRY_CTX(ProtectInitFromOom(static_cast<pid_t>(pid)), "oom_score_adj of sbx-init");
  if (!SyncRead(sync_fd, 'U')) return child_error();
  SBX_TRY_CTX(WriteIdMaps(static_cast<pid_t>(pid), spec.id_map), "map sandbox ids");
  if (!SyncWrite(sync_fd, 'M')) return child_error();
  // EOF on the error pipe without a record: sbx-init is running.
  auto record = sys::ReadFd(error_read.get(), 8192);
  if (!record) return std::move(record).error();
  if (!record->empty()) return ParseChildError(*record);

  if (spec.background) {
    // sbx-init has forked nothing yet: what it starts later runs at the normal priority.
    if (setpriority(PRIO_PROCESS, static_cast<id_t>(pid), 0) != 0) {
      return Error::Errno("reset the priority of sbx-init");
    }
  }

  SandboxState state;
  state.id = spec.id;
  state.init_pid = static_cast<pid_t>(pid);
  state.init_start_time = ProcessStartTime(state.init_pid);
  state.socket_path = socket_path;
  state.loop_device = loop.path;
  state.disk_image = disk_image;
  state.created_unix_ns = WallNanos();
  // Atomic but not fsync'ed: the bundle is ephemeral runtime state (sbxd's database is the
  // durable record), and an fsync would cost more than the rest of the create.
  SBX_TRY(sys::WriteFileAtomic(bundle + "/state.json", StateToJson(state), 0600, /*sync=*/false));
  rollback.Commit();
  return state;
}

Status DestroySandbox(const std::string& id, const std::string& bundle_dir, CgroupDriver& cgroups) {
  auto state = ReadState(bundle_dir);
  UniqueFd init_pidfd;
  // A zombie too: sbx-init exits by itself once its main exit is acknowledged, and must still be
  // reaped.
  if (state && state->init_pid > 0 &&
      ProcessStartTime(state->init_pid, /*include_zombies=*/true) == state->init_start_time) {
    if (auto fd = sys::PidfdOpen(state->init_pid)) init_pidfd = std::move(*fd);
  }
  Status killed = cgroups.KillAll(id);
  if (!killed) return std::move(killed).error().Wrap("stop sandbox " + id);
  if (init_pidfd) {
    // A task leaves its cgroup a moment before it becomes a zombie; wait for that, then reap
    // sbx-init if it is our child (we are its parent or subreaper). Otherwise whoever adopted it
    // reaps it.
    pollfd pfd{init_pidfd.get(), POLLIN, 0};
    if (poll(&pfd, 1, 5000) == 1) {
      // Readable once it has exited, which can be a moment before it is reapable: a WNOHANG
      // wait here could miss it and leave a zombie. Not our child: ECHILD at once.
      siginfo_t info{};
      while (waitid(P_PIDFD, static_cast<id_t>(init_pidfd.get()), &info, WEXITED) < 0 &&
             errno == EINTR) {
      }
    } else {
      int status;
      while (waitpid(state->init_pid, &status, WNOHANG) < 0 && errno == EINTR) {
      }
    }
  }
  // No process is left: every remaining step is independent of the others, and each is taken
  // even when one fails, so a later attempt finds less to do.
  Status result = cgroups.Remove(id);
  if (!result) result = std::move(result).error().Wrap("remove cgroup of " + id);
  // The image may still be attached to its loop device for a moment (until the sandbox's mount
  // namespace is gone); unlinking it now is fine, the space is freed on detach.
  if (state && !state->disk_image.empty() && unlink(state->disk_image.c_str()) != 0 &&
      errno != ENOENT && result) {
    result = Error::Errno("remove the writable layer of " + id);
  }
  if (Status removed = sys::RemoveTree(bundle_dir); !removed && result) {
    result = std::move(removed).error().Wrap("remove bundle of " + id);
  }
  return result;
}

}  // namespace sbx::runtime
