// File: image_service.h
//
// sbx.v1.ImageService: pull (with per-layer progress), list, remove and load images on this node.
// Images are the node's, shared by every tenant, so every method needs the operator right
// (auth.h): a tenant could otherwise list the images other tenants run, or remove one under them.

#pragma once

#include "sbx/v1/sbx.grpc.pb.h"
#include "src/daemon/image_store_provider.h"
#include "src/daemon/sandbox_manager.h"
#include "src/daemon/services/auth.h"

namespace sbx::daemon {

class ImageService final : public ::sbx::v1::ImageService::Service {
 public:
  ImageService(ImageStoreProvider* images, const Authenticator* auth, SandboxManager* manager)
      : images_(images), auth_(auth), manager_(manager) {}
  grpc::Status PullImage(grpc::ServerContext* context, const ::sbx::v1::PullImageRequest* request,
                         grpc::ServerWriter<::sbx::v1::PullImageProgress>* writer) override;
  grpc::Status ListImages(grpc::ServerContext* context, const ::sbx::v1::ListImagesRequest* request,
                          ::sbx::v1::ListImagesResponse* response) override;
  grpc::Status RemoveImage(grpc::ServerContext* context,
                           const ::sbx::v1::RemoveImageRequest* request,
                           ::sbx::v1::RemoveImageResponse* response) override;
  grpc::Status LoadImage(grpc::ServerContext* context,
                         grpc::ServerReader<::sbx::v1::LoadImageChunk>* reader,
                         ::sbx::v1::LoadImageResponse* response) override;

 private:
  ImageStoreProvider* images_;
  const Authenticator* auth_;
  SandboxManager* manager_;
};

}  // namespace sbx::daemon
