// Helpers shared by the cgroup drivers.

#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/runtime/cgroup/cgroup_driver.h"

namespace sbx::runtime::cgroup_internal {

Result<std::vector<pid_t>> ReadProcs(const std::string& dir);
// Applies one planned write inside `dir`.
Status ApplyWrite(const std::string& dir, const CgroupWrite& write);
// rmdir with retries on EBUSY (the kernel releases an emptied group asynchronously).
Status RemoveDir(const std::string& dir);
// Value of "key N" in a flat keyed file (memory.events, cpu.stat, memory.oom_control).
uint64_t KeyedValue(const std::string& text, const std::string& key);
uint64_t ReadNumber(const std::string& path);
std::vector<std::string> ListSubdirs(const std::string& dir);
// Sleeps with a growing back-off, for waits on kernel state that has no notification.
void Backoff(int attempt);

}  // namespace sbx::runtime::cgroup_internal
