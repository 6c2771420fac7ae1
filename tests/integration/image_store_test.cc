// The image store without a registry: loading archives, the unpacked layers as overlayfs sees
// them, and what a refused archive leaves behind.

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "src/base/strings.h"
#include "src/image/digest.h"
#include "src/image/manifest.h"
#include "src/image/store.h"
#include "src/image/testing/image_builder.h"
#include "src/image/testing/tar_builder.h"
#include "src/sys/features.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"
#include "src/testing/temp_dir.h"
#include "tests/support/features.h"

namespace sbx::image {
namespace {

using sbx::testing::TempDir;
using testing::BuildImage;
using testing::LayoutEntry;
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

TestImage TwoLayers(const std::string& marker) {
  TestImageSpec spec;
  spec.layer_tars.push_back(TarBuilder()
                                .Dir("etc")
                                .File("etc/hostname", "base\n")
                                .File("gone", "lower")
                                .Dir("cache")
                                .File("cache/old1", "1")
                                .File("cache/old2", "2")
                                .Dir("keep")
                                .File("keep/lower", "kept")
                                .Finish());
  spec.layer_tars.push_back(TarBuilder()
                                .File(".wh.gone", "")
                                .Dir("cache")
                                .File("cache/.wh..wh..opq", "")
                                .File("cache/new", "fresh")
                                .File("keep/upper", "added")
                                .File("marker", marker)
                                .Finish());
  spec.compression = Compression::kNone;  // as docker save has them
  spec.cmd = {"sh"};
  spec.env = {"PATH=/bin"};
  return BuildImage(spec);
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root = sys::ProbeRealRoot();
    SBX_REQUIRE("root", root.available, root.detail);
  }
  std::unique_ptr<Store> Open() {
    StoreOptions o;
    o.root = dir_.Sub("store");
    o.durable = false;
    auto store = Store::Open(o);
    EXPECT_TRUE(store) << store.error().ToString();
    return store ? std::move(*store) : nullptr;
  }
  std::vector<std::string> Leftovers() {
    std::vector<std::string> out;
    for (const char* sub : {"tmp", "ingest", "layers", "images", "blobs/sha256"}) {
      for (const auto& e : Entries(dir_.Sub("store/") + sub))
        out.push_back(std::string(sub) + "/" + e);
    }
    return out;
  }
  TempDir dir_{"sbx-image-store"};
};

TEST_F(ImageStoreTest, LoadsDockerSaveArchives) {
  TestImage one = TwoLayers("one");
  TestImage two = TwoLayers("two");
  std::string tar = dir_.Sub("save.tar");
  ASSERT_TRUE(testing::WriteDockerSave(
      tar, {{&one, {"example/one:1", "example/one:latest"}}, {&two, {"ghcr.io/org/two:v2"}}}));
  auto store = Open();
  auto loaded = store->Load(tar);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  ASSERT_EQ(loaded->size(), 3u);
  EXPECT_EQ((*loaded)[0].reference, "docker.io/example/one:1");
  EXPECT_EQ((*loaded)[1].reference, "docker.io/example/one:latest");
  EXPECT_EQ((*loaded)[2].reference, "ghcr.io/org/two:v2");
  EXPECT_EQ((*loaded)[0].config_digest, one.config_digest);
  EXPECT_EQ((*loaded)[0].config.cmd, std::vector<std::string>{"sh"});
  ASSERT_EQ((*loaded)[0].layer_dirs.size(), 2u);
  // The base layer is shared.
  EXPECT_EQ((*loaded)[0].layer_dirs[0], (*loaded)[2].layer_dirs[0]);
  EXPECT_EQ(*sys::ReadFile((*loaded)[2].layer_dirs[1] + "/marker"), "two");
  auto list = store->List();
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 3u);
  EXPECT_TRUE(store->Get("example/one"));
  ASSERT_TRUE(store->Remove("example/one:1", false));
  EXPECT_TRUE(store->Get("example/one:latest"));
}

TEST_F(ImageStoreTest, LoadsDocker25SaveArchives) {
  // Docker 25+ writes an OCI layout plus the classic manifest.json pointing into blobs/.
  TestImage image = TwoLayers("new");
  std::string layout = dir_.Sub("d25");
  ASSERT_TRUE(testing::WriteOciLayout(layout, {{&image, "docker.io/library/new:1", "1"}}));
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : image.layers)
    layers.push_back("blobs/sha256/" + std::string(DigestHex(l.digest)));
  nlohmann::json manifest = nlohmann::json::array(
      {{{"Config", "blobs/sha256/" + std::string(DigestHex(image.config_digest))},
        {"RepoTags", {"new:1"}},
        {"Layers", layers}}});
  ASSERT_TRUE(sys::WriteFile(layout + "/manifest.json", manifest.dump()));
  std::string tar = dir_.Sub("d25.tar");
  ASSERT_TRUE(testing::TarDirectory(layout, tar));
  auto store = Open();
  auto loaded = store->Load(tar);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].reference, "docker.io/library/new:1");
  EXPECT_EQ((*loaded)[0].config_digest, image.config_digest);
  EXPECT_EQ(*sys::ReadFile((*loaded)[0].layer_dirs[1] + "/marker"), "new");
}

TEST_F(ImageStoreTest, LoadsOciLayoutsAsDirectoryAndTar) {
  TestImage amd64 = TwoLayers("amd64");
  std::string layout = dir_.Sub("layout");
  ASSERT_TRUE(testing::WriteOciLayout(
      layout, {{&amd64, "docker.io/library/app:1", "1"}, {&amd64, "", "latest"}}));
  {
    auto store = Open();
    auto loaded = store->Load(layout, "local/unnamed:tagged");
    ASSERT_TRUE(loaded) << loaded.error().ToString();
    ASSERT_EQ(loaded->size(), 2u);
    EXPECT_EQ((*loaded)[0].reference, "docker.io/library/app:1");
    // A bare ref.name ("latest") is not a name: the tag given names it.
    EXPECT_EQ((*loaded)[1].reference, "docker.io/local/unnamed:tagged");
    EXPECT_EQ((*loaded)[0].manifest_digest, amd64.manifest_digest);
  }
  ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
  std::string tar = dir_.Sub("layout.tar.gz");
  ASSERT_TRUE(testing::TarDirectory(layout, tar, Compression::kGzip));
  {
    auto store = Open();
    auto loaded = store->Load(tar);
    ASSERT_TRUE(loaded) << loaded.error().ToString();
    ASSERT_EQ(loaded->size(), 2u);
    EXPECT_EQ((*loaded)[1].reference, amd64.manifest_digest);  // unnamed: known by digest
    EXPECT_TRUE(store->Get(amd64.manifest_digest));
  }
}

TEST_F(ImageStoreTest, LoadsANestedIndexForThePlatform) {
  TestImage amd64 = TwoLayers("amd64");
  TestImageSpec arm_spec;
  arm_spec.layer_tars = {TarBuilder().File("marker", "arm64").Finish()};
  arm_spec.architecture = "arm64";
  TestImage arm64 = BuildImage(arm_spec);
  std::string layout = dir_.Sub("layout");
  ASSERT_TRUE(testing::WriteOciLayout(layout, {{&amd64, "", ""}, {&arm64, "", ""}}));
  // Replace index.json by one entry pointing at a nested index over both platforms.
  std::string nested =
      testing::BuildIndex({{&arm64, "linux", "arm64", ""}, {&amd64, "linux", "amd64", ""}});
  ASSERT_TRUE(sys::WriteFile(
      layout + "/blobs/sha256/" + std::string(DigestHex(Sha256Digest(nested))), nested));
  nlohmann::json index = {
      {"schemaVersion", 2},
      {"manifests",
       {{{"mediaType", media_type::kOciIndex},
         {"digest", Sha256Digest(nested)},
         {"size", nested.size()},
         {"annotations", {{"io.containerd.image.name", "registry.example/multi:2"}}}}}}};
  ASSERT_TRUE(sys::WriteFile(layout + "/index.json", index.dump()));
  auto store = Open();
  auto loaded = store->Load(layout);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].reference, "registry.example/multi:2");
  EXPECT_EQ((*loaded)[0].manifest_digest, amd64.manifest_digest);
  EXPECT_EQ((*loaded)[0].index_digest, Sha256Digest(nested));
}

TEST_F(ImageStoreTest, OverlayfsSeesWhiteoutsAndOpaqueDirectories) {
  auto overlay = sys::ProbeOverlayfs();
  SBX_REQUIRE("overlayfs", overlay.available, overlay.detail);
  TestImage image = TwoLayers("top");
  std::string tar = dir_.Sub("save.tar");
  ASSERT_TRUE(testing::WriteDockerSave(tar, {{&image, {"t/overlay:1"}}}));
  auto store = Open();
  auto loaded = store->Load(tar);
  ASSERT_TRUE(loaded) << loaded.error().ToString();
  const auto& dirs = (*loaded)[0].layer_dirs;
  ASSERT_EQ(dirs.size(), 2u);
  std::string mnt = dir_.Sub("mnt");
  ASSERT_TRUE(sys::MakeDirs(mnt));
  // In a private mount namespace, so nothing outlives the check.
  std::string script = "mount -t overlay overlay -o ro,lowerdir=" + dirs[1] + ":" + dirs[0] + " " +
                       mnt + " && cd " + mnt +
                       " && test ! -e gone && ls cache && ls keep && cat marker etc/hostname"
                       " && stat -c '%u:%g %a' keep/upper";
  auto run = sys::RunCommand(
      {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script},
      {"PATH=/usr/bin:/bin"}, 30000);
  ASSERT_TRUE(run) << run.error().ToString();
  ASSERT_EQ(run->status.ShellCode(), 0) << run->err;
  EXPECT_EQ(run->out, "new\nlower\nupper\ntopbase\n1000000:1000000 644\n");
}

TEST_F(ImageStoreTest, RefusedArchivesLeaveNothingBehind) {
  struct Case {
    const char* name;
    std::string layer;
    Code code;
  };
  const Case cases[] = {
      {"dotdot", TarBuilder().File("ok", "x").File("../../escape", "x").Finish(),
       Code::kInvalidArgument},
      {"hardlink-out", TarBuilder().Hardlink("h", "/etc/shadow").Finish(), Code::kInvalidArgument},
      {"whiteout-dotdot", TarBuilder().Dir("etc").File("etc/.wh...", "").Finish(),
       Code::kInvalidArgument},
      {"symlink-parent", TarBuilder().Symlink("l", "/nonexistent").File("l/x", "x").Finish(),
       Code::kInvalidArgument},
      {"huge-path", TarBuilder().File(std::string(5000, 'p'), "x").Finish(),
       Code::kInvalidArgument},
      {"bomb", TarBuilder().Zeros("z", 40u << 20).Finish(), Code::kResourceExhausted},
      {"not-a-tar", std::string(10000, 'x'), Code::kDataLoss},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TestImageSpec spec;
    spec.layer_tars = {c.layer};
    spec.compression = Compression::kGzip;
    TestImage image = BuildImage(spec);
    std::string layout = dir_.Sub(std::string("layout-") + c.name);
    ASSERT_TRUE(
        testing::WriteOciLayout(layout, {{&image, "hostile/" + std::string(c.name) + ":1", ""}}));
    ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
    StoreOptions o;
    o.root = dir_.Sub("store");
    o.durable = false;
    o.max_layer_bytes = 16u << 20;
    auto store = Store::Open(o);
    ASSERT_TRUE(store);
    auto loaded = (*store)->Load(layout);
    ASSERT_FALSE(loaded) << c.name << " was loaded";
    EXPECT_EQ(loaded.error().code(), c.code) << loaded.error().ToString();
    EXPECT_TRUE(Leftovers().empty()) << Join(Leftovers(), " ");
    EXPECT_TRUE((*store)->List()->empty());
  }
  // A layout blob whose content does not match its name.
  TestImage image = TwoLayers("x");
  std::string layout = dir_.Sub("layout-corrupt");
  ASSERT_TRUE(testing::WriteOciLayout(layout, {{&image, "bad/blob:1", ""}}));
  ASSERT_TRUE(sys::WriteFile(
      layout + "/blobs/sha256/" + std::string(DigestHex(image.layers[1].digest)), "tampered"));
  ASSERT_TRUE(sys::RemoveTree(dir_.Sub("store")));
  auto store = Open();
  auto loaded = store->Load(layout);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code(), Code::kDataLoss) << loaded.error().ToString();
  EXPECT_TRUE(Leftovers().empty()) << Join(Leftovers(), " ");
  // Not an archive at all.
  ASSERT_TRUE(sys::WriteFile(dir_.Sub("junk.tar"), TarBuilder().File("hello", "x").Finish()));
  auto junk = store->Load(dir_.Sub("junk.tar"));
  ASSERT_FALSE(junk);
  EXPECT_EQ(junk.error().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace sbx::image
