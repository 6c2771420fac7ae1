#include "src/sys/features.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::sys {

CgroupLayout ProbeCgroups(const std::string& mountinfo_path) {
  CgroupLayout layout;
  std::ifstream in(mountinfo_path);
  std::string line;
  while (std::getline(in, line)) {
    // mountinfo: id parent major:minor root mountpoint options [optional...] - fstype source
    // superopts
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::vector<std::string> left = Split(line.substr(0, dash), ' ');
    std::vector<std::string> right = Split(line.substr(dash + 3), ' ');
    if (left.size() < 5 || right.size() < 3) continue;
    const std::string& mount_point = left[4];
    const std::string& fstype = right[0];
    if (fstype == "cgroup2") {
      if (layout.v2_root.empty() || mount_point == "/sys/fs/cgroup") layout.v2_root = mount_point;
    } else if (fstype == "cgroup") {
      for (const auto& opt : Split(right[2], ',')) {
        if (opt == "memory" || opt == "cpu" || opt == "pids" || opt == "freezer" ||
            opt == "cpuacct" || opt == "devices" || opt == "cpuset" || opt == "blkio") {
          layout.v1_mounts.emplace(opt, mount_point);
        }
      }
    }
  }
  if (!layout.v2_root.empty()) {
    auto controllers = ReadFile(JoinPath(layout.v2_root, "cgroup.controllers"));
    if (controllers) {
      for (const auto& c : Split(std::string(Trim(*controllers)), ' ')) {
        if (!c.empty()) layout.v2_controllers.push_back(c);
      }
    }
  }
  auto has_v2 = [&](const std::string& c) {
    for (const auto& x : layout.v2_controllers) {
      if (x == c) return true;
    }
    return false;
  };
  if (!layout.v2_root.empty() && has_v2("memory") && has_v2("pids") && has_v2("cpu")) {
    layout.version = "v2";
  } else if (layout.v1_mounts.count("memory") && layout.v1_mounts.count("pids") &&
             layout.v1_mounts.count("cpu") && layout.v1_mounts.count("freezer")) {
    layout.version = "v1";
  }
  return layout;
}

Feature ProbeUserNamespaces() {
  auto max = ReadFile("/proc/sys/user/max_user_namespaces");
  if (!max) return {false, "cannot read /proc/sys/user/max_user_namespaces"};
  if (std::string(Trim(*max)) == "0") return {false, "user.max_user_namespaces is 0"};
  return {true, "max_user_namespaces=" + std::string(Trim(*max))};
}

Feature ProbeOverlayfs() {
  auto fs = ReadFile("/proc/filesystems");
  if (fs && fs->find("\toverlay\n") != std::string::npos)
    return {true, "overlay in /proc/filesystems"};
  return {false, "overlay is not in /proc/filesystems (modprobe overlay)"};
}

Feature ProbeOpenat2() {
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT;
  // JUSTIFICATION: raw syscall, glibc 2.36 has no wrapper.
  long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
  if (fd < 0) return {false, std::string("openat2: ") + strerror(errno) + " (needs Linux 5.6)"};
  close(static_cast<int>(fd));
  return {true, "openat2 with RESOLVE_IN_ROOT"};
}

Feature ProbePidfd() {
  long fd = syscall(SYS_pidfd_open, getpid(), 0);
  if (fd < 0) return {false, std::string("pidfd_open: ") + strerror(errno) + " (needs Linux 5.3)"};
  close(static_cast<int>(fd));
  return {true, "pidfd_open"};
}

Feature ProbeSeccomp() {
  int mode = prctl(PR_GET_SECCOMP, 0, 0, 0, 0);
  if (mode < 0) return {false, std::string("PR_GET_SECCOMP: ") + strerror(errno)};
  if (mode != 0) return {true, "filter mode (already confined)"};
  return {true, "seccomp filter mode available"};
}

Feature ProbeLoopDevices() {
  int fd = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (fd < 0) return {false, std::string("/dev/loop-control: ") + strerror(errno)};
  close(fd);
  return {true, "/dev/loop-control"};
}

Feature ProbeRealRoot() {
  if (geteuid() != 0)
    return {false, "not running as root (euid " + std::to_string(geteuid()) + ")"};
  auto map = ReadFile("/proc/self/uid_map");
  if (!map) return {false, "cannot read /proc/self/uid_map"};
  if (map->find("4294967295") == std::string::npos) {
    return {false, "root inside a user namespace (uid_map is not the full range)"};
  }
  return {true, "euid 0 with the full uid range"};
}

std::map<std::string, Feature> ProbeAll() {
  std::map<std::string, Feature> out;
  out["root"] = ProbeRealRoot();
  out["userns"] = ProbeUserNamespaces();
  out["overlayfs"] = ProbeOverlayfs();
  out["openat2"] = ProbeOpenat2();
  out["pidfd"] = ProbePidfd();
  out["seccomp"] = ProbeSeccomp();
  out["loop"] = ProbeLoopDevices();
  CgroupLayout cg = ProbeCgroups();
  Feature cgroups;
  cgroups.available = !cg.version.empty();
  if (cg.version == "v2") {
    cgroups.detail = "cgroup v2 at " + cg.v2_root + " controllers: " + Join(cg.v2_controllers, " ");
  } else if (cg.version == "v1") {
    std::vector<std::string> names;
    for (const auto& [c, m] : cg.v1_mounts) names.push_back(c);
    cgroups.detail = "cgroup v1 controllers: " + Join(names, " ");
    if (!cg.v2_root.empty()) cgroups.detail += " (hybrid; cgroup2 at " + cg.v2_root + ")";
  } else {
    cgroups.detail = "neither cgroup v2 with memory,cpu,pids nor cgroup v1 memory,cpu,pids,freezer";
  }
  out["cgroups"] = cgroups;
  return out;
}

}  // namespace sbx::sys
