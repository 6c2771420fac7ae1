// File: sandbox_manager.h
//
// SandboxManager is the state machine of the node's sandboxes (sandbox_record.h): it owns their
// records, takes every transition, and persists each one in the Store before it reports it or
// acts on it. The rest is in rooms it asks or consumes, none of which knows the manager:
//
//   Admission      (admission.h)       idempotency, tenant quotas, node capacity, the PENDING FIFO
//   spec builder   (spec_builder.h)    request + image -> the sandbox's runtime plan
//   Watcher        (watcher.h)         main-process exits, lifetimes, retention, as events
//   WarmSandboxes  (warm_sandboxes.h)  sandboxes made ahead of time for recent images
//   recovery       (recovery.h)        store + leftovers -> what a restart adopts, ends, removes
//
// and it reaches the machine only through three ports: ImageProvider, NetworkProvider and
// RuntimeProvider. Slow work (image pulls, creates, teardowns) runs on a worker pool; an event
// thread acts on the watcher's events.
//
// Thread-safe; gRPC handlers call it concurrently.

#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "src/base/result.h"
#include "src/daemon/admission.h"
#include "src/daemon/config.h"
#include "src/daemon/id_ranges.h"
#include "src/daemon/image_provider.h"
#include "src/daemon/job_queue.h"
#include "src/daemon/listing.h"
#include "src/daemon/metrics.h"
#include "src/daemon/node_shape.h"
#include "src/daemon/runtime_provider.h"
#include "src/daemon/sandbox_record.h"
#include "src/daemon/spec_builder.h"
#include "src/daemon/store.h"
#include "src/daemon/usage_sampler.h"
#include "src/daemon/warm_sandboxes.h"
#include "src/daemon/watcher.h"
#include "src/net/network_provider.h"

namespace sbx::daemon {

struct PurgeResult {
  int count = 0;
  std::vector<std::string> failed;
};

struct Capacity {
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  uint64_t allocated_cpu_millis = 0;
  uint64_t allocated_memory_bytes = 0;
  uint64_t disk_bytes = 0;
  uint64_t allocated_disk_bytes = 0;
  int running = 0;
  int pending = 0;
  std::map<std::string, int> warm;  // by image: sandboxes started ahead of time, ready
};

// NOT_FOUND (CWSANDBOX_SANDBOX_NOT_FOUND) for a sandbox the caller has none of.
Error SandboxNotFound(const std::string& id);

class SandboxManager {
 public:
  SandboxManager(Config config, Store* store, ImageProvider* images, net::NetworkProvider* network,
                 RuntimeProvider* runtime, Metrics* metrics);
  ~SandboxManager();
  SandboxManager(const SandboxManager&) = delete;
  SandboxManager& operator=(const SandboxManager&) = delete;

  // Recovers what the last daemon left (recovery.h) and starts the worker and event threads.
  Status Start();
  // Stops accepting work and joins the threads; removes warm sandboxes. Sandboxes keep running.
  void Shutdown();

  // Admits the request (admission.h), records the sandbox and starts creating it. Returns the
  // record as accepted, or the existing record for a retried (tenant, request_id).
  Result<SandboxRecord> Create(const std::string& tenant, CreateRequest request);
  Result<SandboxRecord> Get(const std::string& tenant, const std::string& id);
  Result<ListResult> List(const std::string& tenant, const ListFilter& filter);
  // Deletes the sandbox: stops it (gracefully for `grace_seconds`) and removes its files (also
  // the files an ended sandbox kept). Its record stays for the retention period. Deleting it again
  // is NOT_FOUND ("already deleted"), unless `request_id` is the first delete's.
  Result<SandboxRecord> Stop(const std::string& tenant, const std::string& id, int grace_seconds,
                             const std::string& request_id = "");
  // Extends a running sandbox's lifetime by `seconds` (> 0), up to the node's
  // max_lifetime_seconds in all; sbx-init's own deadline moves with it.
  Result<SandboxRecord> ExtendLifetime(const std::string& tenant, const std::string& id,
                                       int seconds);
  Result<PurgeResult> Purge(const std::string& tenant, const std::vector<std::string>& tags,
                            bool purge_all, bool dry_run);

  // Blocks until the state is no longer PENDING/CREATING or the deadline passes; the record
  // either way.
  Result<SandboxRecord> WaitSettled(const std::string& tenant, const std::string& id,
                                    int64_t deadline_ms);
  // Blocks until the sandbox has ended (its logs are saved by then) or the deadline passes.
  Result<SandboxRecord> WaitEnded(const std::string& tenant, const std::string& id,
                                  int64_t deadline_ms);
  // What a caller of AgentSocket will do in the sandbox.
  enum class Access {
    kRun,        // run processes or change files: the sandbox must be RUNNING
    kReadFiles,  // read files: also an ended sandbox whose files are kept
  };
  // sbx-init's socket of a sandbox open to `access`; FAILED_PRECONDITION otherwise.
  Result<std::string> AgentSocket(const std::string& tenant, const std::string& id,
                                  int64_t deadline_ms, Access access = Access::kRun);
  // What a RUNNING sandbox uses now (usage_sampler.h); FAILED_PRECONDITION for one that is not
  // running.
  Result<SandboxUsage> Usage(const std::string& tenant, const std::string& id);
  // The saved output of a sandbox whose main process ended.
  Result<std::pair<std::string, uint64_t>> SavedLogs(const std::string& id);

  // Removes the warm sandboxes made from the image `digest` (before the image is removed) and
  // stops preparing them.
  void DropWarm(const std::string& digest);
  // Removes the files that ended sandboxes of the image `digest` kept (before the image is
  // removed); returns how many sandboxes had some.
  int DropKeptFiles(const std::string& digest);

  Capacity GetCapacity();
  const Config& config() const { return config_; }
  std::string runner_id() const { return config_.runner_id; }

 private:
  struct Entry {
    SandboxRecord record;
    bool finalizing = false;  // a stop or exit job owns its ending
    bool image_held = false;
    bool dropping_files = false;  // a job removes the files the ended sandbox kept
    bool drop_queued = false;     // that job is queued to make room for a waiting sandbox
  };

  Status Persist(const SandboxRecord& record);  // mu_ held
  Result<SandboxRecord> WaitFor(const std::string& tenant, const std::string& id,
                                int64_t deadline_ms, const std::function<bool(State)>& done);
  Result<SandboxRecord> StopLocked(std::unique_lock<std::mutex>& lock, const std::string& id,
                                   int grace_seconds, const std::string& reason);
  void StartCreating(const std::string& id);  // mu_ held
  RuntimeSandbox SandboxOf(const SandboxRecord& record) const;

  // Jobs (worker threads).
  void CreateJob(const std::string& id);
  // Creates a sandbox from its claimed warm sandbox; false when that one could not serve.
  bool CreateFromWarm(const std::string& id, const WarmSandbox& warm, const SandboxRecord& record,
                      const CreateRequest& request, const ResolvedImage& image,
                      const SecretEnv& secrets, int64_t started);
  void StopJob(const std::string& id);
  void ExitJob(const std::string& id);
  // The sandbox runs: records it and watches its main process.
  void MarkRunning(const std::string& id, const RuntimeSandbox& sandbox,
                   const net::NetworkAttachment& network, const std::string& digest,
                   int64_t started_ns, bool warm_eligible);
  // Records how the sandbox ends before its teardown, so a crash in it is finished right.
  void RecordEnding(const std::string& id, const SandboxRecord::Ending& ending);
  // Saves the main process's output in the store (while sbx-init still has it).
  void SaveLogs(const SandboxRecord& record);
  // Tears the sandbox down and ends its record (an exit records its ending first).
  void TearDownAndFinish(const std::string& id, const SandboxRecord::Ending& ending);
  void Finish(const std::string& id, const SandboxRecord::Ending& ending);
  // Finish, but what is needed to read the sandbox's files stays until `files_until_ns`.
  void FinishKeepingFiles(const std::string& id, const SandboxRecord::Ending& ending,
                          int64_t files_until_ns);
  // Ends an exit or a lifetime's stop keeping the files when the node keeps them and the
  // runtime could quiet the sandbox; false: nothing was done, tear it down.
  bool EndKeepingFiles(const std::string& id, const RuntimeSandbox& sandbox,
                       const SandboxRecord::Ending& ending);
  // Removes the files an ended sandbox kept (a delete, or their retention passed).
  void DropFilesJob(const std::string& id);
  // Starts creating the queued sandboxes that admission let in.
  void StartAdmittedLocked(const std::vector<std::string>& admitted);
  // Every PENDING sandbox's reason and message say what it waits for (admission's words).
  void ExplainWaitsLocked();
  // The first PENDING sandbox waits for disk: the files kept longest go, one sandbox's at a time.
  void ReclaimKeptFilesLocked();
  // The host's available memory, for admission (UINT64_MAX when it cannot be read).
  static uint64_t HostAvailableMemory();
  // Admits what waits and fits now: the host's room changes without any sandbox ending.
  void ReadmitQueued();
  // Removes what the runtime made of `id`; its host ids come free once that is done.
  Status Destroy(const std::string& id);
  void Watch(const std::string& id, const RuntimeSandbox& sandbox);

  void EventLoop();
  void Recover();

  Config config_;
  NodeShape node_;
  SpecDefaults spec_defaults_;
  Store* store_;
  ImageProvider* images_;
  net::NetworkProvider* network_;
  RuntimeProvider* runtime_;
  Metrics* metrics_;
  CpuRateSampler cpu_rates_;  // for Usage

  std::mutex mu_;
  std::mutex extend_mu_;  // taken before mu_, by ExtendLifetime only
  std::condition_variable changed_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, CreateRequest> pending_requests_;  // by id, until its create job runs
  std::map<std::string, WarmSandbox> claimed_warm_;        // by id, until its create job runs
  Admission admission_;
  bool stopping_ = false;

  Watcher watcher_;
  IdRanges id_ranges_;  // every sandbox's own host ids, warm ones included
  WarmSandboxes warm_;
  JobQueue jobs_;
  std::thread event_thread_;
};

}  // namespace sbx::daemon
