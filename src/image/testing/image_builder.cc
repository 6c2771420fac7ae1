#include "src/image/testing/image_builder.h"

#include <dirent.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "src/base/strings.h"
#include "src/image/digest.h"
#include "src/image/manifest.h"
#include "src/image/testing/tar_builder.h"
#include "src/sys/fs.h"

namespace sbx::image::testing {
namespace {

using Json = nlohmann::json;

std::string LayerType(Compression c, bool docker) {
  if (docker) return std::string(media_type::kDockerLayerGzip);
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

Status Check(const Result<HttpResponse>& resp, long want, const std::string& what) {
  if (!resp) return resp.error();
  if (resp->status != want) {
    return Error::Internal(what + ": HTTP " + std::to_string(resp->status) + " " +
                           Quote(resp->body, 300));
  }
  return Ok();
}

void Collect(const std::string& root, const std::string& rel, std::vector<std::string>* out) {
  std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string sub = rel.empty() ? name : rel + "/" + name;
    struct stat st {};
    if (lstat((root + "/" + sub).c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      out->push_back(sub + "/");
      Collect(root, sub, out);
    } else if (S_ISREG(st.st_mode)) {
      out->push_back(sub);
    }
  }
  closedir(d);
}

}  // namespace

TestImage BuildImage(const TestImageSpec& spec) {
  TestImage image;
  Json diff_ids = Json::array();
  for (const auto& tar : spec.layer_tars) {
    TestLayer layer;
    layer.tar = tar;
    layer.blob = Compress(tar, spec.compression);
    layer.digest = Sha256Digest(layer.blob);
    layer.diff_id = Sha256Digest(tar);
    layer.media_type = LayerType(spec.compression, spec.docker_media_types);
    diff_ids.push_back(layer.diff_id);
    image.layers.push_back(std::move(layer));
  }
  if (!spec.diff_ids.empty()) diff_ids = spec.diff_ids;
  Json config_section = {{"Env", spec.env}, {"WorkingDir", spec.working_dir}, {"User", spec.user}};
  if (!spec.entrypoint.empty()) config_section["Entrypoint"] = spec.entrypoint;
  if (!spec.cmd.empty()) config_section["Cmd"] = spec.cmd;
  if (!spec.exposed_ports.empty()) {
    Json ports = Json::object();
    for (const auto& p : spec.exposed_ports) ports[p] = Json::object();
    config_section["ExposedPorts"] = ports;
  }
  Json config = {{"architecture", spec.architecture},
                 {"os", spec.os},
                 {"created", spec.created},
                 {"config", config_section},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  if (!spec.variant.empty()) config["variant"] = spec.variant;
  image.config = config.dump();
  image.config_digest = Sha256Digest(image.config);
  Json layers = Json::array();
  for (const auto& l : image.layers) {
    layers.push_back({{"mediaType", l.media_type}, {"digest", l.digest}, {"size", l.blob.size()}});
  }
  image.manifest_media_type =
      std::string(spec.docker_media_types ? media_type::kDockerManifest : media_type::kOciManifest);
  Json manifest = {
      {"schemaVersion", 2},
      {"mediaType", image.manifest_media_type},
      {"config",
       {{"mediaType", spec.docker_media_types ? media_type::kDockerConfig : media_type::kOciConfig},
        {"digest", image.config_digest},
        {"size", image.config.size()}}},
      {"layers", layers}};
  image.manifest = manifest.dump();
  image.manifest_digest = Sha256Digest(image.manifest);
  return image;
}

std::string BuildIndex(const std::vector<IndexEntry>& entries, bool docker_list) {
  Json manifests = Json::array();
  for (const auto& e : entries) {
    Json platform = {{"os", e.os}, {"architecture", e.architecture}};
    if (!e.variant.empty()) platform["variant"] = e.variant;
    manifests.push_back({{"mediaType", e.image->manifest_media_type},
                         {"digest", e.image->manifest_digest},
                         {"size", e.image->manifest.size()},
                         {"platform", platform}});
  }
  Json index = {
      {"schemaVersion", 2},
      {"mediaType", docker_list ? media_type::kDockerManifestList : media_type::kOciIndex},
      {"manifests", manifests}};
  return index.dump();
}

Status PushBlob(const std::string& base_url, const std::string& repository,
                const std::string& digest, const std::string& data, const PushOptions& options) {
  HttpClient http;
  HttpRequest start;
  start.method = "POST";
  start.url = base_url + "/v2/" + repository + "/blobs/uploads/";
  start.ca_file = options.ca_file;
  if (!options.authorization.empty()) {
    start.headers.push_back("Authorization: " + options.authorization);
  }
  auto resp = http.Perform(start);
  SBX_TRY(Check(resp, 202, "start upload"));
  SBX_ASSIGN_OR_RETURN(std::string location, ResolveUrl(start.url, resp->Header("location")));
  HttpRequest put;
  put.method = "PUT";
  put.url = location + (location.find('?') == std::string::npos ? "?" : "&") +
            "digest=" + UrlEscape(digest);
  put.body = data;
  put.ca_file = options.ca_file;
  put.headers = {"Content-Type: application/octet-stream"};
  if (!options.authorization.empty())
    put.headers.push_back("Authorization: " + options.authorization);
  return Check(http.Perform(put), 201, "upload blob " + digest);
}

Status PushManifest(const std::string& base_url, const std::string& repository,
                    const std::string& reference, const std::string& body,
                    const std::string& media_type, const PushOptions& options) {
  HttpClient http;
  HttpRequest put;
  put.method = "PUT";
  put.url = base_url + "/v2/" + repository + "/manifests/" + reference;
  put.body = body;
  put.ca_file = options.ca_file;
  put.headers = {"Content-Type: " + media_type};
  if (!options.authorization.empty())
    put.headers.push_back("Authorization: " + options.authorization);
  return Check(http.Perform(put), 201, "put manifest " + reference);
}

Status PushImage(const std::string& base_url, const std::string& repository,
                 const std::string& reference, const TestImage& image, const PushOptions& options) {
  for (const auto& l : image.layers) {
    SBX_TRY(PushBlob(base_url, repository, l.digest, l.blob, options));
  }
  SBX_TRY(PushBlob(base_url, repository, image.config_digest, image.config, options));
  return PushManifest(base_url, repository, reference.empty() ? image.manifest_digest : reference,
                      image.manifest, image.manifest_media_type, options);
}

Status WriteOciLayout(const std::string& dir, const std::vector<LayoutEntry>& entries) {
  SBX_TRY(sys::MakeDirs(dir + "/blobs/sha256"));
  auto put = [&](const std::string& digest, const std::string& data) {
    return sys::WriteFile(dir + "/blobs/sha256/" + std::string(DigestHex(digest)), data);
  };
  Json manifests = Json::array();
  for (const auto& e : entries) {
    for (const auto& l : e.image->layers) SBX_TRY(put(l.digest, l.blob));
    SBX_TRY(put(e.image->config_digest, e.image->config));
    SBX_TRY(put(e.image->manifest_digest, e.image->manifest));
    Json desc = {{"mediaType", e.image->manifest_media_type},
                 {"digest", e.image->manifest_digest},
                 {"size", e.image->manifest.size()}};
    Json annotations = Json::object();
    if (!e.name.empty()) annotations["io.containerd.image.name"] = e.name;
    if (!e.ref_name.empty()) annotations["org.opencontainers.image.ref.name"] = e.ref_name;
    if (!annotations.empty()) desc["annotations"] = annotations;
    manifests.push_back(desc);
  }
  Json index = {
      {"schemaVersion", 2}, {"mediaType", media_type::kOciIndex}, {"manifests", manifests}};
  SBX_TRY(sys::WriteFile(dir + "/index.json", index.dump()));
  return sys::WriteFile(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
}

Status WriteDockerSave(
    const std::string& tar_path,
    const std::vector<std::pair<const TestImage*, std::vector<std::string>>>& images) {
  TarBuilder tar;
  Json manifest = Json::array();
  for (const auto& [image, tags] : images) {
    std::string config_name = std::string(DigestHex(image->config_digest)) + ".json";
    tar.File(config_name, image->config);
    Json layers = Json::array();
    for (const auto& l : image->layers) {
      std::string id = std::string(DigestHex(l.diff_id));
      tar.Dir(id);
      tar.File(id + "/layer.tar", l.tar);
      tar.File(id + "/VERSION", "1.0");
      layers.push_back(id + "/layer.tar");
    }
    manifest.push_back({{"Config", config_name}, {"RepoTags", tags}, {"Layers", layers}});
  }
  tar.File("manifest.json", manifest.dump());
  return sys::WriteFile(tar_path, tar.Finish());
}

Status TarDirectory(const std::string& dir, const std::string& tar_path, Compression compression) {
  std::vector<std::string> paths;
  Collect(dir, "", &paths);
  TarBuilder tar;
  for (const auto& p : paths) {
    if (EndsWith(p, "/")) {
      tar.Dir(p.substr(0, p.size() - 1));
    } else {
      SBX_ASSIGN_OR_RETURN(std::string data, sys::ReadFile(dir + "/" + p, 1u << 30));
      tar.File(p, data);
    }
  }
  return sys::WriteFile(tar_path, tar.Finish(compression));
}

}  // namespace sbx::image::testing
