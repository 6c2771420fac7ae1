#include "src/daemon/admission.h"

#include <algorithm>

#include "src/base/strings.h"

namespace sbx::daemon {

namespace {

std::string RequestKey(const std::string& tenant, const std::string& request_id) {
  // A tenant name cannot hold a NUL: the key is unambiguous.
  return request_id.empty() ? std::string() : tenant + '\0' + request_id;
}

std::string DescribeDemand(uint64_t cpu_millis, uint64_t memory_bytes, uint64_t disk_bytes) {
  std::string text = std::to_string(cpu_millis) + "m CPU, " + FormatBytes(memory_bytes);
  if (disk_bytes != UINT64_MAX) text += ", " + FormatBytes(disk_bytes) + " of disk";
  return text;
}

}  // namespace

Admission::Admission(AdmissionLimits limits) : limits_(std::move(limits)) {}

int Admission::Quota(const std::string& tenant) const {
  auto it = limits_.tenant_quotas.find(tenant);
  return it != limits_.tenant_quotas.end() && it->second > 0 ? it->second : limits_.default_quota;
}

std::string Admission::WaitingFor(const std::string& id) const {
  auto position = std::find(queue_.begin(), queue_.end(), id);
  if (position == queue_.end()) return "";
  const Demand& d = sandboxes_.at(id).demand;
  std::vector<std::string> short_of;
  if (reserved_cpu_ + d.cpu_millis > limits_.cpu_millis) {
    short_of.push_back("CPU: " + std::to_string(reserved_cpu_) + "m of " +
                       std::to_string(limits_.cpu_millis) + "m reserved, it needs " +
                       std::to_string(d.cpu_millis) + "m");
  }
  if (reserved_memory_ + d.memory_bytes > limits_.memory_bytes) {
    short_of.push_back("memory: " + FormatBytes(reserved_memory_) + " of " +
                       FormatBytes(limits_.memory_bytes) + " reserved, it needs " +
                       FormatBytes(d.memory_bytes));
  }
  if (reserved_disk_ + d.disk_bytes > limits_.disk_bytes) {
    short_of.push_back("disk: " + FormatBytes(reserved_disk_) + " of " +
                       FormatBytes(limits_.disk_bytes) + " reserved, it needs " +
                       FormatBytes(d.disk_bytes));
  }
  if (!HostHasRoom(d)) {
    short_of.push_back("host memory: " + FormatBytes(host_available_memory_) +
                       " available, memory_reserve keeps " +
                       FormatBytes(limits_.memory_reserve_bytes) + " free" +
                       (d.memory_bytes ? ", it needs " + FormatBytes(d.memory_bytes) : ""));
  }
  auto ahead = position - queue_.begin();
  std::string why = short_of.empty() ? "" : "waiting for " + Join(short_of, "; ");
  if (ahead > 0) {
    why += (why.empty() ? "waiting behind " : "; behind ") + std::to_string(ahead) +
           " earlier sandbox" + (ahead == 1 ? "" : "es") + " of the node's queue";
  }
  return why;
}

bool Admission::HostHasRoom(const Demand& demand) const {
  if (host_available_memory_ == UINT64_MAX) return true;
  return host_available_memory_ >= limits_.memory_reserve_bytes + demand.memory_bytes;
}

bool Admission::Fits(const Demand& demand) const {
  return reserved_cpu_ + demand.cpu_millis <= limits_.cpu_millis &&
         reserved_memory_ + demand.memory_bytes <= limits_.memory_bytes &&
         reserved_disk_ + demand.disk_bytes <= limits_.disk_bytes && HostHasRoom(demand);
}

bool Admission::QueueHeadWaitsForDisk() const {
  if (queue_.empty()) return false;
  return reserved_disk_ + sandboxes_.at(queue_.front()).demand.disk_bytes > limits_.disk_bytes;
}

Result<Admission::Decision> Admission::Decide(const std::string& tenant,
                                              const std::string& request_id,
                                              const std::string& fingerprint,
                                              const Demand& demand) const {
  if (auto it = by_request_.find(RequestKey(tenant, request_id)); it != by_request_.end()) {
    const Held& earlier = sandboxes_.at(it->second);
    if (earlier.fingerprint != fingerprint) {
      return Error::InvalidArgument("request_id " + Quote(request_id) +
                                    " was used by an earlier create with a different spec (it "
                                    "made sandbox " +
                                    it->second + "); use a new request_id for a new sandbox")
          .WithReason("CWSANDBOX_INVALID_REQUEST")
          .WithMetadata("field", "request_id")
          .WithMetadata("sandbox_id", it->second);
    }
    return Decision{Verdict::kReplay, it->second};
  }
  int quota = Quota(tenant);
  auto live = live_by_tenant_.find(tenant);
  int count = live == live_by_tenant_.end() ? 0 : live->second;
  if (count >= quota) {
    return Error::ResourceExhausted("tenant " + Quote(tenant) + " already has " +
                                    std::to_string(count) + " sandboxes, its limit")
        .WithReason("CWSANDBOX_QUOTA_EXCEEDED")
        .WithMetadata("limit", std::to_string(quota));
  }
  if (demand.cpu_millis > limits_.cpu_millis || demand.memory_bytes > limits_.memory_bytes ||
      demand.disk_bytes > limits_.disk_bytes) {
    return Error::ResourceExhausted(
               "the request (" +
               DescribeDemand(demand.cpu_millis, demand.memory_bytes, demand.disk_bytes) +
               ") can never fit this node (" +
               DescribeDemand(limits_.cpu_millis, limits_.memory_bytes, limits_.disk_bytes) + ")")
        .WithReason("CWSANDBOX_RUNNER_CAPACITY_EXHAUSTED");
  }
  return Decision{queue_.empty() && Fits(demand) ? Verdict::kAdmit : Verdict::kQueue, {}};
}

void Admission::Reserve(const Demand& demand, int sign) {
  auto apply = [sign](uint64_t& total, uint64_t amount) {
    total = sign > 0 ? total + amount : total - std::min(total, amount);
  };
  apply(reserved_cpu_, demand.cpu_millis);
  apply(reserved_memory_, demand.memory_bytes);
  apply(reserved_disk_, demand.disk_bytes);
}

void Admission::Accept(const std::string& id, const std::string& tenant,
                       const std::string& request_id, const std::string& fingerprint,
                       const Demand& demand, bool admitted) {
  Held held{tenant, RequestKey(tenant, request_id), fingerprint, demand, true, admitted};
  if (!held.request_key.empty()) by_request_[held.request_key] = id;
  ++live_by_tenant_[tenant];
  if (admitted) {
    Reserve(demand, +1);
  } else {
    queue_.push_back(id);
  }
  sandboxes_[id] = std::move(held);
}

void Admission::Restore(const std::string& id, const std::string& tenant,
                        const std::string& request_id, const std::string& fingerprint,
                        const Demand& demand, bool active) {
  Held held{tenant, RequestKey(tenant, request_id), fingerprint, demand, active, active};
  if (!held.request_key.empty()) by_request_[held.request_key] = id;
  if (active) {
    ++live_by_tenant_[tenant];
    Reserve(demand, +1);
  }
  sandboxes_[id] = std::move(held);
}

std::vector<std::string> Admission::Release(const std::string& id) {
  return ReleaseHeld(id, false);
}

std::vector<std::string> Admission::ReleaseKeepingDisk(const std::string& id) {
  return ReleaseHeld(id, true);
}

std::vector<std::string> Admission::ReleaseHeld(const std::string& id, bool keep_disk) {
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return {};
  Held& held = it->second;
  if (held.reserved) {
    Demand released = held.demand;
    if (keep_disk) released.disk_bytes = 0;
    Reserve(released, -1);
    held.reserved = false;
    held.disk_kept = keep_disk;
  } else if (held.disk_kept && !keep_disk) {
    Reserve({0, 0, held.demand.disk_bytes}, -1);
    held.disk_kept = false;
  }
  if (held.live) {
    held.live = false;
    if (--live_by_tenant_[held.tenant] <= 0) live_by_tenant_.erase(held.tenant);
  }
  std::erase(queue_, id);
  return AdmitQueued();
}

std::vector<std::string> Admission::ReleaseDisk(const std::string& id) {
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end() || !it->second.disk_kept) return {};
  return ReleaseHeld(id, false);
}

void Admission::RestoreKeepingDisk(const std::string& id, const std::string& tenant,
                                   const std::string& request_id, const std::string& fingerprint,
                                   const Demand& demand) {
  Restore(id, tenant, request_id, fingerprint, demand, false);
  Held& held = sandboxes_.at(id);
  held.disk_kept = true;
  Reserve({0, 0, demand.disk_bytes}, +1);
}

std::vector<std::string> Admission::AdmitQueued() {
  std::vector<std::string> admitted;
  while (!queue_.empty()) {
    Held& next = sandboxes_.at(queue_.front());
    if (!Fits(next.demand)) break;  // FIFO: the first that does not fit holds the others back
    next.reserved = true;
    Reserve(next.demand, +1);
    admitted.push_back(queue_.front());
    queue_.pop_front();
  }
  return admitted;
}

void Admission::Forget(const std::string& id) {
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return;
  auto key = by_request_.find(it->second.request_key);
  if (key != by_request_.end() && key->second == id) by_request_.erase(key);
  sandboxes_.erase(it);
}

AdmissionUsage Admission::usage() const {
  return {reserved_cpu_, reserved_memory_, reserved_disk_, static_cast<int>(queue_.size())};
}

}  // namespace sbx::daemon
