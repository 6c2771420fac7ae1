#include "src/runtime/mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>

#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::runtime {

namespace {

// JUSTIFICATION: glibc 2.36 declares these in <sys/mount.h> but that header conflicts with
// <linux/mount.h>, which has the flag values; the raw syscalls are stable ABI.
int FsOpen(const char* fstype, unsigned flags) {
  return static_cast<int>(syscall(SYS_fsopen, fstype, flags));
}
int FsConfig(int fd, unsigned cmd, const char* key, const void* value, int aux) {
  return static_cast<int>(syscall(SYS_fsconfig, fd, cmd, key, value, aux));
}
int FsMount(int fd, unsigned flags, unsigned attrs) {
  return static_cast<int>(syscall(SYS_fsmount, fd, flags, attrs));
}
int MoveMount(int from_fd, const char* from, int to_fd, const char* to, unsigned flags) {
  return static_cast<int>(syscall(SYS_move_mount, from_fd, from, to_fd, to, flags));
}
int OpenTree(int fd, const char* path, unsigned flags) {
  return static_cast<int>(syscall(SYS_open_tree, fd, path, flags));
}
int MountSetattr(int fd, const char* path, unsigned flags, mount_attr* attr) {
  return static_cast<int>(syscall(SYS_mount_setattr, fd, path, flags, attr, sizeof *attr));
}

// The kernel's own explanation of a failed fsconfig, when it left one in the fs context.
std::string ContextLog(int fs_fd) {
  std::string out;
  char buf[512];
  while (true) {
    ssize_t n = read(fs_fd, buf, sizeof buf - 1);
    if (n <= 0) break;
    buf[n] = '\0';
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

static_assert(kMountReadOnly == MOUNT_ATTR_RDONLY && kMountNoSuid == MOUNT_ATTR_NOSUID &&
              kMountNoDev == MOUNT_ATTR_NODEV && kMountNoExec == MOUNT_ATTR_NOEXEC);

}  // namespace

Result<UniqueFd> MakeMount(const std::string& fstype, const std::vector<FsOption>& options,
                           unsigned attrs, const std::string& label) {
  UniqueFd fs(FsOpen(fstype.c_str(), FSOPEN_CLOEXEC));
  if (!fs) return Error::Errno("fsopen " + fstype + " for " + label);
  for (const auto& opt : options) {
    int rc = opt.value.empty()
                 ? FsConfig(fs.get(), FSCONFIG_SET_FLAG, opt.key.c_str(), nullptr, 0)
                 : FsConfig(fs.get(), FSCONFIG_SET_STRING, opt.key.c_str(), opt.value.c_str(), 0);
    if (rc != 0) {
      Error e = Error::Errno("mount " + fstype + " on " + label + ": option " + opt.key);
      std::string log = ContextLog(fs.get());
      return log.empty() ? e : std::move(e).Wrap(log);
    }
  }
  if (FsConfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    Error e = Error::Errno("mount " + fstype + " on " + label);
    std::string log = ContextLog(fs.get());
    return log.empty() ? e : std::move(e).Wrap(log);
  }
  UniqueFd mnt(FsMount(fs.get(), FSMOUNT_CLOEXEC, attrs));
  if (!mnt) return Error::Errno("fsmount " + fstype + " for " + label);
  return mnt;
}

Status AttachMount(int mount_fd, int target_fd, const std::string& label) {
  if (MoveMount(mount_fd, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) !=
      0) {
    return Error::Errno("attach mount on " + label);
  }
  return Ok();
}

Status MountOn(int target_fd, const std::string& fstype, const std::vector<FsOption>& options,
               unsigned attrs, const std::string& label) {
  SBX_ASSIGN_OR_RETURN(UniqueFd mnt, MakeMount(fstype, options, attrs, label));
  return AttachMount(mnt.get(), target_fd, label);
}

Status BindOn(int source_fd, int target_fd, bool readonly, bool recursive,
              const std::string& label) {
  unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH;
  if (recursive) flags |= AT_RECURSIVE;
  UniqueFd tree(OpenTree(source_fd, "", flags));
  if (!tree) return Error::Errno("clone mount for " + label);
  if (readonly) {
    mount_attr attr{};
    attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (MountSetattr(tree.get(), "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr) != 0) {
      return Error::Errno("make " + label + " read-only");
    }
  }
  return AttachMount(tree.get(), target_fd, label);
}

Status RemountReadOnly(int target_fd, const std::string& label) {
  return BindOn(target_fd, target_fd, true, true, label);
}

Status SetMountAttributes(int mount_root_fd, unsigned attrs, const std::string& label) {
  mount_attr attr{};
  attr.attr_set = attrs;
  if (MountSetattr(mount_root_fd, "", AT_EMPTY_PATH, &attr) != 0) {
    return Error::Errno("set attributes of " + label);
  }
  return Ok();
}

Status MountOverlay(int target_fd, const std::vector<std::string>& lowers, const std::string& upper,
                    const std::string& work, unsigned attrs) {
  // Layers on different filesystems (image layers on the host's, the writable layer on its own)
  // otherwise give directories inode numbers that readdir and stat disagree on.
  std::vector<FsOption> base = {{"upperdir", upper}, {"workdir", work}, {"xino", "on"}};
  std::vector<FsOption> incremental;
  for (const auto& dir : lowers) incremental.push_back({"lowerdir+", dir});
  incremental.insert(incremental.end(), base.begin(), base.end());
  auto mnt = MakeMount("overlay", incremental, attrs, "rootfs");
  if (!mnt && mnt.error().sys_errno() == EINVAL) {
    std::vector<FsOption> joined = {{"lowerdir", Join(lowers, ":")}};
    joined.insert(joined.end(), base.begin(), base.end());
    mnt = MakeMount("overlay", joined, attrs, "rootfs");
  }
  if (!mnt) return std::move(mnt).error();
  return AttachMount(mnt->get(), target_fd, "rootfs");
}

namespace {

// The child that holds an idmapping's user namespace open while its maps are written. It runs in
// this process's memory (CLONE_VM: no copy of the page tables, a fork would cost a create about a
// millisecond) on a stack of its own: raw system calls only, none of which can fail and set the
// errno it shares with this process, and no sanitizer instrumentation.
struct HoldPipe {
  int hold = -1;     // read end: EOF tells the child to exit
  int release = -1;  // write end, the parent's
};

__attribute__((no_sanitize("address", "undefined"))) int HoldNamespace(void* arg) {
  const HoldPipe* pipe = static_cast<const HoldPipe*>(arg);
  // JUSTIFICATION: raw system calls, see above.
  syscall(SYS_close, pipe->release);
  char c;
  syscall(SYS_read, pipe->hold, &c, 1);
  syscall(SYS_exit, 0);
  return 0;
}

}  // namespace

Result<UniqueFd> MakeIdmapUserNamespace(const IdShift& shift) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return Error::Errno("pipe");
  UniqueFd hold(pipe_fds[0]);
  UniqueFd release(pipe_fds[1]);
  HoldPipe fds{hold.get(), release.get()};
  constexpr size_t kStackSize = 64 << 10;
  std::unique_ptr<char[]> stack(new char[kStackSize]);
  // JUSTIFICATION: clone with its own stack; the stack grows down from its end.
  int pid =
      clone(HoldNamespace, stack.get() + kStackSize, CLONE_VM | CLONE_NEWUSER | SIGCHLD, &fds);
  if (pid < 0) return Error::Errno("clone a user namespace for idmapped mounts");
  hold.reset();
  std::string proc = "/proc/" + std::to_string(pid);
  auto make = [&]() -> Result<UniqueFd> {
    SBX_TRY(sys::WriteKnob(proc + "/uid_map", std::to_string(shift.from_uid) + " " +
                                                  std::to_string(shift.to_uid) + " " +
                                                  std::to_string(shift.size) + "\n"));
    SBX_TRY(sys::WriteKnob(proc + "/gid_map", std::to_string(shift.from_gid) + " " +
                                                  std::to_string(shift.to_gid) + " " +
                                                  std::to_string(shift.size) + "\n"));
    return sys::Open(proc + "/ns/user", O_RDONLY);
  };
  auto userns = make();
  release.reset();
  // The stack is freed only once the child is gone.
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return userns;
}

Status IdmapOnItself(int dir_fd, int userns_fd, const std::string& label) {
  UniqueFd tree(OpenTree(dir_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH));
  if (!tree) return Error::Errno("clone mount for " + label);
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(userns_fd);
  if (MountSetattr(tree.get(), "", AT_EMPTY_PATH, &attr) != 0) {
    return Error::Errno("idmap " + label + " (the filesystem must support idmapped mounts)");
  }
  return AttachMount(tree.get(), dir_fd, label);
}

}  // namespace sbx::runtime
