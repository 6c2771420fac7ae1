#include "src/daemon/byte_budget.h"

#include <algorithm>
#include <chrono>

#include "src/base/clock.h"

namespace sbx::daemon {

ByteBudget::Reservation::Reservation(Reservation&& other) noexcept
    : budget_(std::exchange(other.budget_, nullptr)),
      tenant_(std::move(other.tenant_)),
      bytes_(std::exchange(other.bytes_, 0)) {}

ByteBudget::Reservation& ByteBudget::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = std::exchange(other.budget_, nullptr);
    tenant_ = std::move(other.tenant_);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void ByteBudget::Reservation::Release() {
  if (budget_ == nullptr) return;
  budget_->Give(tenant_, bytes_);
  budget_ = nullptr;
  bytes_ = 0;
}

Result<ByteBudget::Reservation> ByteBudget::Acquire(const std::string& tenant, uint64_t bytes,
                                                    int64_t deadline_ms) {
  uint64_t limit = std::min(total_, per_tenant_);
  if (bytes > limit) {
    return Error::ResourceExhausted(std::to_string(bytes) + " bytes are more than the " +
                                    std::to_string(limit) +
                                    " bytes a tenant may hold in flight for file transfers");
  }
  std::unique_lock lock(mu_);
  Tenant& t = tenants_[tenant];
  uint64_t ticket = next_ticket_++;
  t.waiting.push_back(ticket);
  auto fits = [&] {
    return t.waiting.front() == ticket && t.used + bytes <= per_tenant_ && used_ + bytes <= total_;
  };
  while (!fits()) {
    int64_t left = deadline_ms - MonotonicMillis();
    if (left <= 0 ||
        changed_.wait_for(lock, std::chrono::milliseconds(left)) == std::cv_status::timeout) {
      if (fits()) break;
      t.waiting.erase(std::find(t.waiting.begin(), t.waiting.end(), ticket));
      if (t.waiting.empty() && t.used == 0) tenants_.erase(tenant);
      changed_.notify_all();  // the next in line may fit now
      return Error::ResourceExhausted(
                 "too much file data is in flight for this tenant or node; retry later")
          .WithReason("CWSANDBOX_RESOURCE_EXHAUSTED");
    }
  }
  t.waiting.pop_front();
  t.used += bytes;
  used_ += bytes;
  changed_.notify_all();  // the tenant's next call may fit too
  return Reservation(this, tenant, bytes);
}

std::optional<ByteBudget::Reservation> ByteBudget::TryAcquire(const std::string& tenant,
                                                              uint64_t bytes) {
  std::lock_guard lock(mu_);
  auto it = tenants_.find(tenant);
  uint64_t used = it == tenants_.end() ? 0 : it->second.used;
  bool queued = it != tenants_.end() && !it->second.waiting.empty();
  if (queued || used + bytes > per_tenant_ || used_ + bytes > total_) return std::nullopt;
  tenants_[tenant].used += bytes;
  used_ += bytes;
  return Reservation(this, tenant, bytes);
}

void ByteBudget::Give(const std::string& tenant, uint64_t bytes) {
  std::lock_guard lock(mu_);
  auto it = tenants_.find(tenant);
  if (it != tenants_.end()) {
    it->second.used -= std::min(it->second.used, bytes);
    if (it->second.used == 0 && it->second.waiting.empty()) tenants_.erase(it);
  }
  used_ -= std::min(used_, bytes);
  changed_.notify_all();
}

uint64_t ByteBudget::in_use() const {
  std::lock_guard lock(mu_);
  return used_;
}

uint64_t ByteBudget::in_use(const std::string& tenant) const {
  std::lock_guard lock(mu_);
  auto it = tenants_.find(tenant);
  return it == tenants_.end() ? 0 : it->second.used;
}

}  // namespace sbx::daemon
