#include "src/daemon/warm_sandboxes.h"

#include <algorithm>

#include "src/base/clock.h"
#include "src/base/log.h"
#include "src/sys/process.h"

namespace sbx::daemon {

WarmSandboxes::WarmSandboxes(WarmOptions options, SpecDefaults spec_defaults, ImageProvider* images,
                             net::NetworkProvider* network, RuntimeProvider* runtime,
                             IdRanges* id_ranges)
    : options_(options),
      spec_defaults_(std::move(spec_defaults)),
      images_(images),
      network_(network),
      runtime_(runtime),
      id_ranges_(id_ranges),
      pool_(options.per_image, options.max_images, options.idle_ns) {}

WarmSandboxes::~WarmSandboxes() { Stop(); }

void WarmSandboxes::Start() {
  if (!enabled()) return;
  std::lock_guard lock(mu_);
  running_ = true;
  thread_ = std::thread([this] { Run(); });
}

void WarmSandboxes::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    running_ = false;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::vector<WarmSandbox> left;
  {
    std::lock_guard lock(mu_);
    left = pool_.TakeAll();
    left.insert(left.end(), std::make_move_iterator(to_destroy_.begin()),
                std::make_move_iterator(to_destroy_.end()));
    to_destroy_.clear();
  }
  for (const auto& warm : left) Destroy(warm);
}

void WarmSandboxes::CreateStarted() {
  std::lock_guard lock(mu_);
  ++creates_running_;
  last_create_ns_ = MonotonicNanos();
}

void WarmSandboxes::CreateEnded() {
  {
    std::lock_guard lock(mu_);
    --creates_running_;
  }
  changed_.notify_all();
}

bool WarmSandboxes::QuietLocked() const {
  return creates_running_ == 0 && MonotonicNanos() - last_create_ns_ >=
                                      static_cast<int64_t>(options_.refill_delay_ms) * 1000000;
}

std::optional<WarmSandbox> WarmSandboxes::Claim(const std::string& image) {
  std::lock_guard lock(mu_);
  return pool_.Take(image);
}

Status WarmSandboxes::StartClaimed(const WarmSandbox& warm, uint64_t cpu_limit_millis,
                                   uint64_t memory_limit_bytes, uint64_t pids,
                                   const agent::InitConfig& main) {
  // The warm sandbox was made with the lowest CPU weight (spec.background); limits that differ
  // from the defaults it was made with are set too.
  runtime::CgroupLimits limits;
  limits.cpu_weight = runtime::kDefaultCpuWeight;
  if (cpu_limit_millis != options_.cpu_limit_millis ||
      memory_limit_bytes != options_.memory_limit_bytes) {
    limits.memory_bytes = memory_limit_bytes;
    limits.cpu_millis = cpu_limit_millis;
    limits.pids = pids;
  }
  SBX_TRY_CTX(runtime_->SetLimits(warm.id, limits), "set the sandbox's limits");
  return runtime_->StartMain(warm.sandbox, main);
}

void WarmSandboxes::Discard(WarmSandbox warm) {
  {
    std::lock_guard lock(mu_);
    if (running_) {
      to_destroy_.push_back(std::move(warm));
      changed_.notify_all();
      return;
    }
  }
  Destroy(warm);
}

void WarmSandboxes::DiscardNow(const WarmSandbox& warm) { Destroy(warm); }

void WarmSandboxes::Used(const std::string& image, const std::string& digest) {
  std::lock_guard lock(mu_);
  for (auto& dropped : pool_.Use(image, digest, MonotonicNanos())) {
    to_destroy_.push_back(std::move(dropped));
  }
  changed_.notify_all();
}

void WarmSandboxes::DropDigest(const std::string& digest) {
  std::vector<WarmSandbox> dropped;
  {
    std::unique_lock lock(mu_);
    dropped = pool_.DropDigest(digest);
    // A fill in progress may hold the image: once it ends, what it made is gone too (its image is
    // no longer wanted, so Filled hands it back for removal).
    changed_.wait(lock, [this] { return !filling_; });
    // Removals queued for this image must be done before the image goes.
    for (auto it = to_destroy_.begin(); it != to_destroy_.end();) {
      if (it->digest == digest) {
        dropped.push_back(std::move(*it));
        it = to_destroy_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& warm : dropped) Destroy(warm);
}

std::map<std::string, int> WarmSandboxes::ReadyByImage() {
  std::lock_guard lock(mu_);
  return pool_.ReadyByImage();
}

void WarmSandboxes::Run() {
  // Making and removing warm sandboxes never takes the CPU from a create.
  (void)sys::SetThreadNice(sys::kBackgroundNice);
  std::unique_lock lock(mu_);
  while (true) {
    for (auto& expired : pool_.Expire(MonotonicNanos())) to_destroy_.push_back(std::move(expired));
    if (!to_destroy_.empty()) {
      WarmSandbox warm = std::move(to_destroy_.front());
      to_destroy_.pop_front();
      lock.unlock();
      Destroy(warm);
      lock.lock();
      continue;
    }
    if (stopping_) return;
    std::optional<std::string> image;
    if (QuietLocked()) image = pool_.NextFill();
    if (!image) {
      // Creates come first: look again once they have been quiet for the delay (or something
      // changes), and at least every 250 ms for expiries.
      int64_t wait_ms = 250;
      if (creates_running_ == 0 && pool_.NeedsFill()) {
        int64_t quiet_at =
            last_create_ns_ + static_cast<int64_t>(options_.refill_delay_ms) * 1000000;
        wait_ms = std::clamp<int64_t>((quiet_at - MonotonicNanos()) / 1000000 + 1, 1, wait_ms);
      }
      changed_.wait_for(lock, std::chrono::milliseconds(wait_ms));
      continue;
    }
    filling_ = true;
    lock.unlock();
    auto made = Make(*image);
    if (!made) SBX_LOG_WARN("warm sandbox for {} not made: {}", *image, made.error().ToString());
    lock.lock();
    filling_ = false;
    auto extra =
        pool_.Filled(*image, made ? std::optional<WarmSandbox>(std::move(*made)) : std::nullopt);
    if (extra) to_destroy_.push_back(std::move(*extra));
    changed_.notify_all();
  }
}

Result<WarmSandbox> WarmSandboxes::Make(const std::string& reference) {
  WarmSandbox warm;
  warm.id = NewSandboxId();
  warm.image = reference;
  // Only an image already here: preparing ahead of time never pulls (nor pulls back an image
  // that was just removed).
  SBX_ASSIGN_OR_RETURN(ResolvedImage image, images_->ResolveLocal(reference));
  SpecInputs inputs;
  SBX_ASSIGN_OR_RETURN(inputs.id_map, id_ranges_->Acquire(warm.id));
  auto network = network_->Attach(warm.id, net::NetworkRequest{});
  if (!network) {
    id_ranges_->Release(warm.id);
    return std::move(network).error();
  }
  warm.network = std::move(*network);
  warm.digest = image.digest;
  images_->Hold(warm.digest);
  inputs.id = warm.id;
  inputs.cpu_limit_millis = warm.cpu_limit_millis = options_.cpu_limit_millis;
  inputs.memory_limit_bytes = warm.memory_limit_bytes = options_.memory_limit_bytes;
  inputs.await_start = true;
  auto made =
      runtime_->Create(BuildPlan(inputs, CreateRequest{}, image, warm.network, {}, spec_defaults_));
  if (!made) {
    Destroy(warm);  // the network and the image hold
    return std::move(made).error();
  }
  warm.sandbox = std::move(*made);
  SBX_LOG_DEBUG("warm sandbox id={} ready for {}", warm.id, reference);
  return warm;
}

void WarmSandboxes::Destroy(const WarmSandbox& warm) {
  if (Status destroyed = runtime_->Destroy(warm.id); !destroyed) {
    SBX_LOG_ERROR("teardown of warm sandbox {} failed: {}", warm.id, destroyed.error().ToString());
  } else {
    id_ranges_->Release(warm.id);
  }
  network_->Detach(warm.id, net::NetworkProvider::Leftover::kNothing);
  if (!warm.digest.empty()) images_->Release(warm.digest);
}

}  // namespace sbx::daemon
