// File: usage_sampler.h
//
// A sandbox's CPU as a rate (millicores) from the kernel's running total of its CPU time. A rate
// needs two readings; sbxd keeps none in the background (a thread reading every sandbox's cgroup
// every second costs the node for readings nobody asks for), so the rate of a reading is taken
// against the sandbox's previous reading at least a second old, and the first reading's against
// the sandbox's start. A client that reads every second or two (`sbx stats`) sees the last second
// or two; one that reads rarely sees the average since its previous reading.

#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

namespace sbx::daemon {

// What the runtime reads of a running sandbox, with its CPU as a rate.
struct SandboxUsage {
  uint64_t cpu_millicores = 0;
  uint64_t cpu_usage_ns = 0;
  uint64_t memory_bytes = 0;
  uint64_t memory_limit_bytes = 0;
  uint64_t pids = 0;
  uint64_t disk_used_bytes = 0;
  uint64_t disk_total_bytes = 0;
  int64_t read_ns = 0;  // wall clock
};

class CpuRateSampler {
 public:
  // The shortest window a rate is taken over, when a reading that old exists.
  static constexpr int64_t kMinWindowNs = 1'000'000'000;
  // Readings older than this are forgotten (the sandbox has likely ended).
  static constexpr int64_t kForgetAfterNs = 600'000'000'000;

  // Millicores of sandbox `id`, whose processes have used `cpu_ns` of CPU by `now_ns` since it
  // started at `start_ns` (wall clock).
  uint64_t Millicores(const std::string& id, uint64_t cpu_ns, int64_t now_ns, int64_t start_ns);

 private:
  struct Reading {
    int64_t at_ns;
    uint64_t cpu_ns;
  };
  std::mutex mu_;
  // Per sandbox, the kept readings, oldest first, each at least kMinWindowNs after the one before.
  std::map<std::string, std::deque<Reading>> readings_;
};

}  // namespace sbx::daemon
