// File: admission.h
//
// Whether a create may go ahead, and when: idempotency (a tenant's request id names one
// sandbox), the tenant's quota of live sandboxes, the node's capacity (each running or creating
// sandbox reserves its CPU, memory and disk requests) and the host's real room (its available
// memory stays above a reserve). A create that does not fit now waits in a FIFO: a later one
// never overtakes it.
//
// Admission keeps only this bookkeeping and answers with decisions; it creates, persists and
// starts nothing. The sandbox manager asks it under its own lock (it is not thread-safe) and does
// what it says.

#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "src/base/result.h"

namespace sbx::daemon {

// What a sandbox reserves of the node while it is created and runs.
struct Demand {
  uint64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  uint64_t disk_bytes = 0;
};

struct AdmissionLimits {
  uint64_t cpu_millis = 0;  // the node's capacity
  uint64_t memory_bytes = 0;
  uint64_t disk_bytes = UINT64_MAX;
  uint64_t memory_reserve_bytes = 0;         // host memory a create must leave available
  int default_quota = 1000;                  // live sandboxes per tenant
  std::map<std::string, int> tenant_quotas;  // overrides, by tenant
};

struct AdmissionUsage {
  uint64_t cpu_millis = 0;  // reserved
  uint64_t memory_bytes = 0;
  uint64_t disk_bytes = 0;
  int queued = 0;
};

class Admission {
 public:
  explicit Admission(AdmissionLimits limits);

  enum class Verdict {
    kReplay,  // an earlier create with this request id made `replay_id`: answer with it
    kAdmit,   // fits now and nothing waits ahead of it
    kQueue,   // must wait for capacity
  };
  struct Decision {
    Verdict verdict = Verdict::kAdmit;
    std::string replay_id;
  };

  // The decision for a new create. Errors: the tenant's quota is used up (RESOURCE_EXHAUSTED),
  // the demand can never fit the node (RESOURCE_EXHAUSTED), the request id was used before for a
  // different spec (INVALID_ARGUMENT).
  Result<Decision> Decide(const std::string& tenant, const std::string& request_id,
                          const std::string& fingerprint, const Demand& demand) const;

  // Sandbox `id` was accepted: it takes its request id and a place in its tenant's quota, and
  // either its reservation (`admitted`) or the last place in the queue.
  void Accept(const std::string& id, const std::string& tenant, const std::string& request_id,
              const std::string& fingerprint, const Demand& demand, bool admitted);
  // A sandbox found at a restart: like Accept, never queued. `active` ones hold their reservation
  // and their place in the quota; ended ones only their request id.
  void Restore(const std::string& id, const std::string& tenant, const std::string& request_id,
               const std::string& fingerprint, const Demand& demand, bool active);
  // Sandbox `id` ended (or was stopped while it waited): its reservation, place in the queue and
  // in the quota are free. Returns the queued sandboxes that fit now, in order; their
  // reservations are made.
  std::vector<std::string> Release(const std::string& id);
  // Like Release, except that the sandbox keeps its disk reserved: its files stay readable after
  // its end. ReleaseDisk gives it back.
  std::vector<std::string> ReleaseKeepingDisk(const std::string& id);
  std::vector<std::string> ReleaseDisk(const std::string& id);
  // A sandbox found at a restart with its files kept: it holds only its disk and request id.
  void RestoreKeepingDisk(const std::string& id, const std::string& tenant,
                          const std::string& request_id, const std::string& fingerprint,
                          const Demand& demand);
  // The record of an ended sandbox is gone: its request id may be used again.
  void Forget(const std::string& id);

  // Why queued sandbox `id` waits, in words: the resources it does not fit in now ("CPU: 2000m of
  // 2000m reserved, it needs 500m") and how many wait ahead of it. Empty when it does not wait.
  std::string WaitingFor(const std::string& id) const;
  // The host's available memory now (MemAvailable); creates fit only while it stays above the
  // reserve. Unknown until set: then only the reservations count.
  void SetHostAvailableMemory(uint64_t bytes) { host_available_memory_ = bytes; }
  // Admits the queued sandboxes that fit now (the host's room changed); like Release's result.
  std::vector<std::string> Readmit() { return AdmitQueued(); }
  // Whether the first queued sandbox waits for disk, which kept files may be holding.
  bool QueueHeadWaitsForDisk() const;
  // The queued sandboxes, first first.
  const std::deque<std::string>& queued() const { return queue_; }

  AdmissionUsage usage() const;
  const AdmissionLimits& limits() const { return limits_; }

 private:
  struct Held {
    std::string tenant;
    std::string request_key;  // tenant + request id, empty without a request id
    std::string fingerprint;
    Demand demand;
    bool live = false;       // counts against the tenant's quota
    bool reserved = false;   // holds node capacity
    bool disk_kept = false;  // holds only its disk (its files outlive it)
  };
  bool Fits(const Demand& demand) const;
  bool HostHasRoom(const Demand& demand) const;
  void Reserve(const Demand& demand, int sign);  // +1 takes, -1 gives back
  std::vector<std::string> ReleaseHeld(const std::string& id, bool keep_disk);
  int Quota(const std::string& tenant) const;
  std::vector<std::string> AdmitQueued();

  AdmissionLimits limits_;
  std::map<std::string, Held> sandboxes_;          // by sandbox id
  std::map<std::string, std::string> by_request_;  // request key -> sandbox id
  std::map<std::string, int> live_by_tenant_;
  std::deque<std::string> queue_;
  uint64_t reserved_cpu_ = 0;
  uint64_t reserved_memory_ = 0;
  uint64_t reserved_disk_ = 0;
  uint64_t host_available_memory_ = UINT64_MAX;
};

}  // namespace sbx::daemon
