#include "src/daemon/usage_sampler.h"

namespace sbx::daemon {

namespace {

uint64_t Rate(uint64_t cpu_ns, uint64_t since_cpu_ns, int64_t now_ns, int64_t since_ns) {
  if (now_ns <= since_ns || cpu_ns < since_cpu_ns) return 0;
  // CPU nanoseconds per wall nanosecond, in thousandths; in floating point, as a long window's
  // product would overflow 64 bits.
  double rate = static_cast<double>(cpu_ns - since_cpu_ns) / static_cast<double>(now_ns - since_ns);
  return static_cast<uint64_t>(rate * 1000.0 + 0.5);
}

}  // namespace

uint64_t CpuRateSampler::Millicores(const std::string& id, uint64_t cpu_ns, int64_t now_ns,
                                    int64_t start_ns) {
  std::lock_guard lock(mu_);
  for (auto it = readings_.begin(); it != readings_.end();) {
    if (it->first != id && now_ns - it->second.back().at_ns > kForgetAfterNs) {
      it = readings_.erase(it);
    } else {
      ++it;
    }
  }
  std::deque<Reading>& kept = readings_[id];
  // A total that went down belongs to another sandbox of the same id (a restart of the count).
  if (!kept.empty() && cpu_ns < kept.back().cpu_ns) kept.clear();
  uint64_t millicores = 0;
  const Reading* base = nullptr;
  for (auto it = kept.rbegin(); it != kept.rend(); ++it) {
    if (now_ns - it->at_ns >= kMinWindowNs) {
      base = &*it;
      break;
    }
  }
  if (base != nullptr) {
    millicores = Rate(cpu_ns, base->cpu_ns, now_ns, base->at_ns);
  } else {
    millicores = Rate(cpu_ns, 0, now_ns, start_ns);
  }
  if (kept.empty() || now_ns - kept.back().at_ns >= kMinWindowNs) {
    kept.push_back({now_ns, cpu_ns});
    if (kept.size() > 2) kept.pop_front();
  }
  return millicores;
}

}  // namespace sbx::daemon
