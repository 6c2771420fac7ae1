#include "src/daemon/image_store_provider.h"

#include "src/base/quantity.h"

namespace sbx::daemon {

Result<std::unique_ptr<ImageStoreProvider>> ImageStoreProvider::Open(const Config& config) {
  image::StoreOptions options;
  options.root = config.state_dir + "/images";
  options.mirrors = config.registry_mirrors;
  options.insecure_registries = config.insecure_registries;
  for (const auto& c : config.registry_credentials) {
    image::RegistryAuth auth;
    auth.registry = c.registry;
    auth.username = c.username;
    auth.password = c.password;
    options.auths.push_back(auth);
  }
  options.host_uid = config.id_map_uid;
  options.host_gid = config.id_map_gid;
  options.id_range = config.id_map_size;
  options.min_free_bytes = ParseBytes(config.disk_reserve).value_or(0);
  SBX_ASSIGN_OR_RETURN(auto store, image::Store::Open(options));
  return std::unique_ptr<ImageStoreProvider>(new ImageStoreProvider(std::move(store)));
}

namespace {

ResolvedImage ToResolved(const image::Image& img) {
  ResolvedImage out;
  out.reference = img.reference;
  out.digest = img.manifest_digest;
  out.layer_dirs = img.layer_dirs;
  out.env = img.config.env;
  out.entrypoint = img.config.entrypoint;
  out.cmd = img.config.cmd;
  out.working_dir = img.config.working_dir;
  out.user = img.config.user;
  return out;
}

}  // namespace

Result<ResolvedImage> ImageStoreProvider::Resolve(const std::string& reference) {
  SBX_ASSIGN_OR_RETURN(image::Image img, store_->Ensure(reference));
  return ToResolved(img);
}

Result<ResolvedImage> ImageStoreProvider::ResolveLocal(const std::string& reference) {
  SBX_ASSIGN_OR_RETURN(image::Image img, store_->Get(reference));
  return ToResolved(img);
}

void ImageStoreProvider::Hold(const std::string& digest) { (void)store_->Hold(digest); }

void ImageStoreProvider::Release(const std::string& digest) { store_->Release(digest); }

}  // namespace sbx::daemon
