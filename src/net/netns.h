// File: netns.h
//
// Network namespaces made by a multi-threaded process that never forks: the calling thread
// unshares a new namespace (which affects only that thread), runs `inside` there (sysctls, a
// netlink socket that stays bound to the namespace), pins the namespace by bind-mounting
// /proc/thread-self/ns/net onto a file, and returns to the namespace it came from. The pin keeps
// the namespace alive without any process in it, survives the daemon, and is what a sandbox's
// runtime opens to join it.
//
// Call CreatePinnedNetns only from a thread dedicated to it: nothing else may run on that thread
// while it is in the new namespace. If returning to the original namespace ever failed, the
// process aborts rather than keep a thread in a sandbox's namespace.

#pragma once

#include <functional>
#include <string>

#include "src/base/result.h"

namespace sbx::net {

// Creates `pin` (an empty file; it must not exist) and a new network namespace pinned on it.
Status CreatePinnedNetns(const std::string& pin, const std::function<Status()>& inside);
// Unmounts and removes a pin; the namespace goes away once nothing else holds it. A missing pin
// is success.
Status RemovePinnedNetns(const std::string& pin);
// Whether `path` is a mount point (a pin, or a directory made its own mount).
bool IsMountPoint(const std::string& path);
// Makes `dir` a mount of its own with private propagation, so pins below it neither propagate to
// nor come from other mount namespaces. Idempotent.
Status MakePrivateMount(const std::string& dir);

// Writes a sysctl of the calling thread's network namespace ("net/ipv4/ip_forward").
Status WriteNetSysctl(const std::string& name, const std::string& value);
Result<std::string> ReadNetSysctl(const std::string& name);

}  // namespace sbx::net
