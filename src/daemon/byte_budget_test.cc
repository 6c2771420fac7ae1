#include "src/daemon/byte_budget.h"

#include <atomic>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "src/base/clock.h"

namespace sbx::daemon {
namespace {

constexpr int64_t kLong = 60000;

int64_t In(int64_t ms) { return MonotonicMillis() + ms; }

// Returns once a call of `tenant` is waiting (TryAcquire never jumps the queue).
void WaitQueued(ByteBudget& budget, const std::string& tenant) {
  while (budget.TryAcquire(tenant, 0)) std::this_thread::yield();
}

TEST(ByteBudgetTest, HoldsUpToTheTenantShareAndTheTotal) {
  ByteBudget budget(100, 60);
  auto a1 = budget.Acquire("a", 40, In(kLong));
  ASSERT_TRUE(a1);
  auto b1 = budget.Acquire("b", 50, In(kLong));
  ASSERT_TRUE(b1);
  EXPECT_EQ(budget.in_use(), 90u);
  EXPECT_EQ(budget.in_use("a"), 40u);
  // 30 more for "a" would pass its share (70 > 60); 20 more for "b" the total (110 > 100).
  EXPECT_FALSE(budget.Acquire("a", 30, In(20)));
  EXPECT_FALSE(budget.Acquire("b", 20, In(20)));
  EXPECT_TRUE(budget.Acquire("c", 10, In(20)));
  // More than a share can never fit: refused at once, not after the deadline.
  int64_t start = MonotonicMillis();
  auto huge = budget.Acquire("d", 61, In(kLong));
  ASSERT_FALSE(huge);
  EXPECT_EQ(huge.error().code(), Code::kResourceExhausted);
  EXPECT_LT(MonotonicMillis() - start, 1000);
  a1->Release();
  b1->Release();
  EXPECT_EQ(budget.in_use(), 0u);
}

TEST(ByteBudgetTest, AWaitingCallProceedsWhenBytesAreReleased) {
  ByteBudget budget(100, 100);
  auto first = budget.Acquire("a", 80, In(kLong));
  ASSERT_TRUE(first);
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    auto second = budget.Acquire("a", 50, In(kLong));
    got = second.has_value();
  });
  // It waits while the first holds its bytes...
  int64_t until = In(100);
  while (MonotonicMillis() < until) EXPECT_FALSE(got.load());
  // ...and proceeds once they are back.
  first = ByteBudget::Reservation();
  waiter.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(budget.in_use(), 0u);
}

TEST(ByteBudgetTest, OneTenantAtItsShareDoesNotHoldUpAnother) {
  ByteBudget budget(100, 50);
  auto a = budget.Acquire("a", 50, In(kLong));
  ASSERT_TRUE(a);
  // "a" queues behind itself for as long as it takes...
  std::thread queued([&] { EXPECT_TRUE(budget.Acquire("a", 10, In(kLong))); });
  WaitQueued(budget, "a");
  // ...while "b" gets its share well before that.
  auto b = budget.Acquire("b", 50, In(5000));
  EXPECT_TRUE(b);
  a->Release();
  queued.join();
}

TEST(ByteBudgetTest, ATenantsCallsAreServedInArrivalOrder) {
  ByteBudget budget(100, 100);
  auto held = budget.Acquire("a", 100, In(kLong));
  ASSERT_TRUE(held);
  std::vector<int> order;
  std::mutex mu;
  auto call = [&](int bytes) {
    auto r = budget.Acquire("a", static_cast<uint64_t>(bytes), In(kLong));
    ASSERT_TRUE(r);
    std::lock_guard lock(mu);
    order.push_back(bytes);
  };
  // A large call waits first; a small one that arrives later fits beside it only once it is
  // done, so the order it completes in shows whether it overtook.
  std::thread big(call, 90);
  WaitQueued(budget, "a");
  std::thread small(call, 20);
  held->Release();
  big.join();
  small.join();
  EXPECT_EQ(order, (std::vector<int>{90, 20}));
}

TEST(ByteBudgetTest, TryAcquireNeitherWaitsNorJumpsTheQueue) {
  ByteBudget budget(100, 100);
  auto r = budget.TryAcquire("a", 60);
  ASSERT_TRUE(r);
  EXPECT_FALSE(budget.TryAcquire("a", 50));
  EXPECT_TRUE(budget.TryAcquire("b", 40));
}

}  // namespace
}  // namespace sbx::daemon
