// File: store.h
//
// The image store: pulls images from registries (or loads them from archives), keeps their
// content and unpacked layers on disk, and hands the runtime a list of layer directories to stack
// with overlayfs. One Store owns its root directory (an exclusive lock file keeps a second
// process out):
//
//   <root>/blobs/sha256/<hex>        content store: manifests, configs (and layer blobs when
//                                    keep_layer_blobs); see content_store.h
//   <root>/ingest/                   blobs being downloaded
//   <root>/layers/<diff-id-hex>/fs   an unpacked layer, shared by every image and sandbox using
//                                    it; layer.json next to it records its size
//   <root>/images/<hash>.json        one record per reference: reference -> manifest, config,
//                                    layers (written atomically)
//   <root>/tmp/                      layers being unpacked; removed at Open
//
// Nothing becomes visible half-written: blobs are verified then renamed into place, a layer is
// unpacked into tmp/ and renamed into layers/ only when complete and its diff_id verified, and a
// record is written last. Bad input (a corrupt or hostile layer, a wrong digest, a bomb) fails the
// pull and leaves no image, nothing of the bad layer, and no unreferenced blob; other layers of
// that image that were complete and verified stay for a retry (GarbageCollect removes them if
// nothing uses them).
//
// Concurrency: thread-safe. Concurrent pulls of one reference share a single pull (each caller
// gets the progress events); concurrent pulls of different images that share a layer download
// and unpack it once. Garbage collection never removes what a pull in progress or a held image
// uses. Holds are in memory: the daemon re-holds the images of surviving sandboxes after a
// restart.
//
//   auto store = Store::Open({.root = "/var/lib/sbx/images"});
//   auto image = (*store)->Ensure("python:3.11", [](const auto& layers) { ... });
//   (*store)->Hold(image->manifest_digest);          // while a sandbox runs on image->layer_dirs
//   (*store)->Release(image->manifest_digest);

#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/image/config.h"
#include "src/image/content_store.h"
#include "src/image/manifest.h"
#include "src/image/reference.h"
#include "src/image/registry_client.h"

namespace sbx::image {

struct Image {
  std::string reference;                // normalised
  std::string manifest_digest;          // sha256:... of the platform's image manifest
  std::string config_digest;            // the image ID
  std::vector<std::string> layer_dirs;  // unpacked layer directories, lowest first, absolute
  ImageConfig config;
  uint64_t size_bytes = 0;  // unpacked size on disk (regular file bytes of its layers)
  int64_t created_unix = 0;
  std::string index_digest;  // the index the reference resolved to, if any
  std::string platform;      // "linux/amd64"
};

struct LayerProgress {
  std::string digest;            // the layer blob's digest
  uint64_t total = 0, done = 0;  // compressed bytes
  std::string phase;  // "waiting", "downloading", "verifying", "unpacking", "done", "cached"
};
// Called with the state of every layer whenever it changes (at most every ~100 ms per pull, and
// on every phase change); never concurrently for one pull.
using ProgressFn = std::function<void(const std::vector<LayerProgress>&)>;

struct StoreOptions {
  std::string root;                              // e.g. /var/lib/sbx/images
  std::vector<std::string> mirrors;              // for docker.io, e.g. "http://127.0.0.1:5000"
  std::vector<std::string> insecure_registries;  // host:port allowed over plain HTTP
  std::vector<RegistryAuth> auths;
  // Layer files are chowned to host_uid + uid (uids >= id_range are mapped to the overflow id
  // 65534 + host_uid); the sandbox's root is host_uid.
  uint32_t host_uid = 1000000, host_gid = 1000000, id_range = 65536;
  std::string platform = "linux/amd64";
  uint64_t max_layer_bytes = 8ull << 30, max_image_bytes = 32ull << 30;  // unpacked bounds
  int timeout_seconds = 300;

  // Beyond the daemon's required options:
  std::vector<RegistryTls> tls;  // per-registry CA bundle / verification
  std::string docker_hub_endpoint = std::string(kDockerHubEndpoint);  // the docker.io origin
  int max_attempts = 5;                 // per registry endpoint, with exponential backoff
  bool allow_private_networks = false;  // registries on RFC 1918 addresses without listing them
  bool keep_layer_blobs = false;        // keep compressed layers after unpacking (costs disk)
  bool durable = true;                  // syncfs a layer before publishing it
  int parallel_layers = 3;              // layers downloaded/unpacked at once per pull
  uint64_t max_layer_entries = 1u << 20;
  // Pulls and loads stop (RESOURCE_EXHAUSTED) rather than leave less than this free on the
  // store's filesystem: before each download and while layers unpack. 0: no check.
  uint64_t min_free_bytes = 0;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> Open(StoreOptions options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Pulls `reference` (coalescing concurrent pulls of it and of shared layers).
  Result<Image> Pull(const std::string& reference, const ProgressFn& progress = {});
  // Local only, kNotFound if absent; never touches the network. Also accepts a manifest digest
  // or an image ID (config digest), "sha256:...".
  Result<Image> Get(const std::string& reference);
  // Get, else Pull.
  Result<Image> Ensure(const std::string& reference, const ProgressFn& progress = {});
  Result<std::vector<Image>> List();
  // Removes the reference (a digest removes every reference to that image); GarbageCollect then
  // reclaims what nothing uses any more. kFailedPrecondition if a sandbox holds the image and no
  // other reference names it, unless `force` (its layers then stay until Release); a reference
  // whose image another reference still names is only untagged.
  Status Remove(const std::string& reference, bool force);
  // Loads a `docker save` archive, an OCI image layout directory, or an OCI layout tar (plain,
  // gzip or zstd). `tag` names an image the archive leaves unnamed.
  Result<std::vector<Image>> Load(const std::string& archive_path, const std::string& tag = "");
  // A sandbox uses the image: GC and Remove keep its layers until Release.
  Status Hold(const std::string& manifest_digest);
  void Release(const std::string& manifest_digest);
  // Removes unreferenced blobs and layers; returns the bytes reclaimed.
  Result<uint64_t> GarbageCollect();
  Result<uint64_t> DiskUsage();

  const StoreOptions& options() const { return options_; }

 private:
  struct LayerRecord {
    std::string diff_id;
    std::string digest;  // compressed blob
    std::string media_type;
    uint64_t size = 0;  // compressed
  };
  struct Record {
    std::string reference;
    std::string manifest_digest;
    std::string index_digest;
    std::string config_digest;
    std::string platform;
    std::vector<LayerRecord> layers;
    ImageConfig config;
    int64_t created_unix = 0;
  };
  struct LayerInfo {
    uint64_t file_bytes = 0;
    uint64_t decoded_bytes = 0;
  };
  class PullState;
  class Pins;

  explicit Store(StoreOptions options);
  Status Init();
  Result<Image> DoPull(const Reference& ref, PullState& state);
  // Common to Pull and Load: fetches (or finds) config and layers, unpacks, writes the record.
  Result<Image> Materialize(const std::string& reference, const Reference* source,
                            const std::string& index_digest, const std::string& manifest_digest,
                            const Manifest& manifest, PullState& state);
  Status EnsureLayer(size_t index, const LayerRecord& layer, const Reference* source,
                     PullState& state, std::atomic<int64_t>& budget);
  // RESOURCE_EXHAUSTED (SBX_DISK_FULL) unless `about_to_write` more bytes leave min_free_bytes.
  Status CheckSpace(uint64_t about_to_write) const;
  Status BuildLayer(size_t index, const LayerRecord& layer, const Reference* source,
                    PullState& state, std::atomic<int64_t>& budget, LayerInfo* info);
  Status WriteRecord(const Record& record);
  Result<uint64_t> Collect(bool include_layers);
  Result<std::vector<Image>> LoadLocked(const std::string& archive_path, const std::string& tag);
  Result<Image> ToImage(const Record& record) const;                         // mu_ held
  std::vector<const Record*> FindByDigest(const std::string& digest) const;  // mu_ held
  std::string LayerDir(const std::string& diff_id) const;
  std::string RecordPath(const std::string& reference) const;
  void Pin(const std::vector<std::string>& keys);
  void Unpin(const std::vector<std::string>& keys);
  static std::vector<std::string> RecordKeys(const Record& record, bool with_layer_blobs);

  StoreOptions options_;
  UniqueFd lock_fd_;
  std::unique_ptr<ContentStore> content_;
  std::unique_ptr<RegistryClient> registry_;

  std::shared_mutex gc_mu_;  // collections exclusive; loads (unpinned blobs) shared
  std::mutex mu_;
  std::map<std::string, Record> records_;    // by reference
  std::map<std::string, LayerInfo> layers_;  // by diff_id: complete layer dirs
  std::map<std::string, int> pins_;          // "blob:<digest>", "layer:<diff_id>"
  std::map<std::string, std::pair<int, std::vector<std::string>>> holds_;  // manifest -> pins
  std::map<std::string, std::shared_ptr<PullState>> pulls_;                // in flight
  std::map<std::string, std::shared_future<Status>> layer_builds_;         // diff_id -> build
};

}  // namespace sbx::image
