// The isolation posture, read from inside and outside the sandbox.

#include <linux/capability.h>

#include <gtest/gtest.h>

#include "src/base/strings.h"
#include "src/runtime/capabilities.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"
#include "tests/support/features.h"
#include "tests/support/sandbox_fixture.h"

namespace sbx::testing {
namespace {

class IsolationTest : public SandboxTest {};

std::string StatusField(const std::string& status, const std::string& field) {
  for (const auto& line : Split(status, '\n')) {
    if (StartsWith(line, field + ":")) return std::string(Trim(line.substr(field.size() + 1)));
  }
  return "";
}

TEST_F(IsolationTest, PostureFromInside) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto pid1 = Exec(*sb, {"cat", "/proc/1/cmdline"});
  ASSERT_TRUE(pid1);
  EXPECT_EQ(pid1->out, std::string("sbx-init\0", 9));
  auto status = Exec(*sb, {"cat", "/proc/self/status"});
  ASSERT_TRUE(status);
  EXPECT_EQ(StatusField(status->out, "Seccomp"), "2");
  EXPECT_EQ(StatusField(status->out, "NoNewPrivs"), "1");
  uint64_t expected = 0;
  for (int cap : runtime::DefaultCapabilities()) expected |= 1ull << cap;
  char hex[32];
  snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(expected));
  EXPECT_EQ(StatusField(status->out, "CapEff"), hex);
  EXPECT_EQ(StatusField(status->out, "CapBnd"), hex);
  EXPECT_EQ(StatusField(status->out, "CapAmb"), "0000000000000000");
  // Nothing to hand on through execve: a file's inheritable capabilities grant nothing.
  EXPECT_EQ(StatusField(status->out, "CapInh"), "0000000000000000");
  // Only the loopback interface.
  auto net = Exec(*sb, {"sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"});
  ASSERT_TRUE(net);
  EXPECT_EQ(net->out, "lo\n");
  // No host mounts: every mount is one the runtime made for the sandbox.
  auto mounts = Exec(*sb, {"cat", "/proc/self/mountinfo"});
  ASSERT_TRUE(mounts);
  for (const auto& line : Split(mounts->out, '\n')) {
    if (line.empty()) continue;
    auto fields = Split(line, ' ');
    ASSERT_GT(fields.size(), 4u);
    const std::string& mount_point = fields[4];
    EXPECT_TRUE(mount_point == "/" || StartsWith(mount_point, "/proc") ||
                StartsWith(mount_point, "/dev") || StartsWith(mount_point, "/sys"))
        << line;
  }
  // The root user of the sandbox is an unprivileged host user.
  auto uid_map = Exec(*sb, {"cat", "/proc/self/uid_map"});
  ASSERT_TRUE(uid_map);
  EXPECT_EQ(Split(std::string(Trim(uid_map->out)), ' ').front(), "0");
  EXPECT_NE(uid_map->out.find("1000000"), std::string::npos);
}

// Files come out as Docker's do: umask 022, in the main process and in exec'd ones.
TEST_F(IsolationTest, ProcessesStartWithUmask022) {
  auto sb = Create([](runtime::RuntimeSpec& s) {
    s.process.args = {"sh", "-c", "umask > /tmp/main-umask; sleep 1000"};
  });
  ASSERT_TRUE(sb);
  auto made =
      Exec(*sb, {"sh", "-c",
                 "umask; touch /tmp/file; mkdir /tmp/dir; stat -c %a /tmp/file /tmp/dir; "
                 "while [ ! -s /tmp/main-umask ]; do sleep 0.01; done; cat /tmp/main-umask"});
  ASSERT_TRUE(made) << made.error().ToString();
  EXPECT_EQ(made->out, "0022\n644\n755\n0022\n");
  auto as_app = Exec(*sb, {"sh", "-c", "umask"}, "", 30000, "1000");
  ASSERT_TRUE(as_app);
  EXPECT_EQ(as_app->out, "0022\n");
}

// Under memory pressure the kernel kills a sandbox's processes first (oom_score_adj 1000, which
// they cannot lower), and sbx-init last, so that it lives to report the kill.
TEST_F(IsolationTest, SandboxProcessesAreTheFirstOomVictims) {
  auto sb = Create([](runtime::RuntimeSpec& s) {
    s.process.args = {"sh", "-c", "cat /proc/self/oom_score_adj > /tmp/main-oom; sleep 1000"};
  });
  ASSERT_TRUE(sb);
  auto scores = Exec(*sb, {"sh", "-c",
                           "cat /proc/self/oom_score_adj; "
                           "while [ ! -s /tmp/main-oom ]; do sleep 0.01; done; cat /tmp/main-oom"});
  ASSERT_TRUE(scores);
  EXPECT_EQ(scores->out, "1000\n1000\n");
  auto as_app = Exec(*sb, {"cat", "/proc/self/oom_score_adj"}, "", 30000, "1000");
  ASSERT_TRUE(as_app);
  EXPECT_EQ(as_app->out, "1000\n");
  auto init_score = sys::ReadFile("/proc/" + std::to_string(sb->state.init_pid) + "/oom_score_adj");
  auto own_score = sys::ReadFile("/proc/self/oom_score_adj");
  ASSERT_TRUE(init_score && own_score);
  auto init_adj = ParseInt64(Trim(*init_score));
  auto own_adj = ParseInt64(Trim(*own_score));
  ASSERT_TRUE(init_adj && own_adj) << *init_score;
  EXPECT_LE(*init_adj, *own_adj);

  // sbx-init below the runtime, and a floor under the sandbox's processes, need what lowering an
  // oom_score_adj needs.
  SBX_REQUIRE("cap_sys_resource", runtime::HasEffectiveCapability(CAP_SYS_RESOURCE),
              "the runtime cannot lower a score or set a floor without CAP_SYS_RESOURCE");
  EXPECT_LT(*init_adj, -900);
  for (const char* lower :
       {"echo -500 > /proc/self/oom_score_adj", "echo 999 > /proc/self/oom_score_adj",
        "echo -16 > /proc/self/oom_adj"}) {
    auto r = Exec(*sb, {"sh", "-c", std::string(lower) + " && cat /proc/self/oom_score_adj"});
    ASSERT_TRUE(r);
    EXPECT_NE(r->code(), 0) << lower << ": " << r->out;
  }
}

TEST_F(IsolationTest, NoDescriptorsLeakIntoProcesses) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto fds = Exec(*sb, {"sbx-testpayload", "fds"});
  ASSERT_TRUE(fds);
  auto lines = Split(std::string(Trim(fds->out)), '\n');
  ASSERT_EQ(lines.size(), 3u) << fds->out;
  EXPECT_TRUE(StartsWith(lines[0], "0 /dev/null")) << fds->out;
  EXPECT_TRUE(StartsWith(lines[1], "1 pipe:")) << fds->out;
  EXPECT_TRUE(StartsWith(lines[2], "2 pipe:")) << fds->out;
}

TEST_F(IsolationTest, SbxInitCannotBeInspected) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto fd = Exec(*sb, {"sh", "-c", "ls -l /proc/1/fd/3 2>&1; cat /proc/1/environ 2>&1"});
  ASSERT_TRUE(fd);
  EXPECT_NE(fd->out.find("Permission denied"), std::string::npos) << fd->out;
  EXPECT_EQ(fd->out.find("socket:"), std::string::npos) << fd->out;
}

TEST_F(IsolationTest, DangerousOperationsFail) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  for (const char* probe :
       {"mount", "unshare-user", "unshare-mount", "unshare-net", "clone-newuser", "keyctl", "bpf",
        "perf_event_open", "userfaultfd", "io_uring_setup", "setns", "pivot_root", "sethostname",
        "af_packet", "af_alg", "reboot"}) {
    auto r = Exec(*sb, {"sbx-testpayload", "try", probe});
    ASSERT_TRUE(r) << probe;
    EXPECT_NE(r->code(), 0) << probe << " succeeded: " << r->out;
    EXPECT_NE(r->out, "ok\n") << probe;
  }
  // Positive controls: what should work does.
  for (const char* probe : {"af_inet", "chroot"}) {
    auto r = Exec(*sb, {"sbx-testpayload", "try", probe});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->out, "ok\n") << probe;
  }
  auto clone3 = Exec(*sb, {"sbx-testpayload", "try", "clone3"});
  ASSERT_TRUE(clone3);
  EXPECT_EQ(clone3->out, "ENOSYS\n");
}

TEST_F(IsolationTest, NonNativeAbisKillTheProcess) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  for (const char* abi : {"i386", "x32"}) {
    // The positive control: the same call outside any sandbox. When it returns there (made, or
    // refused with ENOSYS), the sandbox's filter must kill it. A host that kills the process
    // itself (int 0x80 refused by the hypervisor with SIGSEGV) never makes the call at all; the
    // sandbox must then end it one way or the other.
    auto host = sys::RunCommand({BinDir() + "/sbx-testpayload", abi}, {}, 10000);
    ASSERT_TRUE(host) << abi;
    auto r = Exec(*sb, {"sbx-testpayload", abi});
    ASSERT_TRUE(r) << abi;
    EXPECT_TRUE(r->exit.signaled) << abi << ": " << r->out;
    if (!host->status.signaled) {
      EXPECT_EQ(r->exit.signal, 31) << abi;  // SIGSYS
    } else {
      EXPECT_TRUE(r->exit.signal == 31 || r->exit.signal == host->status.signal)
          << abi << ": signal " << r->exit.signal << ", on the host " << host->status.signal;
    }
  }
}

TEST_F(IsolationTest, ProcAndSysAreProtected) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  auto sysctl = Exec(*sb, {"sh", "-c", "echo 1 > /proc/sys/kernel/domainname"});
  ASSERT_TRUE(sysctl);
  EXPECT_NE(sysctl->code(), 0);
  auto sys_write = Exec(*sb, {"sh", "-c", "echo x > /sys/kernel/uevent_helper"});
  ASSERT_TRUE(sys_write);
  EXPECT_NE(sys_write->code(), 0);
  auto masked = Exec(*sb, {"sh", "-c", "cat /proc/interrupts | wc -c; ls /sys/firmware | wc -l"});
  ASSERT_TRUE(masked);
  EXPECT_EQ(masked->out, "0\n0\n");
  auto unmask = Exec(*sb, {"umount", "/proc/interrupts"});
  ASSERT_TRUE(unmask);
  EXPECT_NE(unmask->code(), 0);
  if (sys::PathExists("/proc/sysrq-trigger")) {
    auto sysrq = Exec(*sb, {"sh", "-c", "echo h > /proc/sysrq-trigger"});
    ASSERT_TRUE(sysrq);
    EXPECT_NE(sysrq->code(), 0);
  }
}

TEST_F(IsolationTest, HostnameAndHostsFiles) {
  auto sb = Create([](runtime::RuntimeSpec& s) { s.hostname = "box-1"; });
  ASSERT_TRUE(sb);
  auto r = Exec(*sb, {"sh", "-c", "hostname; grep box-1 /etc/hosts; cat /etc/hostname"});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->out, "box-1\n127.0.1.1\tbox-1\nbox-1\n");
}

TEST_F(IsolationTest, PostureFromOutside) {
  auto sb = Create();
  ASSERT_TRUE(sb);
  pid_t pid = sb->state.init_pid;
  auto status = sys::ReadFile("/proc/" + std::to_string(pid) + "/status");
  ASSERT_TRUE(status);
  EXPECT_EQ(StatusField(*status, "Seccomp"), "2");
  EXPECT_EQ(StatusField(*status, "NoNewPrivs"), "1");
  EXPECT_EQ(Split(StatusField(*status, "Uid"), '\t').front(), "1000000");
  // Its namespaces are its own.
  for (const char* ns : {"mnt", "pid", "net", "uts", "ipc", "user", "cgroup"}) {
    char self_link[256] = {};
    char init_link[256] = {};
    ASSERT_GT(readlink((std::string("/proc/self/ns/") + ns).c_str(), self_link, 255), 0);
    ASSERT_GT(readlink(("/proc/" + std::to_string(pid) + "/ns/" + ns).c_str(), init_link, 255), 0)
        << ns;
    EXPECT_STRNE(self_link, init_link) << ns;
  }
  // Its executable is a sealed in-memory copy, not a host file.
  char exe[256] = {};
  ASSERT_GT(readlink(("/proc/" + std::to_string(pid) + "/exe").c_str(), exe, 255), 0);
  EXPECT_NE(std::string(exe).find("memfd:sbx-init"), std::string::npos) << exe;
}

}  // namespace
}  // namespace sbx::testing
