// File: warm_sandboxes.h
//
// The warm sandboxes of the node: which images to keep a sandbox ready for (WarmPool, the
// bookkeeping), when to make one (once creates have been quiet for the refill delay: preparing a
// sandbox slows the start of one that has just begun on a machine with few cores), making and
// removing them through the ports, and handing a ready one to a create that claims it.
//
// A warm sandbox is in no tenant's records and holds no capacity; it is never recorded in the
// store, so after a crash the next daemon removes it as a leftover. Fills and removals run on a
// thread of their own, at the background priority. Thread-safe.

#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "src/daemon/id_ranges.h"
#include "src/daemon/image_provider.h"
#include "src/daemon/runtime_provider.h"
#include "src/daemon/spec_builder.h"
#include "src/daemon/warm_pool.h"
#include "src/net/network_provider.h"

namespace sbx::daemon {

struct WarmOptions {
  int per_image = 1;  // 0: no warm sandboxes
  int max_images = 4;
  int64_t idle_ns = 600ll * 1000000000;
  int refill_delay_ms = 100;
  uint64_t cpu_limit_millis = 0;  // the limits warm sandboxes are made with: the defaults
  uint64_t memory_limit_bytes = 0;
};

class WarmSandboxes {
 public:
  WarmSandboxes(WarmOptions options, SpecDefaults spec_defaults, ImageProvider* images,
                net::NetworkProvider* network, RuntimeProvider* runtime, IdRanges* id_ranges);
  ~WarmSandboxes();
  WarmSandboxes(const WarmSandboxes&) = delete;
  WarmSandboxes& operator=(const WarmSandboxes&) = delete;

  bool enabled() const { return options_.per_image > 0; }
  void Start();
  // Stops the thread and removes every warm sandbox: nothing would ever claim them.
  void Stop();

  // A create job began or ended: fills wait until none runs and none began for the delay.
  void CreateStarted();
  void CreateEnded();

  // A ready sandbox of `image`, taken out of the pool for an eligible create.
  std::optional<WarmSandbox> Claim(const std::string& image);
  // Gives a claimed sandbox the limits of the sandbox it becomes (and the normal CPU weight) and
  // starts its main process.
  Status StartClaimed(const WarmSandbox& warm, uint64_t cpu_limit_millis,
                      uint64_t memory_limit_bytes, uint64_t pids, const agent::InitConfig& main);
  // A claimed sandbox that cannot serve, or is no longer needed: removed in the background.
  void Discard(WarmSandbox warm);
  // A claimed sandbox whose id lives on (the sandbox that claimed it is created afresh or fails
  // under that id): removed before this returns, so nothing removes the id's new owner later.
  void DiscardNow(const WarmSandbox& warm);
  // An eligible create of `image`, which resolved to `digest`, made a sandbox: the image is wanted.
  void Used(const std::string& image, const std::string& digest);
  // Removes the warm sandboxes made from image `digest` and stops making them, before the image
  // is removed; waits for a fill that holds the image.
  void DropDigest(const std::string& digest);

  std::map<std::string, int> ReadyByImage();

 private:
  void Run();
  bool QuietLocked() const;
  Result<WarmSandbox> Make(const std::string& image);
  void Destroy(const WarmSandbox& warm);

  WarmOptions options_;
  SpecDefaults spec_defaults_;
  ImageProvider* images_;
  net::NetworkProvider* network_;
  RuntimeProvider* runtime_;
  IdRanges* id_ranges_;

  std::mutex mu_;
  std::condition_variable changed_;
  WarmPool pool_;
  std::deque<WarmSandbox> to_destroy_;
  int creates_running_ = 0;
  int64_t last_create_ns_ = 0;  // monotonic
  bool filling_ = false;        // a warm sandbox is being made (DropDigest waits for it)
  bool stopping_ = false;
  bool running_ = false;  // the thread takes removals
  std::thread thread_;
};

}  // namespace sbx::daemon
