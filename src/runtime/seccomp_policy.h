// File: seccomp_policy.h
//
// The seccomp policy of every sandbox, as data. It starts from Docker's default allowlist and is
// stricter where untrusted code warrants it (SECURITY.md lists what is refused):
//   * native architecture only; any other ABI (i386 int 0x80, x32) kills the process;
//   * namespaces cannot be created or joined (clone with CLONE_NEW*, unshare, setns), and clone3
//     answers ENOSYS so libc falls back to clone, whose flags the filter can see;
//   * mount APIs, keyctl, bpf, perf_event_open, userfaultfd, io_uring, kexec, modules, reboot,
//     swap, clock setting, open_by_handle_at and friends answer EPERM;
//   * sockets only of the families AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK;
//   * ioctl TIOCSTI and TIOCLINUX (terminal injection) answer EPERM;
//   * personality only with the harmless personas;
//   * a syscall the policy does not know (newer than it) answers ENOSYS.
//
// BuildDefaultPolicy() is pure and unit-tested; LoadPolicy() compiles it with libseccomp and
// installs it in the calling thread (after PR_SET_NO_NEW_PRIVS).

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/base/result.h"

namespace sbx::runtime {

enum class SeccompAction { kAllow, kErrno, kKillProcess };

struct SeccompCondition {
  enum class Op { kEq, kNe, kMaskedEq, kLt, kGe };
  unsigned arg = 0;
  Op op = Op::kEq;
  uint64_t value = 0;
  uint64_t mask = 0;  // for kMaskedEq: (arg & mask) == value
};

struct SeccompRule {
  std::string syscall;
  SeccompAction action = SeccompAction::kAllow;
  int errno_value = 0;
  std::vector<SeccompCondition> conditions;  // all must hold
};

struct SeccompPolicy {
  SeccompAction default_action = SeccompAction::kErrno;
  int default_errno = 0;
  SeccompAction bad_arch_action = SeccompAction::kKillProcess;
  std::vector<SeccompRule> rules;
};

SeccompPolicy BuildDefaultPolicy();

// The decision the policy makes for `syscall` with no argument conditions considered: the first
// unconditional rule, or the default. For tests and `sbx doctor`.
SeccompRule LookupUnconditional(const SeccompPolicy& policy, const std::string& syscall);

Status LoadPolicy(const SeccompPolicy& policy);

// The compiled BPF program (an array of struct sock_filter). Compiling takes milliseconds, so
// the runtime compiles once and loads the program with LoadBpf in every sandbox.
Result<std::string> ExportBpf(const SeccompPolicy& policy);
Status LoadBpf(std::string_view program);

// The default policy, compiled once per process.
Result<std::string> DefaultPolicyBpf();

}  // namespace sbx::runtime
