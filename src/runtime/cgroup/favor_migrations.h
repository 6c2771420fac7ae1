// Keeps task migrations between cgroups cheap for as long as a daemon runs.
//
// Moving a process into a cgroup takes the kernel's global cgroup_threadgroup_rwsem for writing.
// In its default mode that waits for an RCU grace period whenever no other migration happened a
// moment before: 10-15 ms on a small VM, more than all the rest of a sandbox create. The kernel's
// "favordynmods" option (Linux 6.0+) keeps the lock in the mode where writers do not wait, at the
// price of slightly more expensive forks and exits host-wide. The option belongs to a cgroup root
// but the lock is global, so a tiny named v1 hierarchy with the option is enough, and the host's
// own cgroup mounts are left alone. The hierarchy is held by a detached mount that only this
// object's descriptor references: when the daemon exits, however it exits, the kernel destroys
// the hierarchy and the lock returns to its default mode. Nothing is left behind.
#pragma once

#include <string>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::runtime {

class FavorMigrations {
 public:
  // The name of the hierarchy, as /proc/<pid>/cgroup lists it ("name=...").
  static constexpr const char* kHierarchyName = "sbx-favor-migrations";

  // FAILED_PRECONDITION when the kernel has no favordynmods or no named v1 hierarchies (a
  // kernel without CONFIG_CGROUP_V1, or booted with cgroup_no_v1=named).
  static Result<FavorMigrations> Enable();

  FavorMigrations() = default;
  bool enabled() const { return static_cast<bool>(mount_); }
  void Release() { mount_.reset(); }

 private:
  explicit FavorMigrations(UniqueFd mount) : mount_(std::move(mount)) {}
  UniqueFd mount_;
};

}  // namespace sbx::runtime
