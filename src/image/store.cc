#include "src/image/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include <nlohmann/json.hpp>

#include "src/base/clock.h"
#include "src/base/failpoint.h"
#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/image/archive_loader.h"
#include "src/image/digest.h"
#include "src/image/layer_unpacker.h"
#include "src/image/platform.h"
#include "src/sys/fs.h"

namespace sbx::image {
namespace {

using Json = nlohmann::json;

constexpr int64_t kProgressIntervalMs = 100;
constexpr size_t kMaxRecordBytes = 8u << 20;

Status FsyncPath(const std::string& path) {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, sys::Open(path, O_RDONLY | O_DIRECTORY));
  if (::fsync(fd.get()) != 0) return Error::Errno("fsync " + Quote(path));
  return Ok();
}

Json ConfigToJson(const ImageConfig& c) {
  return Json{{"env", c.env},
              {"entrypoint", c.entrypoint},
              {"cmd", c.cmd},
              {"exposed_ports", c.exposed_ports},
              {"working_dir", c.working_dir},
              {"user", c.user},
              {"os", c.os},
              {"architecture", c.architecture},
              {"variant", c.variant}};
}

std::vector<std::string> StringsOf(const Json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

std::string StringOf(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

ImageConfig ConfigFromJson(const Json& j) {
  ImageConfig c;
  c.env = StringsOf(j, "env");
  c.entrypoint = StringsOf(j, "entrypoint");
  c.cmd = StringsOf(j, "cmd");
  c.exposed_ports = StringsOf(j, "exposed_ports");
  c.working_dir = StringOf(j, "working_dir");
  c.user = StringOf(j, "user");
  c.os = StringOf(j, "os");
  c.architecture = StringOf(j, "architecture");
  c.variant = StringOf(j, "variant");
  return c;
}

bool IsDigestText(const std::string& text) {
  return StartsWith(text, kSha256Prefix) && static_cast<bool>(ValidateDigest(text));
}

}  // namespace

// Progress of one pull, shared by every caller that joined it.
class Store::PullState {
 public:
  void Subscribe(const ProgressFn& fn) {
    if (!fn) return;
    std::lock_guard<std::mutex> lock(mu_);
    subscribers_.push_back(fn);
    if (!layers_.empty()) fn(layers_);
  }
  void Init(std::vector<LayerProgress> layers) {
    std::lock_guard<std::mutex> lock(mu_);
    layers_ = std::move(layers);
    EmitLocked();
  }
  void Update(size_t index, const std::string& phase, uint64_t done) {
    std::lock_guard<std::mutex> lock(mu_);
    if (index >= layers_.size()) return;
    LayerProgress& l = layers_[index];
    bool phase_changed = l.phase != phase;
    l.phase = phase;
    l.done = std::min(done, l.total == 0 ? done : l.total);
    int64_t now = MonotonicMillis();
    if (phase_changed || now - last_emit_ms_ >= kProgressIntervalMs) EmitLocked();
  }
  std::shared_future<Result<Image>> future() { return future_; }
  void Finish(const Result<Image>& result) { promise_.set_value(result); }

 private:
  void EmitLocked() {
    last_emit_ms_ = MonotonicMillis();
    for (const auto& fn : subscribers_) fn(layers_);
  }

  std::mutex mu_;
  std::vector<LayerProgress> layers_;
  std::vector<ProgressFn> subscribers_;
  int64_t last_emit_ms_ = 0;
  std::promise<Result<Image>> promise_;
  std::shared_future<Result<Image>> future_ = promise_.get_future().share();
};

// Keeps a set of blobs and layers away from GC for its lifetime.
class Store::Pins {
 public:
  explicit Pins(Store* store) : store_(store) {}
  ~Pins() { store_->Unpin(keys_); }
  void Add(const std::vector<std::string>& keys) {
    store_->Pin(keys);
    keys_.insert(keys_.end(), keys.begin(), keys.end());
  }

 private:
  Store* store_;
  std::vector<std::string> keys_;
};

Store::Store(StoreOptions options) : options_(std::move(options)) {}

Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(StoreOptions options) {
  if (options.root.empty() || options.root.front() != '/') {
    return Error::InvalidArgument("image store root must be an absolute path");
  }
  // Layer directories end up in overlayfs's lowerdir option, where these are separators.
  if (options.root.find_first_of(":,") != std::string::npos) {
    return Error::InvalidArgument("image store root must not contain ':' or ','");
  }
  SBX_TRY_CTX(Platform::Parse(options.platform), "image store options");
  if (options.parallel_layers < 1) options.parallel_layers = 1;
  std::unique_ptr<Store> store(new Store(std::move(options)));
  SBX_TRY_CTX(store->Init(), "open image store " + Quote(store->options_.root));
  return store;
}

Status Store::Init() {
  const std::string& root = options_.root;
  SBX_TRY(sys::MakeDirs(root, 0700));
  // SECURITY: layer files keep setuid bits (shifted to the sandbox's ids); no host user may reach
  // them.
  if (::chmod(root.c_str(), 0700) != 0) return Error::Errno("chmod " + Quote(root));
  SBX_ASSIGN_OR_RETURN(lock_fd_, sys::Open(root + "/lock", O_RDWR | O_CREAT, 0600));
  if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Error::FailedPrecondition("the image store is in use by another process");
    }
    return Error::Errno("lock " + Quote(root + "/lock"));
  }
  for (const char* dir : {"layers", "images"}) SBX_TRY(sys::MakeDirs(root + "/" + dir, 0700));
  // Leftovers of an interrupted unpack or GC.
  SBX_TRY(sys::RemoveTree(root + "/tmp"));
  SBX_TRY(sys::MakeDirs(root + "/tmp", 0700));
  SBX_ASSIGN_OR_RETURN(content_, ContentStore::Open(root));

  RegistryOptions ro;
  ro.mirrors = options_.mirrors;
  ro.docker_hub_endpoint = options_.docker_hub_endpoint;
  ro.insecure_registries = options_.insecure_registries;
  ro.auths = options_.auths;
  ro.tls = options_.tls;
  ro.timeout_seconds = std::max(1, options_.timeout_seconds);
  ro.max_attempts = std::max(1, options_.max_attempts);
  ro.allow_private_networks = options_.allow_private_networks;
  registry_ = std::make_unique<RegistryClient>(std::move(ro));

  // Complete layers: a directory appears in layers/ only by rename after it was finished.
  if (DIR* d = ::opendir((root + "/layers").c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string diff_id = std::string(kSha256Prefix) + e->d_name;
      if (!ValidateDigest(diff_id)) continue;
      auto meta = sys::ReadFile(LayerDir(diff_id) + "/layer.json", 1u << 20);
      if (!meta) continue;
      Json j = Json::parse(*meta, nullptr, false);
      if (!j.is_object()) continue;
      LayerInfo info;
      info.file_bytes = j.value("file_bytes", uint64_t{0});
      info.decoded_bytes = j.value("decoded_bytes", uint64_t{0});
      layers_[diff_id] = info;
    }
    ::closedir(d);
  }
  if (DIR* d = ::opendir((root + "/images").c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (!EndsWith(e->d_name, ".json")) continue;
      std::string path = root + "/images/" + e->d_name;
      auto text = sys::ReadFile(path, kMaxRecordBytes);
      if (!text) continue;
      Json j = Json::parse(*text, nullptr, false);
      if (!j.is_object()) {
        SBX_LOG_WARN("ignoring unreadable image record {}", path);
        continue;
      }
      Record r;
      r.reference = StringOf(j, "reference");
      r.manifest_digest = StringOf(j, "manifest_digest");
      r.index_digest = StringOf(j, "index_digest");
      r.config_digest = StringOf(j, "config_digest");
      r.platform = StringOf(j, "platform");
      r.created_unix = j.value("created_unix", int64_t{0});
      if (j.contains("config") && j["config"].is_object()) r.config = ConfigFromJson(j["config"]);
      if (j.contains("layers") && j["layers"].is_array()) {
        for (const auto& l : j["layers"]) {
          if (!l.is_object()) continue;
          r.layers.push_back({StringOf(l, "diff_id"), StringOf(l, "digest"),
                              StringOf(l, "media_type"), l.value("size", uint64_t{0})});
        }
      }
      if (r.reference.empty() || !ValidateDigest(r.manifest_digest)) continue;
      records_[r.reference] = std::move(r);
    }
    ::closedir(d);
  }
  return Ok();
}

std::string Store::LayerDir(const std::string& diff_id) const {
  return options_.root + "/layers/" + std::string(DigestHex(diff_id));
}

std::string Store::RecordPath(const std::string& reference) const {
  return options_.root + "/images/" + std::string(DigestHex(Sha256Digest(reference))) + ".json";
}

void Store::Pin(const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& k : keys) ++pins_[k];
}

void Store::Unpin(const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& k : keys) {
    auto it = pins_.find(k);
    if (it != pins_.end() && --it->second <= 0) pins_.erase(it);
  }
}

std::vector<std::string> Store::RecordKeys(const Record& r, bool with_layer_blobs) {
  std::vector<std::string> keys = {"blob:" + r.manifest_digest, "blob:" + r.config_digest};
  if (!r.index_digest.empty()) keys.push_back("blob:" + r.index_digest);
  for (const auto& l : r.layers) {
    keys.push_back("layer:" + l.diff_id);
    if (with_layer_blobs) keys.push_back("blob:" + l.digest);
  }
  return keys;
}

Status Store::WriteRecord(const Record& r) {
  Json layers = Json::array();
  for (const auto& l : r.layers) {
    layers.push_back({{"diff_id", l.diff_id},
                      {"digest", l.digest},
                      {"media_type", l.media_type},
                      {"size", l.size}});
  }
  Json j = {{"reference", r.reference},         {"manifest_digest", r.manifest_digest},
            {"index_digest", r.index_digest},   {"config_digest", r.config_digest},
            {"platform", r.platform},           {"created_unix", r.created_unix},
            {"config", ConfigToJson(r.config)}, {"layers", layers}};
  SBX_TRY(sys::WriteFileAtomic(RecordPath(r.reference), j.dump(), 0600));
  SBX_TRY(FsyncPath(options_.root + "/images"));
  std::lock_guard<std::mutex> lock(mu_);
  records_[r.reference] = r;
  return Ok();
}

Result<Image> Store::ToImage(const Record& r) const {
  Image image;
  image.reference = r.reference;
  image.manifest_digest = r.manifest_digest;
  image.config_digest = r.config_digest;
  image.index_digest = r.index_digest;
  image.config = r.config;
  image.created_unix = r.created_unix;
  image.platform = r.platform;
  // overlayfs refuses a directory twice in one stack; the highest copy alone gives the same view
  // (it shadows everything the lower copy provides), so keep only the topmost occurrence.
  std::vector<std::string> seen;
  for (size_t i = r.layers.size(); i-- > 0;) {
    const std::string& id = r.layers[i].diff_id;
    if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
    seen.push_back(id);
    auto it = layers_.find(id);
    if (it == layers_.end()) {
      return Error::DataLoss("image " + r.reference + " is incomplete: layer " + id +
                             " is missing; pull it again")
          .WithReason("SBX_IMAGE_INCOMPLETE");
    }
    image.size_bytes += it->second.file_bytes;
  }
  for (auto it = seen.rbegin(); it != seen.rend(); ++it) {
    image.layer_dirs.push_back(LayerDir(*it) + "/fs");
  }
  return image;
}

std::vector<const Store::Record*> Store::FindByDigest(const std::string& digest) const {
  std::vector<const Record*> out;
  for (const auto& [ref, r] : records_) {
    if (r.manifest_digest == digest || r.config_digest == digest || r.index_digest == digest) {
      out.push_back(&r);
    }
  }
  return out;
}

Result<Image> Store::Get(const std::string& text) {
  std::lock_guard<std::mutex> lock(mu_);
  if (IsDigestText(text)) {
    auto found = FindByDigest(text);
    if (found.empty()) {
      return Error::NotFound("image " + text + " not found locally")
          .WithReason("SBX_IMAGE_NOT_FOUND");
    }
    return ToImage(*found.front());
  }
  SBX_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(text));
  std::string key = ref.String();
  auto it = records_.find(key);
  if (it != records_.end()) return ToImage(it->second);
  if (!ref.digest.empty()) {
    // Pulled by tag earlier: the same repository and digest is the same image.
    for (const Record* r : FindByDigest(ref.digest)) {
      auto parsed = Reference::Parse(r->reference);
      if (parsed && parsed->Name() == ref.Name() && r->config_digest != ref.digest) {
        SBX_ASSIGN_OR_RETURN(Image image, ToImage(*r));
        image.reference = key;
        return image;
      }
    }
  }
  return Error::NotFound("image " + key + " not found locally")
      .WithReason("SBX_IMAGE_NOT_FOUND")
      .WithMetadata("reference", key);
}

Result<Image> Store::Ensure(const std::string& reference, const ProgressFn& progress) {
  auto image = Get(reference);
  if (image || IsDigestText(reference)) return image;
  // Absent, or incomplete on disk (a layer lost): pull it (again).
  if (image.error().code() != Code::kNotFound && image.error().code() != Code::kDataLoss) {
    return image;
  }
  return Pull(reference, progress);
}

Result<std::vector<Image>> Store::List() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Image> out;
  for (const auto& [ref, r] : records_) {
    auto image = ToImage(r);
    if (image) out.push_back(std::move(*image));
  }
  return out;
}

Result<Image> Store::Pull(const std::string& text, const ProgressFn& progress) {
  if (IsDigestText(text)) {
    return Error::InvalidArgument("cannot pull " + text + ": a digest needs a repository name")
        .WithReason("SBX_INVALID_IMAGE_REFERENCE");
  }
  SBX_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(text));
  std::string key = ref.String();
  std::shared_ptr<PullState> state;
  bool leader = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pulls_.find(key);
    if (it != pulls_.end()) {
      state = it->second;
    } else {
      state = std::make_shared<PullState>();
      pulls_[key] = state;
      leader = true;
    }
  }
  state->Subscribe(progress);
  if (!leader) return state->future().get();
  Result<Image> result = DoPull(ref, *state);
  if (!result) {
    result.error().Wrap("pull " + key);
    // Documents fetched for an image that did not materialise; complete layers are kept for a
    // retry and go with the next full collection if nothing uses them.
    (void)Collect(/*include_layers=*/false);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    pulls_.erase(key);
  }
  state->Finish(result);
  return result;
}

Result<Image> Store::DoPull(const Reference& ref, PullState& state) {
  SBX_ASSIGN_OR_RETURN(Platform platform, Platform::Parse(options_.platform));
  Pins pins(this);
  SBX_ASSIGN_OR_RETURN(FetchedManifest fetched, registry_->GetManifest(ref, ref.TagOrDigest()));
  std::string index_digest;
  std::string index_body;
  std::string referenced_as;  // the media type of the index entry that led here
  for (int depth = 0;; ++depth) {
    SBX_ASSIGN_OR_RETURN_CTX(
        ManifestDocument doc,
        ParseManifestDocument(fetched.body, fetched.content_type, referenced_as),
        "manifest " + fetched.digest);
    if (!doc.is_index) {
      pins.Add({"blob:" + fetched.digest});
      if (!index_digest.empty()) {
        pins.Add({"blob:" + index_digest});
        SBX_TRY(content_->WriteBlob(index_digest, index_body));
      }
      SBX_TRY(content_->WriteBlob(fetched.digest, fetched.body));
      return Materialize(ref.String(), &ref, index_digest, fetched.digest, doc.manifest, state);
    }
    if (depth >= 2) return Error::InvalidArgument("image indexes nested too deeply");
    if (index_digest.empty()) {
      index_digest = fetched.digest;
      index_body = fetched.body;
    }
    SBX_ASSIGN_OR_RETURN(Descriptor chosen, SelectManifest(doc.index, platform));
    referenced_as = chosen.media_type;
    SBX_ASSIGN_OR_RETURN(fetched, registry_->GetManifest(ref, chosen.digest));
    if (fetched.body.size() != chosen.size) {
      return Error::DataLoss("manifest " + chosen.digest + " is " +
                             std::to_string(fetched.body.size()) + " bytes, the index says " +
                             std::to_string(chosen.size))
          .WithReason("SBX_IMAGE_BLOB_SIZE_MISMATCH");
    }
  }
}

Result<Image> Store::Materialize(const std::string& reference, const Reference* source,
                                 const std::string& index_digest,
                                 const std::string& manifest_digest, const Manifest& manifest,
                                 PullState& state) {
  Pins pins(this);
  pins.Add({"blob:" + manifest_digest, "blob:" + manifest.config.digest});
  if (!index_digest.empty()) pins.Add({"blob:" + index_digest});
  if (!content_->Has(manifest.config.digest)) {
    if (source == nullptr) {
      return Error::DataLoss("image config " + manifest.config.digest + " is missing");
    }
    SBX_ASSIGN_OR_RETURN(std::string body,
                         registry_->GetSmallBlob(*source, manifest.config, kMaxConfigBytes));
    SBX_TRY(content_->WriteBlob(manifest.config.digest, body));
  }
  SBX_ASSIGN_OR_RETURN(std::string config_body,
                       content_->ReadBlob(manifest.config.digest, kMaxConfigBytes));
  if (config_body.size() != manifest.config.size) {
    return Error::DataLoss("image config is " + std::to_string(config_body.size()) +
                           " bytes, the manifest says " + std::to_string(manifest.config.size));
  }
  SBX_ASSIGN_OR_RETURN(ParsedConfig parsed, ParseImageConfig(config_body));
  if (parsed.diff_ids.size() != manifest.layers.size()) {
    return Error::InvalidArgument("image config lists " + std::to_string(parsed.diff_ids.size()) +
                                  " layers, the manifest " +
                                  std::to_string(manifest.layers.size()));
  }
  if (!parsed.config.os.empty() && parsed.config.os != "linux") {
    return Error::FailedPrecondition("image is for " + Quote(parsed.config.os) +
                                     "; only linux images run here")
        .WithReason("SBX_IMAGE_PLATFORM_NOT_FOUND");
  }

  Record record;
  record.reference = reference;
  record.manifest_digest = manifest_digest;
  record.index_digest = index_digest;
  record.config_digest = manifest.config.digest;
  record.config = parsed.config;
  record.created_unix = parsed.created_unix;
  record.platform = Platform::Normalize(parsed.config.os.empty() ? "linux" : parsed.config.os,
                                        parsed.config.architecture, parsed.config.variant)
                        .String();
  std::vector<LayerProgress> progress;
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    const Descriptor& d = manifest.layers[i];
    SBX_TRY_CTX(CheckLayerMediaType(d.media_type), "layer " + d.digest);
    record.layers.push_back({parsed.diff_ids[i], d.digest, d.media_type, d.size});
    progress.push_back({d.digest, d.size, 0, "waiting"});
  }
  pins.Add(RecordKeys(record, /*with_layer_blobs=*/true));
  state.Init(std::move(progress));

  // Layers are independent directories, so they are fetched and unpacked in parallel.
  std::atomic<int64_t> budget(static_cast<int64_t>(
      std::min<uint64_t>(options_.max_image_bytes, static_cast<uint64_t>(INT64_MAX))));
  std::atomic<size_t> next(0);
  std::atomic<bool> failed(false);
  std::mutex error_mu;
  std::optional<Error> first_error;
  auto worker = [&] {
    while (!failed.load()) {
      size_t i = next.fetch_add(1);
      if (i >= record.layers.size()) return;
      Status s = EnsureLayer(i, record.layers[i], source, state, budget);
      if (!s) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (!first_error)
          first_error = std::move(s).error().Wrap("layer " + record.layers[i].digest);
        failed = true;
      }
    }
  };
  size_t workers = std::min<size_t>(static_cast<size_t>(options_.parallel_layers),
                                    std::max<size_t>(1, record.layers.size()));
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers; ++i) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  if (first_error) return *first_error;

  SBX_TRY(WriteRecord(record));
  std::lock_guard<std::mutex> lock(mu_);
  return ToImage(record);
}

Status Store::EnsureLayer(size_t index, const LayerRecord& layer, const Reference* source,
                          PullState& state, std::atomic<int64_t>& budget) {
  std::shared_future<Status> pending;
  std::promise<Status> promise;
  bool cached = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto done = layers_.find(layer.diff_id);
    if (done != layers_.end()) {
      budget -= static_cast<int64_t>(done->second.decoded_bytes);
      cached = true;
    } else if (auto it = layer_builds_.find(layer.diff_id); it != layer_builds_.end()) {
      pending = it->second;
    } else {
      layer_builds_[layer.diff_id] = promise.get_future().share();
    }
  }
  // Progress callbacks run without the store's lock: they may call back into the store.
  if (cached) {
    state.Update(index, "cached", layer.size);
    return Ok();
  }
  if (pending.valid()) {
    // Another pull is building this layer: wait for it rather than download it twice.
    state.Update(index, "waiting", 0);
    Status s = pending.get();
    if (s) state.Update(index, "done", layer.size);
    return s;
  }
  LayerInfo info;
  Status s = BuildLayer(index, layer, source, state, budget, &info);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (s) layers_[layer.diff_id] = info;
    layer_builds_.erase(layer.diff_id);
  }
  promise.set_value(s);
  if (s) state.Update(index, "done", layer.size);
  return s;
}

Status Store::CheckSpace(uint64_t about_to_write) const {
  if (options_.min_free_bytes == 0) return Ok();
  SBX_ASSIGN_OR_RETURN(sys::FilesystemSpace space, sys::SpaceOf(options_.root));
  if (space.available_bytes >= options_.min_free_bytes + about_to_write) return Ok();
  return Error::ResourceExhausted(
             "the node's disk is nearly full: " + FormatBytes(space.available_bytes) + " free, " +
             FormatBytes(options_.min_free_bytes) + " kept in reserve" +
             (about_to_write ? ", " + FormatBytes(about_to_write) + " more needed" : std::string()))
      .WithReason("SBX_DISK_FULL");
}

Status Store::BuildLayer(size_t index, const LayerRecord& layer, const Reference* source,
                         PullState& state, std::atomic<int64_t>& budget, LayerInfo* info) {
  Descriptor desc{layer.media_type, layer.digest, layer.size, {}, {}};
  if (!content_->Has(layer.digest)) {
    if (source == nullptr) return Error::DataLoss("layer blob " + layer.digest + " is missing");
    SBX_TRY(CheckSpace(layer.size));
    SBX_ASSIGN_OR_RETURN(auto ingest, content_->StartIngest(layer.digest, layer.size));
    state.Update(index, "downloading", 0);
    SBX_TRY(registry_->GetBlob(*source, desc, *ingest,
                               [&](uint64_t done) { state.Update(index, "downloading", done); }));
    state.Update(index, "verifying", layer.size);
    SBX_TRY(ingest->Commit());
  }

  failpoint::Check(failpoint::kPullAfterDownload);
  state.Update(index, "unpacking", 0);
  std::string tmp = options_.root + "/tmp/layer-" +
                    std::string(DigestHex(layer.diff_id)).substr(0, 12) + "-" + RandomHex(6);
  SBX_TRY(sys::MakeDirs(tmp + "/fs", 0700));
  // Whatever happens below, a failed layer leaves nothing behind.
  struct TmpGuard {
    std::string path;
    bool keep = false;
    ~TmpGuard() {
      if (!keep) (void)sys::RemoveTree(path);
    }
  } guard{tmp};

  SBX_ASSIGN_OR_RETURN(UniqueFd blob, content_->OpenBlob(layer.digest));
  UnpackOptions opts;
  opts.map_ids = true;
  opts.host_uid = options_.host_uid;
  opts.host_gid = options_.host_gid;
  opts.id_range = options_.id_range;
  opts.limits.max_bytes = options_.max_layer_bytes;
  opts.limits.image_budget = &budget;
  opts.limits.check_space = [this] { return CheckSpace(0); };
  opts.max_entries = options_.max_layer_entries;
  opts.expected_diff_id = layer.diff_id;
  opts.progress = [&](uint64_t done) {
    if (done > 0) failpoint::Check(failpoint::kPullDuringUnpack);
    state.Update(index, "unpacking", done);
  };
  SBX_ASSIGN_OR_RETURN(UnpackStats stats, UnpackLayer(blob.get(), tmp + "/fs", opts));
  // The layer's root directory belongs to the sandbox's root user.
  Json meta = {{"diff_id", layer.diff_id},
               {"blob_digest", layer.digest},
               {"compression", std::string(CompressionName(stats.compression))},
               {"file_bytes", stats.file_bytes},
               {"decoded_bytes", stats.decoded_bytes},
               {"entries", stats.entries}};
  SBX_TRY(sys::WriteFile(tmp + "/layer.json", meta.dump(), 0600));
  if (options_.durable) {
    SBX_ASSIGN_OR_RETURN(UniqueFd dir, sys::Open(tmp, O_RDONLY | O_DIRECTORY));
    if (::syncfs(dir.get()) != 0) return Error::Errno("syncfs " + Quote(tmp));
  }
  std::string final_dir = LayerDir(layer.diff_id);
  if (::rename(tmp.c_str(), final_dir.c_str()) != 0) {
    if (errno != EEXIST && errno != ENOTEMPTY) {
      return Error::Errno("rename " + Quote(tmp) + " to " + Quote(final_dir));
    }
    // Already there (complete, since only finished layers are renamed in): use it.
  } else {
    guard.keep = true;
  }
  if (options_.durable) SBX_TRY(FsyncPath(options_.root + "/layers"));
  info->file_bytes = stats.file_bytes;
  info->decoded_bytes = stats.decoded_bytes;
  if (!options_.keep_layer_blobs) {
    // The unpacked directory is what sandboxes use; the compressed copy would double the disk.
    Status deleted = content_->Delete(layer.digest);
    if (!deleted)
      SBX_LOG_WARN("cannot delete layer blob {}: {}", layer.digest, deleted.error().ToString());
  }
  return Ok();
}

Status Store::Remove(const std::string& text, bool force) {
  std::vector<std::string> victims;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (IsDigestText(text)) {
      for (const Record* r : FindByDigest(text)) victims.push_back(r->reference);
    } else {
      SBX_ASSIGN_OR_RETURN(Reference ref, Reference::Parse(text));
      if (records_.count(ref.String())) victims.push_back(ref.String());
    }
    if (victims.empty()) {
      return Error::NotFound("image " + text + " not found locally")
          .WithReason("SBX_IMAGE_NOT_FOUND");
    }
    for (const auto& v : victims) {
      const Record& r = records_.at(v);
      auto hold = holds_.find(r.manifest_digest);
      // Another reference to the same image keeps it for the sandboxes that use it: removing
      // this one only untags it.
      bool named_otherwise = std::any_of(records_.begin(), records_.end(), [&](const auto& other) {
        return other.second.manifest_digest == r.manifest_digest &&
               std::find(victims.begin(), victims.end(), other.first) == victims.end();
      });
      if (hold != holds_.end() && !force && !named_otherwise) {
        return Error::FailedPrecondition("image " + v + " is in use by " +
                                         std::to_string(hold->second.first) + " sandbox(es)")
            .WithReason("SBX_IMAGE_IN_USE");
      }
    }
    for (const auto& v : victims) {
      std::string path = RecordPath(v);
      if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        return Error::Errno("unlink " + Quote(path));
      records_.erase(v);
    }
  }
  return FsyncPath(options_.root + "/images");
}

Status Store::Hold(const std::string& manifest_digest) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = holds_.find(manifest_digest);
  if (it != holds_.end()) {
    ++it->second.first;
    return Ok();
  }
  const Record* record = nullptr;
  for (const auto& [ref, r] : records_) {
    if (r.manifest_digest == manifest_digest) record = &r;
  }
  if (record == nullptr) {
    return Error::NotFound("no image with manifest " + manifest_digest)
        .WithReason("SBX_IMAGE_NOT_FOUND");
  }
  std::vector<std::string> keys = RecordKeys(*record, options_.keep_layer_blobs);
  for (const auto& k : keys) ++pins_[k];
  holds_[manifest_digest] = {1, std::move(keys)};
  return Ok();
}

void Store::Release(const std::string& manifest_digest) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = holds_.find(manifest_digest);
  if (it == holds_.end()) return;
  if (--it->second.first > 0) return;
  for (const auto& k : it->second.second) {
    auto pin = pins_.find(k);
    if (pin != pins_.end() && --pin->second <= 0) pins_.erase(pin);
  }
  holds_.erase(it);
}

Result<uint64_t> Store::GarbageCollect() { return Collect(/*include_layers=*/true); }

Result<uint64_t> Store::Collect(bool include_layers) {
  std::unique_lock<std::shared_mutex> exclusive(gc_mu_);
  uint64_t reclaimed = 0;
  std::vector<std::string> trash;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::set<std::string> live;
    for (const auto& [ref, r] : records_) {
      for (auto& k : RecordKeys(r, options_.keep_layer_blobs)) live.insert(std::move(k));
    }
    for (const auto& [k, count] : pins_) live.insert(k);
    SBX_ASSIGN_OR_RETURN(auto blobs, content_->List());
    for (const auto& b : blobs) {
      if (live.count("blob:" + b.digest)) continue;
      SBX_TRY(content_->Delete(b.digest));
      reclaimed += b.size;
    }
    for (auto it = layers_.begin(); include_layers && it != layers_.end();) {
      if (live.count("layer:" + it->first)) {
        ++it;
        continue;
      }
      // Renamed away under the lock so that no pull can see a half-deleted layer; deleted after.
      std::string dest = options_.root + "/tmp/gc-" + RandomHex(8);
      std::string dir = LayerDir(it->first);
      if (::rename(dir.c_str(), dest.c_str()) != 0) return Error::Errno("rename " + Quote(dir));
      trash.push_back(dest);
      reclaimed += it->second.file_bytes;
      it = layers_.erase(it);
    }
  }
  for (const auto& t : trash) SBX_TRY(sys::RemoveTree(t));
  return reclaimed;
}

Result<uint64_t> Store::DiskUsage() {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t total = 0;
  SBX_ASSIGN_OR_RETURN(auto blobs, content_->List());
  for (const auto& b : blobs) total += b.size;
  for (const auto& [id, info] : layers_) total += info.file_bytes;
  return total;
}

Result<std::vector<Image>> Store::Load(const std::string& archive_path, const std::string& tag) {
  Result<std::vector<Image>> loaded = Error::Internal("not loaded");
  {
    // Blobs read from the archive are not pinned until their image is known: no collection may
    // run in between.
    std::shared_lock<std::shared_mutex> no_gc(gc_mu_);
    loaded = LoadLocked(archive_path, tag);
  }
  if (!loaded) {
    // What the archive brought in for an image that did not materialise.
    (void)Collect(/*include_layers=*/false);
    return std::move(loaded).error().Wrap("load " + Quote(archive_path));
  }
  return loaded;
}

Result<std::vector<Image>> Store::LoadLocked(const std::string& archive_path,
                                             const std::string& tag) {
  SBX_TRY(CheckSpace(0));
  SBX_ASSIGN_OR_RETURN(Platform platform, Platform::Parse(options_.platform));
  std::optional<Reference> tag_ref;
  if (!tag.empty()) {
    SBX_ASSIGN_OR_RETURN(tag_ref, Reference::Parse(tag));
  }
  ArchiveLimits limits;
  limits.max_blob_bytes = options_.max_image_bytes;
  SBX_ASSIGN_OR_RETURN(std::vector<LoadedImage> loaded,
                       ReadImageArchive(archive_path, *content_, platform, limits));
  size_t unnamed = std::count_if(loaded.begin(), loaded.end(),
                                 [](const LoadedImage& l) { return l.names.empty(); });
  if (tag_ref && unnamed > 1) {
    return Error::InvalidArgument("the archive has " + std::to_string(unnamed) +
                                  " unnamed images; a tag can name only one");
  }
  // Validate every name before anything is recorded.
  std::vector<std::vector<std::string>> names(loaded.size());
  for (size_t i = 0; i < loaded.size(); ++i) {
    for (const auto& n : loaded[i].names) {
      SBX_ASSIGN_OR_RETURN_CTX(Reference r, Reference::Parse(n), "image name in the archive");
      names[i].push_back(r.String());
    }
    if (names[i].empty())
      names[i].push_back(tag_ref ? tag_ref->String() : loaded[i].manifest_digest);
  }
  std::vector<Image> out;
  for (size_t i = 0; i < loaded.size(); ++i) {
    for (const auto& name : names[i]) {
      PullState state;
      SBX_ASSIGN_OR_RETURN_CTX(Image image,
                               Materialize(name, nullptr, loaded[i].index_digest,
                                           loaded[i].manifest_digest, loaded[i].manifest, state),
                               name);
      out.push_back(std::move(image));
    }
  }
  return out;
}

}  // namespace sbx::image
