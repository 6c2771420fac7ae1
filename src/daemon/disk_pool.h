// File: disk_pool.h
//
// Writable layers made ready before they are asked for. Formatting an ext4 image costs tens of
// milliseconds and mounting it several; a create should pay neither. A background thread keeps
// `target` formatted images in the pool directory and `target` of them attached to loop devices
// and mounted as detached mounts (fsmount), which a create hands to the runtime helper as a
// descriptor. The mounts belong to the daemon's process: if it dies they go away, and the images
// are cleaned up at the next start.

#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "src/base/unique_fd.h"
#include "src/runtime/writable_layer.h"

namespace sbx::daemon {

// Prepared images live in the disks directory as "<prefix><random>.img" until a sandbox takes
// one (and it is renamed "<sandbox id>.img").
inline constexpr const char* kPreparedPrefix = "mounted-";

struct PreparedDisk {
  std::string image;  // now named for its sandbox
  UniqueFd mount;     // detached mount of the filesystem on the image
};

class DiskPool {
 public:
  DiskPool(std::string pool_dir, std::string disks_dir, runtime::DiskFormat format, int target);
  ~DiskPool();
  void Start();
  void Stop();
  // A prepared disk for sandbox `id`, or nullopt when none is ready (the runtime then makes one).
  std::optional<PreparedDisk> Take(const std::string& id);

 private:
  void Run();
  std::string pool_dir_;
  std::string disks_dir_;
  runtime::DiskFormat format_;
  int target_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<PreparedDisk> ready_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sbx::daemon
