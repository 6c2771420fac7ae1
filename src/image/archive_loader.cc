#include "src/image/archive_loader.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "src/base/strings.h"
#include "src/image/digest.h"
#include "src/image/layer_stream.h"
#include "src/sys/entry_path.h"
#include "src/sys/fs.h"

namespace sbx::image {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxDocument = 4u << 20;
constexpr size_t kMaxImagesPerArchive = 1024;
constexpr std::string_view kOciBlobPrefix = "blobs/sha256/";

struct BlobRef {
  std::string digest;
  uint64_t size = 0;
  Compression compression = Compression::kNone;
};

Compression Sniff(std::string_view head) {
  auto b = [&](size_t i) { return static_cast<unsigned char>(head[i]); };
  if (head.size() >= 2 && b(0) == 0x1f && b(1) == 0x8b) return Compression::kGzip;
  if (head.size() >= 4 && b(0) == 0x28 && b(1) == 0xb5 && b(2) == 0x2f && b(3) == 0xfd) {
    return Compression::kZstd;
  }
  return Compression::kNone;
}

// "./a//b/" -> "a/b"; nullopt for names that climb out or name nothing (never used as a file name
// on the host, but such an archive is malformed).
std::optional<std::string> CleanName(std::string_view raw) {
  auto clean = sys::CleanEntryName(raw, {.strip_leading_slash = true});
  return clean ? std::optional<std::string>(std::move(*clean)) : std::nullopt;
}

std::string ExpectedDigestOf(const std::string& path) {
  if (!StartsWith(path, kOciBlobPrefix)) return "";
  std::string digest = std::string(kSha256Prefix) + path.substr(kOciBlobPrefix.size());
  return ValidateDigest(digest) ? digest : "";
}

Error Malformed(const std::string& why) {
  return Error::InvalidArgument("invalid image archive: " + why)
      .WithReason("SBX_IMAGE_ARCHIVE_INVALID");
}

// Where blobs and documents of an archive come from.
class Source {
 public:
  virtual ~Source() = default;
  virtual Result<std::string> ReadDocument(const std::string& path) = 0;
  virtual bool HasDocument(const std::string& path) = 0;
  // Puts the file `path` into the content store (verifying `expected` when given).
  virtual Result<BlobRef> Ingest(const std::string& path, const std::string& expected) = 0;
};

Result<BlobRef> CopyIntoStore(ContentStore& content, const std::string& expected, uint64_t max,
                              const std::function<Result<size_t>(char*, size_t)>& read) {
  SBX_ASSIGN_OR_RETURN(auto ingest, content.StartIngest("", max));
  std::vector<char> buf(1u << 20);
  BlobRef ref;
  bool first = true;
  while (true) {
    SBX_ASSIGN_OR_RETURN(size_t n, read(buf.data(), buf.size()));
    if (n == 0) break;
    if (first) {
      ref.compression = Sniff(std::string_view(buf.data(), std::min<size_t>(n, 4)));
      first = false;
    }
    SBX_TRY(ingest->Write(std::string_view(buf.data(), n)));
  }
  if (!expected.empty() && ingest->Digest() != expected) {
    return Error::DataLoss("digest mismatch: expected " + expected + ", got " + ingest->Digest())
        .WithReason("SBX_IMAGE_DIGEST_MISMATCH");
  }
  ref.size = ingest->written();
  SBX_TRY(ingest->Commit());
  ref.digest = ingest->digest();
  return ref;
}

class DirSource : public Source {
 public:
  DirSource(UniqueFd root, ContentStore& content, const ArchiveLimits& limits)
      : root_(std::move(root)), content_(content), limits_(limits) {}

  bool HasDocument(const std::string& path) override {
    return static_cast<bool>(sys::OpenInRoot(root_.get(), path, O_PATH));
  }
  Result<std::string> ReadDocument(const std::string& path) override {
    SBX_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegular(path));
    return sys::ReadFd(fd.get(), kMaxDocument);
  }
  Result<BlobRef> Ingest(const std::string& path, const std::string& expected) override {
    if (!expected.empty() && content_.Has(expected)) {
      SBX_ASSIGN_OR_RETURN(uint64_t size, content_.Size(expected));
      SBX_ASSIGN_OR_RETURN(UniqueFd blob, content_.OpenBlob(expected));
      char head[4] = {0};
      ssize_t n = ::pread(blob.get(), head, sizeof head, 0);
      return BlobRef{expected, size, Sniff(std::string_view(head, n > 0 ? n : 0))};
    }
    SBX_ASSIGN_OR_RETURN(UniqueFd fd, OpenRegular(path));
    int raw = fd.get();
    auto ref = CopyIntoStore(content_, expected, limits_.max_blob_bytes,
                             [raw](char* buf, size_t size) -> Result<size_t> {
                               while (true) {
                                 ssize_t n = ::read(raw, buf, size);
                                 if (n >= 0) return static_cast<size_t>(n);
                                 if (errno != EINTR) return Error::Errno("read");
                               }
                             });
    if (!ref) return std::move(ref).error().Wrap(Quote(path));
    return ref;
  }

 private:
  Result<UniqueFd> OpenRegular(const std::string& path) {
    // SECURITY: the layout's own symlinks resolve inside it.
    auto fd = sys::OpenInRoot(root_.get(), path, O_RDONLY | O_NOFOLLOW);
    if (!fd) return Malformed("missing " + Quote(path) + ": " + fd.error().message());
    struct stat st {};
    if (::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
      return Malformed(Quote(path) + " is not a regular file");
    }
    return fd;
  }

  UniqueFd root_;
  ContentStore& content_;
  const ArchiveLimits& limits_;
};

class TarReader {
 public:
  ~TarReader() {
    if (a_) archive_read_free(a_);
  }
  Status Open(int fd) {
    a_ = archive_read_new();
    if (a_ == nullptr) return Error::Internal("archive_read_new failed");
    archive_read_support_format_tar(a_);
    archive_read_support_filter_gzip(a_);
    archive_read_support_filter_zstd(a_);
    archive_read_support_filter_none(a_);
    if (::lseek(fd, 0, SEEK_SET) != 0) return Error::Errno("seek archive");
    if (archive_read_open_fd(a_, fd, 1 << 20) != ARCHIVE_OK) return Fail("open");
    return Ok();
  }
  // Next regular file entry (others are skipped); false at the end.
  Result<bool> Next(std::string* name, int64_t* size) {
    while (true) {
      archive_entry* e = nullptr;
      int rc = archive_read_next_header(a_, &e);
      if (rc == ARCHIVE_EOF) return false;
      if (rc < ARCHIVE_WARN) return Fail("read");
      if (++entries_ > (1u << 20)) return Malformed("too many entries");
      if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e) != nullptr) continue;
      const char* raw = archive_entry_pathname(e);
      if (raw == nullptr) continue;
      auto clean = CleanName(raw);
      if (!clean) continue;
      *name = *clean;
      *size = archive_entry_size(e);
      return true;
    }
  }
  Result<size_t> Read(char* buf, size_t size) {
    la_ssize_t n = archive_read_data(a_, buf, size);
    if (n < 0) return Fail("read data");
    return static_cast<size_t>(n);
  }
  Result<std::string> ReadAll(size_t max) {
    std::string out;
    char buf[65536];
    while (true) {
      SBX_ASSIGN_OR_RETURN(size_t n, Read(buf, sizeof buf));
      if (n == 0) return out;
      if (out.size() + n > max) return Malformed("document larger than " + std::to_string(max));
      out.append(buf, n);
    }
  }

 private:
  Error Fail(const std::string& what) {
    const char* msg = archive_error_string(a_);
    return Error::InvalidArgument("invalid image archive: " + what + ": " +
                                  (msg ? msg : "unknown error"))
        .WithReason("SBX_IMAGE_ARCHIVE_INVALID");
  }
  archive* a_ = nullptr;
  uint64_t entries_ = 0;
};

// A tar archive: read once for the documents, once more for the blobs that are needed.
class TarSource : public Source {
 public:
  TarSource(UniqueFd fd, ContentStore& content, const ArchiveLimits& limits)
      : fd_(std::move(fd)), content_(content), limits_(limits) {}

  Status ReadDocuments() {
    TarReader reader;
    SBX_TRY(reader.Open(fd_.get()));
    std::string name;
    int64_t size = 0;
    while (true) {
      SBX_ASSIGN_OR_RETURN(bool more, reader.Next(&name, &size));
      if (!more) break;
      if (name == "manifest.json" || name == "index.json" || name == "oci-layout") {
        SBX_ASSIGN_OR_RETURN(docs_[name], reader.ReadAll(kMaxDocument));
      }
    }
    return Ok();
  }

  // Ingests the files in `wanted` (and, when `all_blobs`, everything under blobs/sha256/).
  Status IngestFiles(const std::set<std::string>& wanted, bool all_blobs) {
    TarReader reader;
    SBX_TRY(reader.Open(fd_.get()));
    std::string name;
    int64_t size = 0;
    while (true) {
      SBX_ASSIGN_OR_RETURN(bool more, reader.Next(&name, &size));
      if (!more) break;
      bool blob = StartsWith(name, kOciBlobPrefix);
      if (!wanted.count(name) && !(all_blobs && blob)) continue;
      if (ingested_.count(name)) continue;
      std::string expected = ExpectedDigestOf(name);
      if (blob && expected.empty()) continue;  // not a sha256 blob name
      auto ref = CopyIntoStore(content_, expected, limits_.max_blob_bytes,
                               [&reader](char* buf, size_t n) { return reader.Read(buf, n); });
      if (!ref) return std::move(ref).error().Wrap(Quote(name));
      ingested_[name] = *ref;
    }
    return Ok();
  }

  bool HasDocument(const std::string& path) override { return docs_.count(path) > 0; }
  Result<std::string> ReadDocument(const std::string& path) override {
    auto it = docs_.find(path);
    if (it == docs_.end()) return Malformed("missing " + Quote(path));
    return it->second;
  }
  Result<BlobRef> Ingest(const std::string& path, const std::string& expected) override {
    auto it = ingested_.find(path);
    if (it == ingested_.end()) return Malformed("missing " + Quote(path));
    if (!expected.empty() && it->second.digest != expected) {
      return Error::DataLoss(Quote(path) + " hashes to " + it->second.digest + ", expected " +
                             expected)
          .WithReason("SBX_IMAGE_DIGEST_MISMATCH");
    }
    return it->second;
  }

 private:
  UniqueFd fd_;
  ContentStore& content_;
  const ArchiveLimits& limits_;
  std::map<std::string, std::string> docs_;
  std::map<std::string, BlobRef> ingested_;
};

struct DockerSaveEntry {
  std::string config;
  std::vector<std::string> tags;
  std::vector<std::string> layers;
};

Result<std::vector<DockerSaveEntry>> ParseDockerManifest(const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return Malformed("manifest.json is not a JSON array");
  if (j.size() > kMaxImagesPerArchive) return Malformed("too many images in manifest.json");
  std::vector<DockerSaveEntry> out;
  for (const auto& item : j) {
    if (!item.is_object()) return Malformed("manifest.json entry is not an object");
    DockerSaveEntry entry;
    auto config = item.find("Config");
    if (config == item.end() || !config->is_string()) return Malformed("entry without Config");
    auto clean = CleanName(config->get<std::string>());
    if (!clean) return Malformed("bad Config path");
    entry.config = *clean;
    auto tags = item.find("RepoTags");
    if (tags != item.end() && tags->is_array()) {
      for (const auto& t : *tags) {
        if (t.is_string() && t.get_ref<const std::string&>().size() < 512) {
          entry.tags.push_back(t.get<std::string>());
        }
      }
    }
    auto layers = item.find("Layers");
    if (layers == item.end() || !layers->is_array()) return Malformed("entry without Layers");
    if (layers->size() > kMaxLayers) return Malformed("too many layers");
    for (const auto& l : *layers) {
      if (!l.is_string()) return Malformed("layer path is not a string");
      auto path = CleanName(l.get<std::string>());
      if (!path) return Malformed("bad layer path");
      entry.layers.push_back(*path);
    }
    out.push_back(std::move(entry));
  }
  return out;
}

std::string LayerMediaType(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return std::string(media_type::kOciLayerGzip);
    case Compression::kZstd:
      return std::string(media_type::kOciLayerZstd);
    case Compression::kNone:
      break;
  }
  return std::string(media_type::kOciLayer);
}

Result<std::vector<LoadedImage>> LoadDockerSave(Source& source, ContentStore& content,
                                                const std::vector<DockerSaveEntry>& entries) {
  std::vector<LoadedImage> out;
  for (const auto& entry : entries) {
    SBX_ASSIGN_OR_RETURN(BlobRef config,
                         source.Ingest(entry.config, ExpectedDigestOf(entry.config)));
    LoadedImage image;
    image.names = entry.tags;
    Manifest& m = image.manifest;
    m.media_type = std::string(media_type::kOciManifest);
    m.config = {std::string(media_type::kOciConfig), config.digest, config.size, {}, {}};
    for (const auto& path : entry.layers) {
      SBX_ASSIGN_OR_RETURN(BlobRef layer, source.Ingest(path, ExpectedDigestOf(path)));
      m.layers.push_back({LayerMediaType(layer.compression), layer.digest, layer.size, {}, {}});
    }
    std::string body = SerializeManifest(m);
    image.manifest_digest = Sha256Digest(body);
    SBX_TRY(content.WriteBlob(image.manifest_digest, body));
    out.push_back(std::move(image));
  }
  return out;
}

std::string BlobPathOf(const std::string& digest) {
  return std::string(kOciBlobPrefix) + std::string(DigestHex(digest));
}

Status EnsureBlob(Source& source, const Descriptor& d) {
  SBX_ASSIGN_OR_RETURN(BlobRef ref, source.Ingest(BlobPathOf(d.digest), d.digest));
  if (ref.size != d.size) {
    return Error::DataLoss("blob " + d.digest + " is " + std::to_string(ref.size) +
                           " bytes, its descriptor says " + std::to_string(d.size))
        .WithReason("SBX_IMAGE_BLOB_SIZE_MISMATCH");
  }
  return Ok();
}

std::string NameOf(const Descriptor& d) {
  auto it = d.annotations.find("io.containerd.image.name");
  if (it != d.annotations.end() && !it->second.empty()) return it->second;
  it = d.annotations.find("org.opencontainers.image.ref.name");
  // A bare tag ("latest") is not a name; a reference-like value is.
  if (it != d.annotations.end() && it->second.find_first_of(":/") != std::string::npos) {
    return it->second;
  }
  return "";
}

Result<std::vector<LoadedImage>> LoadOciLayout(Source& source, ContentStore& content,
                                               const Platform& platform) {
  SBX_ASSIGN_OR_RETURN(std::string index_json, source.ReadDocument("index.json"));
  SBX_ASSIGN_OR_RETURN(ManifestDocument top,
                       ParseManifestDocument(index_json, media_type::kOciIndex));
  if (!top.is_index) return Malformed("index.json is not an image index");
  // Entries with the same name are platform variants of one image.
  std::vector<std::string> order;
  std::map<std::string, std::vector<Descriptor>> groups;
  for (const auto& d : top.index.manifests) {
    std::string name = NameOf(d);
    if (!groups.count(name)) order.push_back(name);
    groups[name].push_back(d);
  }
  std::vector<LoadedImage> out;
  for (const auto& name : order) {
    const auto& entries = groups[name];
    Descriptor desc = entries.front();
    if (entries.size() > 1) {
      SBX_ASSIGN_OR_RETURN(desc, SelectManifest(Index{"", entries}, platform));
    }
    LoadedImage image;
    if (!name.empty()) image.names.push_back(name);
    for (int depth = 0;; ++depth) {
      if (depth > 3) return Malformed("indexes nested too deeply");
      SBX_TRY(EnsureBlob(source, desc));
      SBX_ASSIGN_OR_RETURN(std::string body, content.ReadBlob(desc.digest, kMaxManifestBytes));
      SBX_ASSIGN_OR_RETURN(ManifestDocument doc, ParseManifestDocument(body, "", desc.media_type));
      if (doc.is_index) {
        if (image.index_digest.empty()) image.index_digest = desc.digest;
        SBX_ASSIGN_OR_RETURN(desc, SelectManifest(doc.index, platform));
        continue;
      }
      image.manifest_digest = desc.digest;
      image.manifest = std::move(doc.manifest);
      break;
    }
    SBX_TRY(EnsureBlob(source, image.manifest.config));
    for (const auto& layer : image.manifest.layers) SBX_TRY(EnsureBlob(source, layer));
    out.push_back(std::move(image));
  }
  return out;
}

}  // namespace

Result<std::vector<LoadedImage>> ReadImageArchive(const std::string& path, ContentStore& content,
                                                  const Platform& platform,
                                                  const ArchiveLimits& limits) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Error::Errno("stat " + Quote(path));
  if (S_ISDIR(st.st_mode)) {
    SBX_ASSIGN_OR_RETURN(UniqueFd root, sys::Open(path, O_PATH | O_DIRECTORY));
    DirSource source(std::move(root), content, limits);
    if (source.HasDocument("manifest.json") && !source.HasDocument("index.json")) {
      SBX_ASSIGN_OR_RETURN(std::string text, source.ReadDocument("manifest.json"));
      SBX_ASSIGN_OR_RETURN(auto entries, ParseDockerManifest(text));
      return LoadDockerSave(source, content, entries);
    }
    return LoadOciLayout(source, content, platform);
  }
  if (!S_ISREG(st.st_mode)) return Malformed(Quote(path) + " is neither a file nor a directory");
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, sys::Open(path, O_RDONLY));
  TarSource source(std::move(fd), content, limits);
  SBX_TRY(source.ReadDocuments());
  if (source.HasDocument("manifest.json")) {
    // docker save (both layouts): manifest.json names every file it needs, and has the tags.
    SBX_ASSIGN_OR_RETURN(std::string text, source.ReadDocument("manifest.json"));
    SBX_ASSIGN_OR_RETURN(auto entries, ParseDockerManifest(text));
    std::set<std::string> wanted;
    for (const auto& e : entries) {
      wanted.insert(e.config);
      wanted.insert(e.layers.begin(), e.layers.end());
    }
    SBX_TRY(source.IngestFiles(wanted, /*all_blobs=*/false));
    return LoadDockerSave(source, content, entries);
  }
  if (source.HasDocument("index.json")) {
    SBX_TRY(source.IngestFiles({}, /*all_blobs=*/true));
    return LoadOciLayout(source, content, platform);
  }
  return Malformed(
      "neither a docker save archive nor an OCI image layout "
      "(no manifest.json or index.json)");
}

}  // namespace sbx::image
