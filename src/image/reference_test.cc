#include "src/image/reference.h"

#include <gtest/gtest.h>

#include "src/base/strings.h"

namespace sbx::image {
namespace {

struct Good {
  const char* text;
  const char* registry;
  const char* repository;
  const char* tag;
  const char* digest;
  const char* normalized;
};

constexpr char kDigest[] =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(ReferenceTest, ParsesAndNormalisesLikeDocker) {
  const std::string d = kDigest;
  const Good cases[] = {
      {"python", "docker.io", "library/python", "latest", "", "docker.io/library/python:latest"},
      {"python:3.11", "docker.io", "library/python", "3.11", "", "docker.io/library/python:3.11"},
      {"library/python:3.11", "docker.io", "library/python", "3.11", "",
       "docker.io/library/python:3.11"},
      {"docker.io/python", "docker.io", "library/python", "latest", "",
       "docker.io/library/python:latest"},
      {"index.docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", "",
       "docker.io/library/busybox:1.36"},
      {"bitnami/redis:7.2", "docker.io", "bitnami/redis", "7.2", "", "docker.io/bitnami/redis:7.2"},
      {"ghcr.io/org/team/img:v1.2.3-rc_1", "ghcr.io", "org/team/img", "v1.2.3-rc_1", "",
       "ghcr.io/org/team/img:v1.2.3-rc_1"},
      {"localhost/foo", "localhost", "foo", "latest", "", "localhost/foo:latest"},
      {"localhost:5000/foo/bar:dev", "localhost:5000", "foo/bar", "dev", "",
       "localhost:5000/foo/bar:dev"},
      {"127.0.0.1:5000/x", "127.0.0.1:5000", "x", "latest", "", "127.0.0.1:5000/x:latest"},
      {"[::1]:5000/x:y", "[::1]:5000", "x", "y", "", "[::1]:5000/x:y"},
      {"Registry.Example.COM/app", "Registry.Example.COM", "app", "latest", "",
       "Registry.Example.COM/app:latest"},
      {"a.b-c.d/x__y.z--w", "a.b-c.d", "x__y.z--w", "latest", "", "a.b-c.d/x__y.z--w:latest"},
      // "localhost:5000" alone is a repository with a tag, as in Docker.
      {"localhost:5000", "docker.io", "library/localhost", "5000", "",
       "docker.io/library/localhost:5000"},
  };
  for (const auto& c : cases) {
    auto ref = Reference::Parse(c.text);
    ASSERT_TRUE(ref) << c.text << ": " << ref.error().ToString();
    EXPECT_EQ(ref->registry, c.registry) << c.text;
    EXPECT_EQ(ref->repository, c.repository) << c.text;
    EXPECT_EQ(ref->tag, c.tag) << c.text;
    EXPECT_EQ(ref->digest, c.digest) << c.text;
    EXPECT_EQ(ref->String(), c.normalized) << c.text;
    // Normalising is idempotent.
    auto again = Reference::Parse(ref->String());
    ASSERT_TRUE(again) << ref->String();
    EXPECT_EQ(*again, *ref);
  }
}

TEST(ReferenceTest, Digests) {
  const std::string d = kDigest;
  auto ref = Reference::Parse("python@" + d);
  ASSERT_TRUE(ref) << ref.error().ToString();
  EXPECT_EQ(ref->repository, "library/python");
  EXPECT_EQ(ref->tag, "");
  EXPECT_EQ(ref->digest, d);
  EXPECT_EQ(ref->TagOrDigest(), d);
  EXPECT_EQ(ref->String(), "docker.io/library/python@" + d);

  auto both = Reference::Parse("ghcr.io/a/b:1.0@" + d);
  ASSERT_TRUE(both) << both.error().ToString();
  EXPECT_EQ(both->tag, "1.0");
  EXPECT_EQ(both->digest, d);
  EXPECT_EQ(both->TagOrDigest(), d);
  EXPECT_EQ(both->String(), "ghcr.io/a/b:1.0@" + d);

  auto port = Reference::Parse("localhost:5000/a@" + d);
  ASSERT_TRUE(port);
  EXPECT_EQ(port->registry, "localhost:5000");
  EXPECT_EQ(port->tag, "");
}

TEST(ReferenceTest, RejectsMalformedWithAReason) {
  const std::string d = kDigest;
  const std::pair<std::string, std::string> bad[] = {
      {"", "empty"},
      {"Python", "lowercase"},
      {"library/Python:3", "lowercase"},
      {"python:", "invalid tag"},
      {"python:-x", "invalid tag"},
      {"python:" + std::string(129, 'a'), "invalid tag"},
      {"python:a b", "whitespace"},
      {" python", "whitespace"},
      {"python\n", "whitespace"},
      {"python@sha256:abc", "64 hex"},
      {"python@sha256:" + std::string(64, 'G'), "hex"},
      {"python@sha512:" + std::string(128, 'a'), "unsupported digest algorithm"},
      {"python@", "digest"},
      {"/python", "empty path component"},
      {"python/", "empty path component"},
      {"a//b", "empty path component"},
      {"-python", "invalid path component"},
      {"python-", "invalid path component"},
      {"py..thon", "invalid path component"},
      {"py___thon", "invalid path component"},
      {"py.-thon", "invalid path component"},
      {"localhost:99999/x", "port"},
      {"localhost:/x", "port"},
      {"exa_mple.com:5000/x", "registry host"},
      {"-bad.com/x", "registry host"},
      {"[::1/x", "IPv6"},
      {"example.com/", "missing repository path"},
      {":tag", "missing repository name"},
      {"@" + d, "missing repository name"},
      {std::string(64, 'a'), "64-character hex"},
      {"a/" + std::string(260, 'b'), "longer than 255"},
      // 250 characters, but "docker.io/library/" makes the normalised name too long.
      {std::string(250, 'b'), "longer than 255"},
      {"ex\xc3\xa4mple/x", "non-printable"},
  };
  for (const auto& [text, why] : bad) {
    auto ref = Reference::Parse(text);
    ASSERT_FALSE(ref) << Quote(text) << " parsed as " << ref->String();
    EXPECT_EQ(ref.error().code(), Code::kInvalidArgument) << text;
    EXPECT_NE(ref.error().message().find(why), std::string::npos)
        << text << ": " << ref.error().message();
    EXPECT_EQ(ref.error().reason(), "SBX_INVALID_IMAGE_REFERENCE");
  }
}

}  // namespace
}  // namespace sbx::image
