// File: features.h
//
// Kernel feature probes. Production code and tests use the same probes: the daemon logs them at
// start and `sbx doctor` prints them; privileged tests skip with the probe's reason when a
// feature is missing (and fail instead when the feature is listed in SBX_TEST_REQUIRE).

#pragma once

#include <map>
#include <string>
#include <vector>

namespace sbx::sys {

struct Feature {
  bool available = false;
  std::string detail;  // why not, or what was found
};

struct CgroupLayout {
  // "v2" when /sys/fs/cgroup is a pure cgroup2 mount with the controllers we need, "v1" when the
  // v1 controllers are mounted (hybrid or legacy), "" when neither is usable.
  std::string version;
  std::string v2_root;                           // mount point of cgroup2, if any
  std::vector<std::string> v2_controllers;       // enabled in the v2 root
  std::map<std::string, std::string> v1_mounts;  // controller -> mount point
};

// Reads /proc/self/mountinfo (or `mountinfo_path`) to find the cgroup hierarchies.
CgroupLayout ProbeCgroups(const std::string& mountinfo_path = "/proc/self/mountinfo");

Feature ProbeUserNamespaces();
Feature ProbeOverlayfs();
Feature ProbeOpenat2();
Feature ProbePidfd();
Feature ProbeSeccomp();
Feature ProbeLoopDevices();
// Real root: euid 0 in the initial user namespace (a full uid_map), as crun and youki check.
Feature ProbeRealRoot();

// All of the above by name, for logs and `sbx doctor`.
std::map<std::string, Feature> ProbeAll();

}  // namespace sbx::sys
