#include "src/daemon/warm_pool.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

constexpr int64_t kSecond = 1000000000;

WarmSandbox Made(const std::string& id, const std::string& image) {
  WarmSandbox sb;
  sb.id = id;
  sb.image = image;
  return sb;
}

std::vector<std::string> Ids(const std::vector<WarmSandbox>& sandboxes) {
  std::vector<std::string> ids;
  for (const auto& sb : sandboxes) ids.push_back(sb.id);
  return ids;
}

TEST(WarmPoolTest, DisabledPoolWantsNothing) {
  WarmPool pool(0, 4, 600 * kSecond);
  EXPECT_FALSE(pool.enabled());
  EXPECT_TRUE(pool.Use("python:3.11", "sha256:python-3.11", 1).empty());
  EXPECT_EQ(pool.NextFill(), std::nullopt);
}

TEST(WarmPoolTest, UsedImageIsFilledThenTakenOnce) {
  WarmPool pool(1, 4, 600 * kSecond);
  EXPECT_EQ(pool.Take("python:3.11"), std::nullopt);  // nothing made yet
  EXPECT_FALSE(pool.NeedsFill());
  pool.Use("python:3.11", "sha256:python-3.11", 1);
  EXPECT_TRUE(pool.NeedsFill());
  auto fill = pool.NextFill();
  ASSERT_EQ(fill, "python:3.11");
  EXPECT_EQ(pool.NextFill(), std::nullopt);  // being filled: not asked twice
  EXPECT_EQ(pool.Filled(*fill, Made("sb-1", *fill)), std::nullopt);
  EXPECT_EQ(pool.ready(), 1u);
  EXPECT_EQ(pool.ReadyByImage(), (std::map<std::string, int>{{"python:3.11", 1}}));
  EXPECT_EQ(pool.NextFill(), std::nullopt);  // full
  EXPECT_FALSE(pool.NeedsFill());
  auto taken = pool.Take("python:3.11");
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->id, "sb-1");
  EXPECT_EQ(pool.Take("python:3.11"), std::nullopt);
  EXPECT_EQ(pool.NextFill(), "python:3.11");  // refilled after the take
  EXPECT_EQ(pool.Take("busybox:latest"), std::nullopt);
}

TEST(WarmPoolTest, LeastRecentlyUsedImageIsEvictedWithItsSandboxes) {
  WarmPool pool(1, 2, 600 * kSecond);
  pool.Use("a", "sha256:a", 1);
  pool.Use("b", "sha256:b", 2);
  ASSERT_EQ(pool.NextFill(), "b");  // the most recently used first
  ASSERT_EQ(pool.NextFill(), "a");
  pool.Filled("a", Made("sb-a", "a"));
  pool.Filled("b", Made("sb-b", "b"));
  pool.Use("a", "sha256:a", 3);  // a is now the most recent; c pushes b out
  auto evicted = pool.Use("c", "sha256:c", 4);
  EXPECT_EQ(Ids(evicted), std::vector<std::string>{"sb-b"});
  EXPECT_EQ(pool.Take("b"), std::nullopt);
  EXPECT_TRUE(pool.Take("a"));
}

TEST(WarmPoolTest, SandboxMadeForAnImageNoLongerWantedIsReturned) {
  WarmPool pool(1, 1, 600 * kSecond);
  pool.Use("a", "sha256:a", 1);
  ASSERT_EQ(pool.NextFill(), "a");
  pool.Use("b", "sha256:b", 2);  // evicts a while its fill runs
  auto extra = pool.Filled("a", Made("sb-a", "a"));
  ASSERT_TRUE(extra);
  EXPECT_EQ(extra->id, "sb-a");
  EXPECT_EQ(pool.ready(), 0u);
}

TEST(WarmPoolTest, FailedFillWaitsForTheNextUse) {
  WarmPool pool(2, 4, 600 * kSecond);
  pool.Use("a", "sha256:a", 1);
  ASSERT_EQ(pool.NextFill(), "a");
  ASSERT_EQ(pool.NextFill(), "a");  // two per image
  EXPECT_EQ(pool.Filled("a", std::nullopt), std::nullopt);
  pool.Filled("a", Made("sb-1", "a"));
  EXPECT_EQ(pool.NextFill(), std::nullopt);  // not retried in a loop
  EXPECT_FALSE(pool.NeedsFill());
  pool.Use("a", "sha256:a", 2);
  EXPECT_EQ(pool.NextFill(), "a");
}

TEST(WarmPoolTest, IdleImagesExpireAndEverythingIsTakenAtShutdown) {
  WarmPool pool(1, 4, 10 * kSecond);
  pool.Use("old", "sha256:old", 0);
  pool.Use("new", "sha256:new", 8 * kSecond);
  for (int i = 0; i < 2; ++i) {
    auto image = pool.NextFill();
    ASSERT_TRUE(image);
    pool.Filled(*image, Made("sb-" + *image, *image));
  }
  EXPECT_EQ(Ids(pool.Expire(12 * kSecond)), std::vector<std::string>{"sb-old"});
  EXPECT_EQ(pool.NextFill(), std::nullopt);  // "old" is not refilled
  EXPECT_EQ(Ids(pool.TakeAll()), std::vector<std::string>{"sb-new"});
  EXPECT_EQ(pool.ready(), 0u);
}

TEST(WarmPoolTest, RemovingAnImageDropsItsSandboxesAndStopsWantingIt) {
  WarmPool pool(1, 4, 600 * kSecond);
  pool.Use("a", "sha256:a", 1);
  pool.Use("b", "sha256:b", 2);
  pool.Use("a-alias", "sha256:a", 3);  // another tag of the same image, not filled yet
  for (int i = 0; i < 3; ++i) {
    auto image = pool.NextFill();
    ASSERT_TRUE(image);
    if (*image == "a-alias") continue;  // its fill is still running below
    WarmSandbox sb = Made("sb-" + *image, *image);
    sb.digest = "sha256:" + *image;
    pool.Filled(*image, sb);
  }
  EXPECT_EQ(Ids(pool.DropDigest("sha256:a")), std::vector<std::string>{"sb-a"});
  EXPECT_EQ(pool.ReadyByImage(), (std::map<std::string, int>{{"b", 1}}));
  EXPECT_FALSE(pool.NeedsFill());
  // The alias's fill ends after the drop: its sandbox comes back for destruction.
  WarmSandbox late = Made("sb-late", "a-alias");
  late.digest = "sha256:a";
  auto extra = pool.Filled("a-alias", late);
  ASSERT_TRUE(extra);
  EXPECT_EQ(extra->id, "sb-late");
}

TEST(WarmEligibleTest, OnlyWhatAWarmSandboxFixedMustMatch) {
  const uint64_t default_memory = 2ull << 30;
  CreateRequest plain;
  plain.command = "python";
  plain.env = {{"A", "1"}};
  plain.working_dir = "/tmp";
  EXPECT_TRUE(WarmEligible(plain, default_memory, default_memory));
  EXPECT_TRUE(WarmEligible(plain, 512ull << 20, default_memory));  // limits are set at claim
  EXPECT_FALSE(WarmEligible(plain, 64ull << 20, default_memory));  // a smaller /dev/shm

  CreateRequest files = plain;
  files.files.push_back({"/etc/app.conf", "x"});
  EXPECT_FALSE(WarmEligible(files, default_memory, default_memory));

  CreateRequest offline = plain;
  offline.network.mode = net::NetworkMode::kNone;
  EXPECT_FALSE(WarmEligible(offline, default_memory, default_memory));

  CreateRequest ports = plain;
  ports.network.services.push_back({});
  EXPECT_FALSE(WarmEligible(ports, default_memory, default_memory));

  CreateRequest allow = plain;
  allow.network.mode = net::NetworkMode::kAllowlist;
  allow.network.egress.push_back({});
  EXPECT_FALSE(WarmEligible(allow, default_memory, default_memory));

  CreateRequest read_only = plain;
  read_only.read_only_root = true;
  EXPECT_FALSE(WarmEligible(read_only, default_memory, default_memory));
  CreateRequest fewer_capabilities = plain;
  fewer_capabilities.drop_capabilities = {"NET_RAW"};
  EXPECT_FALSE(WarmEligible(fewer_capabilities, default_memory, default_memory));
  CreateRequest other_user = plain;
  other_user.run_as_user = 1000;  // the user is the main process's, sent at claim
  EXPECT_TRUE(WarmEligible(other_user, default_memory, default_memory));
}

}  // namespace
}  // namespace sbx::daemon
