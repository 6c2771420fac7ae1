#include "src/image/manifest.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "src/image/digest.h"
#include "src/image/platform.h"

namespace sbx::image {
namespace {

using Json = nlohmann::json;

std::string D(char c) { return "sha256:" + std::string(64, c); }

Json Desc(const std::string& type, char c, uint64_t size = 10) {
  return {{"mediaType", type}, {"digest", D(c)}, {"size", size}};
}

Json PlatformEntry(char c, const std::string& os, const std::string& arch,
                   const std::string& variant = "") {
  Json d = Desc(std::string(media_type::kOciManifest), c);
  d["platform"] = {{"os", os}, {"architecture", arch}};
  if (!variant.empty()) d["platform"]["variant"] = variant;
  return d;
}

Json OciManifest() {
  return {{"schemaVersion", 2},
          {"mediaType", media_type::kOciManifest},
          {"config", Desc(std::string(media_type::kOciConfig), 'c')},
          {"layers",
           {Desc(std::string(media_type::kOciLayerGzip), '1'),
            Desc(std::string(media_type::kOciLayerZstd), '2')}}};
}

TEST(PlatformTest, ParseAndNormalize) {
  auto p = Platform::Parse("linux/amd64");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->String(), "linux/amd64");
  EXPECT_EQ(Platform::Parse("Linux/x86_64")->String(), "linux/amd64");
  EXPECT_EQ(Platform::Parse("linux/aarch64")->String(), "linux/arm64/v8");
  EXPECT_EQ(Platform::Parse("linux/arm64")->String(), "linux/arm64/v8");
  EXPECT_EQ(Platform::Parse("linux/arm")->String(), "linux/arm/v7");
  EXPECT_EQ(Platform::Parse("linux/armhf")->String(), "linux/arm/v7");
  EXPECT_EQ(Platform::Parse("linux/arm/6")->String(), "linux/arm/v6");
  for (const char* bad : {"", "linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"}) {
    EXPECT_FALSE(Platform::Parse(bad)) << bad;
  }
}

TEST(PlatformTest, MatchScores) {
  auto want = *Platform::Parse("linux/arm/v7");
  EXPECT_GT(PlatformMatchScore(want, Platform::Normalize("linux", "arm", "v7")),
            PlatformMatchScore(want, Platform::Normalize("linux", "arm", "v6")));
  EXPECT_GT(PlatformMatchScore(want, Platform::Normalize("linux", "arm", "v6")), 0);
  EXPECT_EQ(PlatformMatchScore(want, Platform::Normalize("linux", "arm", "v8")), 0);
  EXPECT_EQ(PlatformMatchScore(*Platform::Parse("linux/arm/v6"),
                               Platform::Normalize("linux", "arm", "v7")),
            0);
  EXPECT_GT(PlatformMatchScore(*Platform::Parse("linux/arm64"),
                               Platform::Normalize("linux", "arm64", "")),
            0);
  EXPECT_EQ(PlatformMatchScore(*Platform::Parse("linux/amd64"),
                               Platform::Normalize("windows", "amd64", "")),
            0);
}

TEST(ManifestTest, ParsesOciManifest) {
  auto doc = ParseManifestDocument(OciManifest().dump());
  ASSERT_TRUE(doc) << doc.error().ToString();
  EXPECT_FALSE(doc->is_index);
  EXPECT_EQ(doc->manifest.config.digest, D('c'));
  ASSERT_EQ(doc->manifest.layers.size(), 2u);
  EXPECT_EQ(doc->manifest.layers[1].media_type, media_type::kOciLayerZstd);
}

TEST(ManifestTest, MediaTypeFromHeaderOnlyWhenBodyIsSilent) {
  Json m = OciManifest();
  m.erase("mediaType");
  auto doc = ParseManifestDocument(
      m.dump(), "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8");
  ASSERT_TRUE(doc) << doc.error().ToString();
  EXPECT_EQ(doc->manifest.media_type, media_type::kDockerManifest);
  // Nothing says: inferred from the fields when unambiguous.
  auto inferred = ParseManifestDocument(m.dump(), "application/octet-stream");
  ASSERT_TRUE(inferred);
  EXPECT_FALSE(inferred->is_index);
}

TEST(ManifestTest, RejectsAmbiguousDocuments) {
  // CVE-2021-41190: an index carrying layers, a manifest carrying manifests.
  Json index = {{"schemaVersion", 2},
                {"mediaType", media_type::kOciIndex},
                {"manifests", {PlatformEntry('a', "linux", "amd64")}},
                {"layers", Json::array()}};
  auto bad_index = ParseManifestDocument(index.dump());
  ASSERT_FALSE(bad_index);
  EXPECT_EQ(bad_index.error().code(), Code::kInvalidArgument);

  Json manifest = OciManifest();
  manifest["manifests"] = Json::array();
  EXPECT_FALSE(ParseManifestDocument(manifest.dump()));

  Json both = OciManifest();
  both.erase("mediaType");
  both["manifests"] = Json::array();
  EXPECT_FALSE(ParseManifestDocument(both.dump(), ""));
}

TEST(ManifestTest, RefusesADocumentWhoseMediaTypeContradictsIt) {
  // A manifest served as an index, or referenced by an index entry as one, is neither: what
  // claims a kind must agree with the document, whatever the body says itself.
  Json index = {{"schemaVersion", 2},
                {"mediaType", media_type::kOciIndex},
                {"manifests", {PlatformEntry('a', "linux", "amd64")}}};
  Json silent_index = index;
  silent_index.erase("mediaType");
  Json silent_manifest = OciManifest();
  silent_manifest.erase("mediaType");
  struct Case {
    Json body;
    std::string content_type;
    std::string descriptor_type;
  };
  std::string oci_index(media_type::kOciIndex), docker_list(media_type::kDockerManifestList);
  std::string oci_manifest(media_type::kOciManifest), docker(media_type::kDockerManifest);
  for (const auto& c : std::vector<Case>{
           {OciManifest(), oci_index, ""},
           {OciManifest(), docker_list + "; charset=utf-8", ""},
           {OciManifest(), "", oci_index},
           {OciManifest(), oci_manifest, docker_list},
           {index, docker, ""},
           {index, "", oci_manifest},
           {silent_manifest, oci_index, ""},
           {silent_manifest, oci_manifest, oci_index},
           {silent_index, "", docker},
       }) {
    auto doc = ParseManifestDocument(c.body.dump(), c.content_type, c.descriptor_type);
    ASSERT_FALSE(doc) << c.body.dump() << " / " << c.content_type << " / " << c.descriptor_type;
    EXPECT_EQ(doc.error().code(), Code::kInvalidArgument) << doc.error().ToString();
  }
  // Claims that agree, or that name no kind at all, are fine; so are the two flavours of a kind.
  for (const auto& c : std::vector<Case>{
           {OciManifest(), oci_manifest, oci_manifest},
           {OciManifest(), docker, ""},
           {OciManifest(), "application/json", ""},
           {index, docker_list, oci_index},
           {silent_index, "", oci_index},
           {silent_manifest, "application/octet-stream", docker},
       }) {
    auto doc = ParseManifestDocument(c.body.dump(), c.content_type, c.descriptor_type);
    EXPECT_TRUE(doc) << c.body.dump() << " / " << c.content_type << " / " << c.descriptor_type
                     << ": " << doc.error().ToString();
  }
}

TEST(ManifestTest, RejectsBadDescriptorsAndUnsupportedKinds) {
  Json m = OciManifest();
  m["layers"][0]["digest"] = "sha256:1234";
  EXPECT_FALSE(ParseManifestDocument(m.dump()));
  m = OciManifest();
  m["layers"][0]["size"] = -1;
  EXPECT_FALSE(ParseManifestDocument(m.dump()));
  m = OciManifest();
  m["layers"][0].erase("size");
  EXPECT_FALSE(ParseManifestDocument(m.dump()));
  m = OciManifest();
  m["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json";
  auto helm = ParseManifestDocument(m.dump());
  ASSERT_FALSE(helm);
  EXPECT_EQ(helm.error().code(), Code::kFailedPrecondition);
  m = OciManifest();
  m["schemaVersion"] = 1;
  auto v1 = ParseManifestDocument(m.dump());
  ASSERT_FALSE(v1);
  EXPECT_EQ(v1.error().code(), Code::kUnimplemented);
  m = OciManifest();
  m["layers"] = Json::array();
  for (int i = 0; i < 200; ++i)
    m["layers"].push_back(Desc(std::string(media_type::kOciLayer), 'a'));
  auto many = ParseManifestDocument(m.dump());
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().code(), Code::kResourceExhausted);
  EXPECT_FALSE(ParseManifestDocument("not json"));
  EXPECT_FALSE(ParseManifestDocument("[]"));
  EXPECT_FALSE(ParseManifestDocument(std::string(kMaxManifestBytes + 1, ' ')));
  EXPECT_TRUE(CheckLayerMediaType(media_type::kDockerLayerGzip));
  EXPECT_FALSE(CheckLayerMediaType("application/vnd.oci.image.layer.v1.tar+gzip+encrypted"));
}

Index MakeIndex(const Json& manifests) {
  Json j = {{"schemaVersion", 2}, {"mediaType", media_type::kOciIndex}, {"manifests", manifests}};
  auto doc = ParseManifestDocument(j.dump());
  EXPECT_TRUE(doc) << doc.error().ToString();
  EXPECT_TRUE(doc->is_index);
  return doc->index;
}

TEST(ManifestTest, SelectsThePlatform) {
  Json attestation = Desc(std::string(media_type::kOciManifest), 'f');
  attestation["platform"] = {{"os", "unknown"}, {"architecture", "unknown"}};
  Index index = MakeIndex(
      {PlatformEntry('1', "linux", "arm", "v6"), PlatformEntry('2', "linux", "arm64", "v8"),
       PlatformEntry('3', "linux", "amd64"), PlatformEntry('4', "linux", "arm", "v7"),
       PlatformEntry('5', "windows", "amd64"), attestation});
  EXPECT_EQ(SelectManifest(index, *Platform::Parse("linux/amd64"))->digest, D('3'));
  EXPECT_EQ(SelectManifest(index, *Platform::Parse("linux/arm64"))->digest, D('2'));
  EXPECT_EQ(SelectManifest(index, *Platform::Parse("linux/arm/v7"))->digest, D('4'));
  EXPECT_EQ(SelectManifest(index, *Platform::Parse("linux/arm/v6"))->digest, D('1'));
  auto none = SelectManifest(index, *Platform::Parse("linux/s390x"));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), Code::kNotFound);
  EXPECT_NE(none.error().message().find("linux/arm64/v8"), std::string::npos);
  EXPECT_EQ(none.error().message().find("unknown"), std::string::npos);

  // arm64 entries without a variant still match arm64/v8; an armv7 host falls back to v6.
  Index plain =
      MakeIndex({PlatformEntry('7', "linux", "arm64"), PlatformEntry('8', "linux", "arm", "v6")});
  EXPECT_EQ(SelectManifest(plain, *Platform::Parse("linux/arm64/v8"))->digest, D('7'));
  EXPECT_EQ(SelectManifest(plain, *Platform::Parse("linux/arm/v7"))->digest, D('8'));

  Json docker_list = {{"schemaVersion", 2},
                      {"mediaType", media_type::kDockerManifestList},
                      {"manifests", {PlatformEntry('9', "linux", "amd64")}}};
  docker_list["manifests"][0]["mediaType"] = media_type::kDockerManifest;
  auto list = ParseManifestDocument(docker_list.dump());
  ASSERT_TRUE(list);
  EXPECT_EQ(SelectManifest(list->index, *Platform::Parse("linux/amd64"))->digest, D('9'));
}

TEST(ManifestTest, SerializeRoundTrips) {
  auto doc = ParseManifestDocument(OciManifest().dump());
  ASSERT_TRUE(doc);
  auto again = ParseManifestDocument(SerializeManifest(doc->manifest));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->manifest.layers.size(), 2u);
  EXPECT_EQ(again->manifest.config.digest, D('c'));
}

TEST(DigestTest, ValidatesAndHashes) {
  EXPECT_TRUE(ValidateDigest(D('a')));
  EXPECT_FALSE(ValidateDigest("sha256:" + std::string(64, 'A')));
  EXPECT_FALSE(ValidateDigest("sha256:" + std::string(63, 'a')));
  EXPECT_FALSE(ValidateDigest("md5"));
  EXPECT_EQ(ValidateDigest("sha512:" + std::string(128, 'a')).error().code(), Code::kUnimplemented);
  EXPECT_EQ(Sha256Digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 h;
  h.Update("a");
  h.Update("bc");
  EXPECT_EQ(h.Digest(), Sha256Digest("abc"));
}

}  // namespace
}  // namespace sbx::image
