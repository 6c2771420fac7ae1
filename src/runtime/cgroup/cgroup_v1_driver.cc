// The cgroup v1 driver: one directory per controller hierarchy (memory, cpu, pids, freezer, and
// cpuacct for statistics), and, where they are mounted, devices (the sandbox's device nodes and
// nothing else), cpuset (the parent's CPUs and memory nodes) and blkio, so that no sandbox is
// left in a hierarchy's root group. Killing uses the freezer so that no process can fork while
// the survivors are being signalled.

#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/runtime/cgroup/cgroup_common.h"
#include "src/runtime/cgroup/cgroup_driver.h"
#include "src/runtime/devices.h"
#include "src/sys/fs.h"

namespace sbx::runtime {

using namespace cgroup_internal;  // NOLINT(google-build-using-namespace)

namespace {

class CgroupV1Driver : public CgroupDriver {
 public:
  CgroupV1Driver(std::map<std::string, std::string> mounts, std::string parent)
      : mounts_(std::move(mounts)), parent_(std::move(parent)) {
    for (const char* c :
         {"memory", "cpu", "pids", "freezer", "cpuacct", "devices", "cpuset", "blkio"}) {
      if (mounts_.count(c)) controllers_.emplace_back(c);
    }
  }

  std::string version() const override { return "v1"; }

  std::vector<CgroupWrite> PlanLimits(const CgroupLimits& limits) const override {
    std::vector<CgroupWrite> plan;
    if (limits.memory_bytes > 0) {
      std::string bytes = std::to_string(limits.memory_bytes);
      plan.push_back({"memory", "memory.limit_in_bytes", bytes});
      // Memory plus swap equal to memory: the sandbox cannot swap its way past the limit.
      plan.push_back({"memory", "memory.memsw.limit_in_bytes", bytes, true});
      plan.push_back({"memory", "memory.swappiness", "0", true});
    }
    if (limits.cpu_millis > 0) {
      plan.push_back({"cpu", "cpu.cfs_period_us", "100000"});
      plan.push_back({"cpu", "cpu.cfs_quota_us", std::to_string(limits.cpu_millis * 100)});
    }
    if (limits.cpu_weight > 0) {
      uint64_t shares = std::clamp<uint64_t>(limits.cpu_weight * 1024 / 100, 2, 262144);
      plan.push_back({"cpu", "cpu.shares", std::to_string(shares)});
    }
    if (limits.pids > 0) plan.push_back({"pids", "pids.max", std::to_string(limits.pids)});
    return plan;
  }

  std::vector<CgroupWrite> PlanDevices() const override {
    if (!mounts_.count("devices")) return {};
    // SECURITY: deny every device, then allow the nodes the runtime makes in /dev.
    std::vector<CgroupWrite> plan = {{"devices", "devices.deny", "a"}};
    auto allow = [&plan](const DeviceNode& node, const std::string& minor) {
      plan.push_back(
          {"devices", "devices.allow", "c " + std::to_string(node.major) + ":" + minor + " rwm"});
    };
    for (const DeviceNode& node : kDevNodes) allow(node, std::to_string(node.minor));
    allow(kPtmx, std::to_string(kPtmx.minor));
    allow({"pts", kPtySlaveMajor, 0}, "*");
    return plan;
  }

  std::string Dir(const std::string& controller, const std::string& name) const {
    return mounts_.at(controller) + "/" + parent_ + "/" + name;
  }

  Status EnsureParents() {
    for (const auto& c : controllers_) {
      std::string dir = mounts_.at(c) + "/" + parent_;
      if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
        return Error::Errno("mkdir " + Quote(dir));
      if (c == "cpuset") SBX_TRY(InheritCpuset(dir));
    }
    return Ok();
  }

  // A new cpuset group has no CPUs and no memory nodes, and no process can join it until it has
  // some: it gets its parent's.
  static Status InheritCpuset(const std::string& dir) {
    for (const char* file : {"cpuset.cpus", "cpuset.mems"}) {
      SBX_ASSIGN_OR_RETURN(std::string own, sys::ReadFile(dir + "/" + file, 4096));
      if (!Trim(own).empty()) continue;
      SBX_ASSIGN_OR_RETURN(std::string parent, sys::ReadFile(sys::DirName(dir) + "/" + file, 4096));
      SBX_TRY(sys::WriteKnob(dir + "/" + file, std::string(Trim(parent))));
    }
    return Ok();
  }

  Status Create(const std::string& name, const CgroupLimits& limits) override {
    SBX_TRY(EnsureParents());
    std::vector<std::string> created;
    auto rollback = [&]() {
      for (const auto& dir : created) (void)RemoveDir(dir);
    };
    for (const auto& c : controllers_) {
      std::string dir = Dir(c, name);
      if (mkdir(dir.c_str(), 0755) != 0) {
        Error e = Error::Errno("mkdir " + Quote(dir));
        rollback();
        return e;
      }
      created.push_back(dir);
    }
    if (mounts_.count("cpuset")) {
      if (Status s = InheritCpuset(Dir("cpuset", name)); !s) {
        rollback();
        return std::move(s).error().Wrap("set up the cpuset group");
      }
    }
    for (const auto& w : PlanDevices()) {
      if (Status s = ApplyWrite(Dir(w.controller, name), w); !s) {
        rollback();
        return std::move(s).error().Wrap("allow the sandbox's devices");
      }
    }
    for (const auto& w : PlanLimits(limits)) {
      if (!mounts_.count(w.controller)) {
        rollback();
        return Error::FailedPrecondition("cgroup v1 controller " + w.controller +
                                         " is not mounted");
      }
      if (Status s = ApplyWrite(Dir(w.controller, name), w); !s) {
        rollback();
        return std::move(s).error().Wrap("apply cgroup limit");
      }
    }
    return Ok();
  }

  Status SetLimits(const std::string& name, const CgroupLimits& limits) override {
    std::vector<CgroupWrite> plan = PlanLimits(limits);
    // The kernel keeps memory + swap at or above memory: a raised limit raises memsw first.
    if (limits.memory_bytes > ReadNumber(Dir("memory", name) + "/memory.limit_in_bytes")) {
      std::stable_partition(plan.begin(), plan.end(), [](const CgroupWrite& w) {
        return w.file == "memory.memsw.limit_in_bytes";
      });
    }
    for (const auto& w : plan) {
      if (!mounts_.count(w.controller)) {
        return Error::FailedPrecondition("cgroup v1 controller " + w.controller +
                                         " is not mounted");
      }
      SBX_TRY(ApplyWrite(Dir(w.controller, name), w));
    }
    return Ok();
  }

  Status AddProcess(const std::string& name, pid_t pid) override {
    for (const auto& c : controllers_) {
      SBX_TRY(sys::WriteKnob(Dir(c, name) + "/cgroup.procs", std::to_string(pid)));
    }
    return Ok();
  }

  // Every process in any of the group's hierarchies: a removal that a crash interrupted can leave
  // the group in some hierarchies only.
  Result<std::vector<pid_t>> Processes(const std::string& name) override {
    std::set<pid_t> all;
    for (const auto& c : controllers_) {
      std::string dir = Dir(c, name);
      if (!sys::PathExists(dir)) continue;
      auto pids = ReadProcs(dir);
      if (!pids) {
        if (pids.error().sys_errno() == ENOENT) continue;
        return std::move(pids).error();
      }
      all.insert(pids->begin(), pids->end());
    }
    return std::vector<pid_t>(all.begin(), all.end());
  }

  Status KillAll(const std::string& name, int timeout_ms) override {
    return KillAllBut(name, 0, timeout_ms);
  }

  Status KillAllBut(const std::string& name, pid_t spared, int timeout_ms) override {
    if (!Exists(name)) return Ok();
    std::string freezer = Dir("freezer", name);
    int64_t deadline = MonotonicMillis() + timeout_ms;
    for (int attempt = 0;; ++attempt) {
      SBX_ASSIGN_OR_RETURN(auto pids, Processes(name));
      std::erase(pids, spared);
      if (pids.empty()) break;
      if (MonotonicMillis() > deadline) {
        return Error::DeadlineExceeded("cgroup " + name + " still has " +
                                       std::to_string(pids.size()) + " processes after kill");
      }
      // Freeze so nothing forks between reading the list and signalling it; SIGKILL is delivered
      // to frozen tasks when they thaw. Without its freezer group (a removal was interrupted),
      // the list is signalled as it is, until it is empty.
      bool frozen = sys::WriteKnob(freezer + "/freezer.state", "FROZEN").has_value();
      if (frozen) {
        if (auto procs = ReadProcs(freezer)) pids = std::move(*procs);
      }
      for (pid_t pid : pids) {
        if (pid != spared) kill(pid, SIGKILL);
      }
      if (frozen) (void)sys::WriteKnob(freezer + "/freezer.state", "THAWED");
      Backoff(attempt);
    }
    return Ok();
  }

  Status Remove(const std::string& name) override {
    Status result;
    for (const auto& c : controllers_) {
      if (Status s = RemoveDir(Dir(c, name)); !s && result) result = s;
    }
    return result;
  }

  Result<CgroupStats> Stats(const std::string& name) override {
    CgroupStats stats;
    auto oom = sys::ReadFile(Dir("memory", name) + "/memory.oom_control", 4096);
    if (!oom) return std::move(oom).error();
    stats.oom_kills = KeyedValue(*oom, "oom_kill");
    stats.memory_bytes = ReadNumber(Dir("memory", name) + "/memory.usage_in_bytes");
    stats.memory_peak_bytes = ReadNumber(Dir("memory", name) + "/memory.max_usage_in_bytes");
    stats.pids = ReadNumber(Dir("pids", name) + "/pids.current");
    if (mounts_.count("cpuacct"))
      stats.cpu_usage_ns = ReadNumber(Dir("cpuacct", name) + "/cpuacct.usage");
    return stats;
  }

  bool Exists(const std::string& name) const override {
    for (const auto& c : controllers_) {
      if (sys::PathExists(Dir(c, name))) return true;
    }
    return false;
  }

  std::vector<std::string> Paths(const std::string& name) const override {
    std::vector<std::string> out;
    for (const auto& c : controllers_) out.push_back(Dir(c, name));
    return out;
  }

  // Groups in any hierarchy: one left in some hierarchies only is listed too, so it is found and
  // removed.
  std::vector<std::string> List() const override {
    std::set<std::string> names;
    for (const auto& c : controllers_) {
      for (auto& name : ListSubdirs(mounts_.at(c) + "/" + parent_)) names.insert(std::move(name));
    }
    return std::vector<std::string>(names.begin(), names.end());
  }

  bool RemoveParentIfEmpty() override {
    bool all = true;
    for (const auto& c : controllers_) {
      std::string dir = mounts_.at(c) + "/" + parent_;
      if (rmdir(dir.c_str()) != 0 && errno != ENOENT) all = false;
    }
    return all;
  }

 private:
  std::map<std::string, std::string> mounts_;
  std::string parent_;
  std::vector<std::string> controllers_;
};

}  // namespace

std::unique_ptr<CgroupDriver> MakeCgroupV1Driver(std::map<std::string, std::string> mounts,
                                                 const std::string& parent) {
  return std::make_unique<CgroupV1Driver>(std::move(mounts), parent);
}

}  // namespace sbx::runtime
