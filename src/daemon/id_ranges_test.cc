#include "src/daemon/id_ranges.h"

#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

bool Disjoint(const runtime::IdMap& a, const runtime::IdMap& b) {
  auto apart = [](uint64_t x, uint64_t x_size, uint64_t y, uint64_t y_size) {
    return x + x_size <= y || y + y_size <= x;
  };
  return apart(a.host_uid, a.size, b.host_uid, b.size) &&
         apart(a.host_gid, a.size, b.host_gid, b.size);
}

TEST(IdRangesTest, RangesFollowTheLayersRangeAndNeverOverlap) {
  IdRanges ranges({1000000, 2000000, 65536, 8});
  auto a = ranges.Acquire("a");
  auto b = ranges.Acquire("b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, (runtime::IdMap{1065536, 2065536, 65536}));
  EXPECT_EQ(*b, (runtime::IdMap{1131072, 2131072, 65536}));
  // Asking again gives the owner the range it holds.
  EXPECT_EQ(*ranges.Acquire("a"), *a);
  EXPECT_EQ(ranges.in_use(), 2u);
  std::vector<runtime::IdMap> all = {*a, *b};
  for (int i = 2; i < 8; ++i) {
    auto ids = ranges.Acquire("s" + std::to_string(i));
    ASSERT_TRUE(ids) << i;
    all.push_back(*ids);
  }
  runtime::IdMap layers{1000000, 2000000, 65536};
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_TRUE(Disjoint(all[i], layers)) << i;
    for (size_t j = i + 1; j < all.size(); ++j) EXPECT_TRUE(Disjoint(all[i], all[j])) << i << j;
  }
  auto full = ranges.Acquire("one-too-many");
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code(), Code::kResourceExhausted);
  EXPECT_NE(full.error().message().find("id_map_ranges"), std::string::npos);
}

TEST(IdRangesTest, AReleasedRangeIsTheNextOneGiven) {
  IdRanges ranges({1000000, 1000000, 65536, 4});
  auto a = ranges.Acquire("a");
  auto b = ranges.Acquire("b");
  auto c = ranges.Acquire("c");
  ASSERT_TRUE(a && b && c);
  ranges.Release("b");
  ranges.Release("b");  // twice is harmless
  EXPECT_FALSE(ranges.Find("b"));
  EXPECT_EQ(*ranges.Acquire("d"), *b);
  EXPECT_EQ(ranges.Find("d"), b.value());
  ranges.Release("nobody");
  EXPECT_EQ(ranges.in_use(), 3u);
}

TEST(IdRangesTest, AdoptedRangesAreNotGivenAgain) {
  IdRanges ranges({1000000, 1000000, 65536, 4});
  // Re-adopted after a restart: slot 1 on the layout, and one from an older layout that covers
  // half of slot 2 and half of slot 3.
  ASSERT_TRUE(ranges.Adopt("kept", {1131072, 1131072, 65536}));
  ASSERT_TRUE(ranges.Adopt("old", {1196608 + 32768, 1196608 + 32768, 65536}));
  EXPECT_TRUE(ranges.Adopt("kept", {1131072, 1131072, 65536}));  // idempotent
  EXPECT_EQ(ranges.Adopt("kept", {1065536, 1065536, 65536}).error().code(),
            Code::kFailedPrecondition);
  Status clash = ranges.Adopt("clash", {1131072 + 10, 5000000, 65536});
  ASSERT_FALSE(clash);
  EXPECT_EQ(clash.error().code(), Code::kAlreadyExists);
  Status gid_clash = ranges.Adopt("gid-clash", {9000000, 1131072, 65536});
  ASSERT_FALSE(gid_clash);
  auto first = ranges.Acquire("new");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->host_uid, 1065536u);  // slot 0
  // Slots 1 (kept), 2 and 3 (overlapped by old) are unavailable.
  EXPECT_FALSE(ranges.Acquire("none-left"));
  ranges.Release("old");
  auto freed = ranges.Acquire("after-old");
  ASSERT_TRUE(freed);
  EXPECT_EQ(freed->host_uid, 1196608u);
  ranges.Release("kept");
  EXPECT_EQ(ranges.Acquire("after-kept")->host_uid, 1131072u);
}

TEST(IdRangesTest, ConcurrentAcquiresGetDistinctRanges) {
  IdRanges ranges({1000000, 1000000, 65536, 400});
  std::vector<std::thread> threads;
  std::vector<std::vector<uint32_t>> got(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        auto ids = ranges.Acquire(std::to_string(t) + "-" + std::to_string(i));
        if (ids) got[t].push_back(ids->host_uid);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<uint32_t> distinct;
  for (const auto& list : got) distinct.insert(list.begin(), list.end());
  EXPECT_EQ(distinct.size(), 400u);
}

TEST(IdRangesTest, LayoutValidationNamesTheField) {
  EXPECT_TRUE(ValidateIdRangeLayout({}));
  struct Case {
    IdRangeLayout layout;
    std::string field;
  };
  std::vector<Case> cases = {
      {{0, 1000000, 65536, 4}, "id_map_uid"},
      {{1000000, 1000000, 1000, 4}, "id_map_size"},
      {{1000000, 1000000, 65536, 0}, "id_map_ranges"},
      {{1000000, 1000000, 65536, 65535}, "id_map_ranges"},
  };
  for (const auto& c : cases) {
    Status s = ValidateIdRangeLayout(c.layout);
    ASSERT_FALSE(s) << c.field;
    EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
    EXPECT_NE(s.error().message().find(c.field), std::string::npos) << s.error().message();
  }
  // The last range ends at the last valid id exactly.
  uint32_t count = static_cast<uint32_t>((0xffffffffull - 1000000) / 65536 - 1);
  EXPECT_TRUE(ValidateIdRangeLayout({1000000, 1000000, 65536, count}));
  EXPECT_FALSE(ValidateIdRangeLayout({1000000, 1000000, 65536, count + 1}));
}

}  // namespace
}  // namespace sbx::daemon
