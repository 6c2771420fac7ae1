#include "src/daemon/sandbox_manager.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "src/base/clock.h"
#include "src/base/failpoint.h"
#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/daemon/endings.h"
#include "src/daemon/recovery.h"
#include "src/daemon/secrets.h"
#include "src/sys/fs.h"

namespace sbx::daemon {

namespace {

constexpr int kWorkers = 16;
constexpr int kLifetimeStopGraceSeconds = 10;

}  // namespace

SandboxManager::SandboxManager(Config config, Store* store, ImageProvider* images,
                               net::NetworkProvider* network, RuntimeProvider* runtime,
                               Metrics* metrics)
    : config_(std::move(config)),
      node_(NodeShapeFromConfig(config_)),
      spec_defaults_(SpecDefaultsFromConfig(config_, node_)),
      store_(store),
      images_(images),
      network_(network),
      runtime_(runtime),
      metrics_(metrics),
      admission_(AdmissionLimitsFromConfig(config_, node_)),
      watcher_(WallNanos),
      id_ranges_(
          {config_.id_map_uid, config_.id_map_gid, config_.id_map_size, config_.id_map_ranges}),
      warm_(WarmOptionsFromConfig(config_, node_), spec_defaults_, images, network, runtime,
            &id_ranges_) {}

SandboxManager::~SandboxManager() { Shutdown(); }

Status SandboxManager::Start() {
  SBX_TRY(watcher_.Open());
  jobs_.Start(kWorkers);
  Recover();
  event_thread_ = std::thread([this] { EventLoop(); });
  warm_.Start();
  return Ok();
}

void SandboxManager::Shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  changed_.notify_all();
  watcher_.Wake();
  jobs_.Stop();
  if (event_thread_.joinable()) event_thread_.join();
  std::map<std::string, WarmSandbox> claimed;
  {
    std::lock_guard lock(mu_);
    claimed.swap(claimed_warm_);
  }
  for (auto& [id, warm] : claimed) warm_.Discard(std::move(warm));
  // Warm sandboxes belong to this daemon's run only: nothing would ever claim them.
  warm_.Stop();
  runtime_->RemoveSharedState();
}

Status SandboxManager::Persist(const SandboxRecord& record) {
  Status s = store_->Put(record);
  if (!s) SBX_LOG_ERROR("persist sandbox={} failed: {}", record.id, s.error().ToString());
  return s;
}

RuntimeSandbox SandboxManager::SandboxOf(const SandboxRecord& r) const {
  return {r.id, r.bundle, r.socket_path, r.init_pid, r.init_start_time};
}

// ---------------------------------------------------------------------------------------------
// Admission

Result<SandboxRecord> SandboxManager::Create(const std::string& tenant, CreateRequest request) {
  SBX_TRY(CheckDiskReserve(config_.state_dir, node_));
  std::unique_lock lock(mu_);
  if (stopping_) return Error::Unavailable("sbxd is stopping");
  SandboxRecord r;
  r.tenant = tenant;
  r.request_id = request.request_id;
  r.request_fingerprint = request.fingerprint;
  SandboxResources resources = ResourcesFor(request, node_);
  r.cpu_limit_millis = resources.cpu_limit_millis;
  r.memory_limit_bytes = resources.memory_limit_bytes;
  r.cpu_request_millis = resources.cpu_request_millis;
  r.memory_request_bytes = resources.memory_request_bytes;
  Demand demand{r.cpu_request_millis, r.memory_request_bytes, node_.default_disk_request_bytes};
  admission_.SetHostAvailableMemory(HostAvailableMemory());
  auto decision = admission_.Decide(tenant, request.request_id, request.fingerprint, demand);
  if (!decision) {
    if (decision.error().reason() == "CWSANDBOX_QUOTA_EXCEEDED") {
      metrics_->Inc("sbx_create_errors_total", {{"reason", "QUOTA"}});
    }
    return std::move(decision).error();
  }
  if (decision->verdict == Admission::Verdict::kReplay) {
    return entries_.at(decision->replay_id).record;
  }
  r.id = NewSandboxId();
  r.create_ns = WallNanos();
  r.lifetime_seconds =
      request.lifetime_seconds > 0 ? request.lifetime_seconds : config_.default_lifetime_seconds;
  r.deadline_ns = r.create_ns + static_cast<int64_t>(r.lifetime_seconds) * 1000000000;
  r.tags = request.tags;
  r.image = request.image.empty() ? config_.default_image : request.image;
  r.spec_blob = request.spec_blob;
  std::optional<WarmSandbox> warm;
  if (warm_.enabled() && WarmEligible(request, r.memory_limit_bytes, node_.default_memory_bytes)) {
    warm = warm_.Claim(r.image);
    metrics_->Inc("sbx_warm_claims_total", {{"result", warm ? "hit" : "miss"}});
    // The sandbox takes the warm one's id: its cgroup, bundle, hostname and network are named so.
    if (warm) r.id = warm->id;
  }
  bool admit = decision->verdict == Admission::Verdict::kAdmit;
  r.state = admit ? State::kCreating : State::kPending;
  if (Status persisted = Persist(r); !persisted) {
    if (warm) warm_.Discard(std::move(*warm));
    return std::move(persisted).error();
  }
  admission_.Accept(r.id, tenant, r.request_id, r.request_fingerprint, demand, admit);
  watcher_.SetLifetime(r.id, r.deadline_ns);
  if (warm) claimed_warm_.emplace(r.id, std::move(*warm));
  entries_[r.id].record = r;
  pending_requests_.emplace(r.id, std::move(request));
  metrics_->Inc("sbx_sandboxes_created_total");
  SBX_LOG_INFO("sandbox accepted id={} tenant={} image={}", r.id, tenant, r.image);
  if (admit) {
    StartCreating(r.id);
  } else {
    ExplainWaitsLocked();
    ReclaimKeptFilesLocked();
    r = entries_.at(r.id).record;
    SBX_LOG_INFO("sandbox id={} is PENDING, {}", r.id, r.message);
  }
  changed_.notify_all();
  return r;
}

void SandboxManager::ExplainWaitsLocked() {
  for (const auto& id : admission_.queued()) {
    auto it = entries_.find(id);
    if (it == entries_.end()) continue;
    it->second.record.reason = "WAITING_FOR_CAPACITY";
    it->second.record.message = admission_.WaitingFor(id);
  }
}

uint64_t SandboxManager::HostAvailableMemory() {
  auto available = sys::AvailableMemory();
  return available ? *available : UINT64_MAX;  // unknown: the reservations alone decide
}

void SandboxManager::ReadmitQueued() {
  {
    std::lock_guard lock(mu_);
    if (admission_.queued().empty()) return;
    // The host's room changes without any sandbox ending (memory freed, page cache dropped).
    admission_.SetHostAvailableMemory(HostAvailableMemory());
    StartAdmittedLocked(admission_.Readmit());
    ExplainWaitsLocked();
  }
  changed_.notify_all();
}

void SandboxManager::ReclaimKeptFilesLocked() {
  if (!admission_.QueueHeadWaitsForDisk()) return;
  const SandboxRecord* oldest = nullptr;
  for (const auto& [id, e] : entries_) {
    if (e.record.files_until_ns == 0) continue;
    if (e.dropping_files || e.drop_queued) return;  // room is being made already
    if (oldest == nullptr || e.record.end_ns < oldest->end_ns) oldest = &e.record;
  }
  if (oldest == nullptr) return;
  std::string id = oldest->id;
  entries_.at(id).drop_queued = true;
  SBX_LOG_INFO("sandbox id={} kept files go early: a waiting sandbox needs their disk", id);
  jobs_.Enqueue([this, id] { DropFilesJob(id); });
}

void SandboxManager::StartCreating(const std::string& id) {
  warm_.CreateStarted();
  bool queued = jobs_.Enqueue([this, id] {
    CreateJob(id);
    warm_.CreateEnded();
  });
  // A daemon that is stopping leaves the record CREATING: the next one ends it.
  if (!queued) warm_.CreateEnded();
}

// ---------------------------------------------------------------------------------------------
// Creation

void SandboxManager::CreateJob(const std::string& id) {
  int64_t started = MonotonicNanos();
  SandboxRecord r;
  CreateRequest request;
  std::optional<WarmSandbox> warm;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.record.state != State::kCreating) return;
    r = it->second.record;
    if (auto req = pending_requests_.find(id); req != pending_requests_.end()) {
      request = std::move(req->second);
      pending_requests_.erase(req);
    }
    if (auto w = claimed_warm_.find(id); w != claimed_warm_.end()) {
      warm = std::move(w->second);
      claimed_warm_.erase(w);
    }
  }
  auto failed = [&](std::string reason, std::string message) {
    Finish(id, {State::kFailed, std::move(reason), std::move(message), std::nullopt});
  };
  auto image = images_->Resolve(r.image);
  if (!image) {
    if (warm) warm_.DiscardNow(*warm);
    metrics_->Inc("sbx_image_pulls_total", {{"result", "error"}});
    SBX_LOG_WARN("sandbox id={} image pull failed: {}", id, image.error().ToString());
    failed("IMAGE_PULL_FAILED", image.error().message());
    return;
  }
  metrics_->Inc("sbx_image_pulls_total", {{"result", "ok"}});
  auto secrets = ResolveSecrets(config_.secrets_dir, request.secrets);
  if (!secrets) {
    if (warm) warm_.DiscardNow(*warm);
    failed("STARTUP_FAILED", secrets.error().message());
    return;
  }
  if (warm) {
    if (CreateFromWarm(id, *warm, r, request, *image, *secrets, started)) return;
    warm_.DiscardNow(*warm);
  }
  images_->Hold(image->digest);
  {
    std::lock_guard lock(mu_);
    entries_.at(id).image_held = true;
    entries_.at(id).record.image_digest = image->digest;
  }
  failpoint::Check(failpoint::kCreateAfterImage);
  // Its host ids are recorded before anything runs in them: a restart must know whose they are.
  auto ids = id_ranges_.Acquire(id);
  if (!ids) {
    failed("STARTUP_FAILED", ids.error().message());
    return;
  }
  {
    std::lock_guard lock(mu_);
    entries_.at(id).record.id_map = *ids;
    (void)Persist(entries_.at(id).record);
  }
  auto network = network_->Attach(id, request.network);
  if (!network) {
    id_ranges_.Release(id);
    failed("STARTUP_FAILED", "network: " + network.error().message());
    return;
  }
  failpoint::Check(failpoint::kCreateAfterNetwork);
  SpecInputs inputs{id, r.cpu_limit_millis, r.memory_limit_bytes, r.deadline_ns, *ids, false};
  auto sandbox =
      runtime_->Create(BuildPlan(inputs, request, *image, *network, *secrets, spec_defaults_));
  if (!sandbox) {
    SBX_LOG_WARN("sandbox id={} failed to start: {}", id, sandbox.error().message());
    // The runtime leaves nothing of a failed create; whatever a crashed helper may have left is
    // removed all the same.
    (void)Destroy(id);
    failed("STARTUP_FAILED", sandbox.error().message());
    return;
  }
  failpoint::Check(failpoint::kCreateAfterRuntime);
  MarkRunning(id, *sandbox, *network, image->digest, started,
              WarmEligible(request, r.memory_limit_bytes, node_.default_memory_bytes));
}

bool SandboxManager::CreateFromWarm(const std::string& id, const WarmSandbox& warm,
                                    const SandboxRecord& r, const CreateRequest& request,
                                    const ResolvedImage& image, const SecretEnv& secrets,
                                    int64_t started) {
  // A warm sandbox serves only the image it was made from: a tag that moved since then gets a
  // sandbox of the new image.
  Status served = Error::FailedPrecondition("the image's tag moved to " + image.digest);
  if (warm.digest == image.digest) {
    served = warm_.StartClaimed(warm, r.cpu_limit_millis, r.memory_limit_bytes, spec_defaults_.pids,
                                MainProcessConfig(BuildProcess(request, image, secrets),
                                                  r.deadline_ns, spec_defaults_.stop_grace_ms));
  }
  if (!served) {
    SBX_LOG_INFO("sandbox id={} created afresh, its warm sandbox could not serve it: {}", id,
                 served.error().message());
    metrics_->Inc("sbx_warm_claims_total", {{"result", "unusable"}});
    return false;
  }
  {
    // The warm sandbox's hold on its image is now the sandbox's.
    std::lock_guard lock(mu_);
    entries_.at(id).image_held = true;
  }
  MarkRunning(id, warm.sandbox, warm.network, warm.digest, started, /*warm_eligible=*/true);
  return true;
}

void SandboxManager::MarkRunning(const std::string& id, const RuntimeSandbox& sandbox,
                                 const net::NetworkAttachment& network, const std::string& digest,
                                 int64_t started_ns, bool warm_eligible) {
  bool stop = false;
  {
    std::lock_guard lock(mu_);
    SandboxRecord& r = entries_.at(id).record;
    // Only an image that made a sandbox is kept warm: a reference that fails takes no room.
    if (warm_eligible) warm_.Used(r.image, digest);
    r.image_digest = digest;
    r.network_mode = network.mode;
    r.effective_egress = network.effective_egress;
    r.address = network.address;
    r.bundle = sandbox.bundle;
    r.init_pid = sandbox.init_pid;
    r.init_start_time = sandbox.init_start_time;
    r.socket_path = sandbox.socket_path;
    r.start_ns = WallNanos();
    r.state = State::kRunning;
    stop = !r.stop_reason.empty();
    if (stop) r.state = State::kTerminating;
    (void)Persist(r);
    changed_.notify_all();
  }
  metrics_->Observe("sbx_create_seconds", static_cast<double>(MonotonicNanos() - started_ns) / 1e9);
  SBX_LOG_INFO("sandbox running id={} pid={}", id, sandbox.init_pid);
  if (stop) {
    jobs_.Enqueue([this, id] { StopJob(id); });
  } else {
    Watch(id, sandbox);
  }
}

void SandboxManager::Watch(const std::string& id, const RuntimeSandbox& sandbox) {
  auto fd = runtime_->WatchMain(sandbox);
  Status watched = fd ? watcher_.WatchMain(id, std::move(*fd)) : Status(fd.error());
  if (!watched) {
    // Unwatched, its end would go unnoticed: ask sbx-init (or find it gone) now.
    SBX_LOG_WARN("sandbox id={} watch failed: {}", id, watched.error().ToString());
    jobs_.Enqueue([this, id] { ExitJob(id); });
  }
}

// ---------------------------------------------------------------------------------------------
// Ending

Result<SandboxRecord> SandboxManager::Stop(const std::string& tenant, const std::string& id,
                                           int grace_seconds, const std::string& request_id) {
  std::unique_lock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.record.tenant != tenant) return SandboxNotFound(id);
  SandboxRecord& r = it->second.record;
  if (r.deleted_ns != 0) {
    if (!request_id.empty() && request_id == r.delete_request_id) return r;
    return Error::NotFound("sandbox " + Quote(id) + " was already deleted, at " +
                           FormatUtc(r.deleted_ns))
        .WithReason("CWSANDBOX_SANDBOX_NOT_FOUND")
        .WithMetadata("sandbox_id", id);
  }
  r.deleted_ns = WallNanos();
  r.delete_request_id = request_id;
  // A sandbox that ended, or is already ending, is not stopped again: the deletion is recorded
  // here. Otherwise the stop records it with its own state change.
  if (IsTerminal(r.state) || !r.stop_reason.empty() || r.state == State::kTerminating) {
    (void)Persist(r);
    if (r.files_until_ns != 0) jobs_.Enqueue([this, id] { DropFilesJob(id); });
    return r;
  }
  return StopLocked(lock, id, grace_seconds, "USER_STOPPED");
}

Result<SandboxRecord> SandboxManager::StopLocked(std::unique_lock<std::mutex>& lock,
                                                 const std::string& id, int grace_seconds,
                                                 const std::string& reason) {
  Entry& e = entries_.at(id);
  SandboxRecord& r = e.record;
  if (IsTerminal(r.state) || !r.stop_reason.empty()) return r;
  r.stop_reason = reason;
  r.grace_seconds = std::clamp(grace_seconds, 0, config_.stop_grace_max_seconds);
  switch (r.state) {
    case State::kPending: {
      pending_requests_.erase(id);
      lock.unlock();
      Finish(id, {State::kTerminated, reason, "stopped before it started", std::nullopt});
      lock.lock();
      return entries_.at(id).record;
    }
    case State::kCreating:
      // The create job stops it as soon as it runs.
      (void)Persist(r);
      return r;
    case State::kRunning:
      if (e.finalizing) return r;  // its main process just ended; it is being torn down
      r.state = State::kTerminating;
      (void)Persist(r);
      jobs_.Enqueue([this, id] { StopJob(id); });
      changed_.notify_all();
      return r;
    default:
      return r;
  }
}

Result<SandboxRecord> SandboxManager::ExtendLifetime(const std::string& tenant,
                                                     const std::string& id, int seconds) {
  // One extension at a time: each reads the lifetime the previous one left.
  std::lock_guard extending(extend_mu_);
  std::unique_lock lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.record.tenant != tenant) return SandboxNotFound(id);
  SandboxRecord r = it->second.record;
  if (r.state != State::kRunning || !r.stop_reason.empty() || it->second.finalizing) {
    std::string state(StateName(r.state));
    if (r.state == State::kRunning) state = "ending";
    return Error::FailedPrecondition("sandbox " + Quote(id) + " is " + state +
                                     "; only a running sandbox's lifetime can be extended")
        .WithReason("CWSANDBOX_SANDBOX_NOT_RUNNING")
        .WithMetadata("sandbox_id", id);
  }
  int64_t lifetime = static_cast<int64_t>(r.lifetime_seconds) + seconds;
  if (lifetime > config_.max_lifetime_seconds) {
    return Error::InvalidArgument(
               "seconds: a lifetime of " + std::to_string(lifetime) +
               "s would exceed this node's " + "max_lifetime_seconds (" +
               std::to_string(config_.max_lifetime_seconds) + "s); at most " +
               std::to_string(config_.max_lifetime_seconds - r.lifetime_seconds) + "s more")
        .WithMetadata("field", "seconds");
  }
  int64_t deadline_ns = r.create_ns + lifetime * 1000000000;
  lock.unlock();
  // sbx-init first: it must not end the sandbox at the old deadline while sbxd is away.
  SBX_TRY(runtime_->SetDeadline(SandboxOf(r), deadline_ns));
  lock.lock();
  it = entries_.find(id);
  if (it == entries_.end()) return SandboxNotFound(id);
  SandboxRecord& current = it->second.record;
  current.lifetime_seconds = static_cast<int>(lifetime);
  current.deadline_ns = deadline_ns;
  SBX_TRY(Persist(current));
  if (!IsTerminal(current.state)) watcher_.SetLifetime(id, deadline_ns);
  SBX_LOG_INFO("sandbox id={} lifetime extended to {}s", id, lifetime);
  changed_.notify_all();
  return current;
}

void SandboxManager::StopJob(const std::string& id) {
  SandboxRecord r;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.finalizing || IsTerminal(it->second.record.state)) {
      return;
    }
    it->second.finalizing = true;
    r = it->second.record;
  }
  watcher_.UnwatchMain(id);
  RuntimeSandbox sandbox = SandboxOf(r);
  std::optional<agent::StatusReply> exited;
  if (r.grace_seconds > 0) {
    if (runtime_->SignalMain(sandbox, SIGTERM)) {
      auto status = runtime_->WaitMain(sandbox, MonotonicMillis() + r.grace_seconds * 1000LL);
      if (status && status->main_exited) exited = *status;
    }
  } else if (auto status = runtime_->MainStatus(sandbox); status && status->main_exited) {
    exited = *status;
  }
  SaveLogs(r);
  // The stop is recorded (TERMINATING, with its reason): a crash from here on ends it the same.
  SandboxRecord::Ending ending = StopEnding(exited, r);
  // A sandbox that ran out of time keeps its files like one whose main process ended; a
  // deleted one does not.
  if (r.stop_reason == "LIFETIME_EXCEEDED" && EndKeepingFiles(id, sandbox, ending)) return;
  TearDownAndFinish(id, ending);
}

void SandboxManager::ExitJob(const std::string& id) {
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
  RuntimeSandbox sandbox = SandboxOf(r);
  auto status = runtime_->MainStatus(sandbox);
  if (status && !status->main_exited && status->start_error.empty()) {
    // sbx-init answers and the main process runs: the watch ended for another reason.
    {
      std::lock_guard lock(mu_);
      entries_.at(id).finalizing = false;
    }
    SBX_LOG_WARN("sandbox id={} watch ended while its main process runs; watching again", id);
    Watch(id, sandbox);
    return;
  }
  auto stats = runtime_->Stats(id);
  SaveLogs(r);
  SandboxRecord::Ending ending = ExitEnding(status, stats ? stats->oom_kills : 0, r);
  RecordEnding(id, ending);
  if (status && EndKeepingFiles(id, sandbox, ending)) return;
  (void)runtime_->AckExit(sandbox);
  TearDownAndFinish(id, ending);
}

int SandboxManager::DropKeptFiles(const std::string& digest) {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, e] : entries_) {
      if (e.record.files_until_ns != 0 && e.record.image_digest == digest) ids.push_back(id);
    }
  }
  for (const auto& id : ids) {
    SBX_LOG_INFO("sandbox id={} kept files go early: their image is being removed", id);
    DropFilesJob(id);
  }
  return static_cast<int>(ids.size());
}

bool SandboxManager::EndKeepingFiles(const std::string& id, const RuntimeSandbox& sandbox,
                                     const SandboxRecord::Ending& ending) {
  if (config_.files_retention_seconds <= 0) return false;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.record.deleted_ns != 0) return false;
  }
  if (Status kept = runtime_->KeepOnlyFiles(sandbox); !kept) {
    SBX_LOG_WARN("sandbox id={} cannot keep its files: {}", id, kept.error().ToString());
    return false;
  }
  FinishKeepingFiles(
      id, ending, WallNanos() + static_cast<int64_t>(config_.files_retention_seconds) * 1000000000);
  return true;
}

void SandboxManager::DropFilesJob(const std::string& id) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    it->second.drop_queued = false;
    if (it->second.record.files_until_ns == 0 || it->second.dropping_files) return;
    it->second.dropping_files = true;
  }
  if (Status destroyed = Destroy(id); !destroyed) {
    // What is left is removed at the next start, as a leftover nothing owns.
    SBX_LOG_ERROR("removing the kept files of {} failed: {}", id, destroyed.error().ToString());
  }
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    Entry& e = it->second;
    SandboxRecord& r = e.record;
    e.dropping_files = false;
    if (e.image_held) images_->Release(r.image_digest);
    e.image_held = false;
    r.files_until_ns = 0;
    r.init_pid = 0;
    (void)Persist(r);
    SBX_LOG_INFO("sandbox id={} files removed", id);
    // Its record's retention may have passed while the files were kept: it is due again.
    watcher_.Forget(id);
    watcher_.SetRetention(id,
                          r.end_ns + static_cast<int64_t>(config_.retention_seconds) * 1000000000);
    admission_.SetHostAvailableMemory(HostAvailableMemory());
    StartAdmittedLocked(admission_.ReleaseDisk(id));
    ExplainWaitsLocked();
    ReclaimKeptFilesLocked();
  }
  changed_.notify_all();
}

void SandboxManager::SaveLogs(const SandboxRecord& r) {
  if (r.socket_path.empty()) return;
  if (auto logs = runtime_->ReadLogs(SandboxOf(r))) {
    (void)store_->PutLogs(r.id, logs->chunks, logs->start_offset);
  }
}

void SandboxManager::RecordEnding(const std::string& id, const SandboxRecord::Ending& ending) {
  std::lock_guard lock(mu_);
  SandboxRecord& r = entries_.at(id).record;
  r.ending = ending;
  (void)Persist(r);
}

void SandboxManager::TearDownAndFinish(const std::string& id, const SandboxRecord::Ending& ending) {
  failpoint::Check(failpoint::kEndBeforeTeardown);
  if (Status destroyed = Destroy(id); !destroyed) {
    SBX_LOG_ERROR("teardown of {} failed: {}", id, destroyed.error().ToString());
  }
  failpoint::Check(failpoint::kEndAfterTeardown);
  Finish(id, ending);
}

Status SandboxManager::Destroy(const std::string& id) {
  SBX_TRY(runtime_->Destroy(id));
  // A teardown that failed keeps the ids: something of the sandbox may still run in them.
  id_ranges_.Release(id);
  return Ok();
}

void SandboxManager::Finish(const std::string& id, const SandboxRecord::Ending& ending) {
  FinishKeepingFiles(id, ending, 0);
}

void SandboxManager::FinishKeepingFiles(const std::string& id, const SandboxRecord::Ending& ending,
                                        int64_t files_until_ns) {
  bool keep_files = files_until_ns != 0;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;
    Entry& e = it->second;
    SandboxRecord& r = e.record;
    // Kept files are read through the image's layers: the image stays until they go.
    if (e.image_held && !keep_files) {
      images_->Release(r.image_digest);
      e.image_held = false;
    }
    e.finalizing = false;
    r.state = ending.state;
    r.reason = ending.reason;
    r.message = ending.message;
    if (ending.exit_code) r.exit_code = ending.exit_code;
    r.ending.reset();
    r.end_ns = WallNanos();
    r.files_until_ns = files_until_ns;
    if (!keep_files) r.init_pid = 0;
    pending_requests_.erase(id);
    if (auto warm = claimed_warm_.find(id); warm != claimed_warm_.end()) {
      // Stopped (or failed) before its create job ran: the warm sandbox it claimed goes too.
      warm_.Discard(std::move(warm->second));
      claimed_warm_.erase(warm);
    }
    network_->Detach(id, keep_files ? net::NetworkProvider::Leftover::kProcessesStay
                                    : net::NetworkProvider::Leftover::kNothing);
    watcher_.Forget(id);
    if (keep_files) watcher_.SetFilesDeadline(id, files_until_ns);
    watcher_.SetRetention(id,
                          r.end_ns + static_cast<int64_t>(config_.retention_seconds) * 1000000000);
    (void)Persist(r);
    metrics_->Inc("sbx_sandboxes_ended_total",
                  {{"state", std::string(StateName(r.state))}, {"reason", r.reason}});
    SBX_LOG_INFO("sandbox ended id={} state={} reason={}{}", id, StateName(r.state),
                 r.StateReason(), keep_files ? " files kept" : "");
    admission_.SetHostAvailableMemory(HostAvailableMemory());
    StartAdmittedLocked(keep_files ? admission_.ReleaseKeepingDisk(id) : admission_.Release(id));
    ExplainWaitsLocked();
    ReclaimKeptFilesLocked();
    // Deleted while it ended: the files it was about to keep go now.
    if (keep_files && r.deleted_ns != 0) jobs_.Enqueue([this, id] { DropFilesJob(id); });
  }
  changed_.notify_all();
}

void SandboxManager::StartAdmittedLocked(const std::vector<std::string>& admitted) {
  std::vector<std::string> starting;
  for (const auto& next : admitted) {
    auto queued = entries_.find(next);
    if (queued == entries_.end()) continue;
    queued->second.record.state = State::kCreating;
    queued->second.record.reason.clear();
    queued->second.record.message.clear();
    (void)Persist(queued->second.record);
    starting.push_back(next);
  }
  for (const auto& next : starting) StartCreating(next);
}

// ---------------------------------------------------------------------------------------------
// Events

void SandboxManager::EventLoop() {
  while (true) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    ReadmitQueued();
    for (const auto& event : watcher_.Wait(250)) {
      std::unique_lock lock(mu_);
      auto it = entries_.find(event.id);
      if (it == entries_.end()) continue;
      const SandboxRecord& r = it->second.record;
      switch (event.kind) {
        case WatchEvent::Kind::kMainExited:
          // Whatever sbx-init said (an exit, or the connection dropped because it died), the exit
          // job reads the authoritative status itself.
          if (r.state == State::kRunning && !it->second.finalizing) {
            std::string id = event.id;
            jobs_.Enqueue([this, id] { ExitJob(id); });
          }
          break;
        case WatchEvent::Kind::kLifetimeReached:
          // An event of a deadline that an extension moved since is stale.
          if (!IsTerminal(r.state) && WallNanos() >= r.deadline_ns) {
            SBX_LOG_INFO("sandbox id={} reached its lifetime", event.id);
            (void)StopLocked(lock, event.id, kLifetimeStopGraceSeconds, "LIFETIME_EXCEEDED");
          }
          break;
        case WatchEvent::Kind::kFilesExpired:
          if (IsTerminal(r.state) && r.files_until_ns != 0) {
            std::string id = event.id;
            jobs_.Enqueue([this, id] { DropFilesJob(id); });
          }
          break;
        case WatchEvent::Kind::kRetentionOver:
          if (IsTerminal(r.state) && r.files_until_ns != 0) {
            // The files go first; that job sets the record's retention again.
            std::string id = event.id;
            jobs_.Enqueue([this, id] { DropFilesJob(id); });
          } else if (IsTerminal(r.state)) {
            (void)store_->Delete(event.id);
            admission_.Forget(event.id);
            entries_.erase(it);
          }
          break;
      }
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
  RecoveryPlan plan = PlanRecovery(
      std::move(*records), [this](const SandboxRecord& r) { return runtime_->Alive(SandboxOf(r)); },
      runtime_->Leftovers(), WallNanos());
  failpoint::Check(failpoint::kRecoveryAfterPlan);
  std::vector<std::string> live;
  int64_t retention_ns = static_cast<int64_t>(config_.retention_seconds) * 1000000000;
  {
    std::lock_guard lock(mu_);
    auto restore = [&](const SandboxRecord& r, bool active) {
      admission_.Restore(
          r.id, r.tenant, r.request_id, r.request_fingerprint,
          {r.cpu_request_millis, r.memory_request_bytes, node_.default_disk_request_bytes}, active);
      Entry& e = entries_[r.id];
      e.record = r;
      if (active) {
        if (r.id_map) {
          if (Status adopted = id_ranges_.Adopt(r.id, *r.id_map); !adopted) {
            SBX_LOG_ERROR("sandbox id={}: {}", r.id, adopted.error().ToString());
          }
        }
        if (!r.image_digest.empty()) images_->Hold(r.image_digest);
        e.image_held = !r.image_digest.empty();
        watcher_.SetLifetime(r.id, r.deadline_ns);
        live.push_back(r.id);
      } else {
        watcher_.SetRetention(r.id, r.end_ns + retention_ns);
      }
    };
    for (const auto& r : plan.kept) restore(r, false);
    for (const auto& r : plan.kept_files) {
      admission_.RestoreKeepingDisk(
          r.id, r.tenant, r.request_id, r.request_fingerprint,
          {r.cpu_request_millis, r.memory_request_bytes, node_.default_disk_request_bytes});
      Entry& e = entries_[r.id];
      e.record = r;
      if (r.id_map) {
        if (Status adopted = id_ranges_.Adopt(r.id, *r.id_map); !adopted) {
          SBX_LOG_ERROR("sandbox id={}: {}", r.id, adopted.error().ToString());
        }
      }
      if (!r.image_digest.empty()) images_->Hold(r.image_digest);
      e.image_held = !r.image_digest.empty();
      watcher_.SetFilesDeadline(r.id, r.files_until_ns);
      watcher_.SetRetention(r.id, r.end_ns + retention_ns);
    }
    for (const auto& r : plan.ended) {
      (void)Persist(r);
      restore(r, false);
    }
    for (const auto& r : plan.adopt) {
      (void)Persist(r);
      restore(r, true);
      SBX_LOG_INFO("re-adopted sandbox id={} pid={}", r.id, r.init_pid);
    }
    for (const auto& r : plan.finish_stop) restore(r, true);
  }
  for (const auto& id : plan.destroy) {
    SBX_LOG_WARN("removing what is left of sandbox {}", id);
    if (Status destroyed = Destroy(id); !destroyed) {
      SBX_LOG_ERROR("removing what is left of sandbox {} failed: {}", id,
                    destroyed.error().ToString());
    }
  }
  failpoint::Check(failpoint::kRecoveryAfterLeftovers);
  if (Status recovered = network_->Recover(live); !recovered) {
    SBX_LOG_ERROR("network recovery: {}", recovered.error().ToString());
  }
  for (const auto& r : plan.finish_stop) {
    std::string id = r.id;
    jobs_.Enqueue([this, id] { StopJob(id); });
  }
  for (const auto& r : plan.adopt) Watch(r.id, SandboxOf(r));
}

}  // namespace sbx::daemon
