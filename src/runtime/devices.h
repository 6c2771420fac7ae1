// File: devices.h
//
// The devices of a sandbox: the character devices the runtime makes in its /dev, and the
// pseudo-terminals of its own devpts instance. Nothing else can be a usable device inside a
// sandbox: every other filesystem is mounted nodev, and the sandbox cannot make device nodes (it
// has no CAP_MKNOD in the initial user namespace, which mknod of a device needs). On cgroup v1 the
// devices controller allows these and nothing else (cgroup_v1_driver.cc).

#pragma once

namespace sbx::runtime {

struct DeviceNode {
  const char* name;  // in /dev
  unsigned major;
  unsigned minor;
};

inline constexpr DeviceNode kDevNodes[] = {{"null", 1, 3},   {"zero", 1, 5},    {"full", 1, 7},
                                           {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0}};
// /dev/ptmx (a link to pts/ptmx, the devpts instance's own) and the terminals it opens, pts/N.
inline constexpr DeviceNode kPtmx = {"ptmx", 5, 2};
inline constexpr unsigned kPtySlaveMajor = 136;

}  // namespace sbx::runtime
