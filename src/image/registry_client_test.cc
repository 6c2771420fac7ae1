#include "src/image/registry_client.h"

#include <gtest/gtest.h>

namespace sbx::image {
namespace {

TEST(RegistryClientTest, DockerHubMirrorsComeFirst) {
  RegistryOptions o;
  o.mirrors = {"http://127.0.0.1:5000/", "mirror.example"};
  RegistryClient client(o);
  auto hub = client.EndpointsFor(*Reference::Parse("python:3.11"));
  ASSERT_EQ(hub.size(), 3u);
  EXPECT_EQ(hub[0].base, "http://127.0.0.1:5000");
  EXPECT_TRUE(hub[0].mirror);
  EXPECT_TRUE(hub[0].configured);
  EXPECT_EQ(hub[1].base, "https://mirror.example");
  EXPECT_EQ(hub[2].base, "https://registry-1.docker.io");
  EXPECT_FALSE(hub[2].mirror);
  EXPECT_FALSE(hub[2].configured);
  // Mirrors are for docker.io only.
  auto ghcr = client.EndpointsFor(*Reference::Parse("ghcr.io/org/img"));
  ASSERT_EQ(ghcr.size(), 1u);
  EXPECT_EQ(ghcr[0].base, "https://ghcr.io");
}

TEST(RegistryClientTest, InsecureRegistriesUsePlainHttp) {
  RegistryOptions o;
  o.insecure_registries = {"localhost:5000"};
  RegistryClient client(o);
  auto eps = client.EndpointsFor(*Reference::Parse("localhost:5000/a/b"));
  ASSERT_EQ(eps.size(), 1u);
  EXPECT_EQ(eps[0].base, "http://localhost:5000");
  EXPECT_TRUE(eps[0].configured);
  auto other = client.EndpointsFor(*Reference::Parse("localhost:5001/a/b"));
  EXPECT_EQ(other[0].base, "https://localhost:5001");
  EXPECT_FALSE(other[0].configured);
}

TEST(RegistryClientTest, Helpers) {
  EXPECT_EQ(NormalizeRegistryHost("https://index.docker.io/v1/"), "index.docker.io");
  EXPECT_EQ(NormalizeRegistryHost("host:5000"), "host:5000");
  EXPECT_EQ(NormalizeRegistryHost(" http://h:1/x "), "h:1");
  EXPECT_EQ(Base64Encode("alice:s3cret"), "YWxpY2U6czNjcmV0");
  EXPECT_EQ(Base64Encode("a"), "YQ==");
  EXPECT_EQ(Base64Encode("ab"), "YWI=");
  EXPECT_EQ(Base64Encode(""), "");
  auto url = ParseUrl("https://r.example/v2/x?y=1");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->host, "r.example");
  EXPECT_EQ(url->port, "443");
  EXPECT_EQ(*ResolveUrl("https://r.example/v2/a/blobs/x", "/store/x?sig=1"),
            "https://r.example/store/x?sig=1");
  EXPECT_EQ(*ResolveUrl("https://r.example/v2/a/", "http://other:9/p"), "http://other:9/p");
  EXPECT_FALSE(ParseUrl("not a url"));
  EXPECT_EQ(UrlEscape("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
}

}  // namespace
}  // namespace sbx::image
