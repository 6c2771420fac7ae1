// File: manifest.h
//
// The JSON documents a registry or an image archive serves: image manifests (OCI and Docker
// schema 2) and indexes (OCI image index and Docker manifest list), with the validation that makes
// them safe to act on:
//   * a document is exactly one kind: an index with "config"/"layers" or a manifest with
//     "manifests" is refused (CVE-2021-41190), and so is one whose kind contradicts what it was
//     served or referenced as (an index under a manifest's Content-Type or descriptor, or the
//     reverse); the body's own mediaType decides the kind, a claim only when it is silent;
//   * every descriptor's digest is a valid sha256 digest and its size is bounded;
//   * the number of layers and of index entries is bounded;
//   * Docker schema 1 is refused (kUnimplemented).
// All parsers take untrusted bytes and never throw.

#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"
#include "src/image/platform.h"

namespace sbx::image {

namespace media_type {
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kOciLayer = "application/vnd.oci.image.layer.v1.tar";
inline constexpr std::string_view kOciLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr std::string_view kOciLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kDockerLayerGzip =
    "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr std::string_view kDockerForeignLayerGzip =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
}  // namespace media_type

// The Accept header for manifest requests: every kind we can use.
std::string ManifestAcceptHeader();

inline constexpr size_t kMaxManifestBytes = 4u << 20;  // containers/image's MaxManifestBodySize
inline constexpr size_t kMaxConfigBytes = 4u << 20;
inline constexpr size_t kMaxLayers = 128;
inline constexpr size_t kMaxIndexEntries = 1024;

bool IsIndexMediaType(std::string_view media_type);
bool IsManifestMediaType(std::string_view media_type);
// OK for layer media types we can unpack; kUnimplemented (encrypted, unknown) otherwise.
Status CheckLayerMediaType(std::string_view media_type);

struct Descriptor {
  std::string media_type;
  std::string digest;
  uint64_t size = 0;
  std::optional<Platform> platform;
  std::map<std::string, std::string> annotations;
};

struct Manifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
};

struct Index {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

struct ManifestDocument {
  bool is_index = false;
  Manifest manifest;  // when !is_index
  Index index;        // when is_index
};

// Parses a manifest or an index. `content_type` (the HTTP header, parameters allowed) and
// `descriptor_type` (the media type of the descriptor that pointed at the document, if any) are
// claims about its kind: each must agree with the document when it names an index or manifest
// type, and they decide the kind only when the body does not declare its mediaType.
Result<ManifestDocument> ParseManifestDocument(std::string_view body,
                                               std::string_view content_type = "",
                                               std::string_view descriptor_type = "");

// Picks the entry of `index` for `wanted`: the best PlatformMatchScore, the first on ties. Entries
// without a platform match anything (the caller checks the config); attestation manifests
// ("unknown/unknown") never match. kNotFound lists the platforms the index offers.
Result<Descriptor> SelectManifest(const Index& index, const Platform& wanted);

// Serialises a Docker schema 2 manifest (used for images loaded from `docker save` archives,
// which carry no manifest of their own).
std::string SerializeManifest(const Manifest& manifest);

}  // namespace sbx::image
