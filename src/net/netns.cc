#include "src/net/netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::net {

Status CreatePinnedNetns(const std::string& pin, const std::function<Status()>& inside) {
  SBX_ASSIGN_OR_RETURN_CTX(UniqueFd original, sys::Open("/proc/thread-self/ns/net", O_RDONLY),
                           "current network namespace");
  {
    UniqueFd file(open(pin.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
    if (!file) return Error::Errno("create " + Quote(pin));
  }
  if (unshare(CLONE_NEWNET) != 0) {
    Error error = Error::Errno("unshare network namespace");
    unlink(pin.c_str());
    return error;
  }
  Status result = inside();
  if (result && mount("/proc/thread-self/ns/net", pin.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    result = Error::Errno("pin network namespace on " + Quote(pin));
  }
  if (setns(original.get(), CLONE_NEWNET) != 0) {
    // SECURITY: this thread would go on creating the host's objects inside a sandbox's namespace.
    SBX_LOG_ERROR("cannot return to the host's network namespace: {}", strerror(errno));
    std::abort();
  }
  if (!result) {
    umount2(pin.c_str(), MNT_DETACH);
    unlink(pin.c_str());
  }
  return result;
}

Status RemovePinnedNetns(const std::string& pin) {
  if (umount2(pin.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL &&
      errno != ENOENT) {
    return Error::Errno("unmount " + Quote(pin));
  }
  if (unlink(pin.c_str()) != 0 && errno != ENOENT) return Error::Errno("remove " + Quote(pin));
  return Ok();
}

bool IsMountPoint(const std::string& path) {
  struct statx stx {};
  if (statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) != 0) {
    return false;
  }
  return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
         (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

Status MakePrivateMount(const std::string& dir) {
  if (!IsMountPoint(dir) && mount(dir.c_str(), dir.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return Error::Errno("bind-mount " + Quote(dir) + " on itself");
  }
  if (mount(nullptr, dir.c_str(), nullptr, MS_PRIVATE, nullptr) != 0) {
    return Error::Errno("make " + Quote(dir) + " a private mount");
  }
  return Ok();
}

Status WriteNetSysctl(const std::string& name, const std::string& value) {
  return sys::WriteKnob("/proc/sys/" + name, value);
}

Result<std::string> ReadNetSysctl(const std::string& name) {
  SBX_ASSIGN_OR_RETURN(std::string value, sys::ReadFile("/proc/sys/" + name, 4096));
  return std::string(Trim(value));
}

}  // namespace sbx::net
