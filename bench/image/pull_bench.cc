// Image store benchmark: pull + unpack of an image from a registry (by default python:3.11 from
// the local fixture, tools/registry/registry.sh up, used as a docker.io mirror).
//
//   image_pull_bench [--mirror http://127.0.0.1:5000] [--image python:3.11] [--runs 3]
//                    [--root DIR] [--no-durable] [--json out.json]
//
// --root picks the filesystem measured (default: a new directory under /var/tmp); the store of
// run N is DIR/run-N.
//
// Each run starts from an empty store and measures:
//   cold  Pull into the empty store (manifests, download, verify, unpack, record);
//   warm  Pull again (the manifest is re-resolved, every layer is cached);
//   get   Get, what sandbox creation pays when the image is present (no network).
// Not a test: timings depend on the machine; nothing here gates CI.

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/image/store.h"
#include "src/sys/fs.h"

using namespace sbx;  // NOLINT(google-build-using-namespace)

namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"pull + unpack benchmark of the image store"};
  std::string mirror = "http://127.0.0.1:5000";
  std::string image_ref = "python:3.11";
  std::string root;
  std::string json_path;
  int runs = 3;
  bool no_durable = false;
  app.add_option("--mirror", mirror, "docker.io mirror (the local registry fixture)");
  app.add_option("--image", image_ref, "reference to pull");
  app.add_option("--runs", runs, "cold pulls to measure")->check(CLI::PositiveNumber);
  app.add_option("--root", root, "store directory (default: a temporary directory)");
  app.add_flag("--no-durable", no_durable, "skip syncfs before publishing a layer");
  app.add_option("--json", json_path, "write the results as JSON");
  CLI11_PARSE(app, argc, argv);

  std::string tmp;
  if (root.empty()) {
    char pattern[] = "/var/tmp/sbx-image-bench-XXXXXX";
    if (mkdtemp(pattern) == nullptr) {
      perror("mkdtemp");
      return 1;
    }
    tmp = pattern;
    root = tmp + "/store";
  }

  std::vector<double> cold, warm, get;
  uint64_t size = 0;
  size_t layers = 0;
  for (int run = 0; run < runs; ++run) {
    // A fresh store per run; old ones are deleted at the end, so that deleting them (which on
    // some disks means slow discards) does not land inside a measured pull.
    std::string run_root = root + "/run-" + std::to_string(run);
    if (!sys::RemoveTree(run_root)) return 1;
    image::StoreOptions options;
    options.root = run_root;
    options.mirrors = {mirror};
    options.durable = !no_durable;
    auto store = image::Store::Open(options);
    if (!store) {
      fprintf(stderr, "open store: %s\n", store.error().ToString().c_str());
      return 1;
    }
    // The page cache keeps the registry's blobs warm after the first run; the store's own files
    // are new each run.
    int64_t t0 = MonotonicNanos();
    auto pulled = (*store)->Pull(image_ref);
    int64_t t1 = MonotonicNanos();
    if (!pulled) {
      fprintf(stderr, "pull: %s\n", pulled.error().ToString().c_str());
      return 1;
    }
    auto again = (*store)->Pull(image_ref);
    int64_t t2 = MonotonicNanos();
    auto local = (*store)->Get(image_ref);
    int64_t t3 = MonotonicNanos();
    if (!again || !local) {
      fprintf(stderr, "second pull or get failed\n");
      return 1;
    }
    cold.push_back(static_cast<double>(t1 - t0) / 1e6);
    warm.push_back(static_cast<double>(t2 - t1) / 1e6);
    get.push_back(static_cast<double>(t3 - t2) / 1e6);
    size = pulled->size_bytes;
    layers = pulled->layer_dirs.size();
    printf("run %d: cold %.0f ms, warm %.1f ms, get %.3f ms\n", run + 1, cold.back(), warm.back(),
           get.back());
  }
  printf("\n%s via %s: %zu layers, %s unpacked, durable=%s\n", image_ref.c_str(), mirror.c_str(),
         layers, FormatBytes(size).c_str(), no_durable ? "no" : "yes");
  printf("%-6s %10s %10s %10s\n", "", "median", "min", "max");
  auto row = [](const char* name, const std::vector<double>& v) {
    printf("%-6s %8.1f ms %7.1f ms %7.1f ms\n", name, Median(v),
           *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
  };
  row("cold", cold);
  row("warm", warm);
  row("get", get);
  if (!json_path.empty()) {
    nlohmann::json j = {{"image", image_ref},     {"mirror", mirror},       {"layers", layers},
                        {"unpacked_bytes", size}, {"durable", !no_durable}, {"cold_ms", cold},
                        {"warm_ms", warm},        {"get_ms", get}};
    std::ofstream(json_path) << j.dump(2) << "\n";
  }
  for (int run = 0; run < runs; ++run) (void)sys::RemoveTree(root + "/run-" + std::to_string(run));
  if (!tmp.empty()) (void)sys::RemoveTree(tmp);
  return 0;
}
