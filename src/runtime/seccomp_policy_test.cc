#include "src/runtime/seccomp_policy.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace sbx::runtime {
namespace {

TEST(SeccompPolicyTest, DangerousSyscallsAreRefused) {
  SeccompPolicy policy = BuildDefaultPolicy();
  for (const char* name : {"mount", "unshare", "setns", "keyctl", "bpf", "perf_event_open",
                           "userfaultfd", "io_uring_setup", "kexec_load", "init_module",
                           "open_by_handle_at", "pivot_root", "umount2", "fsopen"}) {
    SeccompRule rule = LookupUnconditional(policy, name);
    EXPECT_EQ(rule.action, SeccompAction::kErrno) << name;
    EXPECT_EQ(rule.errno_value, EPERM) << name;
  }
  EXPECT_EQ(LookupUnconditional(policy, "clone3").errno_value, ENOSYS);
}

TEST(SeccompPolicyTest, OrdinarySyscallsAreAllowed) {
  SeccompPolicy policy = BuildDefaultPolicy();
  for (const char* name : {"read", "write", "openat", "execve", "mmap", "futex", "wait4", "kill"}) {
    EXPECT_EQ(LookupUnconditional(policy, name).action, SeccompAction::kAllow) << name;
  }
}

TEST(SeccompPolicyTest, UnknownSyscallsGetEnosys) {
  SeccompPolicy policy = BuildDefaultPolicy();
  SeccompRule rule = LookupUnconditional(policy, "a_syscall_from_the_future");
  EXPECT_EQ(rule.action, SeccompAction::kErrno);
  EXPECT_EQ(rule.errno_value, ENOSYS);
  EXPECT_EQ(policy.bad_arch_action, SeccompAction::kKillProcess);
}

TEST(SeccompPolicyTest, NoSyscallMixesConditionalAndUnconditionalRules) {
  // libseccomp silently drops the conditional rules of such a syscall.
  SeccompPolicy policy = BuildDefaultPolicy();
  std::map<std::string, std::pair<int, int>> counts;
  for (const auto& rule : policy.rules) {
    auto& c = counts[rule.syscall];
    (rule.conditions.empty() ? c.first : c.second)++;
  }
  for (const auto& [name, c] : counts) {
    EXPECT_FALSE(c.first > 0 && c.second > 0) << name;
    EXPECT_LE(c.first, 1) << name;
  }
}

TEST(SeccompPolicyTest, CompilesToBpf) {
  auto bpf = ExportBpf(BuildDefaultPolicy());
  ASSERT_TRUE(bpf) << bpf.error().ToString();
  EXPECT_GT(bpf->size(), 100u);
  // A BPF program is limited to 4096 instructions of 8 bytes.
  EXPECT_LE(bpf->size(), 4096u * 8);
}

// Loads the policy in a forked child (it is irreversible) and reports the result of `probe` as
// the child's exit code: 0 when the probe saw what it expected.
int InChild(const std::function<bool()>& probe) {
  pid_t pid = fork();
  if (pid == 0) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(90);
    if (!LoadPolicy(BuildDefaultPolicy())) _exit(91);
    _exit(probe() ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

TEST(SeccompPolicyTest, EnforcedInAProcess) {
  EXPECT_EQ(InChild([] { return getpid() > 0; }), 0);
  EXPECT_EQ(InChild([] { return unshare(CLONE_NEWUSER) == -1 && errno == EPERM; }), 0);
  EXPECT_EQ(InChild([] { return unshare(CLONE_NEWNS) == -1 && errno == EPERM; }), 0);
  EXPECT_EQ(InChild([] {
              return syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0) == -1 &&
                     errno == EPERM;
            }),
            0);
  EXPECT_EQ(InChild([] { return syscall(SYS_clone3, nullptr, 0) == -1 && errno == ENOSYS; }), 0);
  EXPECT_EQ(InChild([] {
              pid_t p = fork();  // a plain clone works
              if (p == 0) _exit(0);
              int st;
              return p > 0 && waitpid(p, &st, 0) == p;
            }),
            0);
  EXPECT_EQ(InChild([] { return socket(AF_PACKET, SOCK_RAW, 0) == -1; }), 0);
  EXPECT_EQ(InChild([] { return socket(AF_ALG, SOCK_SEQPACKET, 0) == -1; }), 0);
  EXPECT_EQ(InChild([] { return socket(AF_VSOCK, SOCK_STREAM, 0) == -1; }), 0);
  EXPECT_EQ(InChild([] {
              int fd = socket(AF_INET, SOCK_STREAM, 0);
              return fd >= 0 && close(fd) == 0;
            }),
            0);
  EXPECT_EQ(InChild([] { return syscall(SYS_keyctl, 0, 0, 0, 0, 0) == -1 && errno == EPERM; }), 0);
  EXPECT_EQ(InChild([] {
              io_uring_params p{};
              return syscall(SYS_io_uring_setup, 1, &p) == -1 && errno == EPERM;
            }),
            0);
  EXPECT_EQ(InChild([] { return syscall(SYS_userfaultfd, 0) == -1 && errno == EPERM; }), 0);
  EXPECT_EQ(InChild([] {
              char c = 'x';
              return ioctl(0, TIOCSTI, &c) == -1 && errno == EPERM;
            }),
            0);
  EXPECT_EQ(InChild([] {
              // The upper 32 bits of the request do not smuggle TIOCSTI past the filter.
              char c = 'x';
              return syscall(SYS_ioctl, 0, 0x100000000ull | TIOCSTI, &c) == -1 && errno == EPERM;
            }),
            0);
  EXPECT_EQ(InChild([] {
              int fds[2];
              if (pipe(fds) != 0) return false;
              int n = 0;
              return ioctl(fds[0], FIONREAD, &n) == 0;  // other ioctls work
            }),
            0);
  // The x32 ABI is another architecture as far as the policy is concerned: the process dies.
  EXPECT_EQ(InChild([] { return syscall(0x40000000 | SYS_getpid) >= 0; }), 128 + SIGSYS);
}

}  // namespace
}  // namespace sbx::runtime
