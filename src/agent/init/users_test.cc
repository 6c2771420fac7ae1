#include "src/agent/init/users.h"

#include <gtest/gtest.h>

namespace sbx::agent {
namespace {

constexpr const char* kPasswd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    "app:x:1000:1001:App:/home/app:/bin/sh\n"
    "broken line\n";
constexpr const char* kGroup =
    "root:x:0:\n"
    "staff:x:50:app,other\n"
    "appgrp:x:1001:\n";

TEST(UsersTest, DefaultIsRoot) {
  auto u = ResolveUser("", kPasswd, kGroup);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->uid, 0u);
  EXPECT_EQ(u->gid, 0u);
  EXPECT_EQ(u->home, "/root");
}

TEST(UsersTest, NameResolvesWithSupplementaryGroups) {
  auto u = ResolveUser("app", kPasswd, kGroup);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->uid, 1000u);
  EXPECT_EQ(u->gid, 1001u);
  EXPECT_EQ(u->home, "/home/app");
  EXPECT_EQ(u->groups, (std::vector<gid_t>{1001, 50}));
}

TEST(UsersTest, NumericAndGroupOverride) {
  auto u = ResolveUser("1000:staff", kPasswd, kGroup);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->uid, 1000u);
  EXPECT_EQ(u->gid, 50u);
  auto v = ResolveUser("4242:4243", kPasswd, kGroup);
  ASSERT_TRUE(v);
  EXPECT_EQ(v->uid, 4242u);
  EXPECT_EQ(v->gid, 4243u);
  EXPECT_EQ(v->home, "/");
}

TEST(UsersTest, UnknownNamesAreErrors) {
  EXPECT_FALSE(ResolveUser("ghost", kPasswd, kGroup));
  EXPECT_FALSE(ResolveUser("app:ghosts", kPasswd, kGroup));
  EXPECT_FALSE(ResolveUser("99999999999", kPasswd, kGroup));
}

TEST(UsersTest, WorksWithoutPasswd) {
  auto u = ResolveUser("0", "", "");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->home, "/root");
}

}  // namespace
}  // namespace sbx::agent
