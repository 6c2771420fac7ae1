// File: archive_loader.h
//
// Reads images from local archives into the content store:
//   * `docker save` tarballs: the classic layout (manifest.json with RepoTags, <id>.json configs,
//     <id>/layer.tar layers) and the OCI-based layout of Docker 25+;
//   * OCI image layouts, as a directory or as a tar (plain, gzip or zstd): index.json entries,
//     named by "io.containerd.image.name" or a reference-like "org.opencontainers.image.ref.name",
//     nested indexes resolved for the wanted platform.
// Every blob is verified (a blob named by its digest must hash to it), every size bounded. For
// docker save archives, which have no manifest, an OCI manifest is synthesised and stored.
// The archive is untrusted: paths inside it are cleaned, and a directory layout is read through
// RESOLVE_IN_ROOT so its symlinks cannot point elsewhere on the host.

#pragma once

#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/image/content_store.h"
#include "src/image/manifest.h"
#include "src/image/platform.h"

namespace sbx::image {

struct LoadedImage {
  std::vector<std::string> names;  // as the archive gives them ("busybox:latest"); may be empty
  std::string index_digest;        // OCI: the index that led to the manifest, if any
  std::string manifest_digest;
  Manifest manifest;
};

struct ArchiveLimits {
  uint64_t max_blob_bytes = 8ull << 30;
  uint64_t max_entries = 1u << 20;
};

// Every blob the returned images reference is in `content` when this returns OK.
Result<std::vector<LoadedImage>> ReadImageArchive(const std::string& path, ContentStore& content,
                                                  const Platform& platform,
                                                  const ArchiveLimits& limits);

}  // namespace sbx::image
