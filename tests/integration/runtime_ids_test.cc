// Every sandbox in a host id range of its own, over image layers it shares with others, with the
// per-user counters of the kernel charged to it.

#include <fcntl.h>
#include <linux/nsfs.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/sys/fs.h"
#include "tests/support/sandbox_fixture.h"

namespace sbx::testing {
namespace {

class IdsTest : public SandboxTest {
 protected:
  // Sandbox ranges follow the layers' range (the fixture's rootfs belongs to 1000000), from a
  // random slot so that concurrent runs rarely meet.
  void SetUp() override {
    SandboxTest::SetUp();
    first_slot_ = 1000 + static_cast<uint32_t>(std::stoul(RandomHex(1), nullptr, 16)) * 8;
  }
  runtime::IdMap Range(uint32_t n) const {
    uint32_t base = 1000000 + (first_slot_ + n) * 65536;
    return {base, base, 65536};
  }
  Result<TestSandbox> CreateIn(const runtime::IdMap& ids,
                               runtime::WritableKind kind = runtime::WritableKind::kTmpfs) {
    return Create([&](runtime::RuntimeSpec& s) {
      s.id_map = ids;
      s.rootfs.layer_ids = runtime::LayerIds{1000000, 1000000};
      s.rootfs.writable.kind = kind;
    });
  }
  uint32_t first_slot_ = 0;
};

struct stat HostStat(const TestSandbox& sb, const std::string& path) {
  struct stat st {};
  std::string host_path = "/proc/" + std::to_string(sb.state.init_pid) + "/root" + path;
  EXPECT_EQ(lstat(host_path.c_str(), &st), 0) << host_path << ": " << strerror(errno);
  return st;
}

std::string HostUid(pid_t pid) {
  auto status = sys::ReadFile("/proc/" + std::to_string(pid) + "/status");
  if (!status) return "";
  for (const auto& line : Split(*status, '\n')) {
    if (StartsWith(line, "Uid:")) return Split(std::string(Trim(line.substr(4))), '\t').front();
  }
  return "";
}

// Two sandboxes in ranges of their own each see the shared layers as their own root's; what one
// sandbox's users make belongs to its range, where the other's users own nothing.
TEST_F(IdsTest, SandboxesInTheirOwnRangesShareTheLayers) {
  for (auto kind : {runtime::WritableKind::kLoop, runtime::WritableKind::kTmpfs}) {
    SCOPED_TRACE(kind == runtime::WritableKind::kLoop ? "loop" : "tmpfs");
    runtime::IdMap a_ids = Range(0);
    runtime::IdMap b_ids = Range(1);
    auto a = CreateIn(a_ids, kind);
    ASSERT_TRUE(a) << a.error().ToString();
    auto b = CreateIn(b_ids, kind);
    ASSERT_TRUE(b) << b.error().ToString();
    for (const auto* sb : {&*a, &*b}) {
      auto owners = Exec(*sb, {"stat", "-c", "%u:%g", "/", "/bin/busybox", "/etc", "/home/app"});
      ASSERT_TRUE(owners);
      EXPECT_EQ(owners->out, "0:0\n0:0\n0:0\n1000:1000\n");
    }
    auto map = Exec(*a, {"cat", "/proc/self/uid_map", "/proc/self/gid_map"});
    ASSERT_TRUE(map);
    for (const auto& line : Split(std::string(Trim(map->out)), '\n')) {
      std::vector<std::string> fields;
      for (const auto& f : Split(line, ' ')) {
        if (!f.empty()) fields.push_back(f);
      }
      EXPECT_EQ(fields, (std::vector<std::string>{"0", std::to_string(a_ids.host_uid), "65536"}));
    }
    EXPECT_EQ(HostUid(a->state.init_pid), std::to_string(a_ids.host_uid));
    EXPECT_EQ(HostUid(b->state.init_pid), std::to_string(b_ids.host_uid));

    auto made = Exec(*a, {"sh", "-c", "echo x > /tmp/by-root && echo y >> /etc/passwd"});
    ASSERT_TRUE(made);
    ASSERT_EQ(made->code(), 0) << made->err;
    auto by_app = Exec(*a, {"touch", "/tmp/by-app"}, "", 30000, "1000");
    ASSERT_TRUE(by_app);
    ASSERT_EQ(by_app->code(), 0) << by_app->err;
    struct stat root_file = HostStat(*a, "/tmp/by-root");
    struct stat copied_up = HostStat(*a, "/etc/passwd");
    struct stat app_file = HostStat(*a, "/tmp/by-app");
    EXPECT_EQ(root_file.st_uid, a_ids.host_uid);
    EXPECT_EQ(root_file.st_gid, a_ids.host_gid);
    EXPECT_EQ(copied_up.st_uid, a_ids.host_uid);
    EXPECT_EQ(app_file.st_uid, a_ids.host_uid + 1000);
    for (uid_t uid : {root_file.st_uid, copied_up.st_uid, app_file.st_uid}) {
      EXPECT_FALSE(uid >= b_ids.host_uid && uid < b_ids.host_uid + b_ids.size) << uid;
    }
    // The other sandbox's root cannot write what the first one's root made (seen from inside B,
    // A's files would belong to nobody) and the layers on the host are unchanged.
    struct stat layer {};
    ASSERT_EQ(stat((RootfsDir() + "/etc/passwd").c_str(), &layer), 0);
    EXPECT_EQ(layer.st_uid, 1000000u);
    EXPECT_TRUE(Destroy(*a));
    EXPECT_TRUE(Destroy(*b));
  }
  EXPECT_TRUE(Leftovers().empty());
}

// The sandbox's user namespace belongs to its root's host user, not to host root: the kernel
// charges the sandbox's per-user counters to that user.
TEST_F(IdsTest, UserNamespaceBelongsToTheSandboxRoot) {
  runtime::IdMap ids = Range(2);
  auto sb = CreateIn(ids);
  ASSERT_TRUE(sb) << sb.error().ToString();
  auto ns = sys::Open("/proc/" + std::to_string(sb->state.init_pid) + "/ns/user", O_RDONLY);
  ASSERT_TRUE(ns) << ns.error().ToString();
  uid_t owner = 0;
  ASSERT_EQ(ioctl(ns->get(), NS_GET_OWNER_UID, &owner), 0) << strerror(errno);
  EXPECT_EQ(owner, ids.host_uid);
}

// A sandbox that takes every inotify instance it may have takes none of host root's, nor another
// sandbox's.
TEST_F(IdsTest, InotifyExhaustionStaysInTheSandbox) {
  auto hog = CreateIn(Range(3));
  ASSERT_TRUE(hog) << hog.error().ToString();
  auto other = CreateIn(Range(4));
  ASSERT_TRUE(other) << other.error().ToString();
  agent::AgentClient client = hog->agent();
  agent::ExecStart request;
  request.argv = {"sbx-testpayload", "inotify-hold"};
  request.stdin_open = true;
  auto stream = client.StartExec(request);
  ASSERT_TRUE(stream) << stream.error().ToString();
  int64_t deadline = MonotonicMillis() + 30000;
  std::string out;
  while (out.find('\n') == std::string::npos) {
    auto event = stream->Next(deadline);
    ASSERT_TRUE(event) << event.error().ToString();
    ASSERT_NE(event->kind, agent::ExecEvent::kExit) << out;
    out += event->output.data;
  }
  EXPECT_TRUE(StartsWith(out, "held ")) << out;
  EXPECT_NE(out.find("EMFILE"), std::string::npos) << out;
  // While the sandbox holds them all: host root and the other sandbox still get theirs.
  int own = inotify_init1(IN_CLOEXEC);
  EXPECT_GE(own, 0) << "host root: " << strerror(errno);
  if (own >= 0) close(own);
  auto second = Exec(*other, {"sbx-testpayload", "try", "inotify"});
  ASSERT_TRUE(second);
  EXPECT_EQ(second->out, "ok\n");
  ASSERT_TRUE(stream->CloseStdin());
  while (true) {
    auto event = stream->Next(deadline);
    ASSERT_TRUE(event) << event.error().ToString();
    if (event->kind == agent::ExecEvent::kExit) break;
  }
}

// Inside, the namespace's own limits: no namespace of any kind (seccomp refuses them first), and
// the host's per-user inotify limits, which is what the sandbox as a whole gets.
TEST_F(IdsTest, TheSandboxNamespaceHasItsOwnLimits) {
  auto sb = CreateIn(Range(5));
  ASSERT_TRUE(sb) << sb.error().ToString();
  std::string script;
  for (const char* kind : {"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"}) {
    script += std::string("cat /proc/sys/user/max_") + kind + "_namespaces; ";
  }
  script += "cat /proc/sys/user/max_inotify_instances /proc/sys/user/max_inotify_watches";
  auto limits = Exec(*sb, {"sh", "-c", script});
  ASSERT_TRUE(limits);
  auto instances = sys::ReadFile("/proc/sys/fs/inotify/max_user_instances");
  auto watches = sys::ReadFile("/proc/sys/fs/inotify/max_user_watches");
  ASSERT_TRUE(instances && watches);
  EXPECT_EQ(limits->out, "0\n0\n0\n0\n0\n0\n0\n0\n" + std::string(Trim(*instances)) + "\n" +
                             std::string(Trim(*watches)) + "\n");
}

}  // namespace
}  // namespace sbx::testing
