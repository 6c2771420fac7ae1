#include "src/runtime/capabilities.h"

#include <linux/capability.h>

#include <gtest/gtest.h>

namespace sbx::runtime {
namespace {

TEST(CapabilitiesTest, NamesParseWithOrWithoutThePrefixInAnyCase) {
  EXPECT_EQ(*ParseCapability("NET_RAW"), CAP_NET_RAW);
  EXPECT_EQ(*ParseCapability("CAP_NET_RAW"), CAP_NET_RAW);
  EXPECT_EQ(*ParseCapability("cap_chown"), CAP_CHOWN);
  for (const char* bad : {"", "NOT_A_CAP", "CAP_", "net raw", "12", "NET_RAW;"}) {
    auto parsed = ParseCapability(bad);
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code(), Code::kInvalidArgument);
  }
}

TEST(CapabilitiesTest, DroppedCapabilitiesBecomeAMask) {
  EXPECT_EQ(*DroppedCapabilityMask({}), 0u);
  EXPECT_EQ(*DroppedCapabilityMask({"CHOWN", "CAP_FOWNER"}),
            (uint64_t{1} << CAP_CHOWN) | (uint64_t{1} << CAP_FOWNER));
  EXPECT_EQ(*DroppedCapabilityMask({"NET_RAW", "ALL"}), ~uint64_t{0});
  EXPECT_FALSE(DroppedCapabilityMask({"CHOWN", "BOGUS"}));
}

}  // namespace
}  // namespace sbx::runtime
