// File: sandbox_manager.h
//
// SandboxManager owns every sandbox of the node: admission against the node's capacity and the
// tenants' quotas, the state machine (sandbox_record.h), idempotent creates, stops, lifetimes,
// retention of terminal records, and recovery after a restart. It persists every transition in
// the Store before reporting it, runs slow work (image pulls, sbx-runtime, teardown) on a worker
// pool, and watches each running sandbox's main process through sbx-init.
//
// Thread-safe; gRPC handlers call it concurrently.

#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/daemon/config.h"
#include "src/daemon/disk_pool.h"
#include "src/daemon/id_ranges.h"
#include "src/daemon/image_provider.h"
#include "src/daemon/metrics.h"
#include "src/daemon/network_provider.h"
#include "src/daemon/runtime_helpers.h"
#include "src/daemon/sandbox_record.h"
#include "src/daemon/store.h"
#include "src/daemon/warm_pool.h"
#include "src/runtime/cgroup/cgroup_driver.h"
#include "src/runtime/spec.h"

namespace sbx::daemon {

struct ListFilter {
  std::vector<std::string> tags;  // all must be present
  std::optional<State> state;
  bool show_terminated = false;
  int page_size = 0;
  std::string page_token;
};

struct ListResult {
  std::vector<SandboxRecord> sandboxes;
  std::string next_page_token;
};

struct PurgeResult {
  int count = 0;
  std::vector<std::string> failed;
};

struct Capacity {
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  uint64_t allocated_cpu_millis = 0;
  uint64_t allocated_memory_bytes = 0;
  int running = 0;
  int pending = 0;
  std::map<std::string, int> warm;  // by image: sandboxes started ahead of time, ready
};

struct ManagerPaths {
  std::string runtime_binary;  // sbx-runtime
  std::string init_binary;     // sbx-init
};

class SandboxManager {
 public:
  SandboxManager(Config config, ManagerPaths paths, Store* store, ImageProvider* images,
                 NetworkProvider* network, runtime::CgroupDriver* cgroups, Metrics* metrics);
  ~SandboxManager();
  SandboxManager(const SandboxManager&) = delete;
  SandboxManager& operator=(const SandboxManager&) = delete;

  // Loads the store, re-adopts running sandboxes, cleans up what nothing owns, and starts the
  // worker and event threads.
  Status Start();
  // Stops accepting work and joins the threads. Sandboxes keep running.
  void Shutdown();

  // Validates against quotas and capacity, records the sandbox and starts creating it. Returns
  // the record as accepted; an existing record for the same (tenant, request_id).
  Result<SandboxRecord> Create(const std::string& tenant, CreateRequest request);
  Result<SandboxRecord> Get(const std::string& tenant, const std::string& id);
  Result<ListResult> List(const std::string& tenant, const ListFilter& filter);
  Result<SandboxRecord> Stop(const std::string& tenant, const std::string& id, int grace_seconds);
  Result<PurgeResult> Purge(const std::string& tenant, const std::vector<std::string>& tags,
                            bool purge_all, bool dry_run);

  // Waits until the sandbox is RUNNING (or ends, or the deadline passes) and returns its record.
  Result<SandboxRecord> WaitUntilRunningOrDone(const std::string& tenant, const std::string& id,
                                               int64_t deadline_ms);
  // Like Get, but blocks until the state is no longer PENDING/CREATING or the deadline passes.
  Result<SandboxRecord> WaitSettled(const std::string& tenant, const std::string& id,
                                    int64_t deadline_ms);
  // Blocks until the sandbox has ended (its logs are saved by then) or the deadline passes, and
  // returns its record either way.
  Result<SandboxRecord> WaitEnded(const std::string& tenant, const std::string& id,
                                  int64_t deadline_ms);
  // sbx-init's socket of a RUNNING sandbox; FAILED_PRECONDITION otherwise.
  Result<std::string> AgentSocket(const std::string& tenant, const std::string& id,
                                  int64_t deadline_ms);
  // The saved output of a sandbox whose main process ended.
  Result<std::pair<std::string, uint64_t>> SavedLogs(const std::string& id);

  // Removes the warm sandboxes made from the image `digest` (before the image is removed) and
  // stops preparing them.
  void DropWarm(const std::string& digest);

  Capacity GetCapacity();
  const Config& config() const { return config_; }
  std::string runner_id() const { return config_.runner_id; }

 private:
  struct Entry {
    SandboxRecord record;
    bool stop_requested = false;
    bool finalizing = false;
    std::string stop_reason;  // USER_STOPPED or LIFETIME_EXCEEDED
    UniqueFd watch_fd;        // WaitMain connection while RUNNING
  };

  // Transitions (mu_ held).
  Status Persist(const SandboxRecord& record);
  // Blocks until `done(state)`, the daemon stops, or the deadline passes; the record either way.
  Result<SandboxRecord> WaitFor(const std::string& tenant, const std::string& id,
                                int64_t deadline_ms, const std::function<bool(State)>& done);
  void Admit();  // promotes pending sandboxes that fit
  bool Fits(const SandboxRecord& record) const;
  void Reserve(const SandboxRecord& record);
  void Unreserve(const SandboxRecord& record);
  void Enqueue(std::function<void()> job);
  void Wake();

  // Jobs (worker threads).
  void CreateJob(std::string id);
  void StopJob(std::string id);
  void ExitJob(std::string id);
  void Finish(const std::string& id, State state, std::string reason, std::string message,
              std::optional<int> exit_code);
  Result<std::string> BuildBundle(const SandboxRecord& record, const CreateRequest& request,
                                  const ResolvedImage& image, const NetworkAttachment& network,
                                  bool await_start = false);
  // The main process: Docker's rules for entrypoint, cmd, env and working directory.
  Result<runtime::Process> BuildProcess(const CreateRequest& request, const ResolvedImage& image);
  // Runs sbx-runtime on a bundle, with a writable layer from the pool.
  Result<runtime::SandboxState> RunRuntime(const std::string& id, const std::string& bundle);
  // Records the network a sandbox got (mu_ not held).
  void RecordNetwork(const std::string& id, const NetworkAttachment& network);
  // The sandbox runs (mu_ not held): records it, watches its main process.
  void MarkRunning(const std::string& id, const std::string& bundle,
                   const runtime::SandboxState& state, int64_t started_ns, bool warm_eligible);

  // Warm sandboxes (warm_pool.h).
  // Whether a fill may run now (mu_ held): no create in progress, none accepted for
  // warm_pool_refill_delay_ms.
  bool QuietForWarmFill() const;
  void ScheduleWarmFill();  // mu_ held
  void FillWarmJob();
  Result<WarmSandbox> CreateWarm(const std::string& image);
  // Gives a claimed warm sandbox its record's limits and starts its main process.
  Status StartWarm(const WarmSandbox& warm, const SandboxRecord& record,
                   const CreateRequest& request, const ResolvedImage& image);
  void DestroyWarm(const WarmSandbox& warm);
  void DestroyWarmLater(std::vector<WarmSandbox> sandboxes);
  void SaveLogs(const SandboxRecord& record);

  // Event thread: main-process watches, lifetimes, retention.
  void EventLoop();
  Status Watch(Entry& entry);
  void OnWatchEvent(const std::string& id);
  void CheckTimers();

  void Recover();
  void ReconcileOrphans();

  Config config_;
  ManagerPaths paths_;
  Store* store_;
  ImageProvider* images_;
  NetworkProvider* network_;
  runtime::CgroupDriver* cgroups_;
  Metrics* metrics_;
  IdRanges id_ranges_;  // every sandbox's own host ids, warm ones included
  uint64_t capacity_cpu_millis_ = 0;
  uint64_t capacity_memory_bytes_ = 0;
  uint64_t default_cpu_millis_ = 0;
  uint64_t default_memory_bytes_ = 0;
  uint64_t default_disk_bytes_ = 0;

  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, Entry> entries_;
  std::map<std::string, CreateRequest> pending_requests_;  // by id, until created
  std::deque<std::string> pending_;                        // FIFO of PENDING ids
  std::map<int, std::string> watch_by_fd_;
  uint64_t allocated_cpu_ = 0;
  uint64_t allocated_memory_ = 0;
  int create_jobs_ = 0;         // queued or running; warm fills wait for none
  int64_t last_create_ns_ = 0;  // monotonic time of the last accepted create
  WarmPool warm_;
  std::map<std::string, WarmSandbox> claimed_warm_;  // by sandbox id, until its create job runs
  bool warm_fill_scheduled_ = false;
  bool warm_filling_ = false;  // a warm sandbox is being made (DropWarm waits for it)

  std::mutex jobs_mu_;
  std::condition_variable jobs_cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> workers_;
  std::thread event_thread_;
  UniqueFd epoll_fd_;
  UniqueFd wake_fd_;
  UniqueFd init_copy_;        // sealed sbx-init, handed to every sbx-runtime create
  UniqueFd seccomp_program_;  // the compiled seccomp policy, likewise
  std::unique_ptr<RuntimeHelpers> helpers_;
  std::unique_ptr<DiskPool> disks_;
  bool stopping_ = false;
};

}  // namespace sbx::daemon
