#include "src/daemon/disk_pool.h"

#include <stdio.h>
#include <unistd.h>

#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/runtime/mounts.h"
#include "src/sys/process.h"

namespace sbx::daemon {

DiskPool::DiskPool(std::string pool_dir, std::string disks_dir, runtime::DiskFormat format,
                   int target)
    : pool_dir_(std::move(pool_dir)),
      disks_dir_(std::move(disks_dir)),
      format_(format),
      target_(target) {}

DiskPool::~DiskPool() { Stop(); }

void DiskPool::Start() {
  thread_ = std::thread([this] { Run(); });
}

void DiskPool::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  for (auto& disk : ready_) unlink(disk.image.c_str());
  ready_.clear();
}

std::optional<PreparedDisk> DiskPool::Take(const std::string& id) {
  std::optional<PreparedDisk> disk;
  {
    std::lock_guard lock(mu_);
    if (ready_.empty()) return std::nullopt;
    disk = std::move(ready_.front());
    ready_.pop_front();
  }
  wake_.notify_all();
  // The loop device holds the file open; the new name only tells whose it is.
  std::string named = disks_dir_ + "/" + id + ".img";
  if (rename(disk->image.c_str(), named.c_str()) != 0) {
    unlink(disk->image.c_str());
    return std::nullopt;
  }
  disk->image = named;
  return disk;
}

void DiskPool::Run() {
  // A create that finds the pool empty formats its own disk: the refill (mkfs and all) never
  // needs to take the CPU from one.
  (void)sys::SetThreadNice(sys::kBackgroundNice);
  while (true) {
    {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(500),
                     [this] { return stopping_ || static_cast<int>(ready_.size()) < target_; });
      if (stopping_) return;
      if (static_cast<int>(ready_.size()) >= target_) continue;
    }
    // Keep formatted images in reserve for creates that find nothing mounted.
    if (Status filled = runtime::FillPool(pool_dir_, format_, target_); !filled) {
      SBX_LOG_WARN("disk pool: {}", filled.error().message());
    }
    std::string image = disks_dir_ + "/" + kPreparedPrefix + RandomHex(8) + ".img";
    auto taken = runtime::TakeFromPool(pool_dir_, format_, image);
    Status made = taken && *taken ? Ok() : runtime::FormatDiskImage(image, format_, pool_dir_);
    if (!made) {
      SBX_LOG_WARN("disk pool: {}", made.error().message());
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, std::chrono::seconds(5), [this] { return stopping_; });
      continue;
    }
    auto loop = runtime::AttachLoop(image);
    if (!loop) {
      SBX_LOG_WARN("disk pool: {}", loop.error().message());
      unlink(image.c_str());
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, std::chrono::seconds(5), [this] { return stopping_; });
      continue;
    }
    auto mount = runtime::MakeMount("ext4", {{"source", loop->path}},
                                    runtime::kMountNoSuid | runtime::kMountNoDev, "writable layer");
    // The mount keeps the loop device; with autoclear it detaches when the mount goes.
    loop->fd.reset();
    if (!mount) {
      SBX_LOG_WARN("disk pool: {}", mount.error().message());
      unlink(image.c_str());
      continue;
    }
    if (Status dirs = runtime::MakeOverlayDirs(mount->get(), format_.root_uid, format_.root_gid);
        !dirs) {
      SBX_LOG_WARN("disk pool: {}", dirs.error().message());
      unlink(image.c_str());
      continue;
    }
    std::lock_guard lock(mu_);
    ready_.push_back({image, std::move(*mount)});
  }
}

}  // namespace sbx::daemon
