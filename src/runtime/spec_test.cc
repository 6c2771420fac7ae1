#include "src/runtime/spec.h"

#include <gtest/gtest.h>

namespace sbx::runtime {
namespace {

RuntimeSpec Good() {
  RuntimeSpec spec;
  spec.id = "sb-1";
  spec.rootfs.layers = {"/layers/a", "/layers/b"};
  spec.process.args = {"/bin/sh"};
  spec.process.env = {"A=1"};
  spec.hostname = "sb-1";
  return spec;
}

TEST(SpecTest, GoodSpecValidatesAndRoundTrips) {
  RuntimeSpec spec = Good();
  spec.files.push_back({"/etc/x", "/bundle/files/0", 0444});
  spec.rootfs.writable.kind = WritableKind::kTmpfs;
  ASSERT_TRUE(Validate(spec));
  auto back = FromJson(ToJson(spec));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->id, "sb-1");
  EXPECT_EQ(back->rootfs.layers, spec.rootfs.layers);
  EXPECT_EQ(back->rootfs.writable.kind, WritableKind::kTmpfs);
  EXPECT_EQ(back->files.size(), 1u);
  EXPECT_EQ(back->files[0].mode, 0444u);
  EXPECT_EQ(back->process.env, spec.process.env);
  EXPECT_EQ(back->id_map, spec.id_map);
  EXPECT_FALSE(back->rootfs.layer_ids);
}

TEST(SpecTest, LayerIdsRoundTrip) {
  RuntimeSpec spec = Good();
  spec.id_map = {1065536, 1065536, 65536};
  spec.rootfs.layer_ids = LayerIds{1000000, 1000001};
  ASSERT_TRUE(Validate(spec));
  auto back = FromJson(ToJson(spec));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->id_map, spec.id_map);
  ASSERT_TRUE(back->rootfs.layer_ids);
  EXPECT_EQ(*back->rootfs.layer_ids, *spec.rootfs.layer_ids);
  // Layers owned by host root are fine: the sandbox sees them through an idmapped mount.
  spec.rootfs.layer_ids = LayerIds{0, 0};
  EXPECT_TRUE(Validate(spec));
}

TEST(SpecTest, ErrorsNameTheField) {
  struct Case {
    std::function<void(RuntimeSpec&)> mutate;
    std::string field;
  };
  std::vector<Case> cases = {
      {[](RuntimeSpec& s) { s.id = "bad id!"; }, "id"},
      {[](RuntimeSpec& s) { s.rootfs.layers.clear(); }, "rootfs.layers"},
      {[](RuntimeSpec& s) { s.rootfs.layers = {"relative"}; }, "rootfs.layers[0]"},
      {[](RuntimeSpec& s) { s.rootfs.layers = {"/a:b"}; }, "rootfs.layers[0]"},
      {[](RuntimeSpec& s) { s.process.cwd = "tmp"; }, "process.cwd"},
      {[](RuntimeSpec& s) { s.process.env = {"NOEQUALS"}; }, "process.env"},
      {[](RuntimeSpec& s) { s.process.args = {""}; }, "process.args"},
      {[](RuntimeSpec& s) { s.resources.memory_bytes = 1024; }, "resources.memory_bytes"},
      {[](RuntimeSpec& s) { s.resources.cpu_millis = 0; }, "resources.cpu_millis"},
      {[](RuntimeSpec& s) { s.resources.pids = 1; }, "resources.pids"},
      {[](RuntimeSpec& s) { s.rootfs.writable.size_bytes = 10; }, "rootfs.writable.size_bytes"},
      {[](RuntimeSpec& s) { s.id_map.host_uid = 0; }, "id_map"},
      {[](RuntimeSpec& s) {
         s.rootfs.layer_ids = LayerIds{0xffffff00u, 0};
       },
       "rootfs.layer_ids"},
      {[](RuntimeSpec& s) { s.network.mode = "bridge"; }, "network.mode"},
      {[](RuntimeSpec& s) {
         s.files.push_back({"/", "/src", 0444});
       },
       "files[0].path"},
  };
  for (const auto& c : cases) {
    RuntimeSpec spec = Good();
    c.mutate(spec);
    Status s = Validate(spec);
    ASSERT_FALSE(s) << c.field;
    EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
    EXPECT_EQ(s.error().message().rfind(c.field, 0), 0u) << s.error().message();
  }
}

TEST(SpecTest, FromJsonRejectsGarbage) {
  EXPECT_FALSE(FromJson("not json"));
  EXPECT_FALSE(FromJson("[]"));
  EXPECT_FALSE(FromJson("{}"));  // no id
  EXPECT_FALSE(FromJson(R"({"id": 5})"));
  EXPECT_FALSE(FromJson(R"({"id": "a", "rootfs": {"writable": {"kind": "zfs"}}})"));
}

}  // namespace
}  // namespace sbx::runtime
