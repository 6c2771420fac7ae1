#include "src/image/auth_challenge.h"

#include <gtest/gtest.h>

namespace sbx::image {
namespace {

TEST(AuthChallengeTest, DockerHubBearer) {
  auto c = ParseAuthChallenges(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull")");
  ASSERT_TRUE(c) << c.error().ToString();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].scheme, "bearer");
  EXPECT_EQ((*c)[0].Param("realm"), "https://auth.docker.io/token");
  EXPECT_EQ((*c)[0].Param("service"), "registry.docker.io");
  EXPECT_EQ((*c)[0].Param("scope"), "repository:library/python:pull");
}

TEST(AuthChallengeTest, BasicAndCaseAndSpacing) {
  auto c = ParseAuthChallenges(R"(basic   REALM = "Registry Realm" , charset="UTF-8")");
  ASSERT_TRUE(c) << c.error().ToString();
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0].scheme, "basic");
  EXPECT_EQ((*c)[0].Param("realm"), "Registry Realm");
  EXPECT_EQ((*c)[0].Param("charset"), "UTF-8");
}

TEST(AuthChallengeTest, SeveralChallengesAndEscapes) {
  auto c = ParseAuthChallenges(
      R"(Negotiate, Basic realm="a\"b", Bearer realm="https://t/x?y=1",error="insufficient_scope",service=reg)");
  ASSERT_TRUE(c) << c.error().ToString();
  ASSERT_EQ(c->size(), 3u);
  EXPECT_EQ((*c)[0].scheme, "negotiate");
  EXPECT_TRUE((*c)[0].params.empty());
  EXPECT_EQ((*c)[1].Param("realm"), "a\"b");
  EXPECT_EQ((*c)[2].Param("realm"), "https://t/x?y=1");
  EXPECT_EQ((*c)[2].Param("error"), "insufficient_scope");
  EXPECT_EQ((*c)[2].Param("service"), "reg");
}

TEST(AuthChallengeTest, RejectsMalformed) {
  for (const char* bad : {R"(Bearer realm="unterminated)", "Bearer realm=\"x\" junk", "=x",
                          "\"quoted\"", "Bearer ,realm=\"x\",@"}) {
    EXPECT_FALSE(ParseAuthChallenges(bad)) << bad;
  }
  EXPECT_FALSE(ParseAuthChallenges(std::string(20000, 'a')));
  std::string many = "Bearer ";
  for (int i = 0; i < 40; ++i) many += "p" + std::to_string(i) + "=1,";
  EXPECT_FALSE(ParseAuthChallenges(many));
  auto empty = ParseAuthChallenges("");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

}  // namespace
}  // namespace sbx::image
