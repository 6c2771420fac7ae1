#include "src/daemon/usage_sampler.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

constexpr int64_t kSecond = 1'000'000'000;

TEST(CpuRateSamplerTest, FirstReadingIsTheAverageSinceTheStart) {
  CpuRateSampler sampler;
  // Half a CPU for 10 s.
  EXPECT_EQ(sampler.Millicores("a", 5 * kSecond, 110 * kSecond, 100 * kSecond), 500u);
}

TEST(CpuRateSamplerTest, LaterReadingsMeasureTheLastWindow) {
  CpuRateSampler sampler;
  // Idle for 100 s, then two CPUs busy: the rate since the last reading says so at once.
  EXPECT_EQ(sampler.Millicores("a", 0, 100 * kSecond, 0), 0u);
  EXPECT_EQ(sampler.Millicores("a", 2 * kSecond, 101 * kSecond, 0), 2000u);
  EXPECT_EQ(sampler.Millicores("a", 3 * kSecond, 102 * kSecond, 0), 1000u);
}

TEST(CpuRateSamplerTest, ReadingsCloserThanASecondUseAnOlderOne) {
  CpuRateSampler sampler;
  EXPECT_EQ(sampler.Millicores("a", 0, 10 * kSecond, 0), 0u);
  EXPECT_EQ(sampler.Millicores("a", 1 * kSecond, 11 * kSecond, 0), 1000u);
  // 0.1 s later: measured against the reading at 10 s (1.1 s back), not the one 0.1 s back.
  uint64_t rate = sampler.Millicores("a", 1'100'000'000, 11 * kSecond + kSecond / 10, 0);
  EXPECT_EQ(rate, 1000u);
  // Without a reading a second old, against the start.
  CpuRateSampler fresh;
  EXPECT_EQ(fresh.Millicores("b", kSecond / 2, 5 * kSecond, 4 * kSecond), 500u);
  EXPECT_EQ(fresh.Millicores("b", kSecond / 2, 5 * kSecond + kSecond / 2, 4 * kSecond), 333u);
}

TEST(CpuRateSamplerTest, SandboxesAreApartAndAResetCountStartsOver) {
  CpuRateSampler sampler;
  EXPECT_EQ(sampler.Millicores("a", 0, 10 * kSecond, 0), 0u);
  EXPECT_EQ(sampler.Millicores("b", 10 * kSecond, 10 * kSecond, 0), 1000u);
  EXPECT_EQ(sampler.Millicores("a", kSecond / 4, 11 * kSecond, 0), 250u);
  // A lower total than before: a new count, rated since the start given.
  EXPECT_EQ(sampler.Millicores("b", kSecond, 12 * kSecond, 11 * kSecond), 1000u);
}

}  // namespace
}  // namespace sbx::daemon
