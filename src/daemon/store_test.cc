#include "src/daemon/store.h"

#include <gtest/gtest.h>

#include "src/testing/temp_dir.h"

namespace sbx::daemon {
namespace {

TEST(StoreTest, PersistsAcrossReopen) {
  sbx::testing::TempDir dir;
  {
    auto store = Store::Open(dir.Sub("db"));
    ASSERT_TRUE(store) << store.error().ToString();
    SandboxRecord r;
    r.id = "sb-1";
    r.tenant = "t";
    r.state = State::kRunning;
    ASSERT_TRUE((*store)->Put(r));
    r.state = State::kCompleted;
    ASSERT_TRUE((*store)->Put(r));  // upsert
    SandboxRecord other = r;
    other.id = "sb-2";
    ASSERT_TRUE((*store)->Put(other));
    ASSERT_TRUE((*store)->PutLogs("sb-1", std::string("a\0b", 3), 7));
  }
  auto store = Store::Open(dir.Sub("db"));
  ASSERT_TRUE(store);
  auto all = (*store)->LoadAll();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  auto logs = (*store)->GetLogs("sb-1");
  ASSERT_TRUE(logs);
  EXPECT_EQ(logs->first, std::string("a\0b", 3));
  EXPECT_EQ(logs->second, 7u);
  ASSERT_TRUE((*store)->Delete("sb-1"));
  EXPECT_FALSE((*store)->GetLogs("sb-1"));
  EXPECT_EQ((*store)->LoadAll()->size(), 1u);
}

}  // namespace
}  // namespace sbx::daemon
