// The image store against real registries: Debian's docker-registry on loopback, and
// image_registry_proxy.py in front of it for token auth and faults.

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/image/http_client.h"
#include "src/image/store.h"
#include "src/image/testing/image_builder.h"
#include "src/image/testing/tar_builder.h"
#include "src/sys/features.h"
#include "src/sys/fs.h"
#include "src/testing/temp_dir.h"
#include "tests/integration/image_fixture.h"
#include "tests/support/features.h"

namespace sbx::image {
namespace {

using sbx::testing::HtpasswdLine;
using sbx::testing::LocalRegistry;
using sbx::testing::RegistryProxy;
using sbx::testing::TempDir;
using testing::BuildImage;
using testing::BuildIndex;
using testing::PushImage;
using testing::PushManifest;
using testing::TarBuilder;
using testing::TestImage;
using testing::TestImageSpec;

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") out.push_back(name);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadOr(const std::string& path) {
  auto r = sys::ReadFile(path);
  return r ? *r : "<missing>";
}

// Two layers; the second says which platform it was built for.
TestImage SmallImage(const std::string& arch, const std::string& variant = "",
                     Compression compression = Compression::kGzip, bool docker = false) {
  TestImageSpec spec;
  spec.layer_tars.push_back(TarBuilder()
                                .Dir("etc")
                                .File("etc/os-release", "ID=test\n")
                                .Dir("bin")
                                .File("bin/tool", "#!/bin/sh\necho hi\n", 0755)
                                .Finish());
  spec.layer_tars.push_back(TarBuilder()
                                .Dir("app", 0755, 1000, 1000)
                                .File("app/arch", arch + variant, 0644, 1000, 1000)
                                .File("etc/.wh.os-release", "")
                                .Finish());
  spec.compression = compression;
  spec.docker_media_types = docker;
  spec.architecture = arch;
  spec.variant = variant;
  spec.env = {"PATH=/bin", "ARCH=" + arch};
  spec.entrypoint = {"/bin/tool"};
  spec.cmd = {"--hello"};
  spec.working_dir = "/app";
  spec.user = "1000";
  spec.exposed_ports = {"8080/tcp"};
  return BuildImage(spec);
}

class ImageRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root = sys::ProbeRealRoot();
    SBX_REQUIRE("root", root.available, root.detail);
    auto registry = LocalRegistry::Start();
    ASSERT_TRUE(registry) << registry.error().ToString();
    registry_ = std::move(*registry);
  }

  StoreOptions Options(const std::vector<std::string>& insecure) {
    StoreOptions o;
    o.root = dir_.Sub("store");
    o.insecure_registries = insecure;
    o.max_attempts = 3;
    o.timeout_seconds = 30;
    o.durable = false;
    return o;
  }
  std::unique_ptr<Store> Open(StoreOptions o) {
    auto store = Store::Open(std::move(o));
    EXPECT_TRUE(store) << store.error().ToString();
    return store ? std::move(*store) : nullptr;
  }
  std::unique_ptr<Store> Open() { return Open(Options({registry_->host()})); }

  void Push(const std::string& repo, const std::string& tag, const TestImage& image,
            LocalRegistry* registry = nullptr) {
    Status s = PushImage((registry ? registry : registry_.get())->url(), repo, tag, image);
    ASSERT_TRUE(s) << s.error().ToString();
  }
  std::string Ref(const std::string& repo_tag) const { return registry_->host() + "/" + repo_tag; }

  // What a failed pull may leave: nothing but the directories themselves.
  std::vector<std::string> Leftovers() {
    std::vector<std::string> out;
    for (const char* sub : {"tmp", "ingest", "layers", "images", "blobs/sha256"}) {
      for (const auto& e : Entries(dir_.Sub("store/") + sub))
        out.push_back(std::string(sub) + "/" + e);
    }
    return out;
  }

  TempDir dir_{"sbx-image-it"};
  std::unique_ptr<LocalRegistry> registry_;
};

TEST_F(ImageRegistryTest, AnonymousPullOfAMultiPlatformIndex) {
  TestImage amd64 = SmallImage("amd64");
  TestImage arm64 = SmallImage("arm64", "v8");
  TestImage armv7 = SmallImage("arm", "v7");
  for (const TestImage* image : {&amd64, &arm64, &armv7}) Push("test/multi", "", *image);
  std::string index = BuildIndex({{&arm64, "linux", "arm64", "v8"},
                                  {&amd64, "linux", "amd64", ""},
                                  {&armv7, "linux", "arm", "v7"}});
  Status pushed =
      PushManifest(registry_->url(), "test/multi", "1", index, std::string(media_type::kOciIndex));
  ASSERT_TRUE(pushed) << pushed.error().ToString();

  for (const auto& [platform, want] : std::vector<std::pair<std::string, const TestImage*>>{
           {"linux/amd64", &amd64}, {"linux/arm64", &arm64}, {"linux/arm/v7", &armv7}}) {
    SCOPED_TRACE(platform);
    ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
    StoreOptions o = Options({registry_->host()});
    o.platform = platform;
    auto store = Open(o);
    ASSERT_TRUE(store);
    auto image = store->Pull(Ref("test/multi:1"));
    ASSERT_TRUE(image) << image.error().ToString();
    EXPECT_EQ(image->reference, Ref("test/multi:1"));
    EXPECT_EQ(image->manifest_digest, want->manifest_digest);
    EXPECT_EQ(image->config_digest, want->config_digest);
    EXPECT_EQ(image->index_digest, Sha256Digest(index));
    EXPECT_EQ(image->platform, platform == "linux/arm64" ? "linux/arm64/v8" : platform);
    ASSERT_EQ(image->layer_dirs.size(), 2u);
    std::string arch = platform == "linux/amd64"   ? "amd64"
                       : platform == "linux/arm64" ? "arm64v8"
                                                   : "armv7";
    EXPECT_EQ(ReadOr(image->layer_dirs[1] + "/app/arch"), arch);
    EXPECT_EQ(ReadOr(image->layer_dirs[0] + "/bin/tool"), "#!/bin/sh\necho hi\n");
    struct stat st {};
    ASSERT_EQ(lstat((image->layer_dirs[1] + "/app/arch").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 1001000u);
    ASSERT_EQ(lstat((image->layer_dirs[1] + "/etc/os-release").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));  // the whiteout, overlayfs style
    EXPECT_EQ(image->config.entrypoint, std::vector<std::string>{"/bin/tool"});
    EXPECT_EQ(image->config.cmd, std::vector<std::string>{"--hello"});
    EXPECT_EQ(image->config.working_dir, "/app");
    EXPECT_EQ(image->config.user, "1000");
    EXPECT_EQ(image->config.exposed_ports, std::vector<std::string>{"8080/tcp"});
    EXPECT_EQ(image->created_unix, 1714979289);
    EXPECT_GT(image->size_bytes, 0u);

    // Local lookups: by reference, by manifest digest, by image ID, by name@index-digest.
    for (const std::string& key : {Ref("test/multi:1"), want->manifest_digest, want->config_digest,
                                   Ref("test/multi@" + Sha256Digest(index))}) {
      auto got = store->Get(key);
      ASSERT_TRUE(got) << key << ": " << got.error().ToString();
      EXPECT_EQ(got->manifest_digest, want->manifest_digest);
    }
  }
  // A platform the index does not offer.
  ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
  StoreOptions o = Options({registry_->host()});
  o.platform = "linux/s390x";
  auto store = Open(o);
  auto missing = store->Pull(Ref("test/multi:1"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  EXPECT_NE(missing.error().message().find("linux/amd64"), std::string::npos);
  EXPECT_TRUE(Leftovers().empty()) << Join(Leftovers(), " ");
}

TEST_F(ImageRegistryTest, DockerManifestListAndSchema2) {
  TestImage image = SmallImage("amd64", "", Compression::kGzip, /*docker=*/true);
  Push("test/docker", "", image);
  std::string list = BuildIndex({{&image, "linux", "amd64", ""}}, /*docker_list=*/true);
  ASSERT_TRUE(PushManifest(registry_->url(), "test/docker", "list", list,
                           std::string(media_type::kDockerManifestList)));
  Push("test/docker", "single", image);
  auto store = Open();
  auto from_list = store->Pull(Ref("test/docker:list"));
  ASSERT_TRUE(from_list) << from_list.error().ToString();
  auto single = store->Pull(Ref("test/docker:single"));
  ASSERT_TRUE(single) << single.error().ToString();
  EXPECT_EQ(single->manifest_digest, from_list->manifest_digest);
  EXPECT_EQ(single->layer_dirs, from_list->layer_dirs);  // shared layers, unpacked once
  EXPECT_EQ(single->index_digest, "");

  // zstd layers too.
  TestImage zstd = SmallImage("amd64", "", Compression::kZstd);
  Push("test/zstd", "1", zstd);
  auto z = store->Pull(Ref("test/zstd:1"));
  ASSERT_TRUE(z) << z.error().ToString();
  EXPECT_EQ(ReadOr(z->layer_dirs[1] + "/app/arch"), "amd64");
}

TEST_F(ImageRegistryTest, PullByDigestAndLocalGetNeverTouchesTheNetwork) {
  TestImage image = SmallImage("amd64");
  Push("test/img", "1", image);
  auto store = Open();
  auto pulled = store->Pull(Ref("test/img@" + image.manifest_digest));
  ASSERT_TRUE(pulled) << pulled.error().ToString();
  EXPECT_EQ(pulled->reference, Ref("test/img@" + image.manifest_digest));
  registry_->Stop();
  auto got = store->Get(Ref("test/img@" + image.manifest_digest));
  ASSERT_TRUE(got) << got.error().ToString();
  auto absent = store->Get(Ref("test/img:1"));
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().code(), Code::kNotFound);
  auto ensured = store->Ensure(Ref("test/img@" + image.manifest_digest));
  ASSERT_TRUE(ensured);
  // The registry is gone: a pull is kUnavailable.
  auto unreachable = store->Pull(Ref("test/img:1"));
  ASSERT_FALSE(unreachable);
  EXPECT_EQ(unreachable.error().code(), Code::kUnavailable) << unreachable.error().ToString();
}

TEST_F(ImageRegistryTest, NotFoundNamesReferenceAndRegistry) {
  auto store = Open();
  auto missing = store->Pull(Ref("test/nothing:1"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  EXPECT_NE(missing.error().message().find(Ref("test/nothing:1")), std::string::npos)
      << missing.error().message();
  EXPECT_NE(missing.error().message().find("registry " + registry_->host()), std::string::npos)
      << missing.error().message();
  EXPECT_EQ(missing.error().reason(), "SBX_IMAGE_NOT_FOUND");
  auto bad = store->Pull("Not A Reference");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Code::kInvalidArgument);
}

TEST_F(ImageRegistryTest, BasicAuth) {
  auto registry = LocalRegistry::Start({.htpasswd = HtpasswdLine("alice", "s3cret")});
  ASSERT_TRUE(registry) << registry.error().ToString();
  auto& r = **registry;
  TestImage image = SmallImage("amd64");
  Status pushed = PushImage(r.url(), "private/img", "1", image,
                            {.authorization = "Basic " + Base64Encode("alice:s3cret")});
  ASSERT_TRUE(pushed) << pushed.error().ToString();
  std::string ref = r.host() + "/private/img:1";

  auto anonymous = Open(Options({r.host()}));
  auto denied = anonymous->Pull(ref);
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code(), Code::kUnauthenticated) << denied.error().ToString();
  anonymous.reset();

  StoreOptions wrong = Options({r.host()});
  wrong.auths = {{r.host(), "alice", "wrong", ""}};
  auto wrong_store = Open(wrong);
  auto rejected = wrong_store->Pull(ref);
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().code(), Code::kUnauthenticated) << rejected.error().ToString();
  wrong_store.reset();

  StoreOptions right = Options({r.host()});
  right.auths = {{"http://" + r.host() + "/", "alice", "s3cret", ""}};
  auto store = Open(right);
  auto image_pulled = store->Pull(ref);
  ASSERT_TRUE(image_pulled) << image_pulled.error().ToString();
  EXPECT_EQ(image_pulled->manifest_digest, image.manifest_digest);
}

TEST_F(ImageRegistryTest, BearerTokenChallengeFlow) {
  TestImage image = SmallImage("amd64");
  Push("test/img", "1", image);
  {
    // Anonymous tokens, as Docker Hub hands out for public images.
    auto proxy = RegistryProxy::Start(registry_->url(), {"--token"});
    ASSERT_TRUE(proxy) << proxy.error().ToString();
    auto store = Open(Options({(*proxy)->host()}));
    auto pulled = store->Pull((*proxy)->host() + "/test/img:1");
    ASSERT_TRUE(pulled) << pulled.error().ToString();
    EXPECT_EQ(
        (*proxy)->Count("GET /token?service=test-registry&scope=repository%3Atest%2Fimg%3Apull"), 1)
        << Join((*proxy)->Requests(), "\n");
    EXPECT_GE((*proxy)->Count("/blobs/sha256:"), 3);
    for (const auto& line : (*proxy)->Requests()) {
      if (line.find("/blobs/") != std::string::npos) {
        EXPECT_NE(line.find("auth=bearer"), std::string::npos) << line;
      }
    }
  }
  {
    // Credentials for the token server.
    auto proxy =
        RegistryProxy::Start(registry_->url(), {"--token", "--user", "bob", "--password", "pw"});
    ASSERT_TRUE(proxy) << proxy.error().ToString();
    std::string ref = (*proxy)->host() + "/test/img:1";
    ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
    auto anonymous = Open(Options({(*proxy)->host()}));
    auto denied = anonymous->Pull(ref);
    ASSERT_FALSE(denied);
    EXPECT_EQ(denied.error().code(), Code::kUnauthenticated) << denied.error().ToString();
    anonymous.reset();
    StoreOptions o = Options({(*proxy)->host()});
    o.auths = {{(*proxy)->host(), "bob", "pw", ""}};
    auto store = Open(o);
    auto pulled = store->Pull(ref);
    ASSERT_TRUE(pulled) << pulled.error().ToString();
  }
  {
    // A configured bearer token is sent as is; the token server is never asked.
    auto proxy = RegistryProxy::Start(registry_->url(), {"--token", "--user", "bob", "--password",
                                                         "pw", "--static-token", "preissued"});
    ASSERT_TRUE(proxy) << proxy.error().ToString();
    ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
    StoreOptions o = Options({(*proxy)->host()});
    o.auths = {{(*proxy)->host(), "", "", "preissued"}};
    auto store = Open(o);
    auto pulled = store->Pull((*proxy)->host() + "/test/img:1");
    ASSERT_TRUE(pulled) << pulled.error().ToString();
    EXPECT_EQ((*proxy)->Count("/token"), 0);
  }
}

TEST_F(ImageRegistryTest, RedirectToBlobStorageDropsCredentials) {
  TestImage image = SmallImage("amd64");
  Push("test/img", "1", image);
  auto proxy = RegistryProxy::Start(registry_->url(), {"--token", "--redirect-blobs"});
  ASSERT_TRUE(proxy) << proxy.error().ToString();
  // The blob store is another origin on loopback: it must be configured in its own right.
  std::string port = (*proxy)->host().substr((*proxy)->host().rfind(':') + 1);
  auto store = Open(Options({(*proxy)->host(), "localhost:" + port}));
  auto pulled = store->Pull((*proxy)->host() + "/test/img:1");
  // The blob store answers 400 to any request that carries the registry's credentials.
  ASSERT_TRUE(pulled) << pulled.error().ToString() << "\n" << Join((*proxy)->Requests(), "\n");
  EXPECT_GE((*proxy)->Count("GET /_blobstore/sha256:"), 3);
  for (const auto& line : (*proxy)->Requests()) {
    if (line.find("/_blobstore/") != std::string::npos) {
      EXPECT_NE(line.find("auth=none"), std::string::npos) << line;
    }
  }
}

TEST_F(ImageRegistryTest, RedirectToAnUnconfiguredPrivateAddressIsRefused) {
  TestImage image = SmallImage("amd64");
  Push("test/img", "1", image);
  // SECURITY: a configured registry on loopback redirects its blobs to another loopback origin
  // ("localhost:PORT") that nobody configured; a direct reference to it would be refused, and so
  // is the redirect, before any connection to it.
  auto proxy = RegistryProxy::Start(registry_->url(), {"--redirect-blobs"});
  ASSERT_TRUE(proxy) << proxy.error().ToString();
  StoreOptions o = Options({(*proxy)->host()});
  o.max_attempts = 1;
  auto store = Open(o);
  auto pulled = store->Pull((*proxy)->host() + "/test/img:1");
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code(), Code::kPermissionDenied) << pulled.error().ToString();
  EXPECT_EQ(pulled.error().reason(), "SBX_REGISTRY_ADDRESS_BLOCKED") << pulled.error().ToString();
  EXPECT_GE((*proxy)->Count("/blobs/sha256:"), 1);
  EXPECT_EQ((*proxy)->Count("/_blobstore/"), 0) << Join((*proxy)->Requests(), "\n");
  EXPECT_EQ(Leftovers(), std::vector<std::string>{});
}

TEST_F(ImageRegistryTest, MirrorsThenOrigin) {
  auto mirror = LocalRegistry::Start();
  ASSERT_TRUE(mirror) << mirror.error().ToString();
  auto origin_proxy = RegistryProxy::Start(registry_->url(), {});
  ASSERT_TRUE(origin_proxy) << origin_proxy.error().ToString();
  TestImage on_mirror = SmallImage("amd64");
  TestImage on_origin = SmallImage("amd64", "", Compression::kZstd);
  Push("library/onmirror", "1", on_mirror, mirror->get());
  Push("library/onorigin", "1", on_origin);

  StoreOptions o = Options({});
  const std::string unreachable = "http://127.0.0.1:" + std::to_string(sbx::testing::UnusedPort());
  o.mirrors = {unreachable, (*mirror)->url() + "/"};
  o.docker_hub_endpoint = (*origin_proxy)->url();
  auto store = Open(o);

  auto from_mirror = store->Pull("onmirror:1");
  ASSERT_TRUE(from_mirror) << from_mirror.error().ToString();
  EXPECT_EQ(from_mirror->reference, "docker.io/library/onmirror:1");
  EXPECT_EQ(from_mirror->manifest_digest, on_mirror.manifest_digest);
  EXPECT_EQ((*origin_proxy)->Count("/v2/library/onmirror"), 0);

  auto from_origin = store->Pull("docker.io/library/onorigin:1");
  ASSERT_TRUE(from_origin) << from_origin.error().ToString();
  EXPECT_EQ(from_origin->manifest_digest, on_origin.manifest_digest);
  EXPECT_GE((*origin_proxy)->Count("/v2/library/onorigin/manifests/1"), 1);

  auto nowhere = store->Pull("nowhere");
  ASSERT_FALSE(nowhere);
  EXPECT_EQ(nowhere.error().code(), Code::kNotFound) << nowhere.error().ToString();
  EXPECT_NE(nowhere.error().message().find("docker.io/library/nowhere:latest"), std::string::npos);
  // What every source answered: the unreachable mirror, the mirror that does not have it, the
  // origin.
  const std::string& said = nowhere.error().message();
  EXPECT_NE(said.find("registry docker.io"), std::string::npos) << said;
  EXPECT_NE(said.find("mirror " + unreachable), std::string::npos) << said;
  EXPECT_NE(said.find("not found in mirror " + (*mirror)->url()), std::string::npos) << said;
  EXPECT_EQ(nowhere.error().reason(), "SBX_IMAGE_NOT_FOUND");

  // An origin the node cannot reach does not hide the mirror's own answer.
  StoreOptions cut_off = Options({});
  cut_off.root = dir_.Sub("store-cut-off");
  cut_off.mirrors = {(*mirror)->url()};
  cut_off.docker_hub_endpoint = unreachable;
  auto isolated = Open(cut_off);
  auto missing = isolated->Pull("nowhere:2");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound) << missing.error().ToString();
  EXPECT_NE(missing.error().message().find("not found in mirror"), std::string::npos)
      << missing.error().message();
  EXPECT_NE(missing.error().message().find("registry docker.io"), std::string::npos)
      << missing.error().message();
}

TEST_F(ImageRegistryTest, RetriesAfterDroppedConnectionsAndServerErrors) {
  TestImage image = SmallImage("amd64");
  Push("test/img", "1", image);
  auto proxy = RegistryProxy::Start(registry_->url(), {"--drop-blobs-once", "--fail-first", "2"});
  ASSERT_TRUE(proxy) << proxy.error().ToString();
  auto store = Open(Options({(*proxy)->host()}));
  auto pulled = store->Pull((*proxy)->host() + "/test/img:1");
  ASSERT_TRUE(pulled) << pulled.error().ToString() << "\n" << Join((*proxy)->Requests(), "\n");
  for (const auto& layer : image.layers) {
    // Dropped half way, then resumed from where it stopped.
    EXPECT_EQ((*proxy)->Count("/blobs/" + layer.digest + " auth=none range= "), 0);
    EXPECT_EQ((*proxy)->Count("/blobs/" + layer.digest), 2) << Join((*proxy)->Requests(), "\n");
    EXPECT_EQ((*proxy)->Count("/blobs/" + layer.digest + " auth=none range=bytes="), 1)
        << Join((*proxy)->Requests(), "\n");
  }
  EXPECT_EQ(ReadOr(pulled->layer_dirs[1] + "/app/arch"), "amd64");

  // Rate limiting (429 with Retry-After) is waited out too.
  auto limited =
      RegistryProxy::Start(registry_->url(), {"--fail-first", "2", "--fail-status", "429"});
  ASSERT_TRUE(limited) << limited.error().ToString();
  ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
  store = Open(Options({(*limited)->host()}));
  auto after_429 = store->Pull((*limited)->host() + "/test/img:1");
  ASSERT_TRUE(after_429) << after_429.error().ToString();
  EXPECT_GE((*limited)->Count("/v2/test/img/manifests/1"), 3);
}

TEST_F(ImageRegistryTest, WrongDigestsAreRejectedAndLeaveNothing) {
  TestImage image = SmallImage("amd64");
  Push("test/img", "1", image);
  for (const char* fault : {"--corrupt-blobs", "--short-blobs", "--tamper-manifests"}) {
    SCOPED_TRACE(fault);
    auto proxy = RegistryProxy::Start(registry_->url(), {fault});
    ASSERT_TRUE(proxy) << proxy.error().ToString();
    ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
    auto store = Open(Options({(*proxy)->host()}));
    auto pulled = store->Pull((*proxy)->host() + "/test/img:1");
    ASSERT_FALSE(pulled);
    EXPECT_EQ(pulled.error().code(), Code::kDataLoss) << pulled.error().ToString();
    EXPECT_EQ(pulled.error().reason(), "SBX_IMAGE_DIGEST_MISMATCH");
    EXPECT_TRUE(Leftovers().empty()) << Join(Leftovers(), " ");
    auto list = store->List();
    ASSERT_TRUE(list);
    EXPECT_TRUE(list->empty());
  }
  // A blob that is always cut short fails after the retries, also leaving nothing.
  auto proxy = RegistryProxy::Start(registry_->url(), {"--truncate-blobs"});
  ASSERT_TRUE(proxy);
  ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
  StoreOptions o = Options({(*proxy)->host()});
  o.max_attempts = 2;
  auto store = Open(o);
  auto pulled = store->Pull((*proxy)->host() + "/test/img:1");
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code(), Code::kUnavailable) << pulled.error().ToString();
  EXPECT_TRUE(Leftovers().empty()) << Join(Leftovers(), " ");
}

TEST_F(ImageRegistryTest, TimeoutsAndUnreachableRegistries) {
  auto proxy = RegistryProxy::Start(registry_->url(), {"--hang"});
  ASSERT_TRUE(proxy);
  StoreOptions o = Options({(*proxy)->host()});
  o.timeout_seconds = 1;
  o.max_attempts = 1;
  auto store = Open(o);
  int64_t start = MonotonicMillis();
  auto pulled = store->Pull((*proxy)->host() + "/test/img:1");
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code(), Code::kDeadlineExceeded) << pulled.error().ToString();
  EXPECT_LT(MonotonicMillis() - start, 15000);
  store.reset();

  std::string closed = "127.0.0.1:" + std::to_string(sbx::testing::UnusedPort());
  auto other = Open(Options({closed}));
  auto refused = other->Pull(closed + "/test/img:1");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), Code::kUnavailable) << refused.error().ToString();
}

TEST_F(ImageRegistryTest, TlsAndPrivateAddressPolicy) {
  auto tls = LocalRegistry::Start({.tls = true});
  ASSERT_TRUE(tls) << tls.error().ToString();
  TestImage image = SmallImage("amd64");
  Status pushed = PushImage((*tls)->url(), "test/img", "1", image, {.ca_file = (*tls)->ca_file()});
  ASSERT_TRUE(pushed) << pushed.error().ToString();
  std::string ref = (*tls)->host() + "/test/img:1";
  {
    // SECURITY: a loopback registry nobody configured is refused before connecting.
    auto store = Open(Options({}));
    auto blocked = store->Pull(ref);
    ASSERT_FALSE(blocked);
    EXPECT_EQ(blocked.error().code(), Code::kPermissionDenied) << blocked.error().ToString();
    EXPECT_EQ(blocked.error().reason(), "SBX_REGISTRY_ADDRESS_BLOCKED");
  }
  {
    // Allowed, but the certificate is not trusted.
    ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
    StoreOptions o = Options({});
    o.allow_private_networks = true;
    o.max_attempts = 1;
    auto store = Open(o);
    auto untrusted = store->Pull(ref);
    ASSERT_FALSE(untrusted);
    EXPECT_EQ(untrusted.error().code(), Code::kUnavailable) << untrusted.error().ToString();
    EXPECT_EQ(untrusted.error().reason(), "SBX_REGISTRY_TLS");
  }
  ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
  StoreOptions o = Options({});
  o.tls = {{(*tls)->host(), (*tls)->ca_file(), false}};
  auto store = Open(o);
  auto pulled = store->Pull(ref);
  ASSERT_TRUE(pulled) << pulled.error().ToString();
  EXPECT_EQ(pulled->manifest_digest, image.manifest_digest);
}

TEST_F(ImageRegistryTest, BombIsRefusedAndLeavesNothing) {
  TestImageSpec spec;
  spec.layer_tars.push_back(TarBuilder().Zeros("bomb", 40u << 20).Finish());
  TestImage bomb = BuildImage(spec);
  ASSERT_LT(bomb.layers[0].blob.size(), 1u << 20);
  Push("test/bomb", "1", bomb);
  StoreOptions o = Options({registry_->host()});
  o.max_layer_bytes = 8u << 20;
  auto store = Open(o);
  auto pulled = store->Pull(Ref("test/bomb:1"));
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code(), Code::kResourceExhausted) << pulled.error().ToString();
  EXPECT_TRUE(Leftovers().empty()) << Join(Leftovers(), " ");
  store.reset();
  // The image-wide bound too.
  o.max_layer_bytes = 64u << 20;
  o.max_image_bytes = 16u << 20;
  store = Open(o);
  pulled = store->Pull(Ref("test/bomb:1"));
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code(), Code::kResourceExhausted) << pulled.error().ToString();
  EXPECT_TRUE(Leftovers().empty()) << Join(Leftovers(), " ");
}

TEST_F(ImageRegistryTest, HostileLayerFromARegistryLeavesNothing) {
  TestImageSpec spec;
  spec.layer_tars.push_back(TarBuilder().File("ok", "fine").Finish());
  spec.layer_tars.push_back(TarBuilder().File("a", "x").Hardlink("b", "../../etc/passwd").Finish());
  TestImage hostile = BuildImage(spec);
  Push("test/hostile", "1", hostile);
  auto store = Open();
  auto pulled = store->Pull(Ref("test/hostile:1"));
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code(), Code::kInvalidArgument) << pulled.error().ToString();
  // The good layer may stay (complete and verified, reusable); the bad one left nothing, and
  // there is no image.
  for (const auto& e : Leftovers()) {
    EXPECT_TRUE(StartsWith(e, "layers/" + std::string(DigestHex(hostile.layers[0].diff_id)))) << e;
  }
  EXPECT_TRUE(store->List()->empty());
  auto collected = store->GarbageCollect();
  ASSERT_TRUE(collected);
  EXPECT_TRUE(Leftovers().empty()) << Join(Leftovers(), " ");
}

TEST_F(ImageRegistryTest, WrongDiffIdInConfigIsDataLoss) {
  TestImageSpec spec;
  spec.layer_tars.push_back(TarBuilder().File("f", "x").Finish());
  spec.diff_ids = {Sha256Digest("not the layer")};
  TestImage lying = BuildImage(spec);
  Push("test/lying", "1", lying);
  auto store = Open();
  auto pulled = store->Pull(Ref("test/lying:1"));
  ASSERT_FALSE(pulled);
  EXPECT_EQ(pulled.error().code(), Code::kDataLoss) << pulled.error().ToString();
  EXPECT_TRUE(Leftovers().empty()) << Join(Leftovers(), " ");
}

TEST_F(ImageRegistryTest, ConcurrentPullsAreCoalesced) {
  // Two images sharing their base layer, and two pulls of the same image.
  TestImage a = SmallImage("amd64");
  TestImageSpec spec;
  spec.layer_tars = {a.layers[0].tar, TarBuilder().File("b", "only in b").Finish()};
  TestImage b = BuildImage(spec);
  Push("test/a", "1", a);
  Push("test/b", "1", b);
  auto proxy = RegistryProxy::Start(registry_->url(), {});
  ASSERT_TRUE(proxy);
  auto store = Open(Options({(*proxy)->host()}));
  std::string ref_a = (*proxy)->host() + "/test/a:1";
  std::string ref_b = (*proxy)->host() + "/test/b:1";

  std::vector<std::vector<LayerProgress>> last(3);
  std::vector<std::atomic<int>> events(3);
  std::vector<Result<Image>> results(3, Error::Internal("not run"));
  std::vector<std::thread> threads;
  const std::string refs[3] = {ref_a, ref_a, ref_b};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      results[i] = store->Pull(refs[i], [&, i](const std::vector<LayerProgress>& layers) {
        last[i] = layers;
        ++events[i];
        // Callbacks may use the store (they run without its lock).
        if (i == 2) {
          EXPECT_TRUE(store->DiskUsage());
        }
      });
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(results[i]) << results[i].error().ToString();
    EXPECT_GT(events[i].load(), 0);
    ASSERT_EQ(last[i].size(), 2u);
    for (const auto& l : last[i]) {
      EXPECT_TRUE(l.phase == "done" || l.phase == "cached") << l.phase;
      EXPECT_EQ(l.done, l.total);
    }
  }
  EXPECT_EQ(results[0]->layer_dirs, results[1]->layer_dirs);
  EXPECT_EQ(results[0]->layer_dirs[0], results[2]->layer_dirs[0]);
  // Every blob crossed the network once.
  EXPECT_EQ((*proxy)->Count("/blobs/" + a.layers[0].digest), 1) << Join((*proxy)->Requests(), "\n");
  EXPECT_EQ((*proxy)->Count("/blobs/" + a.layers[1].digest), 1);
  EXPECT_EQ((*proxy)->Count("/blobs/" + b.layers[1].digest), 1);
  EXPECT_EQ((*proxy)->Count("/v2/test/a/manifests/1"), 1);

  // Pulling again: the manifest is checked, the layers are cached.
  std::vector<LayerProgress> again;
  auto second = store->Pull(ref_a, [&](const std::vector<LayerProgress>& l) { again = l; });
  ASSERT_TRUE(second);
  for (const auto& l : again) EXPECT_EQ(l.phase, "cached");
}

TEST_F(ImageRegistryTest, GarbageCollectionKeepsWhatIsInUse) {
  TestImage a = SmallImage("amd64");
  TestImageSpec spec;
  spec.layer_tars = {a.layers[0].tar, TarBuilder().File("b", std::string(100000, 'b')).Finish()};
  TestImage b = BuildImage(spec);
  Push("test/a", "1", a);
  Push("test/b", "1", b);
  auto store = Open();
  auto image_a = store->Pull(Ref("test/a:1"));
  auto image_b = store->Pull(Ref("test/b:1"));
  ASSERT_TRUE(image_a && image_b);
  auto usage = store->DiskUsage();
  ASSERT_TRUE(usage);
  EXPECT_GE(*usage, 100000u);

  ASSERT_TRUE(store->Hold(a.manifest_digest));
  auto in_use = store->Remove(Ref("test/a:1"), /*force=*/false);
  ASSERT_FALSE(in_use);
  EXPECT_EQ(in_use.error().code(), Code::kFailedPrecondition);
  ASSERT_TRUE(store->Remove(Ref("test/a:1"), /*force=*/true));
  // Removed, but its layers stay while a sandbox holds it.
  EXPECT_EQ(store->Get(Ref("test/a:1")).error().code(), Code::kNotFound);
  for (const auto& dir : image_a->layer_dirs) EXPECT_TRUE(sys::PathExists(dir)) << dir;
  auto reclaimed = store->GarbageCollect();
  ASSERT_TRUE(reclaimed);
  for (const auto& dir : image_a->layer_dirs) EXPECT_TRUE(sys::PathExists(dir)) << dir;

  store->Release(a.manifest_digest);
  reclaimed = store->GarbageCollect();
  ASSERT_TRUE(reclaimed);
  EXPECT_GT(*reclaimed, 0u);
  EXPECT_FALSE(sys::PathExists(image_a->layer_dirs[1]));
  EXPECT_TRUE(sys::PathExists(image_a->layer_dirs[0]));  // shared with b
  for (const auto& dir : image_b->layer_dirs) EXPECT_TRUE(sys::PathExists(dir)) << dir;
  EXPECT_TRUE(store->Get(Ref("test/b:1")));
  EXPECT_LT(*store->DiskUsage(), *usage);

  // Records and layers survive a restart; holds do not need to.
  store.reset();
  store = Open();
  auto again = store->Get(Ref("test/b:1"));
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(again->layer_dirs, image_b->layer_dirs);
  auto list = store->List();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  ASSERT_TRUE(store->Remove(image_b->config_digest, false));
  EXPECT_TRUE(store->List()->empty());
  ASSERT_TRUE(store->GarbageCollect());
  EXPECT_TRUE(Leftovers().empty()) << Join(Leftovers(), " ");
  EXPECT_EQ(*store->DiskUsage(), 0u);

  // One process per store root.
  auto second = Store::Open(Options({registry_->host()}));
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace sbx::image
