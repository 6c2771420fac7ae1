// File: features.h (tests)
//
// SBX_REQUIRE(feature_name, available, why): skips the test when a kernel feature is missing,
// unless the feature is listed in SBX_TEST_REQUIRE (comma-separated, or "all"), in which case
// the missing feature fails the test. CI lists what its machines are known to have, so a skip
// there is never silent.

#pragma once

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace sbx::testing {

inline bool FeatureRequired(const std::string& name) {
  const char* list = getenv("SBX_TEST_REQUIRE");
  if (list == nullptr) return false;
  std::string all = std::string(",") + list + ",";
  return all.find(",all,") != std::string::npos || all.find("," + name + ",") != std::string::npos;
}

}  // namespace sbx::testing

#define SBX_REQUIRE(name, available, why)                                    \
  do {                                                                       \
    if (!(available)) {                                                      \
      if (::sbx::testing::FeatureRequired(name)) {                           \
        FAIL() << "required feature " << (name) << " is missing: " << (why); \
      } else {                                                               \
        GTEST_SKIP() << "needs " << (name) << ": " << (why);                 \
      }                                                                      \
    }                                                                        \
  } while (0)
