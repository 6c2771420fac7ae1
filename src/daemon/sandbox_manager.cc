#include "src/daemon/sandbox_manager.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "src/agent/client.h"
#include "src/agent/connection.h"
#include "src/base/clock.h"
#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/daemon/secrets.h"
#include "src/runtime/container.h"
#include "src/runtime/seccomp_policy.h"
#include "src/runtime/spec.h"
#include "src/runtime/writable_layer.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"

namespace sbx::daemon {

namespace {

constexpr int kWorkers = 16;
constexpr int kMaxPageSize = 1000;
constexpr int kDefaultPageSize = 100;
constexpr int64_t kStopGraceMs = 10000;  // sbx-init's own grace when it enforces the lifetime

std::string NewId() { return "sb-" + RandomHex(8); }

uint64_t AutoCpuMillis() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<uint64_t>(n > 0 ? n : 1) * 1000;
}

uint64_t AutoMemoryBytes() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGESIZE);
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 10 * 9;
}

std::string SignalName(int sig) {
  const char* name = sigabbrev_np(sig);
  return name ? std::string("SIG") + name : "signal " + std::to_string(sig);
}

}  // namespace

SandboxManager::SandboxManager(Config config, ManagerPaths paths, Store* store,
                               ImageProvider* images, NetworkProvider* network,
                               runtime::CgroupDriver* cgroups, Metrics* metrics)
    : config_(std::move(config)),
      paths_(std::move(paths)),
      store_(store),
      images_(images),
      network_(network),
      cgroups_(cgroups),
      metrics_(metrics),
      id_ranges_(
          {config_.id_map_uid, config_.id_map_gid, config_.id_map_size, config_.id_map_ranges}),
      warm_(config_.warm_pool_size, config_.warm_pool_images,
            static_cast<int64_t>(config_.warm_pool_idle_seconds) * 1000000000) {
  capacity_cpu_millis_ =
      config_.capacity_cpu == "auto"
          ? AutoCpuMillis()
          : runtime::ParseCpuMillis(config_.capacity_cpu).value_or(AutoCpuMillis());
  capacity_memory_bytes_ =
      config_.capacity_memory == "auto"
          ? AutoMemoryBytes()
          : runtime::ParseBytes(config_.capacity_memory).value_or(AutoMemoryBytes());
  default_cpu_millis_ = runtime::ParseCpuMillis(config_.default_cpu).value_or(2000);
  default_memory_bytes_ = runtime::ParseBytes(config_.default_memory).value_or(2ull << 30);
  default_disk_bytes_ = runtime::ParseBytes(config_.default_disk).value_or(10ull << 30);
}

SandboxManager::~SandboxManager() { Shutdown(); }

Status SandboxManager::Start() {
  SBX_ASSIGN_OR_RETURN(init_copy_, runtime::SealedCopyOfInit(paths_.init_binary));
  // Compiling the seccomp policy takes milliseconds; do it once and hand the program to every
  // sbx-runtime in a memfd it reads.
  SBX_ASSIGN_OR_RETURN(std::string bpf, runtime::DefaultPolicyBpf());
  seccomp_program_.reset(memfd_create("sbx-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!seccomp_program_) return Error::Errno("memfd_create");
  SBX_TRY(sys::WriteAll(seccomp_program_.get(), bpf));
  fcntl(seccomp_program_.get(), F_ADD_SEALS,
        F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
  helpers_ = std::make_unique<RuntimeHelpers>(paths_.runtime_binary, config_.cgroup_parent,
                                              init_copy_.get(), seccomp_program_.get(),
                                              config_.runtime_helpers);
  SBX_TRY(helpers_->Start());
  SBX_TRY(sys::MakeDirs(config_.run_dir + "/sandboxes", 0700));
  SBX_TRY(sys::MakeDirs(config_.state_dir + "/disks", 0700));
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  wake_fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!epoll_fd_ || !wake_fd_) return Error::Errno("epoll/eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_.get();
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev);
  for (int i = 0; i < kWorkers; ++i) {
    workers_.emplace_back([this] {
      while (true) {
        std::function<void()> job;
        {
          std::unique_lock lock(jobs_mu_);
          jobs_cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
          if (jobs_.empty()) return;
          job = std::move(jobs_.front());
          jobs_.pop_front();
        }
        job();
      }
    });
  }
  Recover();
  ReconcileOrphans();
  event_thread_ = std::thread([this] { EventLoop(); });
  if (config_.writable_layer == "loop" && config_.disk_pool_size > 0) {
    disks_ = std::make_unique<DiskPool>(
        config_.state_dir + "/disk-pool", config_.state_dir + "/disks",
        runtime::DiskFormat{default_disk_bytes_, 0, config_.id_map_uid, config_.id_map_gid},
        config_.disk_pool_size);
    disks_->Start();
  }
  return Ok();
}

void SandboxManager::Shutdown() {
  {
    std::lock_guard lock(jobs_mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
  }
  jobs_cv_.notify_all();
  changed_.notify_all();
  Wake();
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
  if (event_thread_.joinable()) event_thread_.join();
  // Warm sandboxes belong to this daemon's run only: nothing would ever claim them.
  std::vector<WarmSandbox> warm;
  {
    std::lock_guard lock(mu_);
    warm = warm_.TakeAll();
    for (auto& [id, sb] : claimed_warm_) warm.push_back(std::move(sb));
    claimed_warm_.clear();
  }
  for (const auto& sb : warm) DestroyWarm(sb);
  // With no sandbox left running, nothing of this daemon stays in the cgroup hierarchies.
  if (cgroups_->List().empty() && cgroups_->RemoveParentIfEmpty()) {
    SBX_LOG_INFO("cgroup parent {} removed", config_.cgroup_parent);
  }
  disks_.reset();
  helpers_.reset();
}

void SandboxManager::Enqueue(std::function<void()> job) {
  {
    std::lock_guard lock(jobs_mu_);
    jobs_.push_back(std::move(job));
  }
  jobs_cv_.notify_one();
}

void SandboxManager::Wake() {
  if (!wake_fd_) return;
  uint64_t one = 1;
  (void)!write(wake_fd_.get(), &one, sizeof one);
}

Status SandboxManager::Persist(const SandboxRecord& record) {
  Status s = store_->Put(record);
  if (!s) SBX_LOG_ERROR("persist sandbox={} failed: {}", record.id, s.error().ToString());
  return s;
}

// ---------------------------------------------------------------------------------------------
// Admission

bool SandboxManager::Fits(const SandboxRecord& r) const {
  return allocated_cpu_ + r.cpu_request_millis <= capacity_cpu_millis_ &&
         allocated_memory_ + r.memory_request_bytes <= capacity_memory_bytes_;
}

void SandboxManager::Reserve(const SandboxRecord& r) {
  allocated_cpu_ += r.cpu_request_millis;
  allocated_memory_ += r.memory_request_bytes;
}

void SandboxManager::Unreserve(const SandboxRecord& r) {
  allocated_cpu_ -= std::min(allocated_cpu_, r.cpu_request_millis);
  allocated_memory_ -= std::min(allocated_memory_, r.memory_request_bytes);
}

void SandboxManager::Admit() {
  while (!pending_.empty()) {
    auto it = entries_.find(pending_.front());
    if (it == entries_.end() || it->second.record.state != State::kPending) {
      pending_.pop_front();
      continue;
    }
    SandboxRecord& r = it->second.record;
    if (!Fits(r)) break;  // FIFO: later sandboxes wait behind the first that does not fit
    pending_.pop_front();
    Reserve(r);
    r.state = State::kCreating;
    (void)Persist(r);
    std::string id = r.id;
    ++create_jobs_;
    Enqueue([this, id] { CreateJob(id); });
  }
  changed_.notify_all();
}

Result<SandboxRecord> SandboxManager::Create(const std::string& tenant, CreateRequest request) {
  std::unique_lock lock(mu_);
  if (!request.request_id.empty()) {
    for (const auto& [id, entry] : entries_) {
      if (entry.record.tenant == tenant && entry.record.request_id == request.request_id) {
        return entry.record;
      }
    }
  }
  int quota = config_.default_max_sandboxes;
  for (const auto& key : config_.api_keys) {
    if (key.tenant == tenant && key.max_sandboxes > 0) quota = key.max_sandboxes;
  }
  int live = 0;
  for (const auto& [id, entry] : entries_) {
    if (entry.record.tenant == tenant && !IsTerminal(entry.record.state)) ++live;
  }
  if (live >= quota) {
    metrics_->Inc("sbx_create_errors_total", {{"reason", "QUOTA"}});
    return Error::ResourceExhausted("tenant " + Quote(tenant) + " already has " +
                                    std::to_string(live) + " sandboxes, its limit")
        .WithReason("CWSANDBOX_QUOTA_EXCEEDED")
        .WithMetadata("limit", std::to_string(quota));
  }
  SandboxRecord r;
  r.id = NewId();
  r.tenant = tenant;
  r.request_id = request.request_id;
  r.state = State::kPending;
  r.create_ns = WallNanos();
  r.lifetime_seconds =
      request.lifetime_seconds > 0 ? request.lifetime_seconds : config_.default_lifetime_seconds;
  r.deadline_ns = r.create_ns + static_cast<int64_t>(r.lifetime_seconds) * 1000000000;
  r.tags = request.tags;
  r.image = request.image.empty() ? config_.default_image : request.image;
  r.cpu_limit_millis = request.cpu_limit_millis     ? request.cpu_limit_millis
                       : request.cpu_request_millis ? request.cpu_request_millis
                                                    : default_cpu_millis_;
  r.memory_limit_bytes = request.memory_limit_bytes     ? request.memory_limit_bytes
                         : request.memory_request_bytes ? request.memory_request_bytes
                                                        : default_memory_bytes_;
  // Without explicit requests a sandbox reserves little, like a Burstable pod: its limits are
  // still enforced by the kernel.
  r.cpu_request_millis = request.cpu_request_millis ? request.cpu_request_millis : 10;
  r.memory_request_bytes =
      request.memory_request_bytes ? request.memory_request_bytes : 32ull << 20;
  r.spec_blob = request.spec_blob;
  if (r.cpu_request_millis > capacity_cpu_millis_ ||
      r.memory_request_bytes > capacity_memory_bytes_) {
    return Error::ResourceExhausted("the request (" + std::to_string(r.cpu_request_millis) +
                                    "m CPU, " + FormatBytes(r.memory_request_bytes) +
                                    ") can never fit this node (" +
                                    std::to_string(capacity_cpu_millis_) + "m CPU, " +
                                    FormatBytes(capacity_memory_bytes_) + ")")
        .WithReason("CWSANDBOX_RUNNER_CAPACITY_EXHAUSTED");
  }
  last_create_ns_ = MonotonicNanos();
  std::optional<WarmSandbox> warm;
  if (warm_.enabled() && WarmEligible(request, r.memory_limit_bytes, default_memory_bytes_)) {
    warm = warm_.Take(r.image);
    metrics_->Inc("sbx_warm_claims_total", {{"result", warm ? "hit" : "miss"}});
    // The sandbox takes the warm one's id: its cgroup, bundle, hostname and network are named so.
    if (warm) r.id = warm->id;
  }
  // Nothing queued ahead and room now: admitted at once, with one write to the store.
  bool admit_now = pending_.empty() && Fits(r);
  if (admit_now) r.state = State::kCreating;
  if (Status persisted = Persist(r); !persisted) {
    if (warm) DestroyWarmLater({std::move(*warm)});
    return std::move(persisted).error();
  }
  if (warm) claimed_warm_.emplace(r.id, std::move(*warm));
  Entry entry;
  entry.record = r;
  entries_.emplace(r.id, std::move(entry));
  pending_requests_.emplace(r.id, std::move(request));
  metrics_->Inc("sbx_sandboxes_created_total");
  SBX_LOG_INFO("sandbox accepted id={} tenant={} image={}", r.id, tenant, r.image);
  if (admit_now) {
    Reserve(r);
    ++create_jobs_;
    std::string id = r.id;
    Enqueue([this, id] { CreateJob(id); });
    changed_.notify_all();
  } else {
    pending_.push_back(r.id);
    Admit();
  }
  return entries_.at(r.id).record;
}

// ---------------------------------------------------------------------------------------------
// Creation

Result<runtime::Process> SandboxManager::BuildProcess(const CreateRequest& req,
                                                      const ResolvedImage& image) {
  runtime::Process process;
  if (!req.command.empty()) {
    process.args.push_back(req.command);
    process.args.insert(process.args.end(), req.args.begin(), req.args.end());
  } else {
    process.args = image.entrypoint;
    const auto& args = req.args_given ? req.args : image.cmd;
    process.args.insert(process.args.end(), args.begin(), args.end());
  }
  process.env = image.env;
  auto set_env = [&process](const std::string& key, const std::string& value) {
    std::string prefix = key + "=";
    for (auto& e : process.env) {
      if (StartsWith(e, prefix)) {
        e = prefix + value;
        return;
      }
    }
    process.env.push_back(prefix + value);
  };
  for (const auto& [k, v] : req.env) set_env(k, v);
  SBX_ASSIGN_OR_RETURN(auto secret_env, ResolveSecrets(config_.secrets_dir, req.secrets));
  for (const auto& [k, v] : secret_env) set_env(k, v);
  if (std::none_of(process.env.begin(), process.env.end(),
                   [](const std::string& e) { return StartsWith(e, "PATH="); })) {
    process.env.emplace_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  process.cwd = !req.working_dir.empty()     ? req.working_dir
                : !image.working_dir.empty() ? image.working_dir
                                             : "/";
  process.user = image.user;
  return process;
}

Result<std::string> SandboxManager::BuildBundle(const SandboxRecord& r, const CreateRequest& req,
                                                const ResolvedImage& image,
                                                const NetworkAttachment& network,
                                                bool await_start) {
  runtime::RuntimeSpec spec;
  spec.id = r.id;
  spec.hostname = r.id;
  spec.rootfs.layers = image.layer_dirs;
  spec.rootfs.writable.kind = config_.writable_layer == "tmpfs" ? runtime::WritableKind::kTmpfs
                                                                : runtime::WritableKind::kLoop;
  spec.rootfs.writable.size_bytes = default_disk_bytes_;
  SBX_ASSIGN_OR_RETURN(spec.process, BuildProcess(req, image));
  spec.process.await_start = await_start;
  spec.background = await_start;
  spec.resources.cpu_millis = r.cpu_limit_millis;
  spec.resources.memory_bytes = r.memory_limit_bytes;
  spec.resources.pids = config_.default_pids;
  spec.resources.shm_bytes = ShmBytesFor(r.memory_limit_bytes);
  // Host ids of the sandbox's own; the image layers, unpacked once for every sandbox into the
  // first range, are mounted idmapped onto them.
  SBX_ASSIGN_OR_RETURN(spec.id_map, id_ranges_.Acquire(r.id));
  spec.rootfs.layer_ids = runtime::LayerIds{config_.id_map_uid, config_.id_map_gid};
  spec.deadline_unix_ns = r.deadline_ns;
  spec.stop_grace_ms = kStopGraceMs;
  if (!network.netns_path.empty()) {
    spec.network.mode = "netns";
    spec.network.netns_path = network.netns_path;
  }
  spec.network.dns_servers = network.dns_servers;
  spec.network.extra_hosts = network.extra_hosts;
  std::string bundle = config_.run_dir + "/sandboxes/" + r.id;
  SBX_TRY(sys::MakeDirs(bundle + "/files", 0700));
  for (size_t i = 0; i < req.files.size(); ++i) {
    std::string source = bundle + "/files/" + std::to_string(i);
    SBX_TRY(sys::WriteFile(source, req.files[i].content, 0600));
    std::string path = req.files[i].path;
    if (path.empty() || path[0] != '/') path = sys::JoinPath(spec.process.cwd, path);
    spec.files.push_back({path, source, 0444});
  }
  SBX_TRY(sys::WriteFile(bundle + "/spec.json", runtime::ToJson(spec), 0600));
  return bundle;
}

Result<runtime::SandboxState> SandboxManager::RunRuntime(const std::string& id,
                                                         const std::string& bundle) {
  runtime::HelperCreateRequest create;
  create.bundle_dir = bundle;
  create.disk_dir = config_.state_dir + "/disks";
  std::optional<PreparedDisk> disk;
  if (config_.writable_layer == "loop") {
    create.disk_pool_dir = config_.state_dir + "/disk-pool";
    if (disks_) disk = disks_->Take(id);
    if (disk) {
      create.writable_image = disk->image;
      create.writable_mount_fd = disk->mount.get();
    }
  }
  auto state = helpers_->Create(create, 120000);
  if (!state && disk) unlink(disk->image.c_str());
  return state;
}

void SandboxManager::MarkRunning(const std::string& id, const std::string& bundle,
                                 const runtime::SandboxState& state, int64_t started_ns,
                                 bool warm_eligible) {
  bool stop = false;
  {
    std::lock_guard lock(mu_);
    Entry& e = entries_.at(id);
    // Only an image that made a sandbox is kept warm: a reference that fails takes no room.
    if (warm_eligible) {
      DestroyWarmLater(warm_.Use(e.record.image, e.record.image_digest, MonotonicNanos()));
    }
    e.record.bundle = bundle;
    e.record.id_map = id_ranges_.Find(id);
    e.record.init_pid = state.init_pid;
    e.record.init_start_time = state.init_start_time;
    e.record.socket_path = state.socket_path;
    e.record.start_ns = WallNanos();
    e.record.state = State::kRunning;
    (void)Persist(e.record);
    if (Status watched = Watch(e); !watched) {
      SBX_LOG_WARN("sandbox id={} watch failed: {}", id, watched.error().ToString());
    }
    stop = e.stop_requested;
    if (stop) {
      e.record.state = State::kTerminating;
      (void)Persist(e.record);
    }
    changed_.notify_all();
  }
  metrics_->Observe("sbx_create_seconds", static_cast<double>(MonotonicNanos() - started_ns) / 1e9);
  SBX_LOG_INFO("sandbox running id={} pid={}", id, state.init_pid);
  if (stop) Enqueue([this, id] { StopJob(id); });
}

void SandboxManager::RecordNetwork(const std::string& id, const NetworkAttachment& network) {
  std::lock_guard lock(mu_);
  SandboxRecord& rec = entries_.at(id).record;
  rec.network_mode = network.mode;
  rec.effective_egress = network.effective_egress;
  rec.address = network.address;
}

void SandboxManager::CreateJob(std::string id) {
  int64_t started = MonotonicNanos();
  // Whichever way this job ends, a warm fill may run once no create is left.
  struct JobDone {
    SandboxManager* self;
    ~JobDone() {
      std::lock_guard lock(self->mu_);
      --self->create_jobs_;
      self->ScheduleWarmFill();
    }
  } job_done{this};
  SandboxRecord r;
  CreateRequest request;
  std::optional<WarmSandbox> warm;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    r = it->second.record;
    auto req = pending_requests_.find(id);
    if (req != pending_requests_.end()) {
      request = std::move(req->second);
      pending_requests_.erase(req);
    }
    if (auto w = claimed_warm_.find(id); w != claimed_warm_.end()) {
      warm = std::move(w->second);
      claimed_warm_.erase(w);
    }
  }
  auto image = images_->Resolve(r.image);
  if (!image) {
    if (warm) DestroyWarm(*warm);
    metrics_->Inc("sbx_image_pulls_total", {{"result", "error"}});
    SBX_LOG_WARN("sandbox id={} image pull failed: {}", id, image.error().ToString());
    Finish(id, State::kFailed, "IMAGE_PULL_FAILED", image.error().message(), std::nullopt);
    return;
  }
  metrics_->Inc("sbx_image_pulls_total", {{"result", "ok"}});
  if (warm) {
    // The warm sandbox holds its image already. It serves only the image it was made from: a tag
    // that moved since then gets a sandbox of the new image.
    Status started_warm =
        warm->digest == image->digest
            ? StartWarm(*warm, r, request, *image)
            : Error::FailedPrecondition("the image's tag moved to " + image->digest);
    if (started_warm) {
      {
        std::lock_guard lock(mu_);
        entries_.at(id).record.image_digest = warm->digest;
      }
      RecordNetwork(id, warm->network);
      runtime::SandboxState state;
      state.init_pid = static_cast<pid_t>(warm->init_pid);
      state.init_start_time = warm->init_start_time;
      state.socket_path = warm->socket_path;
      MarkRunning(id, warm->bundle, state, started, /*warm_eligible=*/true);
      return;
    }
    SBX_LOG_INFO("sandbox id={} created afresh, its warm sandbox could not serve it: {}", id,
                 started_warm.error().message());
    metrics_->Inc("sbx_warm_claims_total", {{"result", "unusable"}});
    DestroyWarm(*warm);
  }
  images_->Hold(image->digest);
  {
    std::lock_guard lock(mu_);
    entries_.at(id).record.image_digest = image->digest;
  }
  auto network = network_->Attach(id, request.network);
  if (!network) {
    images_->Release(image->digest);
    Finish(id, State::kFailed, "STARTUP_FAILED", "network: " + network.error().message(),
           std::nullopt);
    return;
  }
  RecordNetwork(id, *network);
  auto bundle = BuildBundle(r, request, *image, *network);
  if (!bundle) {
    images_->Release(image->digest);
    Finish(id, State::kFailed, "STARTUP_FAILED", bundle.error().message(), std::nullopt);
    (void)sys::RemoveTree(config_.run_dir + "/sandboxes/" + id);
    return;
  }
  auto state = RunRuntime(id, *bundle);
  if (!state) {
    images_->Release(image->digest);
    SBX_LOG_WARN("sandbox id={} failed to start: {}", id, state.error().message());
    (void)runtime::DestroySandbox(id, *bundle, *cgroups_);
    Finish(id, State::kFailed, "STARTUP_FAILED", state.error().message(), std::nullopt);
    return;
  }
  MarkRunning(id, *bundle, *state, started,
              WarmEligible(request, r.memory_limit_bytes, default_memory_bytes_));
}

// ---------------------------------------------------------------------------------------------
// Warm sandboxes

bool SandboxManager::QuietForWarmFill() const {
  return create_jobs_ == 0 && MonotonicNanos() - last_create_ns_ >=
                                  static_cast<int64_t>(config_.warm_pool_refill_delay_ms) * 1000000;
}

void SandboxManager::ScheduleWarmFill() {
  if (warm_fill_scheduled_ || !QuietForWarmFill() || !warm_.NeedsFill()) return;
  {
    std::lock_guard lock(jobs_mu_);
    if (stopping_) return;
  }
  warm_fill_scheduled_ = true;
  Enqueue([this] { FillWarmJob(); });
}

void SandboxManager::FillWarmJob() {
  while (true) {
    std::optional<std::string> image;
    {
      std::lock_guard lock(mu_);
      {
        std::lock_guard jobs_lock(jobs_mu_);
        if (stopping_) {
          warm_fill_scheduled_ = false;
          return;
        }
      }
      // Creates come first; the event loop schedules the fill again once they are over.
      if (QuietForWarmFill()) image = warm_.NextFill();
      if (!image) {
        warm_fill_scheduled_ = false;
        return;
      }
      warm_filling_ = true;
    }
    (void)sys::SetThreadNice(sys::kBackgroundNice);
    auto made = CreateWarm(*image);
    (void)sys::SetThreadNice(0);
    if (!made) {
      SBX_LOG_WARN("warm sandbox for {} not made: {}", *image, made.error().ToString());
    }
    std::optional<WarmSandbox> extra;
    {
      std::lock_guard lock(mu_);
      extra =
          warm_.Filled(*image, made ? std::optional<WarmSandbox>(std::move(*made)) : std::nullopt);
    }
    if (extra) DestroyWarm(*extra);
    {
      std::lock_guard lock(mu_);
      warm_filling_ = false;
    }
    changed_.notify_all();
  }
}

Result<WarmSandbox> SandboxManager::CreateWarm(const std::string& reference) {
  WarmSandbox warm;
  warm.id = NewId();
  warm.image = reference;
  // Only an image already here: preparing ahead of time never pulls (nor pulls back an image
  // that was just removed).
  SBX_ASSIGN_OR_RETURN(ResolvedImage image, images_->ResolveLocal(reference));
  warm.digest = image.digest;
  SBX_ASSIGN_OR_RETURN(warm.network, network_->Attach(warm.id, NetworkRequest{}));
  images_->Hold(warm.digest);
  SandboxRecord r;
  r.id = warm.id;
  r.cpu_limit_millis = warm.cpu_limit_millis = default_cpu_millis_;
  r.memory_limit_bytes = warm.memory_limit_bytes = default_memory_bytes_;
  auto bundle = BuildBundle(r, CreateRequest{}, image, warm.network, /*await_start=*/true);
  if (!bundle) {
    DestroyWarm(warm);  // what the bundle left, the network and the image hold
    return std::move(bundle).error();
  }
  warm.bundle = *bundle;
  auto state = RunRuntime(warm.id, warm.bundle);
  if (!state) {
    DestroyWarm(warm);
    return std::move(state).error();
  }
  warm.init_pid = state->init_pid;
  warm.init_start_time = state->init_start_time;
  warm.socket_path = state->socket_path;
  SBX_LOG_DEBUG("warm sandbox id={} ready for {}", warm.id, reference);
  return warm;
}

Status SandboxManager::StartWarm(const WarmSandbox& warm, const SandboxRecord& r,
                                 const CreateRequest& request, const ResolvedImage& image) {
  // The warm sandbox was made with the lowest CPU weight (spec.background); limits that differ
  // from the defaults it was made with are set too.
  runtime::CgroupLimits limits;
  limits.cpu_weight = runtime::kDefaultCpuWeight;
  if (r.cpu_limit_millis != warm.cpu_limit_millis ||
      r.memory_limit_bytes != warm.memory_limit_bytes) {
    limits.memory_bytes = r.memory_limit_bytes;
    limits.cpu_millis = r.cpu_limit_millis;
    limits.pids = config_.default_pids;
  }
  SBX_TRY_CTX(cgroups_->SetLimits(r.id, limits), "set the sandbox's limits");
  SBX_ASSIGN_OR_RETURN(runtime::Process process, BuildProcess(request, image));
  agent::InitConfig main;
  main.argv = std::move(process.args);
  main.env = std::move(process.env);
  main.cwd = std::move(process.cwd);
  main.user = std::move(process.user);
  main.deadline_unix_ns = r.deadline_ns;
  main.stop_grace_ms = kStopGraceMs;
  agent::AgentClient agent(warm.socket_path, 2000);
  return agent.StartMain(main, 5000);
}

void SandboxManager::DestroyWarm(const WarmSandbox& warm) {
  Status destroyed = runtime::DestroySandbox(
      warm.id, warm.bundle.empty() ? config_.run_dir + "/sandboxes/" + warm.id : warm.bundle,
      *cgroups_);
  if (!destroyed) {
    SBX_LOG_ERROR("teardown of warm sandbox {} failed: {}", warm.id, destroyed.error().ToString());
  } else {
    id_ranges_.Release(warm.id);
  }
  network_->Detach(warm.id);
  images_->Release(warm.digest);
}

void SandboxManager::DropWarm(const std::string& digest) {
  std::vector<WarmSandbox> dropped;
  {
    std::unique_lock lock(mu_);
    dropped = warm_.DropDigest(digest);
    // A fill in progress may be holding the image: once it ends, its sandbox is gone too (its
    // image is no longer wanted, so the fill destroys what it made).
    changed_.wait(lock, [this] { return !warm_filling_; });
  }
  for (const auto& sb : dropped) DestroyWarm(sb);
}

void SandboxManager::DestroyWarmLater(std::vector<WarmSandbox> sandboxes) {
  for (auto& sb : sandboxes) {
    Enqueue([this, sb = std::move(sb)] { DestroyWarm(sb); });
  }
}

// ---------------------------------------------------------------------------------------------
// Ending

void SandboxManager::SaveLogs(const SandboxRecord& r) {
  if (r.socket_path.empty()) return;
  agent::AgentClient agent(r.socket_path, 1000);
  // Saved as the chunks sbx-init kept (offset, time, stream, data), so logs of an ended sandbox
  // answer since_time and timestamps like live ones.
  agent::FieldWriter chunks;
  uint64_t start = UINT64_MAX;
  Status read = agent.StreamLogs(
      {0, false},
      [&](const agent::LogChunk& chunk) {
        if (start == UINT64_MAX) start = chunk.offset;
        chunks.PutBytes(1, chunk.Encode());
        return chunks.data().size() < (16u << 20);
      },
      nullptr, MonotonicMillis() + 5000);
  if (read && start != UINT64_MAX) (void)store_->PutLogs(r.id, chunks.data(), start);
}

void SandboxManager::Finish(const std::string& id, State state, std::string reason,
                            std::string message, std::optional<int> exit_code) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  SandboxRecord& r = it->second.record;
  bool held = IsActive(r.state);
  if (held) Unreserve(r);
  if (!r.image_digest.empty() && held && r.state != State::kCreating)
    images_->Release(r.image_digest);
  r.state = state;
  r.reason = std::move(reason);
  r.message = std::move(message);
  if (exit_code) r.exit_code = exit_code;
  r.end_ns = WallNanos();
  r.init_pid = 0;
  it->second.finalizing = false;
  // Its host ids come free once nothing of it can run: its cgroup is gone. (A failed teardown
  // keeps them; a warm sandbox it claimed frees them when it is destroyed.)
  if (!cgroups_->Exists(id)) id_ranges_.Release(id);
  if (auto warm = claimed_warm_.find(id); warm != claimed_warm_.end()) {
    // Stopped (or failed) before its create job ran: the warm sandbox it claimed goes too.
    DestroyWarmLater({std::move(warm->second)});
    claimed_warm_.erase(warm);
  }
  network_->Detach(id);
  if (it->second.watch_fd) {
    watch_by_fd_.erase(it->second.watch_fd.get());
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, it->second.watch_fd.get(), nullptr);
    it->second.watch_fd.reset();
  }
  (void)Persist(r);
  metrics_->Inc("sbx_sandboxes_ended_total",
                {{"state", std::string(StateName(state))}, {"reason", r.reason}});
  SBX_LOG_INFO("sandbox ended id={} state={} reason={}", id, StateName(state), r.StateReason());
  Admit();
  changed_.notify_all();
}

void SandboxManager::ExitJob(std::string id) {
  SandboxRecord r;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    // A stop in progress owns the ending of its sandbox.
    if (it->second.finalizing || it->second.record.state != State::kRunning) return;
    it->second.finalizing = true;
    r = it->second.record;
  }
  agent::AgentClient agent(r.socket_path, 2000);
  auto status = agent.GetStatus(5000);
  auto stats = cgroups_->Stats(id);
  SaveLogs(r);
  (void)agent.AckExit(2000);
  Status destroyed = runtime::DestroySandbox(id, r.bundle, *cgroups_);
  if (!destroyed) SBX_LOG_ERROR("teardown of {} failed: {}", id, destroyed.error().ToString());
  if (!status) {
    Finish(id, State::kFailed, "HOST_LOST",
           "sbx-init stopped answering: " + status.error().message(), std::nullopt);
    return;
  }
  const agent::ExitInfo& exit = status->main_exit;
  int code = exit.signaled ? 128 + exit.signal : exit.exit_code;
  if (status->lifetime_exceeded) {
    Finish(
        id, State::kTerminated, "LIFETIME_EXCEEDED",
        "the sandbox reached its maximum lifetime of " + std::to_string(r.lifetime_seconds) + "s",
        code);
  } else if (!status->start_error.empty()) {
    Finish(id, State::kFailed, "STARTUP_FAILED", status->start_error, code);
  } else if (exit.signaled && exit.signal == SIGKILL && stats && stats->oom_kills > 0) {
    Finish(id, State::kFailed, "OOM_KILLED",
           "the main process was killed for exceeding the memory limit of " +
               FormatBytes(r.memory_limit_bytes),
           code);
  } else if (!exit.signaled && exit.exit_code == 0) {
    Finish(id, State::kCompleted, "EXITED", "main process exited with code 0", 0);
  } else if (exit.signaled) {
    Finish(id, State::kFailed, "EXITED", "main process was killed by " + SignalName(exit.signal),
           code);
  } else {
    Finish(id, State::kFailed, "EXITED",
           "main process exited with code " + std::to_string(exit.exit_code), code);
  }
}

Result<SandboxRecord> SandboxManager::Stop(const std::string& tenant, const std::string& id,
                                           int grace_seconds) {
  std::unique_lock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.record.tenant != tenant) {
    return Error::NotFound("sandbox " + Quote(id) + " not found")
        .WithReason("CWSANDBOX_SANDBOX_NOT_FOUND")
        .WithMetadata("sandbox_id", id);
  }
  Entry& e = it->second;
  SandboxRecord& r = e.record;
  grace_seconds = std::clamp(grace_seconds, 0, config_.stop_grace_max_seconds);
  if (IsTerminal(r.state) || e.stop_requested) return r;
  e.stop_requested = true;
  e.stop_reason = e.stop_reason.empty() ? "USER_STOPPED" : e.stop_reason;
  r.grace_seconds = grace_seconds;
  switch (r.state) {
    case State::kPending: {
      std::erase(pending_, id);
      pending_requests_.erase(id);
      std::string reason = e.stop_reason;
      lock.unlock();
      Finish(id, State::kTerminated, reason, "stopped before it started", std::nullopt);
      return Get(tenant, id);
    }
    case State::kCreating:
      // The create job stops it as soon as it runs.
      (void)Persist(r);
      return r;
    case State::kRunning:
      if (e.finalizing) return r;  // its main process just ended; it is being torn down
      r.state = State::kTerminating;
      (void)Persist(r);
      Enqueue([this, id] { StopJob(id); });
      changed_.notify_all();
      return r;
    default:
      return r;
  }
}

void SandboxManager::StopJob(std::string id) {
  SandboxRecord r;
  std::string reason;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.finalizing) return;
    it->second.finalizing = true;
    r = it->second.record;
    reason = it->second.stop_reason.empty() ? "USER_STOPPED" : it->second.stop_reason;
  }
  agent::AgentClient agent(r.socket_path, 2000);
  std::optional<agent::StatusReply> exited;
  if (r.grace_seconds > 0) {
    if (agent.SignalMain(SIGTERM, 2000)) {
      auto status = agent.WaitMain(MonotonicMillis() + r.grace_seconds * 1000LL);
      if (status && status->main_exited) exited = *status;
    }
  } else if (auto status = agent.GetStatus(1000); status && status->main_exited) {
    exited = *status;
  }
  SaveLogs(r);
  Status destroyed = runtime::DestroySandbox(id, r.bundle, *cgroups_);
  if (!destroyed) SBX_LOG_ERROR("teardown of {} failed: {}", id, destroyed.error().ToString());
  std::optional<int> code;
  std::string message;
  if (exited) {
    const auto& x = exited->main_exit;
    code = x.signaled ? 128 + x.signal : x.exit_code;
    message =
        "stopped; main process " + (x.signaled ? "killed by " + SignalName(x.signal)
                                               : "exited with code " + std::to_string(x.exit_code));
  } else {
    code = 128 + SIGKILL;
    message = r.grace_seconds > 0 ? "stopped; main process killed after the " +
                                        std::to_string(r.grace_seconds) + "s grace period"
                                  : "stopped immediately";
  }
  if (reason == "LIFETIME_EXCEEDED") {
    message =
        "the sandbox reached its maximum lifetime of " + std::to_string(r.lifetime_seconds) + "s";
  }
  Finish(id, State::kTerminated, reason, message, code);
}

// ---------------------------------------------------------------------------------------------
// Queries

Result<SandboxRecord> SandboxManager::Get(const std::string& tenant, const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.record.tenant != tenant) {
    return Error::NotFound("sandbox " + Quote(id) + " not found")
        .WithReason("CWSANDBOX_SANDBOX_NOT_FOUND")
        .WithMetadata("sandbox_id", id);
  }
  return it->second.record;
}

Result<ListResult> SandboxManager::List(const std::string& tenant, const ListFilter& filter) {
  std::lock_guard lock(mu_);
  std::vector<const SandboxRecord*> matches;
  bool include_terminal = filter.show_terminated || (filter.state && IsTerminal(*filter.state));
  for (const auto& [id, entry] : entries_) {
    const SandboxRecord& r = entry.record;
    if (r.tenant != tenant) continue;
    if (IsTerminal(r.state) && !include_terminal) continue;
    if (filter.state && r.state != *filter.state) continue;
    bool has_all = std::all_of(filter.tags.begin(), filter.tags.end(), [&r](const std::string& t) {
      return std::find(r.tags.begin(), r.tags.end(), t) != r.tags.end();
    });
    if (!has_all) continue;
    matches.push_back(&r);
  }
  std::sort(matches.begin(), matches.end(), [](const SandboxRecord* a, const SandboxRecord* b) {
    return a->create_ns != b->create_ns ? a->create_ns < b->create_ns : a->id < b->id;
  });
  size_t start = 0;
  if (!filter.page_token.empty()) {
    auto offset = ParseUint64(filter.page_token);
    if (!offset || *offset > matches.size()) {
      return Error::InvalidArgument("invalid page_token " + Quote(filter.page_token));
    }
    start = *offset;
  }
  int size = filter.page_size <= 0 ? kDefaultPageSize : std::min(filter.page_size, kMaxPageSize);
  ListResult out;
  for (size_t i = start; i < matches.size() && out.sandboxes.size() < static_cast<size_t>(size);
       ++i) {
    out.sandboxes.push_back(*matches[i]);
  }
  size_t next = start + out.sandboxes.size();
  if (next < matches.size()) out.next_page_token = std::to_string(next);
  return out;
}

Result<PurgeResult> SandboxManager::Purge(const std::string& tenant,
                                          const std::vector<std::string>& tags, bool purge_all,
                                          bool dry_run) {
  if (tags.empty() && !purge_all) {
    return Error::InvalidArgument("purge needs tags, or purge_all to stop every sandbox");
  }
  ListFilter filter;
  filter.tags = tags;
  filter.page_size = kMaxPageSize;
  std::vector<std::string> ids;
  while (true) {
    SBX_ASSIGN_OR_RETURN(ListResult page, List(tenant, filter));
    for (const auto& r : page.sandboxes) ids.push_back(r.id);
    if (page.next_page_token.empty()) break;
    filter.page_token = page.next_page_token;
  }
  PurgeResult result;
  for (const auto& id : ids) {
    if (dry_run) {
      ++result.count;
      continue;
    }
    if (Stop(tenant, id, 0)) {
      ++result.count;
    } else {
      result.failed.push_back(id);
    }
  }
  return result;
}

Result<SandboxRecord> SandboxManager::WaitFor(const std::string& tenant, const std::string& id,
                                              int64_t deadline_ms,
                                              const std::function<bool(State)>& done) {
  std::unique_lock lock(mu_);
  while (true) {
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.record.tenant != tenant) {
      return Error::NotFound("sandbox " + Quote(id) + " not found")
          .WithReason("CWSANDBOX_SANDBOX_NOT_FOUND")
          .WithMetadata("sandbox_id", id);
    }
    if (done(it->second.record.state) || stopping_) return it->second.record;
    int timeout = PollTimeout(deadline_ms);
    if (timeout == 0) return it->second.record;
    changed_.wait_for(lock, std::chrono::milliseconds(timeout));
  }
}

Result<SandboxRecord> SandboxManager::WaitSettled(const std::string& tenant, const std::string& id,
                                                  int64_t deadline_ms) {
  return WaitFor(tenant, id, deadline_ms,
                 [](State s) { return s != State::kPending && s != State::kCreating; });
}

Result<SandboxRecord> SandboxManager::WaitEnded(const std::string& tenant, const std::string& id,
                                                int64_t deadline_ms) {
  return WaitFor(tenant, id, deadline_ms, IsTerminal);
}

Result<SandboxRecord> SandboxManager::WaitUntilRunningOrDone(const std::string& tenant,
                                                             const std::string& id,
                                                             int64_t deadline_ms) {
  return WaitSettled(tenant, id, deadline_ms);
}

Result<std::string> SandboxManager::AgentSocket(const std::string& tenant, const std::string& id,
                                                int64_t deadline_ms) {
  SBX_ASSIGN_OR_RETURN(SandboxRecord r, WaitSettled(tenant, id, deadline_ms));
  if (r.state == State::kPending || r.state == State::kCreating) {
    return Error::DeadlineExceeded("sandbox " + id + " is still " +
                                   std::string(StateName(r.state)));
  }
  if (r.state != State::kRunning) {
    return Error::FailedPrecondition("sandbox " + id + " is " + std::string(StateName(r.state)) +
                                     (r.reason.empty() ? "" : " (" + r.StateReason() + ")"))
        .WithReason("CWSANDBOX_SANDBOX_NOT_RUNNING")
        .WithMetadata("sandbox_id", id)
        .WithMetadata("state", std::string(StateName(r.state)));
  }
  return r.socket_path;
}

Result<std::pair<std::string, uint64_t>> SandboxManager::SavedLogs(const std::string& id) {
  return store_->GetLogs(id);
}

Capacity SandboxManager::GetCapacity() {
  std::lock_guard lock(mu_);
  Capacity c;
  c.cpu_millis = capacity_cpu_millis_;
  c.memory_bytes = capacity_memory_bytes_;
  c.allocated_cpu_millis = allocated_cpu_;
  c.allocated_memory_bytes = allocated_memory_;
  for (const auto& [id, e] : entries_) {
    if (e.record.state == State::kRunning) ++c.running;
    if (e.record.state == State::kPending) ++c.pending;
  }
  c.warm = warm_.ReadyByImage();
  return c;
}

// ---------------------------------------------------------------------------------------------
// Watching and timers

Status SandboxManager::Watch(Entry& entry) {
  SBX_ASSIGN_OR_RETURN(agent::Connection conn,
                       agent::Connection::Dial(entry.record.socket_path, 2000));
  SBX_TRY(conn.Send(agent::MsgType::kWaitMain, "", MonotonicMillis() + 2000));
  // The connection's descriptor is kept; the single reply frame is read when it is readable.
  int fd = dup(conn.fd());
  if (fd < 0) return Error::Errno("dup");
  entry.watch_fd.reset(fd);
  (void)sys::SetCloexec(fd, true);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return Error::Errno("epoll_ctl");
  watch_by_fd_[fd] = entry.record.id;
  return Ok();
}

void SandboxManager::OnWatchEvent(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (it->second.watch_fd) {
    watch_by_fd_.erase(it->second.watch_fd.get());
    epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, it->second.watch_fd.get(), nullptr);
    it->second.watch_fd.reset();
  }
  // Whatever sbx-init said (exit, or the connection dropped because it died), the exit job reads
  // the authoritative status itself.
  if (it->second.record.state == State::kRunning) Enqueue([this, id] { ExitJob(id); });
}

void SandboxManager::CheckTimers() {
  int64_t now = WallNanos();
  std::vector<std::string> expired;
  std::vector<std::string> forget;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, e] : entries_) {
      const SandboxRecord& r = e.record;
      if (!IsTerminal(r.state) && r.deadline_ns > 0 && now >= r.deadline_ns && !e.stop_requested) {
        e.stop_reason = "LIFETIME_EXCEEDED";
        expired.push_back(id);
      }
      if (IsTerminal(r.state) && r.end_ns > 0 &&
          now - r.end_ns > static_cast<int64_t>(config_.retention_seconds) * 1000000000) {
        forget.push_back(id);
      }
    }
    for (const auto& id : forget) {
      (void)store_->Delete(id);
      entries_.erase(id);
    }
    DestroyWarmLater(warm_.Expire(MonotonicNanos()));
    ScheduleWarmFill();
  }
  for (const auto& id : expired) {
    std::string tenant;
    {
      std::lock_guard lock(mu_);
      tenant = entries_.at(id).record.tenant;
    }
    SBX_LOG_INFO("sandbox id={} reached its lifetime", id);
    (void)Stop(tenant, id, 10);
  }
}

void SandboxManager::EventLoop() {
  int64_t next_timer_check = 0;
  epoll_event events[64];
  while (true) {
    {
      std::lock_guard lock(jobs_mu_);
      if (stopping_) return;
    }
    int n = epoll_wait(epoll_fd_.get(), events, 64, 250);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_fd_.get()) {
        uint64_t v;
        (void)!read(wake_fd_.get(), &v, sizeof v);
        continue;
      }
      std::string id;
      {
        std::lock_guard lock(mu_);
        auto it = watch_by_fd_.find(fd);
        if (it == watch_by_fd_.end()) continue;
        id = it->second;
      }
      OnWatchEvent(id);
    }
    if (MonotonicMillis() >= next_timer_check) {
      CheckTimers();
      next_timer_check = MonotonicMillis() + 250;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Restart

void SandboxManager::Recover() {
  auto records = store_->LoadAll();
  if (!records) {
    SBX_LOG_ERROR("cannot load sandboxes: {}", records.error().ToString());
    return;
  }
  std::vector<std::string> exits;
  std::vector<std::string> stops;
  std::vector<std::pair<std::string, std::string>> lost;  // id, bundle
  {
    std::lock_guard lock(mu_);
    std::sort(records->begin(), records->end(), [](const SandboxRecord& a, const SandboxRecord& b) {
      return a.create_ns < b.create_ns;
    });
    for (auto& r : *records) {
      Entry entry;
      entry.record = r;
      auto [it, inserted] = entries_.emplace(r.id, std::move(entry));
      Entry& e = it->second;
      switch (r.state) {
        case State::kPending:
          // Its request lived only in memory; it cannot be created now.
          e.record.state = State::kFailed;
          e.record.reason = "STARTUP_FAILED";
          e.record.message = "sbxd restarted before the sandbox was created";
          e.record.end_ns = WallNanos();
          (void)Persist(e.record);
          break;
        case State::kCreating:
        case State::kRunning:
        case State::kTerminating: {
          bool alive = r.init_pid > 0 && runtime::ProcessAlive(r.init_pid, r.init_start_time);
          if (!alive) {
            lost.emplace_back(r.id,
                              r.bundle.empty() ? config_.run_dir + "/sandboxes/" + r.id : r.bundle);
            bool stopping = r.state == State::kTerminating;
            e.record.state = stopping ? State::kTerminated : State::kFailed;
            e.record.reason = stopping
                                  ? "USER_STOPPED"
                                  : (r.state == State::kCreating ? "STARTUP_FAILED" : "HOST_LOST");
            e.record.message = r.state == State::kCreating
                                   ? "sbxd restarted while the sandbox was being created"
                                   : "sbx-init was gone when sbxd restarted";
            e.record.end_ns = WallNanos();
            (void)Persist(e.record);
            break;
          }
          if (e.record.state == State::kCreating) {
            // The runtime finished after the daemon died: adopt the sandbox.
            e.record.state = State::kRunning;
            e.record.start_ns = e.record.start_ns ? e.record.start_ns : WallNanos();
          }
          Reserve(e.record);
          if (e.record.id_map) {
            if (Status adopted = id_ranges_.Adopt(r.id, *e.record.id_map); !adopted) {
              SBX_LOG_ERROR("sandbox id={}: {}", r.id, adopted.error().ToString());
            }
          }
          if (!e.record.image_digest.empty()) images_->Hold(e.record.image_digest);
          if (e.record.state == State::kTerminating) {
            e.stop_requested = true;
            e.stop_reason = "USER_STOPPED";
            stops.push_back(r.id);
          } else if (Status watched = Watch(e); !watched) {
            exits.push_back(r.id);
          }
          (void)Persist(e.record);
          SBX_LOG_INFO("re-adopted sandbox id={} pid={}", r.id, r.init_pid);
          break;
        }
        default:
          break;
      }
    }
  }
  for (const auto& [id, bundle] : lost) (void)runtime::DestroySandbox(id, bundle, *cgroups_);
  std::vector<std::string> live;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, e] : entries_) {
      if (!IsTerminal(e.record.state)) live.push_back(id);
    }
  }
  if (Status recovered = network_->Recover(live); !recovered) {
    SBX_LOG_ERROR("network recovery: {}", recovered.error().ToString());
  }
  for (const auto& id : stops) Enqueue([this, id] { StopJob(id); });
  for (const auto& id : exits) Enqueue([this, id] { ExitJob(id); });
}

void SandboxManager::ReconcileOrphans() {
  std::set<std::string> known;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, e] : entries_) {
      if (!IsTerminal(e.record.state)) known.insert(id);
    }
  }
  for (const auto& name : cgroups_->List()) {
    if (known.count(name)) continue;
    SBX_LOG_WARN("removing orphaned sandbox cgroup {}", name);
    (void)cgroups_->KillAll(name);
    (void)cgroups_->Remove(name);
  }
  std::string dir = config_.run_dir + "/sandboxes";
  if (DIR* d = opendir(dir.c_str())) {
    std::vector<std::string> orphans;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name[0] != '.' && !known.count(name)) orphans.push_back(name);
    }
    closedir(d);
    for (const auto& name : orphans) {
      SBX_LOG_WARN("removing orphaned sandbox bundle {}", name);
      (void)runtime::DestroySandbox(name, dir + "/" + name, *cgroups_);
    }
  }
  std::string disks = config_.state_dir + "/disks";
  if (DIR* d = opendir(disks.c_str())) {
    std::vector<std::string> orphans;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (EndsWith(name, ".img") && !known.count(name.substr(0, name.size() - 4))) {
        orphans.push_back(disks + "/" + name);
      }
    }
    closedir(d);
    for (const auto& path : orphans) unlink(path.c_str());
  }
}

}  // namespace sbx::daemon
