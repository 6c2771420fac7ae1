// File: mounts.h
//
// Mount operations on file descriptors, through the new mount API (fsopen/fsmount/open_tree/
// move_mount/mount_setattr, Linux 5.2+ and 5.12+ for mount_setattr). A target is an O_PATH
// descriptor resolved beforehand with symlinks refused, so a path inside the sandbox is never
// looked up again by mount(2) and cannot be swapped for a symlink in between.

#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::runtime {

// MOUNT_ATTR_* values, so callers need not include <linux/mount.h> (which clashes with
// <sys/mount.h> on glibc 2.36).
enum MountAttr : unsigned {
  kMountReadOnly = 0x1,
  kMountNoSuid = 0x2,
  kMountNoDev = 0x4,
  kMountNoExec = 0x8,
};

struct FsOption {
  std::string key;
  std::string value;  // empty: a flag option
};

// Creates a filesystem of `fstype` and returns the detached mount (not attached anywhere yet).
// `attrs` are MOUNT_ATTR_* flags.
Result<UniqueFd> MakeMount(const std::string& fstype, const std::vector<FsOption>& options,
                           unsigned attrs, const std::string& label);

// Attaches a detached mount onto the directory or file `target_fd`.
Status AttachMount(int mount_fd, int target_fd, const std::string& label);

// Mounts a new filesystem onto `target_fd`.
Status MountOn(int target_fd, const std::string& fstype, const std::vector<FsOption>& options,
               unsigned attrs, const std::string& label);

// Bind-mounts `source_fd` (a file or directory) onto `target_fd`, optionally read-only.
Status BindOn(int source_fd, int target_fd, bool readonly, bool recursive,
              const std::string& label);

// Makes the tree at `target_fd` read-only by binding it onto itself read-only (for paths that are
// not mount points, such as /proc/sys).
Status RemountReadOnly(int target_fd, const std::string& label);

// Sets the attributes of the mount whose root is `mount_root_fd` itself (not recursive).
Status SetMountAttributes(int mount_root_fd, unsigned attrs, const std::string& label);

// Mounts overlayfs with `lowers` (top first) on `target_fd`. Uses one "lowerdir+" per layer where
// the kernel supports it (6.8+), so the number of layers is not limited by the page-sized mount
// data; falls back to a single "lowerdir" string. Inode numbers are made consistent across layers
// on different filesystems (xino=on): readdir's d_ino is stat's st_ino, and every file reports
// the overlay's device.
Status MountOverlay(int target_fd, const std::vector<std::string>& lowers, const std::string& upper,
                    const std::string& work, unsigned attrs);

// Host ids shifted by idmapped mounts: `size` uids from `from_uid` (and gids from `from_gid`), as
// files store them, appear as the ids from `to_uid` (`to_gid`).
struct IdShift {
  uint32_t from_uid = 0;
  uint32_t from_gid = 0;
  uint32_t to_uid = 0;
  uint32_t to_gid = 0;
  uint32_t size = 0;
};

// A user namespace that carries `shift` for idmapped mounts (MOUNT_ATTR_IDMAP); nothing runs in
// it. A short-lived child that shares the caller's memory holds it while its maps are written.
Result<UniqueFd> MakeIdmapUserNamespace(const IdShift& shift);

// Covers the directory `dir_fd` with an idmapped bind of itself, through the user namespace
// `userns_fd`, in the caller's mount namespace: a path that led to the directory leads to the
// idmapped mount from then on.
Status IdmapOnItself(int dir_fd, int userns_fd, const std::string& label);

}  // namespace sbx::runtime
