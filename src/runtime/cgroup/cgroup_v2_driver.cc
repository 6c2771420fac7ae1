// The cgroup v2 driver: one directory in the unified hierarchy. The parent directory enables the
// memory, cpu and pids controllers for its children. Killing uses cgroup.kill (Linux 5.14) and
// falls back to cgroup.freeze + SIGKILL.

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/runtime/cgroup/cgroup_common.h"
#include "src/runtime/cgroup/cgroup_driver.h"
#include "src/sys/fs.h"

namespace sbx::runtime {

using namespace cgroup_internal;  // NOLINT(google-build-using-namespace)

namespace {

class CgroupV2Driver : public CgroupDriver {
 public:
  CgroupV2Driver(std::string root, std::string parent)
      : root_(std::move(root)), parent_(std::move(parent)) {}

  std::string version() const override { return "v2"; }

  std::vector<CgroupWrite> PlanLimits(const CgroupLimits& limits) const override {
    std::vector<CgroupWrite> plan;
    if (limits.memory_bytes > 0) {
      plan.push_back({"", "memory.max", std::to_string(limits.memory_bytes)});
      plan.push_back({"", "memory.swap.max", "0", true});
      // An OOM kill takes the offending process, not the whole sandbox (sbx-init survives and
      // reports it).
      plan.push_back({"", "memory.oom.group", "0", true});
    }
    if (limits.cpu_millis > 0) {
      plan.push_back({"", "cpu.max", std::to_string(limits.cpu_millis * 100) + " 100000"});
    }
    if (limits.cpu_weight > 0) {
      plan.push_back(
          {"", "cpu.weight", std::to_string(std::clamp<uint64_t>(limits.cpu_weight, 1, 10000))});
    }
    if (limits.pids > 0) plan.push_back({"", "pids.max", std::to_string(limits.pids)});
    return plan;
  }

  std::vector<CgroupWrite> PlanDevices() const override { return {}; }

  std::string ParentDir() const { return root_ + "/" + parent_; }
  std::string Dir(const std::string& name) const { return ParentDir() + "/" + name; }

  Status EnsureParent() {
    std::string dir = ParentDir();
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      return Error::Errno("mkdir " + Quote(dir));
    // Controllers must be enabled top-down: in the root for the parent, in the parent for the
    // sandboxes.
    for (const auto& d : {root_, dir}) {
      for (const char* c : {"+memory", "+cpu", "+pids"}) {
        (void)sys::WriteKnob(d + "/cgroup.subtree_control", c);
      }
    }
    return Ok();
  }

  Status Create(const std::string& name, const CgroupLimits& limits) override {
    SBX_TRY(EnsureParent());
    std::string dir = Dir(name);
    if (mkdir(dir.c_str(), 0755) != 0) return Error::Errno("mkdir " + Quote(dir));
    for (const auto& w : PlanLimits(limits)) {
      if (Status s = ApplyWrite(dir, w); !s) {
        (void)RemoveDir(dir);
        return std::move(s).error().Wrap("apply cgroup limit");
      }
    }
    return Ok();
  }

  Status SetLimits(const std::string& name, const CgroupLimits& limits) override {
    for (const auto& w : PlanLimits(limits)) SBX_TRY(ApplyWrite(Dir(name), w));
    return Ok();
  }

  Status AddProcess(const std::string& name, pid_t pid) override {
    return sys::WriteKnob(Dir(name) + "/cgroup.procs", std::to_string(pid));
  }

  Result<std::vector<pid_t>> Processes(const std::string& name) override {
    return ReadProcs(Dir(name));
  }

  Status KillAll(const std::string& name, int timeout_ms) override {
    return KillAllBut(name, 0, timeout_ms);
  }

  Status KillAllBut(const std::string& name, pid_t spared, int timeout_ms) override {
    if (!Exists(name)) return Ok();
    std::string dir = Dir(name);
    int64_t deadline = MonotonicMillis() + timeout_ms;
    // cgroup.kill spares nobody.
    bool have_kill = spared == 0 && sys::PathExists(dir + "/cgroup.kill");
    for (int attempt = 0;; ++attempt) {
      SBX_ASSIGN_OR_RETURN(auto pids, Processes(name));
      std::erase(pids, spared);
      if (pids.empty()) break;
      if (MonotonicMillis() > deadline) {
        return Error::DeadlineExceeded("cgroup " + name + " still has " +
                                       std::to_string(pids.size()) + " processes after kill");
      }
      if (have_kill) {
        (void)sys::WriteKnob(dir + "/cgroup.kill", "1");
      } else {
        (void)sys::WriteKnob(dir + "/cgroup.freeze", "1");
        SBX_ASSIGN_OR_RETURN(auto frozen, ReadProcs(dir));
        for (pid_t pid : frozen) {
          if (pid != spared) kill(pid, SIGKILL);
        }
        (void)sys::WriteKnob(dir + "/cgroup.freeze", "0");
      }
      Backoff(attempt);
    }
    return Ok();
  }

  Status Remove(const std::string& name) override { return RemoveDir(Dir(name)); }

  Result<CgroupStats> Stats(const std::string& name) override {
    CgroupStats stats;
    auto events = sys::ReadFile(Dir(name) + "/memory.events", 4096);
    if (!events) return std::move(events).error();
    stats.oom_kills = KeyedValue(*events, "oom_kill");
    stats.memory_bytes = ReadNumber(Dir(name) + "/memory.current");
    stats.memory_peak_bytes = ReadNumber(Dir(name) + "/memory.peak");
    stats.pids = ReadNumber(Dir(name) + "/pids.current");
    if (auto cpu = sys::ReadFile(Dir(name) + "/cpu.stat", 4096)) {
      stats.cpu_usage_ns = KeyedValue(*cpu, "usage_usec") * 1000;
    }
    return stats;
  }

  bool Exists(const std::string& name) const override { return sys::PathExists(Dir(name)); }

  std::vector<std::string> Paths(const std::string& name) const override { return {Dir(name)}; }

  std::vector<std::string> List() const override { return ListSubdirs(ParentDir()); }

  bool RemoveParentIfEmpty() override { return rmdir(ParentDir().c_str()) == 0 || errno == ENOENT; }

 private:
  std::string root_;
  std::string parent_;
};

}  // namespace

std::unique_ptr<CgroupDriver> MakeCgroupV2Driver(const std::string& root,
                                                 const std::string& parent) {
  return std::make_unique<CgroupV2Driver>(root, parent);
}

Result<std::unique_ptr<CgroupDriver>> MakeCgroupDriver(const sys::CgroupLayout& layout,
                                                       const std::string& parent) {
  if (layout.version == "v2") return MakeCgroupV2Driver(layout.v2_root, parent);
  if (layout.version == "v1") return MakeCgroupV1Driver(layout.v1_mounts, parent);
  return Error::FailedPrecondition(
      "no usable cgroup hierarchy: need cgroup v2 with the memory, cpu and pids controllers, or "
      "cgroup v1 with memory, cpu, pids and freezer mounted");
}

}  // namespace sbx::runtime
