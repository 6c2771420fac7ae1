#include "src/base/failpoint.h"

#include <gtest/gtest.h>

#include "src/base/strings.h"

namespace sbx::failpoint {
namespace {

const std::vector<std::string> kKnown = {"create.after_network", "end.before_teardown"};

TEST(FailpointTest, EveryPointIsKnown) {
  EXPECT_TRUE(Parse(sbx::Join(AllPoints(), "=crash,") + "=crash"));
}

TEST(FailpointTest, ParsesArmedPoints) {
  auto points = Parse("create.after_network=crash,end.before_teardown=crash", kKnown);
  ASSERT_TRUE(points) << points.error().ToString();
  EXPECT_EQ(*points, (std::set<std::string>{"create.after_network", "end.before_teardown"}));
  EXPECT_TRUE(Parse("", kKnown)->empty());
}

TEST(FailpointTest, UnknownPointsAndActionsAreNamed) {
  auto typo = Parse("create.after_netwrk=crash", kKnown);
  ASSERT_FALSE(typo);
  EXPECT_NE(typo.error().message().find("create.after_netwrk"), std::string::npos);
  EXPECT_NE(typo.error().message().find("end.before_teardown"), std::string::npos);
  for (const char* bad :
       {"create.after_network", "create.after_network=hang", "create.after_network=crash,=crash"}) {
    EXPECT_FALSE(Parse(bad, kKnown)) << bad;
  }
}

TEST(FailpointDeathTest, AnArmedPointKillsTheProcess) {
  EXPECT_EXIT(
      {
        setenv(kEnvironmentVariable, "end.before_teardown=crash", 1);
        if (!ArmFromEnvironment()) _exit(3);
        Check(kCreateAfterNetwork);  // not armed: goes on
        Check(kEndBeforeTeardown);
        _exit(0);
      },
      ::testing::KilledBySignal(SIGKILL), "");
}

}  // namespace
}  // namespace sbx::failpoint
