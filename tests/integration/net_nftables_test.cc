// Verdict-map elements written by NftMapElements, checked through libnftables against the real
// kernel, in a network namespace of the test's own.

#include <sched.h>

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "src/net/ipv4.h"
#include "src/net/nft_map_elements.h"
#include "src/net/nftables.h"
#include "tests/support/features.h"

namespace sbx::net {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class NftMapElementsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Only this (the test) thread moves; the namespace and its tables vanish with the process.
    unshared_ = unshare(CLONE_NEWNET) == 0;
  }

  void SetUp() override {
    SBX_REQUIRE("netns", unshared_, "unshare(CLONE_NEWNET) failed");
    auto nft = Nftables::Open();
    ASSERT_TRUE(nft.has_value()) << nft.error().ToString();
    nft_ = std::move(*nft);
    Status made = nft_->Run(
        "add table inet sbx_t\n"
        "add map inet sbx_t sandboxes { type ipv4_addr : verdict; }\n"
        "flush map inet sbx_t sandboxes\n");
    SBX_REQUIRE("nftables", made.has_value(), made ? "" : made.error().ToString());
    auto elements = NftMapElements::Open();
    ASSERT_TRUE(elements.has_value()) << elements.error().ToString();
    elements_ = std::move(*elements);
  }

  std::string Listing() {
    auto text = nft_->Query("list map inet sbx_t sandboxes");
    EXPECT_TRUE(text.has_value()) << text.error().ToString();
    return text ? *text : "";
  }

  static NftVerdictElement Element(const char* address, NftVerdict verdict) {
    return {"sbx_t", "sandboxes", *ParseIpv4(address), verdict};
  }

  static inline bool unshared_ = false;
  std::unique_ptr<Nftables> nft_;
  std::unique_ptr<NftMapElements> elements_;
};

TEST_F(NftMapElementsTest, AddedElementsCarryTheirVerdicts) {
  ASSERT_TRUE(elements_->Put(Element("10.200.0.5", NftVerdict::kAccept)));
  ASSERT_TRUE(elements_->Put(Element("10.200.1.7", NftVerdict::kDrop)));
  std::string listing = Listing();
  EXPECT_THAT(listing, HasSubstr("10.200.0.5 : accept"));
  EXPECT_THAT(listing, HasSubstr("10.200.1.7 : drop"));
}

TEST_F(NftMapElementsTest, RemovedElementIsGoneAndTheOthersStay) {
  ASSERT_TRUE(elements_->Put(Element("10.200.0.5", NftVerdict::kAccept)));
  ASSERT_TRUE(elements_->Put(Element("10.200.0.6", NftVerdict::kAccept)));
  Status removed = elements_->Remove(Element("10.200.0.5", NftVerdict::kAccept));
  ASSERT_TRUE(removed) << removed.error().ToString();
  std::string listing = Listing();
  EXPECT_THAT(listing, Not(HasSubstr("10.200.0.5")));
  EXPECT_THAT(listing, HasSubstr("10.200.0.6 : accept"));
}

TEST_F(NftMapElementsTest, PutOfAPresentKeyKeepsOrReplacesItsVerdict) {
  ASSERT_TRUE(elements_->Put(Element("10.200.0.5", NftVerdict::kDrop)));
  Status same = elements_->Put(Element("10.200.0.5", NftVerdict::kDrop));
  ASSERT_TRUE(same) << same.error().ToString();
  EXPECT_THAT(Listing(), HasSubstr("10.200.0.5 : drop"));
  // A stale element (a removal that failed) is replaced by the slot's next sandbox.
  Status replaced = elements_->Put(Element("10.200.0.5", NftVerdict::kAccept));
  ASSERT_TRUE(replaced) << replaced.error().ToString();
  std::string listing = Listing();
  EXPECT_THAT(listing, HasSubstr("10.200.0.5 : accept"));
  EXPECT_THAT(listing, Not(HasSubstr("10.200.0.5 : drop")));
}

TEST_F(NftMapElementsTest, MissingElementMapOrTableIsNotFound) {
  Status missing = elements_->Remove(Element("10.200.0.9", NftVerdict::kAccept));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound) << missing.error().ToString();
  Status no_map = elements_->Put({"sbx_t", "nothing", *ParseIpv4("10.200.0.9")});
  ASSERT_FALSE(no_map);
  EXPECT_EQ(no_map.error().code(), Code::kNotFound) << no_map.error().ToString();
  EXPECT_THAT(no_map.error().message(), HasSubstr("nothing"));
  Status no_table = elements_->Put({"sbx_absent", "sandboxes", *ParseIpv4("10.200.0.9")});
  ASSERT_FALSE(no_table);
  EXPECT_EQ(no_table.error().code(), Code::kNotFound) << no_table.error().ToString();
  // The socket stays usable after errors.
  EXPECT_TRUE(elements_->Put(Element("10.200.0.9", NftVerdict::kAccept)));
}

}  // namespace
}  // namespace sbx::net
