// File: image_builder.h (tests)
//
// Synthetic images for tests: layers from TarBuilder output, a config, a manifest (OCI or Docker
// media types), indexes for several platforms; written as an OCI layout (directory or tar) or a
// `docker save` archive, or pushed to a registry over the distribution API.

#pragma once

#include <string>
#include <utility>
#include <vector>

#include "src/base/result.h"
#include "src/image/http_client.h"
#include "src/image/layer_stream.h"

namespace sbx::image::testing {

struct TestLayer {
  std::string tar;   // uncompressed
  std::string blob;  // as stored in the registry
  std::string digest;
  std::string diff_id;
  std::string media_type;
};

struct TestImageSpec {
  std::vector<std::string> layer_tars;  // uncompressed tar streams, lowest first
  Compression compression = Compression::kGzip;
  bool docker_media_types = false;
  std::string os = "linux", architecture = "amd64", variant;
  std::vector<std::string> env, entrypoint, cmd, exposed_ports;
  std::string working_dir, user;
  std::string created = "2024-05-06T07:08:09Z";
  // Overrides the diff_ids written to the config (to test verification); empty: the real ones.
  std::vector<std::string> diff_ids;
};

struct TestImage {
  std::vector<TestLayer> layers;
  std::string config, config_digest;
  std::string manifest, manifest_digest, manifest_media_type;
};

TestImage BuildImage(const TestImageSpec& spec);

struct IndexEntry {
  const TestImage* image;
  std::string os, architecture, variant;
};
// An OCI index (or a Docker manifest list) over platform manifests.
std::string BuildIndex(const std::vector<IndexEntry>& entries, bool docker_list = false);

struct PushOptions {
  std::string authorization;  // a full header value ("Basic ...") or empty
  std::string ca_file;        // for a registry with a self-signed certificate
};
// Pushes blobs and the manifest; `reference` is a tag or a digest (empty: the manifest digest).
Status PushImage(const std::string& base_url, const std::string& repository,
                 const std::string& reference, const TestImage& image,
                 const PushOptions& options = {});
Status PushBlob(const std::string& base_url, const std::string& repository,
                const std::string& digest, const std::string& data,
                const PushOptions& options = {});
Status PushManifest(const std::string& base_url, const std::string& repository,
                    const std::string& reference, const std::string& body,
                    const std::string& media_type, const PushOptions& options = {});

struct LayoutEntry {
  const TestImage* image;
  std::string name;      // io.containerd.image.name annotation; empty: none
  std::string ref_name;  // org.opencontainers.image.ref.name; empty: none
};
// An OCI image layout directory; `index_body`/`index_digest` add a nested index instead.
Status WriteOciLayout(const std::string& dir, const std::vector<LayoutEntry>& entries);
// A `docker save` archive in the classic layout (manifest.json, <id>.json, <id>/layer.tar).
Status WriteDockerSave(
    const std::string& tar_path,
    const std::vector<std::pair<const TestImage*, std::vector<std::string>>>& images);
// Tars a directory tree (regular files and directories) into `tar_path`.
Status TarDirectory(const std::string& dir, const std::string& tar_path,
                    Compression compression = Compression::kNone);

}  // namespace sbx::image::testing
