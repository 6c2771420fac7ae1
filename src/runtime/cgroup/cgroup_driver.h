// File: cgroup_driver.h
//
// CgroupDriver puts a sandbox's processes under kernel-enforced limits: memory (OOM kills stay
// inside the group and are counted), CPU quota, and a pids limit. Hosts differ, so there are two
// drivers behind this interface: CgroupV1Driver for the legacy/hybrid layout (one hierarchy per
// controller) and CgroupV2Driver for the unified hierarchy. Every kernel path is a constructor
// parameter, so tests can point a driver at a fake cgroupfs in a temporary directory.
//
// Vocabulary: a group is named by the sandbox id and lives under a parent directory ("sbx") in
// each hierarchy.

#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/sys/features.h"

namespace sbx::runtime {

struct CgroupLimits {
  uint64_t memory_bytes = 0;  // 0: unlimited
  uint64_t cpu_millis = 0;    // 0: unlimited
  uint64_t pids = 0;          // 0: unlimited
  // Share of CPU under contention, in cgroup v2 units (1..10000; v1 cpu.shares is weight * 1024
  // / 100). 0: the kernel's default at creation, left as it is by SetLimits.
  uint64_t cpu_weight = 0;
};

inline constexpr uint64_t kDefaultCpuWeight = 100;
inline constexpr uint64_t kBackgroundCpuWeight = 1;

struct CgroupStats {
  uint64_t oom_kills = 0;
  uint64_t memory_bytes = 0;
  uint64_t memory_peak_bytes = 0;
  uint64_t pids = 0;
  uint64_t cpu_usage_ns = 0;
};

// One write of the plan that applies limits: `file` in the group's directory of `controller`
// ("" for the unified hierarchy).
struct CgroupWrite {
  std::string controller;
  std::string file;
  std::string value;
  bool optional =
      false;  // skipped when the file does not exist (e.g. memsw without swap accounting)
  bool operator==(const CgroupWrite&) const = default;
};

class CgroupDriver {
 public:
  virtual ~CgroupDriver() = default;

  virtual std::string version() const = 0;
  // Pure: the writes that apply `limits`.
  virtual std::vector<CgroupWrite> PlanLimits(const CgroupLimits& limits) const = 0;
  // Pure: the writes that confine a new group's access to devices to the sandbox's own
  // (runtime/devices.h), in order; none where the hierarchy has no devices controller (cgroup v2:
  // SECURITY.md says what stands in for it).
  virtual std::vector<CgroupWrite> PlanDevices() const = 0;
  // Creates the group (failing if it exists) and applies the limits; on failure nothing is left.
  virtual Status Create(const std::string& name, const CgroupLimits& limits) = 0;
  // Changes the limits of an existing group: a sandbox made ahead of time gets its user's.
  virtual Status SetLimits(const std::string& name, const CgroupLimits& limits) = 0;
  virtual Status AddProcess(const std::string& name, pid_t pid) = 0;
  virtual Result<std::vector<pid_t>> Processes(const std::string& name) = 0;
  // Kills every process of the group and waits (bounded) until it is empty.
  virtual Status KillAll(const std::string& name, int timeout_ms = 10000) = 0;
  // Kills every process of the group but `spared`, until only it is left (or nothing).
  virtual Status KillAllBut(const std::string& name, pid_t spared, int timeout_ms) = 0;
  // Removes the group; it must be empty. A missing group is success.
  virtual Status Remove(const std::string& name) = 0;
  virtual Result<CgroupStats> Stats(const std::string& name) = 0;
  virtual bool Exists(const std::string& name) const = 0;
  // The group's directories, for diagnostics and leak checks.
  virtual std::vector<std::string> Paths(const std::string& name) const = 0;
  // Names of the groups currently under the parent.
  virtual std::vector<std::string> List() const = 0;
  // Removes the parent's directories when no group is under them (the kernel refuses to remove a
  // directory that has groups); true when none is left. A daemon that stops with no sandbox
  // leaves no cgroup behind; the next Create makes the parent again.
  virtual bool RemoveParentIfEmpty() = 0;
};

// The driver for the host's layout (v2 when the unified hierarchy has memory, cpu and pids;
// otherwise v1), or an error saying what is missing.
Result<std::unique_ptr<CgroupDriver>> MakeCgroupDriver(const sys::CgroupLayout& layout,
                                                       const std::string& parent = "sbx");

std::unique_ptr<CgroupDriver> MakeCgroupV1Driver(std::map<std::string, std::string> mounts,
                                                 const std::string& parent);
std::unique_ptr<CgroupDriver> MakeCgroupV2Driver(const std::string& root,
                                                 const std::string& parent);

}  // namespace sbx::runtime
