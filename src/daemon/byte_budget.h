// File: byte_budget.h
//
// A bound on memory held for file contents in flight, per tenant and in total. A call that needs
// to hold a file in memory (a unary ReadFile answers with the whole file) first acquires its
// size; when that would exceed the tenant's share or the total, it waits until enough is
// released. A tenant's calls are served in arrival order, and one tenant waiting at its share
// never holds up another's.
//
//   ByteBudget budget(512 << 20, 256 << 20);
//   SBX_ASSIGN_OR_RETURN(auto held, budget.Acquire("team-a", 64 << 20, deadline_ms));
//   ... build the response; `held` gives the bytes back when destroyed ...
//
// Thread-safe. Reservations must not outlive the budget.

#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "src/base/result.h"

namespace sbx::daemon {

class ByteBudget {
 public:
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& other) noexcept;
    Reservation& operator=(Reservation&& other) noexcept;
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    ~Reservation() { Release(); }

    uint64_t bytes() const { return bytes_; }
    void Release();

   private:
    friend class ByteBudget;
    Reservation(ByteBudget* budget, std::string tenant, uint64_t bytes)
        : budget_(budget), tenant_(std::move(tenant)), bytes_(bytes) {}
    ByteBudget* budget_ = nullptr;
    std::string tenant_;
    uint64_t bytes_ = 0;
  };

  ByteBudget(uint64_t total, uint64_t per_tenant) : total_(total), per_tenant_(per_tenant) {}
  ByteBudget(const ByteBudget&) = delete;
  ByteBudget& operator=(const ByteBudget&) = delete;

  // Holds `bytes` for `tenant`, waiting until they fit. kResourceExhausted at once when they can
  // never fit (more than the tenant's share); kResourceExhausted when they do not fit before
  // `deadline_ms` (MonotonicMillis).
  Result<Reservation> Acquire(const std::string& tenant, uint64_t bytes, int64_t deadline_ms);
  // Holds `bytes` only if they fit now and none of the tenant's calls is waiting; nullopt
  // otherwise.
  std::optional<Reservation> TryAcquire(const std::string& tenant, uint64_t bytes);

  uint64_t in_use() const;
  uint64_t in_use(const std::string& tenant) const;
  uint64_t total() const { return total_; }
  uint64_t per_tenant() const { return per_tenant_; }

 private:
  struct Tenant {
    uint64_t used = 0;
    std::deque<uint64_t> waiting;  // tickets, oldest first
  };
  void Give(const std::string& tenant, uint64_t bytes);

  const uint64_t total_;
  const uint64_t per_tenant_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, Tenant> tenants_;
  uint64_t used_ = 0;
  uint64_t next_ticket_ = 0;
};

}  // namespace sbx::daemon
