#include "src/daemon/sandbox_record.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

TEST(SandboxRecordTest, JsonRoundTrip) {
  SandboxRecord r;
  r.id = "sb-1";
  r.tenant = "t";
  r.state = State::kFailed;
  r.reason = "OOM_KILLED";
  r.message = "too much";
  r.exit_code = 137;
  r.tags = {"b", "a"};
  r.spec_blob = std::string("\x00\x01\xff", 3);
  auto back = SandboxRecord::FromJson(r.ToJson());
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->state, State::kFailed);
  EXPECT_EQ(back->exit_code, 137);
  EXPECT_EQ(back->tags, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(back->spec_blob, r.spec_blob);
  EXPECT_EQ(back->StateReason(), "OOM_KILLED: too much");
  EXPECT_FALSE(back->id_map);
  r.id_map = runtime::IdMap{1065536, 2065536, 65536};
  back = SandboxRecord::FromJson(r.ToJson());
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->id_map, r.id_map);
}

TEST(SandboxRecordTest, StateClasses) {
  EXPECT_TRUE(IsTerminal(State::kCompleted));
  EXPECT_TRUE(IsTerminal(State::kTerminated));
  EXPECT_FALSE(IsTerminal(State::kTerminating));
  EXPECT_TRUE(IsActive(State::kRunning));
  EXPECT_FALSE(IsActive(State::kPending));
}

TEST(SandboxRecordTest, CorruptRecordsAreErrors) {
  EXPECT_FALSE(SandboxRecord::FromJson("{"));
  EXPECT_FALSE(SandboxRecord::FromJson(R"({"id": "x", "state": 99})"));
}

}  // namespace
}  // namespace sbx::daemon
