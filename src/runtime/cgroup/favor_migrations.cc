#include "src/runtime/cgroup/favor_migrations.h"

#include <utility>

#include "src/runtime/mounts.h"

namespace sbx::runtime {

Result<FavorMigrations> FavorMigrations::Enable() {
  auto mount = MakeMount("cgroup", {{"none", ""}, {"name", kHierarchyName}, {"favordynmods", ""}},
                         kMountNoSuid | kMountNoDev | kMountNoExec, "favordynmods hierarchy");
  if (!mount) {
    return Error::FailedPrecondition(
        "the kernel cannot make a named cgroup v1 hierarchy with favordynmods (it needs Linux "
        "6.0+ with cgroup v1 support, not booted with cgroup_no_v1=named): " +
        mount.error().message());
  }
  return FavorMigrations(std::move(*mount));
}

}  // namespace sbx::runtime
