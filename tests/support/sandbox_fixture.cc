#include "tests/support/sandbox_fixture.h"

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/runtime/writable_layer.h"
#include "src/sys/features.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"
#include "tests/support/features.h"

namespace sbx::testing {

namespace {

std::unique_ptr<TempDir>& RootfsHolder() {
  static std::unique_ptr<TempDir> dir;
  return dir;
}

std::string g_rootfs;

Status BuildRootfs(const std::string& root, const std::string& bin_dir) {
  for (const char* dir : {"bin", "etc", "tmp", "root", "work", "home/app"}) {
    SBX_TRY(sys::MakeDirs(root + "/" + dir));
  }
  chmod((root + "/tmp").c_str(), 01777);
  auto busybox = sys::ReadFile("/bin/busybox", 64u << 20);
  if (!busybox) return std::move(busybox).error().Wrap("needs busybox-static at /bin/busybox");
  SBX_TRY(sys::WriteFile(root + "/bin/busybox", *busybox, 0755));
  auto payload = sys::ReadFile(bin_dir + "/sbx-testpayload", 64u << 20);
  if (!payload) return std::move(payload).error().Wrap("build sbx-testpayload first");
  SBX_TRY(sys::WriteFile(root + "/bin/sbx-testpayload", *payload, 0755));
  auto list = sys::RunCommand({"/bin/busybox", "--list"});
  if (!list) return std::move(list).error();
  for (const auto& applet : Split(list->out, '\n')) {
    if (applet.empty() || applet == "busybox") continue;
    symlink("busybox", (root + "/bin/" + applet).c_str());
  }
  SBX_TRY(sys::WriteFile(root + "/etc/passwd",
                         "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
                         "nobody:x:65534:65534:nobody:/:/bin/false\n"));
  SBX_TRY(sys::WriteFile(root + "/etc/group", "root:x:0:\napp:x:1000:\nnobody:x:65534:\n"));
  // Two names of one file in the image layer.
  SBX_TRY(sys::WriteFile(root + "/etc/motd", "welcome\n"));
  if (link((root + "/etc/motd").c_str(), (root + "/etc/motd.link").c_str()) != 0) {
    return Error::Errno("link /etc/motd");
  }
  // The sandbox's root is host uid 1000000 and app is 1001000.
  auto chown_all = sys::RunCommand({"/bin/chown", "-R", "-h", "1000000:1000000", root});
  if (!chown_all || chown_all->status.ShellCode() != 0) return Error::Internal("chown rootfs");
  auto chown_app = sys::RunCommand({"/bin/chown", "-h", "1001000:1001000", root + "/home/app"});
  if (!chown_app || chown_app->status.ShellCode() != 0) return Error::Internal("chown home");
  return Ok();
}

}  // namespace

std::string SandboxTest::BinDir() {
  const char* dir = getenv("SBX_BIN_DIR");
  return dir ? dir : "";
}

const std::string& SandboxTest::RootfsDir() { return g_rootfs; }

void SandboxTest::SetUpTestSuite() {
  // Sandboxes' sbx-init processes are re-parented to us when their creator is gone; reaping them
  // is part of "nothing left behind".
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  if (RootfsHolder()) return;
  RootfsHolder() = std::make_unique<TempDir>("sbx-rootfs");
  g_rootfs = RootfsHolder()->path() + "/rootfs";
  Status built = BuildRootfs(g_rootfs, BinDir());
  if (!built) {
    fprintf(stderr, "cannot build the test rootfs: %s\n", built.error().ToString().c_str());
    g_rootfs.clear();
  }
}

void SandboxTest::TearDownTestSuite() {}

void SandboxTest::SetUp() {
  auto root = sys::ProbeRealRoot();
  SBX_REQUIRE("root", root.available, root.detail);
  auto userns = sys::ProbeUserNamespaces();
  SBX_REQUIRE("userns", userns.available, userns.detail);
  auto overlay = sys::ProbeOverlayfs();
  SBX_REQUIRE("overlayfs", overlay.available, overlay.detail);
  auto layout = sys::ProbeCgroups();
  SBX_REQUIRE("cgroups", !layout.version.empty(), "no usable cgroup hierarchy");
  ASSERT_FALSE(g_rootfs.empty()) << "test rootfs missing";
  auto driver = runtime::MakeCgroupDriver(layout, "sbx-test");
  ASSERT_TRUE(driver) << driver.error().ToString();
  cgroups_ = std::move(*driver);
  run_dir_ = std::make_unique<TempDir>("sbx-run");
}

void SandboxTest::TearDown() {
  for (auto& sandbox : live_) (void)runtime::DestroySandbox(sandbox.id, sandbox.bundle, *cgroups_);
  live_.clear();
  // Reap whatever was re-parented to us.
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  run_dir_.reset();
}

runtime::RuntimeSpec SandboxTest::BaseSpec() {
  runtime::RuntimeSpec spec;
  spec.id = "t" + RandomHex(6);
  spec.hostname = spec.id;
  spec.rootfs.layers = {g_rootfs};
  spec.rootfs.writable.kind = runtime::WritableKind::kTmpfs;
  spec.rootfs.writable.size_bytes = 256u << 20;
  spec.resources.memory_bytes = 256u << 20;
  spec.resources.cpu_millis = 1000;
  spec.resources.pids = 256;
  spec.resources.shm_bytes = 16u << 20;
  spec.process.env = {"PATH=/bin"};
  spec.process.cwd = "/";
  return spec;
}

Result<TestSandbox> SandboxTest::Create(const std::function<void(runtime::RuntimeSpec&)>& adjust) {
  runtime::RuntimeSpec spec = BaseSpec();
  if (adjust) adjust(spec);
  std::string bundle = run_dir() + "/" + spec.id;
  SBX_TRY(sys::MakeDirs(bundle, 0700));
  static UniqueFd init;
  if (!init) {
    auto sealed = runtime::SealedCopyOfInit(BinDir() + "/sbx-init");
    if (!sealed) return std::move(sealed).error();
    init = std::move(*sealed);
  }
  auto state =
      runtime::CreateSandbox(spec, {.bundle_dir = bundle, .init_fd = init.get()}, *cgroups_);
  if (!state) {
    (void)sys::RemoveTree(bundle);
    return std::move(state).error();
  }
  TestSandbox sandbox{spec.id, bundle, *state};
  live_.push_back(sandbox);
  created_.push_back(spec.id);
  return sandbox;
}

Status SandboxTest::Destroy(TestSandbox& sandbox) {
  Status s = runtime::DestroySandbox(sandbox.id, sandbox.bundle, *cgroups_);
  std::erase_if(live_, [&](const TestSandbox& t) { return t.id == sandbox.id; });
  return s;
}

Result<ExecResult> SandboxTest::Exec(const TestSandbox& sandbox,
                                     const std::vector<std::string>& argv,
                                     const std::string& stdin_data, int64_t timeout_ms,
                                     const std::string& user) {
  agent::AgentClient client = sandbox.agent();
  agent::ExecStart request;
  request.argv = argv;
  request.stdin_open = !stdin_data.empty();
  request.user = user;
  SBX_ASSIGN_OR_RETURN(agent::ExecStream stream, client.StartExec(request));
  int64_t deadline = MonotonicMillis() + timeout_ms;
  if (!stdin_data.empty()) {
    SBX_TRY(stream.WriteStdin(stdin_data, deadline));
    SBX_TRY(stream.CloseStdin());
  }
  ExecResult result;
  while (true) {
    SBX_ASSIGN_OR_RETURN(agent::ExecEvent event, stream.Next(deadline));
    if (event.kind == agent::ExecEvent::kExit) {
      result.exit = event.exit;
      return result;
    }
    (event.output.stream == agent::StreamId::kStderr ? result.err : result.out) +=
        event.output.data;
  }
}

std::vector<std::string> SandboxTest::Leftovers() {
  std::vector<std::string> found;
  for (const auto& name : cgroups_->List()) found.push_back("cgroup " + name);
  if (DIR* dir = opendir(run_dir().c_str())) {
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') found.push_back("bundle " + std::string(e->d_name));
    }
    closedir(dir);
  }
  // Loop devices still backed by an image in our run directory.
  if (DIR* dir = opendir("/sys/block")) {
    while (dirent* e = readdir(dir)) {
      std::string name = e->d_name;
      if (!StartsWith(name, "loop")) continue;
      std::string backing = runtime::LoopBackingFile("/dev/" + name);
      if (StartsWith(backing, run_dir())) found.push_back("loop " + name + " -> " + backing);
    }
    closedir(dir);
  }
  // Processes still in one of this test's sandbox cgroups, and zombies we failed to reap.
  std::string self = std::to_string(getpid());
  if (DIR* dir = opendir("/proc")) {
    while (dirent* e = readdir(dir)) {
      if (!ParseInt64(e->d_name)) continue;
      std::string pid = e->d_name;
      auto cgroup = sys::ReadFile("/proc/" + pid + "/cgroup", 65536);
      if (cgroup) {
        for (const auto& id : created_) {
          if (cgroup->find("/sbx-test/" + id + "\n") != std::string::npos ||
              cgroup->find("/sbx-test/" + id + "/") != std::string::npos) {
            found.push_back("process " + pid + " in sandbox " + id);
          }
        }
      }
      auto stat = sys::ReadFile("/proc/" + pid + "/stat", 4096);
      if (stat) {
        size_t close = stat->rfind(')');
        auto fields = Split(stat->substr(close + 2), ' ');
        if (fields.size() > 1 && fields[0] == "Z" && fields[1] == self) {
          found.push_back("zombie " + pid);
        }
      }
    }
    closedir(dir);
  }
  return found;
}

}  // namespace sbx::testing
