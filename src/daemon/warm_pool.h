// File: warm_pool.h
//
// Sandboxes started ahead of time, so that a create of a recently used image skips the image,
// network, bundle and runtime steps: namespaces, cgroup, root filesystem and sbx-init are ready,
// and the create only sets the sandbox's limits and sends sbx-init its main process.
//
// WarmPool is the bookkeeping: which images are wanted (the most recently used, each until it goes
// unused for the idle time), which warm sandboxes are ready for each, and which image to fill
// next. It creates and destroys nothing itself; the sandbox manager does, under its own lock
// (WarmPool is not thread-safe). A warm sandbox is in no tenant's records and holds no capacity.
//
// What a warm sandbox fixed when it was made must be what the create asks: WarmEligible says when.

#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "src/daemon/runtime_provider.h"
#include "src/daemon/sandbox_record.h"
#include "src/net/network_provider.h"

namespace sbx::daemon {

struct WarmSandbox {
  std::string id;      // adopted by the sandbox that claims it
  std::string image;   // the reference it was made for (the pool's key)
  std::string digest;  // what that reference resolved to
  RuntimeSandbox sandbox;
  net::NetworkAttachment network;
  uint64_t cpu_limit_millis = 0;  // the limits its cgroup was made with
  uint64_t memory_limit_bytes = 0;
};

// The /dev/shm size a sandbox gets for its memory limit.
uint64_t ShmBytesFor(uint64_t memory_limit_bytes);

// Whether a sandbox made with the daemon's defaults (default network policy, no mounted files,
// /dev/shm sized for `default_memory_bytes`) can serve `request` with `memory_limit_bytes`.
bool WarmEligible(const CreateRequest& request, uint64_t memory_limit_bytes,
                  uint64_t default_memory_bytes);

class WarmPool {
 public:
  // `per_image` 0 disables the pool.
  WarmPool(int per_image, int max_images, int64_t idle_ns);

  bool enabled() const { return per_image_ > 0; }

  // An eligible create of `image` (which resolved to `digest`) at `now`: the image is wanted (most
  // recently used first). Returns the warm sandboxes of images that stopped being wanted, for the
  // caller to destroy.
  std::vector<WarmSandbox> Use(const std::string& image, const std::string& digest, int64_t now);
  // A ready sandbox of `image`, removed from the pool.
  std::optional<WarmSandbox> Take(const std::string& image);
  // Whether NextFill would name an image.
  bool NeedsFill() const;
  // The wanted image that lacks a sandbox the most, counted as being filled until Filled; nullopt
  // when every wanted image has its sandboxes (or is being filled).
  std::optional<std::string> NextFill();
  // A fill of `image` ended, with the sandbox made or nullopt. A made sandbox whose image is no
  // longer wanted is returned for the caller to destroy. A failed fill is not retried until the
  // image is used again.
  std::optional<WarmSandbox> Filled(const std::string& image, std::optional<WarmSandbox> made);
  // The images not used for the idle time stop being wanted; their sandboxes are returned.
  std::vector<WarmSandbox> Expire(int64_t now);
  // The images last seen resolving to `digest` are no longer wanted (the image is being removed
  // from the node); their ready sandboxes are returned. A fill in progress for one of them ends
  // in Filled returning its sandbox.
  std::vector<WarmSandbox> DropDigest(const std::string& digest);
  // Every ready sandbox, removed (at shutdown).
  std::vector<WarmSandbox> TakeAll();

  size_t ready() const;
  std::map<std::string, int> ReadyByImage() const;  // wanted images, with their ready count

 private:
  struct Image {
    int64_t last_use = 0;
    std::string digest;  // what the reference resolved to when last used or filled
    int filling = 0;
    bool failed = false;  // the last fill failed; wait for the next use
    std::deque<WarmSandbox> ready;
  };
  std::vector<WarmSandbox> Drop(const std::string& image);
  int Missing(const Image& image) const;

  int per_image_;
  size_t max_images_;
  int64_t idle_ns_;
  std::map<std::string, Image> images_;
};

}  // namespace sbx::daemon
