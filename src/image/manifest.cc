#include "src/image/manifest.h"

#include <nlohmann/json.hpp>

#include "src/base/strings.h"
#include "src/image/digest.h"

namespace sbx::image {
namespace {

using Json = nlohmann::json;

constexpr uint64_t kMaxDescriptorSize = 1ull << 42;  // 4 TiB: far beyond any real blob

std::string StripParameters(std::string_view content_type) {
  size_t semi = content_type.find(';');
  return std::string(Trim(content_type.substr(0, semi)));
}

Result<std::string> OptionalString(const Json& obj, const char* key, std::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) {
    return Error::InvalidArgument(std::string(what) + ": \"" + key + "\" is not a string");
  }
  return it->get<std::string>();
}

Result<Descriptor> ParseDescriptor(const Json& j, std::string_view what) {
  if (!j.is_object()) return Error::InvalidArgument(std::string(what) + " is not an object");
  Descriptor d;
  SBX_ASSIGN_OR_RETURN(d.media_type, OptionalString(j, "mediaType", what));
  SBX_ASSIGN_OR_RETURN(d.digest, OptionalString(j, "digest", what));
  SBX_TRY_CTX(ValidateDigest(d.digest), std::string(what));
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return Error::InvalidArgument(std::string(what) + ": missing or invalid size");
  }
  d.size = size->get<uint64_t>();
  if (d.size > kMaxDescriptorSize) {
    return Error::InvalidArgument(std::string(what) + ": size " + std::to_string(d.size) +
                                  " is not plausible");
  }
  auto platform = j.find("platform");
  if (platform != j.end() && !platform->is_null()) {
    if (!platform->is_object()) {
      return Error::InvalidArgument(std::string(what) + ": platform is not an object");
    }
    SBX_ASSIGN_OR_RETURN(std::string os, OptionalString(*platform, "os", what));
    SBX_ASSIGN_OR_RETURN(std::string arch, OptionalString(*platform, "architecture", what));
    SBX_ASSIGN_OR_RETURN(std::string variant, OptionalString(*platform, "variant", what));
    if (os.size() > 64 || arch.size() > 64 || variant.size() > 64) {
      return Error::InvalidArgument(std::string(what) + ": platform fields too long");
    }
    d.platform = Platform::Normalize(os, arch, variant);
  }
  auto annotations = j.find("annotations");
  if (annotations != j.end() && annotations->is_object()) {
    for (const auto& [key, value] : annotations->items()) {
      if (value.is_string() && key.size() <= 256 &&
          value.get_ref<const std::string&>().size() <= 4096) {
        d.annotations[key] = value.get<std::string>();
      }
    }
  }
  return d;
}

}  // namespace

std::string ManifestAcceptHeader() {
  return std::string(media_type::kOciIndex) + ", " + std::string(media_type::kDockerManifestList) +
         ", " + std::string(media_type::kOciManifest) + ", " +
         std::string(media_type::kDockerManifest);
}

bool IsIndexMediaType(std::string_view t) {
  return t == media_type::kOciIndex || t == media_type::kDockerManifestList;
}

bool IsManifestMediaType(std::string_view t) {
  return t == media_type::kOciManifest || t == media_type::kDockerManifest;
}

Status CheckLayerMediaType(std::string_view t) {
  static constexpr std::string_view kKnown[] = {
      media_type::kOciLayer,
      media_type::kOciLayerGzip,
      media_type::kOciLayerZstd,
      "application/vnd.oci.image.layer.nondistributable.v1.tar",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
      media_type::kDockerLayerGzip,
      media_type::kDockerForeignLayerGzip,
      "application/vnd.docker.image.rootfs.diff.tar",
  };
  for (auto known : kKnown) {
    if (t == known) return Ok();
  }
  return Error::Unimplemented("unsupported layer media type " + Quote(t, 120));
}

Result<ManifestDocument> ParseManifestDocument(std::string_view body, std::string_view content_type,
                                               std::string_view descriptor_type) {
  if (body.size() > kMaxManifestBytes) {
    return Error::ResourceExhausted("manifest larger than " + std::to_string(kMaxManifestBytes) +
                                    " bytes");
  }
  Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error::InvalidArgument("manifest is not valid JSON");
  if (!j.is_object()) return Error::InvalidArgument("manifest is not a JSON object");

  auto schema = j.find("schemaVersion");
  if (schema == j.end() || !schema->is_number_integer()) {
    return Error::InvalidArgument("manifest has no schemaVersion");
  }
  if (schema->get<int64_t>() == 1) {
    return Error::Unimplemented("docker schema 1 manifests are not supported");
  }
  if (schema->get<int64_t>() != 2) {
    return Error::InvalidArgument("unsupported manifest schemaVersion " +
                                  std::to_string(schema->get<int64_t>()));
  }
  SBX_ASSIGN_OR_RETURN(std::string declared, OptionalString(j, "mediaType", "manifest"));
  bool has_manifests = j.contains("manifests");
  bool has_config = j.contains("config");
  bool has_layers = j.contains("layers");

  // SECURITY: one document must not be readable as both an index and a manifest
  // (CVE-2021-41190); the body's own mediaType decides, a claim only when it is silent, and no
  // claim may contradict the document.
  std::string header = StripParameters(content_type);
  std::string referenced = StripParameters(descriptor_type);
  std::string kind = declared;
  if (kind.empty()) kind = !referenced.empty() ? referenced : header;
  if (!IsIndexMediaType(kind) && !IsManifestMediaType(kind)) {
    if (!declared.empty()) {
      return Error::Unimplemented("unsupported manifest media type " + Quote(declared, 120));
    }
    if (StartsWith(kind, "application/vnd.docker.distribution.manifest.v1")) {
      return Error::Unimplemented("docker schema 1 manifests are not supported");
    }
    // Neither says: only an unambiguous document is accepted (OCI layouts may omit mediaType).
    if (has_manifests && !has_config && !has_layers) {
      kind = std::string(media_type::kOciIndex);
    } else if (!has_manifests && has_config && has_layers) {
      kind = std::string(media_type::kOciManifest);
    } else {
      return Error::InvalidArgument("manifest declares no media type and is ambiguous");
    }
  }

  bool is_index = IsIndexMediaType(kind);
  for (const auto& [claim, source] : {std::pair{header, "its Content-Type"},
                                      std::pair{referenced, "the descriptor pointing at it"}}) {
    bool claims_index = IsIndexMediaType(claim);
    if ((claims_index || IsManifestMediaType(claim)) && claims_index != is_index) {
      return Error::InvalidArgument(std::string("the document is an image ") +
                                    (is_index ? "index" : "manifest") + " but " + source +
                                    " says " + Quote(claim, 120));
    }
  }
  ManifestDocument doc;
  if (is_index) {
    if (has_config || has_layers) {
      return Error::InvalidArgument("an index must not have \"config\" or \"layers\"");
    }
    auto manifests = j.find("manifests");
    if (manifests == j.end() || !manifests->is_array()) {
      return Error::InvalidArgument("index has no \"manifests\" array");
    }
    if (manifests->size() > kMaxIndexEntries) {
      return Error::ResourceExhausted("index has more than " + std::to_string(kMaxIndexEntries) +
                                      " entries");
    }
    doc.is_index = true;
    doc.index.media_type = kind;
    for (size_t i = 0; i < manifests->size(); ++i) {
      SBX_ASSIGN_OR_RETURN(Descriptor d,
                           ParseDescriptor((*manifests)[i], "index entry " + std::to_string(i)));
      doc.index.manifests.push_back(std::move(d));
    }
    return doc;
  }

  if (has_manifests) return Error::InvalidArgument("a manifest must not have \"manifests\"");
  auto config = j.find("config");
  auto layers = j.find("layers");
  if (config == j.end()) return Error::InvalidArgument("manifest has no config");
  if (layers == j.end() || !layers->is_array()) {
    return Error::InvalidArgument("manifest has no \"layers\" array");
  }
  if (layers->size() > kMaxLayers) {
    return Error::ResourceExhausted("image has " + std::to_string(layers->size()) +
                                    " layers; at most " + std::to_string(kMaxLayers) +
                                    " are supported");
  }
  doc.manifest.media_type = kind;
  SBX_ASSIGN_OR_RETURN(doc.manifest.config, ParseDescriptor(*config, "manifest config"));
  const std::string& config_type = doc.manifest.config.media_type;
  if (config_type != media_type::kOciConfig && config_type != media_type::kDockerConfig) {
    return Error::FailedPrecondition("not a container image: config media type " +
                                     Quote(config_type, 120));
  }
  if (doc.manifest.config.size > kMaxConfigBytes) {
    return Error::ResourceExhausted("image config larger than " + std::to_string(kMaxConfigBytes) +
                                    " bytes");
  }
  for (size_t i = 0; i < layers->size(); ++i) {
    SBX_ASSIGN_OR_RETURN(Descriptor d, ParseDescriptor((*layers)[i], "layer " + std::to_string(i)));
    doc.manifest.layers.push_back(std::move(d));
  }
  return doc;
}

Result<Descriptor> SelectManifest(const Index& index, const Platform& wanted) {
  const Descriptor* best = nullptr;
  int best_score = 0;
  std::vector<std::string> offered;
  for (const auto& d : index.manifests) {
    if (!IsIndexMediaType(d.media_type) && !IsManifestMediaType(d.media_type)) continue;
    int score = 0;
    if (!d.platform) {
      score = 1;
    } else {
      if (d.platform->os == "unknown" || d.platform->architecture == "unknown") continue;
      offered.push_back(d.platform->String());
      score = PlatformMatchScore(wanted, *d.platform);
    }
    if (score > best_score) {
      best = &d;
      best_score = score;
    }
  }
  if (best == nullptr) {
    return Error::NotFound("no image for platform " + wanted.String() +
                           (offered.empty() ? std::string(" (the index lists no platforms)")
                                            : " (available: " + Join(offered, ", ") + ")"))
        .WithReason("SBX_IMAGE_PLATFORM_NOT_FOUND");
  }
  return *best;
}

std::string SerializeManifest(const Manifest& manifest) {
  auto descriptor = [](const Descriptor& d) {
    return Json{{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
  };
  Json layers = Json::array();
  for (const auto& l : manifest.layers) layers.push_back(descriptor(l));
  Json j = {{"schemaVersion", 2},
            {"mediaType", manifest.media_type},
            {"config", descriptor(manifest.config)},
            {"layers", layers}};
  return j.dump();
}

}  // namespace sbx::image
