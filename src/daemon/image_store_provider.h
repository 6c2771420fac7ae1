// File: image_store_provider.h
//
// The production ImageProvider: image::Store configured from sbxd's config (registry mirrors,
// insecure registries, credentials, id mapping). Also exposes the store for the image service.

#pragma once

#include <memory>

#include "src/daemon/config.h"
#include "src/daemon/image_provider.h"
#include "src/image/store.h"

namespace sbx::daemon {

class ImageStoreProvider : public ImageProvider {
 public:
  static Result<std::unique_ptr<ImageStoreProvider>> Open(const Config& config);
  Result<ResolvedImage> Resolve(const std::string& reference) override;
  Result<ResolvedImage> ResolveLocal(const std::string& reference) override;
  void Hold(const std::string& digest) override;
  void Release(const std::string& digest) override;
  image::Store& store() { return *store_; }

 private:
  explicit ImageStoreProvider(std::unique_ptr<image::Store> store) : store_(std::move(store)) {}
  std::unique_ptr<image::Store> store_;
};

}  // namespace sbx::daemon
