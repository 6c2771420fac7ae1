#include "src/runtime/seccomp_policy.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>
#include <mutex>

#include "src/base/unique_fd.h"
#include "src/sys/fs.h"

namespace sbx::runtime {

namespace {

// Docker's default allowlist (moby/profiles seccomp/default.json, unconditional part), minus the
// io_uring calls it dropped in 2023. Names unknown to libseccomp for the native architecture are
// skipped when compiling.
constexpr const char* kAllowed[] = {
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "process_vm_readv",
    "process_vm_writev",
    "pselect6",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_tid_address",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "socketpair",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
    "chroot",
    "modify_ldt",
};

// Explicitly refused with EPERM (they would also be refused by the default, but with ENOSYS,
// which some programs take as "try another way"; EPERM says "not allowed here").
constexpr const char* kDenied[] = {
    "_sysctl",
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "fanotify_init",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "migrate_pages",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pidfd_getfd",
    "pivot_root",
    "process_madvise",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "set_mempolicy_home_node",
    "setdomainname",
    "sethostname",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "sysfs",
    "syslog",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "lsm_get_self_attr",
    "lsm_set_self_attr",
    "lsm_list_modules",
    "listmount",
    "statmount",
    "open_tree_attr",
};

constexpr uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
                                     CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

}  // namespace

SeccompPolicy BuildDefaultPolicy() {
  SeccompPolicy policy;
  policy.default_action = SeccompAction::kErrno;
  policy.default_errno = ENOSYS;
  policy.bad_arch_action = SeccompAction::kKillProcess;
  for (const char* name : kDenied) {
    policy.rules.push_back({name, SeccompAction::kErrno, EPERM, {}});
  }
  for (const char* name : kAllowed) policy.rules.push_back({name, SeccompAction::kAllow, 0, {}});

  using Op = SeccompCondition::Op;
  // libseccomp drops the conditional rules of a syscall that also has an unconditional rule, so
  // each syscall below is covered by conditional rules only, chosen not to overlap.
  //
  // clone: allowed without namespace flags (CLONE_NEWTIME included); each flag refuses it.
  constexpr uint64_t kAllNamespaces = kNamespaceFlags | CLONE_NEWTIME;
  policy.rules.push_back(
      {"clone", SeccompAction::kAllow, 0, {{0, Op::kMaskedEq, 0, kAllNamespaces}}});
  for (uint64_t flag = 1; flag != 0; flag <<= 1) {
    if (kAllNamespaces & flag) {
      policy.rules.push_back(
          {"clone", SeccompAction::kErrno, EPERM, {{0, Op::kMaskedEq, flag, flag}}});
    }
  }
  // clone3's flags live behind a pointer the filter cannot read.
  policy.rules.push_back({"clone3", SeccompAction::kErrno, ENOSYS, {}});
  // socket: an allowlist of families; others fall to the default (ENOSYS). The kernel takes the
  // family as an int, so only the low 32 bits are compared.
  for (uint64_t family : {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK}) {
    policy.rules.push_back(
        {"socket", SeccompAction::kAllow, 0, {{0, Op::kMaskedEq, family, 0xffffffffull}}});
  }
  // personality: only the personas Docker allows.
  for (uint64_t persona : {0x0ull, 0x8ull, 0x20000ull, 0x20008ull, 0xffffffffull}) {
    policy.rules.push_back(
        {"personality", SeccompAction::kAllow, 0, {{0, Op::kMaskedEq, persona, 0xffffffffull}}});
  }
  // ioctl: everything but TIOCSTI and TIOCLINUX (terminal input injection). The kernel takes the
  // request as an unsigned int. The two refused requests share bits 4-31 (0x541); a request is
  // allowed when one of those bits differs, or when they match and bits 0-3 are neither 0x2 nor
  // 0xc.
  constexpr uint64_t kTiocsti = 0x5412;
  constexpr uint64_t kTioclinux = 0x541c;
  static_assert((kTiocsti & ~0xfull) == (kTioclinux & ~0xfull));
  for (uint64_t request : {kTiocsti, kTioclinux}) {
    policy.rules.push_back(
        {"ioctl", SeccompAction::kErrno, EPERM, {{1, Op::kMaskedEq, request, 0xffffffffull}}});
  }
  for (int bit = 4; bit < 32; ++bit) {
    uint64_t mask = 1ull << bit;
    policy.rules.push_back(
        {"ioctl", SeccompAction::kAllow, 0, {{1, Op::kMaskedEq, (~kTiocsti) & mask, mask}}});
  }
  for (uint64_t low = 0; low < 16; ++low) {
    uint64_t request = (kTiocsti & ~0xfull) | low;
    if (request == kTiocsti || request == kTioclinux) continue;
    policy.rules.push_back(
        {"ioctl", SeccompAction::kAllow, 0, {{1, Op::kMaskedEq, request, 0xffffffffull}}});
  }
  return policy;
}

SeccompRule LookupUnconditional(const SeccompPolicy& policy, const std::string& syscall) {
  for (const auto& rule : policy.rules) {
    if (rule.syscall == syscall && rule.conditions.empty()) return rule;
  }
  return {syscall, policy.default_action, policy.default_errno, {}};
}

namespace {

uint32_t ToLibseccomp(SeccompAction action, int errno_value) {
  switch (action) {
    case SeccompAction::kAllow:
      return SCMP_ACT_ALLOW;
    case SeccompAction::kErrno:
      return SCMP_ACT_ERRNO(static_cast<uint16_t>(errno_value));
    case SeccompAction::kKillProcess:
      return SCMP_ACT_KILL_PROCESS;
  }
  return SCMP_ACT_KILL_PROCESS;
}

scmp_compare ToCompare(SeccompCondition::Op op) {
  switch (op) {
    case SeccompCondition::Op::kEq:
      return SCMP_CMP_EQ;
    case SeccompCondition::Op::kNe:
      return SCMP_CMP_NE;
    case SeccompCondition::Op::kMaskedEq:
      return SCMP_CMP_MASKED_EQ;
    case SeccompCondition::Op::kLt:
      return SCMP_CMP_LT;
    case SeccompCondition::Op::kGe:
      return SCMP_CMP_GE;
  }
  return SCMP_CMP_EQ;
}

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using ScmpCtx = std::unique_ptr<void, CtxDeleter>;

Result<ScmpCtx> Compile(const SeccompPolicy& policy) {
  ScmpCtx ctx(seccomp_init(ToLibseccomp(policy.default_action, policy.default_errno)));
  if (!ctx) return Error::Internal("seccomp_init failed");
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH,
                            ToLibseccomp(policy.bad_arch_action, EPERM));
  if (rc != 0) return Error::FromErrno(-rc, "seccomp bad-arch action");
  // A binary tree over syscall numbers: every syscall of the sandbox walks the filter, and the
  // linear layout made a common one compare against hundreds of numbers first.
  rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);
  if (rc != 0) return Error::FromErrno(-rc, "seccomp binary-tree layout");
  for (const auto& rule : policy.rules) {
    int nr = seccomp_syscall_resolve_name(rule.syscall.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // not a syscall of this architecture
    uint32_t action = ToLibseccomp(rule.action, rule.errno_value);
    if (action == ToLibseccomp(policy.default_action, policy.default_errno) &&
        rule.conditions.empty()) {
      continue;  // libseccomp refuses rules that equal the default
    }
    std::vector<scmp_arg_cmp> cmps;
    for (const auto& c : rule.conditions) {
      scmp_arg_cmp cmp{};
      cmp.arg = c.arg;
      cmp.op = ToCompare(c.op);
      if (c.op == SeccompCondition::Op::kMaskedEq) {
        cmp.datum_a = c.mask;
        cmp.datum_b = c.value;
      } else {
        cmp.datum_a = c.value;
      }
      cmps.push_back(cmp);
    }
    rc = seccomp_rule_add_array(ctx.get(), action, nr, static_cast<unsigned>(cmps.size()),
                                cmps.empty() ? nullptr : cmps.data());
    if (rc != 0) {
      return Error::FromErrno(-rc, "seccomp rule for " + rule.syscall);
    }
  }
  return ctx;
}

}  // namespace

Status LoadPolicy(const SeccompPolicy& policy) {
  SBX_ASSIGN_OR_RETURN(ScmpCtx ctx, Compile(policy));
  int rc = seccomp_load(ctx.get());
  if (rc != 0) return Error::FromErrno(-rc, "seccomp_load");
  return Ok();
}

Result<std::string> ExportBpf(const SeccompPolicy& policy) {
  SBX_ASSIGN_OR_RETURN(ScmpCtx ctx, Compile(policy));
  UniqueFd fd(memfd_create("seccomp-bpf", MFD_CLOEXEC));
  if (!fd) return Error::Errno("memfd_create");
  int rc = seccomp_export_bpf(ctx.get(), fd.get());
  if (rc != 0) return Error::FromErrno(-rc, "seccomp_export_bpf");
  lseek(fd.get(), 0, SEEK_SET);
  return sys::ReadFd(fd.get());
}

Status LoadBpf(std::string_view program) {
  if (program.empty() || program.size() % sizeof(sock_filter) != 0 ||
      program.size() / sizeof(sock_filter) > BPF_MAXINSNS) {
    return Error::InvalidArgument("seccomp program of " + std::to_string(program.size()) +
                                  " bytes is not a BPF program");
  }
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program.size() / sizeof(sock_filter));
  // JUSTIFICATION: the kernel reads the instructions; the string's storage is an array of
  // sock_filter produced by seccomp_export_bpf.
  prog.filter = reinterpret_cast<sock_filter*>(const_cast<char*>(program.data()));
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    return Error::Errno("load seccomp filter");
  }
  return Ok();
}

Result<std::string> DefaultPolicyBpf() {
  static std::once_flag once;
  static Result<std::string>* compiled = nullptr;
  std::call_once(once, [] { compiled = new Result<std::string>(ExportBpf(BuildDefaultPolicy())); });
  return *compiled;
}

}  // namespace sbx::runtime
