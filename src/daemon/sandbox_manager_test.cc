// The state machine against fakes of its three ports: every transition, and what each failure
// leaves (nothing). The fakes keep the state a real machine would (live sandboxes, attachments,
// image holds) so each test can check that it all went away.

#include "src/daemon/sandbox_manager.h"

#include <signal.h>
#include <sys/socket.h>

#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "src/base/clock.h"
#include "src/testing/temp_dir.h"

namespace sbx::daemon {
namespace {

constexpr int64_t kWaitMs = 10000;

class FakeImages : public ImageProvider {
 public:
  Result<ResolvedImage> Resolve(const std::string& reference) override {
    return ResolveLocal(reference);
  }
  Result<ResolvedImage> ResolveLocal(const std::string& reference) override {
    std::lock_guard lock(mu_);
    if (missing.count(reference)) return Error::NotFound("no image " + reference);
    ResolvedImage image;
    image.reference = reference;
    image.digest = "sha256:" + reference;
    image.layer_dirs = {"/layers/" + reference};
    image.entrypoint = {"/entry"};
    return image;
  }
  void Hold(const std::string& digest) override {
    std::lock_guard lock(mu_);
    ++holds[digest];
  }
  void Release(const std::string& digest) override {
    std::lock_guard lock(mu_);
    if (--holds[digest] == 0) holds.erase(digest);
  }
  int Holds(const std::string& digest) {
    std::lock_guard lock(mu_);
    auto it = holds.find(digest);
    return it == holds.end() ? 0 : it->second;
  }
  std::mutex mu_;
  std::set<std::string> missing;
  std::map<std::string, int> holds;
};

class FakeNetwork : public net::NetworkProvider {
 public:
  Result<net::NetworkAttachment> Attach(const std::string& id,
                                        const net::NetworkRequest&) override {
    std::lock_guard lock(mu_);
    if (fail) return Error::Unavailable("no address left");
    attached.insert(id);
    net::NetworkAttachment a;
    a.mode = net::NetworkMode::kPublic;
    a.address = "10.0.0.2";
    return a;
  }
  void Detach(const std::string& id, Leftover) override {
    std::lock_guard lock(mu_);
    attached.erase(id);
  }
  Status Recover(const std::vector<std::string>& live) override {
    std::lock_guard lock(mu_);
    std::set<std::string> keep(live.begin(), live.end());
    std::erase_if(attached, [&](const std::string& id) { return !keep.count(id); });
    return Ok();
  }
  std::set<std::string> Attached() {
    std::lock_guard lock(mu_);
    return attached;
  }
  std::mutex mu_;
  bool fail = false;
  std::set<std::string> attached;
};

// A sandbox of the fake machine: its main process "runs" until Exit or a signal ends it.
struct FakeSandbox {
  SandboxPlan plan;
  agent::StatusReply status;
  std::optional<agent::InitConfig> started_main;
  std::vector<runtime::CgroupLimits> limits;
  UniqueFd watch_peer;  // closing it is sbx-init answering WaitMain
  bool alive = true;
  bool acked = false;
  bool files_only = false;        // KeepOnlyFiles quieted it
  int64_t deadline_unix_ns = -1;  // as last set by SetDeadline
};

class FakeRuntime : public RuntimeProvider {
 public:
  Result<RuntimeSandbox> Create(const SandboxPlan& plan) override {
    std::lock_guard lock(mu_);
    ++creates;
    if (fail_create) return Error::Internal("clone: out of memory");
    // As the real runtime: an id's bundle and cgroup must be gone before the id is created again.
    if (sandboxes.count(plan.spec.id)) return Error::AlreadyExists(plan.spec.id + " exists");
    FakeSandbox& s = sandboxes[plan.spec.id];
    s.plan = plan;
    s.status.main_running = !plan.spec.process.await_start;
    return RuntimeSandbox{plan.spec.id, "/bundles/" + plan.spec.id, "/sockets/" + plan.spec.id,
                          next_pid++, 1};
  }
  Status Destroy(const std::string& id) override {
    std::lock_guard lock(mu_);
    destroyed.push_back(id);
    sandboxes.erase(id);
    leftovers.erase(id);
    return Ok();
  }
  Status KeepOnlyFiles(const RuntimeSandbox& sandbox) override {
    std::lock_guard lock(mu_);
    FakeSandbox* s = Find(sandbox.id);
    if (!s || !s->alive || fail_keep_files) return Error::Unavailable("sbx-init is gone");
    s->files_only = true;
    return Ok();
  }
  Status SetLimits(const std::string& id, const runtime::CgroupLimits& limits) override {
    std::lock_guard lock(mu_);
    auto it = sandboxes.find(id);
    if (it == sandboxes.end()) return Error::NotFound("no cgroup " + id);
    it->second.limits.push_back(limits);
    return Ok();
  }
  Result<runtime::CgroupStats> Stats(const std::string& id) override {
    std::lock_guard lock(mu_);
    runtime::CgroupStats stats;
    stats.oom_kills = oom_kills.count(id);
    return stats;
  }
  bool Alive(const RuntimeSandbox& sandbox) override {
    std::lock_guard lock(mu_);
    auto it = sandboxes.find(sandbox.id);
    return it != sandboxes.end() && it->second.alive;
  }
  std::vector<std::string> Leftovers() override {
    std::lock_guard lock(mu_);
    std::vector<std::string> ids(leftovers.begin(), leftovers.end());
    for (const auto& [id, s] : sandboxes) ids.push_back(id);
    return ids;
  }
  void RemoveSharedState() override {}
  Status StartMain(const RuntimeSandbox& sandbox, const agent::InitConfig& main) override {
    std::lock_guard lock(mu_);
    FakeSandbox* s = Find(sandbox.id);
    if (!s || !s->alive) return Error::Unavailable("connect: connection refused");
    if (s->started_main) return Error::FailedPrecondition("already started");
    s->started_main = main;
    s->status.main_running = true;
    return Ok();
  }
  Result<agent::StatusReply> MainStatus(const RuntimeSandbox& sandbox) override {
    std::lock_guard lock(mu_);
    FakeSandbox* s = Find(sandbox.id);
    if (!s || !s->alive) return Error::Unavailable("connect: connection refused");
    return s->status;
  }
  Status SignalMain(const RuntimeSandbox& sandbox, int signal) override {
    std::lock_guard lock(mu_);
    FakeSandbox* s = Find(sandbox.id);
    if (!s || !s->alive) return Error::Unavailable("connect: connection refused");
    if (!ignores_sigterm) EndMain(*s, {.exit_code = -1, .signal = signal, .signaled = true});
    return Ok();
  }
  Status SetDeadline(const RuntimeSandbox& sandbox, int64_t deadline_unix_ns) override {
    std::lock_guard lock(mu_);
    FakeSandbox* s = Find(sandbox.id);
    if (!s || !s->alive) return Error::Unavailable("connect: connection refused");
    s->deadline_unix_ns = deadline_unix_ns;
    return Ok();
  }
  Result<agent::StatusReply> WaitMain(const RuntimeSandbox& sandbox, int64_t) override {
    std::lock_guard lock(mu_);
    FakeSandbox* s = Find(sandbox.id);
    if (!s || !s->alive) return Error::Unavailable("connect: connection refused");
    if (!s->status.main_exited) return Error::DeadlineExceeded("still running");
    return s->status;
  }
  Status AckExit(const RuntimeSandbox& sandbox) override {
    std::lock_guard lock(mu_);
    if (FakeSandbox* s = Find(sandbox.id)) s->acked = true;
    return Ok();
  }
  Result<SavedLogs> ReadLogs(const RuntimeSandbox& sandbox) override {
    std::lock_guard lock(mu_);
    if (!Find(sandbox.id)) return Error::Unavailable("gone");
    return SavedLogs{"output of " + sandbox.id, 0};
  }
  Result<UniqueFd> WatchMain(const RuntimeSandbox& sandbox) override {
    std::lock_guard lock(mu_);
    FakeSandbox* s = Find(sandbox.id);
    if (!s || !s->alive) return Error::Unavailable("connect: connection refused");
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      return Error::Errno("socketpair");
    }
    s->watch_peer.reset(fds[1]);
    if (s->status.main_exited) s->watch_peer.reset();
    return UniqueFd(fds[0]);
  }

  // The main process of `id` exits with `code`.
  void Exit(const std::string& id, int code) {
    std::lock_guard lock(mu_);
    EndMain(sandboxes.at(id), {.exit_code = code});
  }
  // sbx-init of `id` dies.
  void Crash(const std::string& id) {
    std::lock_guard lock(mu_);
    FakeSandbox& s = sandboxes.at(id);
    s.alive = false;
    s.watch_peer.reset();
  }
  std::set<std::string> Live() {
    std::lock_guard lock(mu_);
    std::set<std::string> ids;
    for (const auto& [id, s] : sandboxes) ids.insert(id);
    return ids;
  }
  FakeSandbox Snapshot(const std::string& id) {
    std::lock_guard lock(mu_);
    const FakeSandbox& s = sandboxes.at(id);
    FakeSandbox copy;
    copy.plan = s.plan;
    copy.status = s.status;
    copy.started_main = s.started_main;
    copy.limits = s.limits;
    copy.acked = s.acked;
    copy.files_only = s.files_only;
    return copy;
  }

  std::mutex mu_;
  std::map<std::string, FakeSandbox> sandboxes;
  std::set<std::string> leftovers;
  std::vector<std::string> destroyed;
  std::set<std::string> oom_kills;
  bool fail_create = false;
  bool fail_keep_files = false;
  bool ignores_sigterm = false;
  int creates = 0;
  pid_t next_pid = 1000;

 private:
  FakeSandbox* Find(const std::string& id) {
    auto it = sandboxes.find(id);
    return it == sandboxes.end() ? nullptr : &it->second;
  }
  static void EndMain(FakeSandbox& s, agent::ExitInfo exit) {
    s.status.main_running = false;
    s.status.main_exited = true;
    s.status.main_exit = exit;
    s.watch_peer.reset();
  }
};

// Polls `condition` until it holds or the wait is over.
bool Eventually(const std::function<bool()>& condition) {
  int64_t deadline = MonotonicMillis() + kWaitMs;
  while (!condition()) {
    if (MonotonicMillis() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

Config TestConfig(const std::string& dir) {
  Config c;
  c.state_dir = dir;
  c.run_dir = dir;
  c.secrets_dir = dir + "/secrets";
  c.capacity_cpu = "2";
  c.capacity_memory = "8Gi";
  c.default_cpu = "1";
  c.default_memory = "1Gi";
  c.warm_pool_size = 0;
  c.retention_seconds = 3600;
  c.files_retention_seconds = 0;
  return c;
}

CreateRequest Request(const std::string& image = "python:3.11") {
  CreateRequest r;
  r.image = image;
  r.command = "python";
  r.args = {"main.py"};
  r.args_given = true;
  r.fingerprint = "fp-" + image;
  return r;
}

class SandboxManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::Open(dir_.Sub("sbxd.db"));
    ASSERT_TRUE(store) << store.error().ToString();
    store_ = std::move(*store);
  }
  void TearDown() override {
    if (manager_) manager_->Shutdown();
  }
  void Start(Config config) {
    manager_ = std::make_unique<SandboxManager>(config, store_.get(), &images_, &network_,
                                                &runtime_, &metrics_);
    ASSERT_TRUE(manager_->Start());
  }
  void Start() { Start(TestConfig(dir_.path())); }

  SandboxRecord CreateRunning(const std::string& tenant = "t", CreateRequest r = Request()) {
    auto created = manager_->Create(tenant, std::move(r));
    EXPECT_TRUE(created) << created.error().ToString();
    if (!created) return {};
    auto settled = manager_->WaitSettled(tenant, created->id, MonotonicMillis() + kWaitMs);
    EXPECT_TRUE(settled);
    EXPECT_EQ(settled->state, State::kRunning) << settled->StateReason();
    return *settled;
  }
  // Starts with a pool of one warm sandbox per image and runs one sandbox, after which a sandbox
  // of its image is made ahead of time; returns that one's id (empty if none was made).
  std::string StartWithAWarmSandbox() {
    Config config = TestConfig(dir_.path());
    config.warm_pool_size = 1;
    config.warm_pool_refill_delay_ms = 0;
    Start(config);
    SandboxRecord first = CreateRunning();
    if (!Eventually([&] { return manager_->GetCapacity().warm["python:3.11"] == 1; })) return "";
    std::set<std::string> made_ahead = runtime_.Live();
    made_ahead.erase(first.id);
    return made_ahead.size() == 1 ? *made_ahead.begin() : "";
  }
  SandboxRecord Ended(const std::string& id, const std::string& tenant = "t") {
    auto ended = manager_->WaitEnded(tenant, id, MonotonicMillis() + kWaitMs);
    EXPECT_TRUE(ended);
    EXPECT_TRUE(IsTerminal(ended->state)) << StateName(ended->state);
    return *ended;
  }
  // Nothing of `id` is left on the fake machine, and it holds nothing.
  void ExpectNothingLeft(const std::string& id, const std::string& digest) {
    EXPECT_FALSE(runtime_.Live().count(id));
    EXPECT_FALSE(network_.Attached().count(id));
    EXPECT_EQ(images_.Holds(digest), 0);
  }

  sbx::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  FakeImages images_;
  FakeNetwork network_;
  FakeRuntime runtime_;
  Metrics metrics_;
  std::unique_ptr<SandboxManager> manager_;
};

TEST_F(SandboxManagerTest, ACreateRunsItsSpecAndAMainExitEndsIt) {
  Start();
  SandboxRecord r = CreateRunning();
  EXPECT_EQ(r.image_digest, "sha256:python:3.11");
  EXPECT_EQ(r.address, "10.0.0.2");
  EXPECT_GT(r.init_pid, 0);
  EXPECT_TRUE(network_.Attached().count(r.id));
  EXPECT_EQ(images_.Holds(r.image_digest), 1);
  FakeSandbox made = runtime_.Snapshot(r.id);
  EXPECT_EQ(made.plan.spec.process.args, (std::vector<std::string>{"python", "main.py"}));
  EXPECT_EQ(made.plan.spec.rootfs.layers, std::vector<std::string>{"/layers/python:3.11"});
  EXPECT_EQ(made.plan.spec.resources.cpu_millis, 1000u);
  EXPECT_EQ(made.plan.spec.resources.memory_bytes, 1u << 30);

  runtime_.Exit(r.id, 3);
  SandboxRecord ended = Ended(r.id);
  EXPECT_EQ(ended.state, State::kFailed);
  EXPECT_EQ(ended.reason, "EXITED");
  EXPECT_EQ(ended.exit_code, 3);
  ExpectNothingLeft(r.id, r.image_digest);
  auto logs = manager_->SavedLogs(r.id);
  ASSERT_TRUE(logs);
  EXPECT_EQ(logs->first, "output of " + r.id);
  auto stored = store_->LoadAll();
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].state, State::kFailed);
  EXPECT_FALSE((*stored)[0].ending);
}

TEST_F(SandboxManagerTest, AStopEndsTheSandboxWithinItsGrace) {
  Start();
  SandboxRecord r = CreateRunning();
  auto stopping = manager_->Stop("t", r.id, 5);
  ASSERT_TRUE(stopping);
  SandboxRecord ended = Ended(r.id);
  EXPECT_EQ(ended.state, State::kTerminated);
  EXPECT_EQ(ended.reason, "USER_STOPPED");
  EXPECT_EQ(ended.exit_code, 128 + SIGTERM);
  ExpectNothingLeft(r.id, r.image_digest);
  // Another tenant cannot see or stop it.
  EXPECT_EQ(manager_->Stop("other", r.id, 0).error().code(), Code::kNotFound);
  EXPECT_EQ(manager_->Get("other", r.id).error().code(), Code::kNotFound);
}

TEST_F(SandboxManagerTest, AMainProcessThatIgnoresTheStopIsKilledAfterTheGrace) {
  Start();
  runtime_.ignores_sigterm = true;
  SandboxRecord r = CreateRunning();
  ASSERT_TRUE(manager_->Stop("t", r.id, 1));
  SandboxRecord ended = Ended(r.id);
  EXPECT_EQ(ended.exit_code, 137);
  EXPECT_EQ(ended.message, "stopped; main process killed after the 1s grace period");
  ExpectNothingLeft(r.id, r.image_digest);
}

TEST_F(SandboxManagerTest, ACreateThatDoesNotFitWaitsUntilOneEnds) {
  Start();
  CreateRequest big = Request();
  big.cpu_request_millis = 1500;
  SandboxRecord first = CreateRunning("t", big);
  big.fingerprint = "another";
  auto second = manager_->Create("t", big);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->state, State::kPending);
  // It says why, in Get as in the answer to the create.
  EXPECT_EQ(second->reason, "WAITING_FOR_CAPACITY");
  EXPECT_NE(second->message.find("waiting for CPU: 1500m of 2000m reserved"), std::string::npos)
      << second->message;
  EXPECT_EQ(manager_->Get("t", second->id)->StateReason(), second->StateReason());
  EXPECT_EQ(manager_->GetCapacity().pending, 1);
  EXPECT_EQ(manager_->GetCapacity().allocated_cpu_millis, 1500u);
  EXPECT_FALSE(runtime_.Live().count(second->id));
  ASSERT_TRUE(manager_->Stop("t", first.id, 0));
  auto settled = manager_->WaitSettled("t", second->id, MonotonicMillis() + kWaitMs);
  ASSERT_TRUE(settled);
  EXPECT_EQ(settled->state, State::kRunning);
  EXPECT_EQ(settled->reason, "");
  EXPECT_EQ(manager_->GetCapacity().allocated_cpu_millis, 1500u);
}

TEST_F(SandboxManagerTest, AStopOfAWaitingSandboxEndsItAtOnce) {
  Start();
  CreateRequest big = Request();
  big.cpu_request_millis = 2000;
  CreateRunning("t", big);
  big.fingerprint = "another";
  auto waiting = manager_->Create("t", big);
  ASSERT_TRUE(waiting);
  ASSERT_EQ(waiting->state, State::kPending);
  auto stopped = manager_->Stop("t", waiting->id, 10);
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->state, State::kTerminated);
  EXPECT_EQ(stopped->message, "stopped before it started");
  EXPECT_EQ(manager_->GetCapacity().pending, 0);
  EXPECT_EQ(runtime_.creates, 1);
}

TEST_F(SandboxManagerTest, EachFailingStepLeavesNothingBehind) {
  Start();
  images_.missing.insert("nope:1");
  auto pull = manager_->Create("t", Request("nope:1"));
  ASSERT_TRUE(pull);
  SandboxRecord r = Ended(pull->id);
  EXPECT_EQ(r.reason, "IMAGE_PULL_FAILED");
  ExpectNothingLeft(r.id, "sha256:nope:1");

  network_.fail = true;
  auto net = manager_->Create("t", Request("net:1"));
  ASSERT_TRUE(net);
  r = Ended(net->id);
  EXPECT_EQ(r.reason, "STARTUP_FAILED");
  EXPECT_EQ(r.message, "network: no address left");
  ExpectNothingLeft(r.id, "sha256:net:1");
  network_.fail = false;

  runtime_.fail_create = true;
  auto create = manager_->Create("t", Request("runtime:1"));
  ASSERT_TRUE(create);
  r = Ended(create->id);
  EXPECT_EQ(r.reason, "STARTUP_FAILED");
  EXPECT_EQ(r.message, "clone: out of memory");
  ExpectNothingLeft(r.id, "sha256:runtime:1");
  runtime_.fail_create = false;

  CreateRequest secret = Request("secret:1");
  secret.secrets = {{"team", "MISSING", "", "TOKEN"}};
  auto unresolved = manager_->Create("t", secret);
  ASSERT_TRUE(unresolved);
  r = Ended(unresolved->id);
  EXPECT_EQ(r.reason, "STARTUP_FAILED");
  ExpectNothingLeft(r.id, "sha256:secret:1");

  EXPECT_EQ(manager_->GetCapacity().allocated_cpu_millis, 0u);
}

TEST_F(SandboxManagerTest, ADeadSbxInitIsReportedAsTheHostLost) {
  Start();
  SandboxRecord r = CreateRunning();
  runtime_.Crash(r.id);
  SandboxRecord ended = Ended(r.id);
  EXPECT_EQ(ended.state, State::kFailed);
  EXPECT_EQ(ended.reason, "HOST_LOST");
  ExpectNothingLeft(r.id, r.image_digest);
}

TEST_F(SandboxManagerTest, AnOomKillIsNamed) {
  Start();
  SandboxRecord r = CreateRunning();
  {
    std::lock_guard lock(runtime_.mu_);
    runtime_.oom_kills.insert(r.id);
  }
  {
    std::lock_guard lock(runtime_.mu_);
    FakeSandbox& s = runtime_.sandboxes.at(r.id);
    s.status.main_exited = true;
    s.status.main_running = false;
    s.status.main_exit.signaled = true;
    s.status.main_exit.signal = SIGKILL;
    s.watch_peer.reset();
  }
  EXPECT_EQ(Ended(r.id).reason, "OOM_KILLED");
}

TEST_F(SandboxManagerTest, ARequestIdIsOneSandbox) {
  Start();
  CreateRequest r = Request();
  r.request_id = "req-1";
  SandboxRecord first = CreateRunning("t", r);
  auto again = manager_->Create("t", r);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, first.id);
  r.fingerprint = "a different spec";
  auto reused = manager_->Create("t", r);
  ASSERT_FALSE(reused);
  EXPECT_EQ(reused.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(runtime_.creates, 1);
}

TEST_F(SandboxManagerTest, ASandboxIsStoppedAtTheEndOfItsLifetime) {
  Start();
  CreateRequest r = Request();
  r.lifetime_seconds = 1;
  SandboxRecord running = CreateRunning("t", r);
  SandboxRecord ended = Ended(running.id);
  EXPECT_EQ(ended.state, State::kTerminated);
  EXPECT_EQ(ended.reason, "LIFETIME_EXCEEDED");
  ExpectNothingLeft(running.id, running.image_digest);
}

TEST_F(SandboxManagerTest, ListPagesATenantsSandboxesInCreationOrder) {
  Start();
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    CreateRequest r = Request();
    r.tags = {"batch"};
    ids.push_back(CreateRunning("t", r).id);
  }
  CreateRunning("other");
  ListFilter filter;
  filter.tags = {"batch"};
  filter.page_size = 2;
  auto page = manager_->List("t", filter);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->sandboxes.size(), 2u);
  EXPECT_EQ(page->sandboxes[0].id, ids[0]);
  filter.page_token = page->next_page_token;
  page = manager_->List("t", filter);
  ASSERT_TRUE(page);
  ASSERT_EQ(page->sandboxes.size(), 1u);
  EXPECT_EQ(page->sandboxes[0].id, ids[2]);
  EXPECT_TRUE(page->next_page_token.empty());
  filter.page_token = "99";
  EXPECT_EQ(manager_->List("t", filter).error().code(), Code::kInvalidArgument);
}

TEST_F(SandboxManagerTest, AWarmSandboxServesTheNextCreateOfItsImage) {
  std::string warm_id = StartWithAWarmSandbox();
  ASSERT_FALSE(warm_id.empty());
  EXPECT_TRUE(runtime_.Snapshot(warm_id).plan.spec.process.await_start);

  CreateRequest r = Request();
  r.args = {"other.py"};
  r.env = {{"MODE", "warm"}};
  r.fingerprint = "second";
  SandboxRecord claimed = CreateRunning("t", r);
  EXPECT_EQ(claimed.id, warm_id);
  FakeSandbox s = runtime_.Snapshot(warm_id);
  ASSERT_TRUE(s.started_main);
  EXPECT_EQ(s.started_main->argv, (std::vector<std::string>{"python", "other.py"}));
  EXPECT_NE(std::find(s.started_main->env.begin(), s.started_main->env.end(), "MODE=warm"),
            s.started_main->env.end());
  ASSERT_FALSE(s.limits.empty());
  EXPECT_EQ(s.limits.back().cpu_weight, runtime::kDefaultCpuWeight);
  // Both sandboxes hold the image, and so does the warm sandbox made again for the next create.
  ASSERT_TRUE(Eventually([&] { return manager_->GetCapacity().warm["python:3.11"] == 1; }));
  EXPECT_EQ(images_.Holds(claimed.image_digest), 3);
  runtime_.Exit(claimed.id, 0);
  EXPECT_EQ(Ended(claimed.id).state, State::kCompleted);
}

TEST_F(SandboxManagerTest, ABrokenWarmSandboxIsReplacedUnderItsId) {
  std::string warm_id = StartWithAWarmSandbox();
  ASSERT_FALSE(warm_id.empty());
  runtime_.Crash(warm_id);

  CreateRequest r = Request();
  r.fingerprint = "second";
  SandboxRecord replaced = CreateRunning("t", r);
  EXPECT_EQ(replaced.id, warm_id);
  // Created afresh under the id: its plan starts the main process itself.
  FakeSandbox s = runtime_.Snapshot(warm_id);
  EXPECT_FALSE(s.plan.spec.process.await_start);
  // The broken sandbox's hold on the image went with it: the image is held by the two sandboxes
  // and the warm sandbox made again for the next create.
  ASSERT_TRUE(Eventually([&] { return manager_->GetCapacity().warm["python:3.11"] == 1; }));
  EXPECT_EQ(images_.Holds(replaced.image_digest), 3);
}

TEST_F(SandboxManagerTest, ARestartAdoptsWhatRunsAndEndsWhatIsGone) {
  Start();
  SandboxRecord alive = CreateRunning();
  SandboxRecord gone = CreateRunning("t", [] {
    CreateRequest r = Request("busybox:1");
    r.fingerprint = "2";
    return r;
  }());
  manager_->Shutdown();
  manager_.reset();
  runtime_.Crash(gone.id);
  {
    std::lock_guard lock(runtime_.mu_);
    runtime_.leftovers.insert("sb-orphan");
  }
  // The new daemon's ports start afresh, as a new process's would.
  images_.holds.clear();
  network_.attached.insert("net-of-nothing");
  Start();
  auto adopted = manager_->Get("t", alive.id);
  ASSERT_TRUE(adopted);
  EXPECT_EQ(adopted->state, State::kRunning);
  EXPECT_EQ(images_.Holds(alive.image_digest), 1);
  auto lost = manager_->Get("t", gone.id);
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->state, State::kFailed);
  EXPECT_EQ(lost->reason, "HOST_LOST");
  EXPECT_FALSE(runtime_.Live().count(gone.id));
  EXPECT_FALSE(runtime_.Live().count("sb-orphan"));
  EXPECT_EQ(network_.Attached(), std::set<std::string>{alive.id});
  // The adopted sandbox is watched again: its exit is noticed.
  runtime_.Exit(alive.id, 0);
  EXPECT_EQ(Ended(alive.id).state, State::kCompleted);
  EXPECT_EQ(images_.Holds(alive.image_digest), 0);
}

Config KeepingFiles(const std::string& dir, int seconds) {
  Config c = TestConfig(dir);
  c.files_retention_seconds = seconds;
  c.default_disk_request = "1Gi";
  return c;
}

TEST_F(SandboxManagerTest, AnEndedSandboxKeepsItsFilesUntilItIsDeleted) {
  Start(KeepingFiles(dir_.path(), 600));
  SandboxRecord r = CreateRunning();
  runtime_.Exit(r.id, 0);
  SandboxRecord ended = Ended(r.id);
  EXPECT_EQ(ended.state, State::kCompleted);
  EXPECT_GT(ended.files_until_ns, ended.end_ns);
  // sbx-init stays, alone, to serve reads; the network and the CPU and memory reservation go,
  // the disk's stays.
  EXPECT_TRUE(runtime_.Snapshot(r.id).files_only);
  EXPECT_FALSE(network_.Attached().count(r.id));
  EXPECT_EQ(images_.Holds(r.image_digest), 1);
  Capacity capacity = manager_->GetCapacity();
  EXPECT_EQ(capacity.allocated_cpu_millis, 0u);
  EXPECT_EQ(capacity.allocated_disk_bytes, 1u << 30);
  auto socket =
      manager_->AgentSocket("t", r.id, MonotonicMillis(), SandboxManager::Access::kReadFiles);
  ASSERT_TRUE(socket) << socket.error().ToString();
  EXPECT_EQ(*socket, r.socket_path);
  auto run = manager_->AgentSocket("t", r.id, MonotonicMillis());
  ASSERT_FALSE(run);
  EXPECT_EQ(run.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(run.error().message().find("its files can still be read until"), std::string::npos);

  ASSERT_TRUE(manager_->Stop("t", r.id, 0));
  ASSERT_TRUE(Eventually([&] { return !runtime_.Live().count(r.id); }));
  ASSERT_TRUE(Eventually([&] { return manager_->Get("t", r.id)->files_until_ns == 0; }));
  ExpectNothingLeft(r.id, r.image_digest);
  EXPECT_EQ(manager_->GetCapacity().allocated_disk_bytes, 0u);
  auto read =
      manager_->AgentSocket("t", r.id, MonotonicMillis(), SandboxManager::Access::kReadFiles);
  ASSERT_FALSE(read);
  EXPECT_NE(read.error().message().find("went when it was deleted"), std::string::npos);
}

TEST_F(SandboxManagerTest, KeptFilesGoWhenTheirRetentionPasses) {
  Start(KeepingFiles(dir_.path(), 1));
  SandboxRecord r = CreateRunning();
  runtime_.Exit(r.id, 0);
  EXPECT_GT(Ended(r.id).files_until_ns, 0);
  ASSERT_TRUE(Eventually([&] { return !runtime_.Live().count(r.id); }));
  ASSERT_TRUE(Eventually([&] { return manager_->Get("t", r.id)->files_until_ns == 0; }));
  ExpectNothingLeft(r.id, r.image_digest);
  // The record itself stays for its own retention.
  EXPECT_EQ(manager_->Get("t", r.id)->state, State::kCompleted);
}

TEST_F(SandboxManagerTest, ASandboxOutOfTimeKeepsItsFilesAndADeletedOneDoesNot) {
  Start(KeepingFiles(dir_.path(), 600));
  CreateRequest timed = Request();
  timed.lifetime_seconds = 1;
  SandboxRecord out_of_time = CreateRunning("t", timed);
  SandboxRecord deleted = CreateRunning("t", [] {
    CreateRequest r = Request("busybox:1");
    r.fingerprint = "2";
    return r;
  }());
  ASSERT_TRUE(manager_->Stop("t", deleted.id, 0));
  EXPECT_EQ(Ended(deleted.id).files_until_ns, 0);
  ExpectNothingLeft(deleted.id, deleted.image_digest);
  SandboxRecord ended = Ended(out_of_time.id);
  EXPECT_EQ(ended.reason, "LIFETIME_EXCEEDED");
  EXPECT_GT(ended.files_until_ns, 0);
  EXPECT_TRUE(runtime_.Snapshot(out_of_time.id).files_only);
}

TEST_F(SandboxManagerTest, ASandboxThatCannotBeQuietedIsTornDown) {
  Start(KeepingFiles(dir_.path(), 600));
  runtime_.fail_keep_files = true;
  SandboxRecord r = CreateRunning();
  runtime_.Exit(r.id, 0);
  EXPECT_EQ(Ended(r.id).files_until_ns, 0);
  ExpectNothingLeft(r.id, r.image_digest);
}

TEST_F(SandboxManagerTest, KeptFilesMakeRoomForASandboxThatWaitsForDisk) {
  Config config = KeepingFiles(dir_.path(), 600);
  config.capacity_disk = "1Gi";
  Start(config);
  SandboxRecord first = CreateRunning();
  runtime_.Exit(first.id, 0);
  EXPECT_GT(Ended(first.id).files_until_ns, 0);
  // The node's disk is the first one's kept files: they go, and the new sandbox runs.
  SandboxRecord second = CreateRunning();
  EXPECT_FALSE(runtime_.Live().count(first.id));
  EXPECT_EQ(manager_->Get("t", first.id)->files_until_ns, 0);
  EXPECT_EQ(manager_->GetCapacity().allocated_disk_bytes, 1u << 30);
}

TEST_F(SandboxManagerTest, KeptFilesGiveWayToTheRemovalOfTheirImage) {
  Start(KeepingFiles(dir_.path(), 600));
  SandboxRecord r = CreateRunning();
  runtime_.Exit(r.id, 0);
  EXPECT_GT(Ended(r.id).files_until_ns, 0);
  EXPECT_EQ(manager_->DropKeptFiles("sha256:other"), 0);
  EXPECT_TRUE(runtime_.Live().count(r.id));
  EXPECT_EQ(manager_->DropKeptFiles(r.image_digest), 1);
  ExpectNothingLeft(r.id, r.image_digest);
  EXPECT_EQ(manager_->Get("t", r.id)->files_until_ns, 0);
}

TEST_F(SandboxManagerTest, KeptFilesOutliveARestart) {
  Start(KeepingFiles(dir_.path(), 600));
  SandboxRecord r = CreateRunning();
  runtime_.Exit(r.id, 0);
  EXPECT_GT(Ended(r.id).files_until_ns, 0);
  manager_->Shutdown();
  manager_.reset();
  images_.holds.clear();
  Start(KeepingFiles(dir_.path(), 600));
  EXPECT_TRUE(runtime_.Live().count(r.id));
  EXPECT_EQ(images_.Holds(r.image_digest), 1);
  EXPECT_EQ(manager_->GetCapacity().allocated_disk_bytes, 1u << 30);
  EXPECT_TRUE(
      manager_->AgentSocket("t", r.id, MonotonicMillis(), SandboxManager::Access::kReadFiles));
  ASSERT_TRUE(manager_->Stop("t", r.id, 0));
  ASSERT_TRUE(Eventually([&] { return !runtime_.Live().count(r.id); }));
  ASSERT_TRUE(Eventually([&] { return images_.Holds(r.image_digest) == 0; }));
}

}  // namespace
}  // namespace sbx::daemon
