#include "src/daemon/services/image_service.h"

#include <fcntl.h>
#include <unistd.h>

#include <mutex>

#include "src/base/strings.h"
#include "src/daemon/services/status_mapping.h"
#include "src/sys/fs.h"

namespace sbx::daemon {

namespace {

void ToProto(const image::Image& img, ::sbx::v1::Image* out) {
  out->set_reference(img.reference);
  out->set_digest(img.manifest_digest);
  out->set_size_bytes(static_cast<int64_t>(img.size_bytes));
  out->mutable_created_time()->set_seconds(img.created_unix);
  out->add_references(img.reference);
  out->set_platform(img.platform);
}

}  // namespace

grpc::Status ImageService::PullImage(grpc::ServerContext* context,
                                     const ::sbx::v1::PullImageRequest* request,
                                     grpc::ServerWriter<::sbx::v1::PullImageProgress>* writer) {
  if (Status allowed = auth_->RequireOperator(*context); !allowed) return ToGrpcStatus(allowed);
  if (request->reference().empty()) return ToGrpcStatus(FieldError("reference", "required"));
  std::mutex mu;
  auto progress = [&](const std::vector<image::LayerProgress>& layers) {
    ::sbx::v1::PullImageProgress message;
    for (const auto& l : layers) {
      auto* p = message.add_layers();
      p->set_digest(l.digest);
      p->set_total_bytes(static_cast<int64_t>(l.total));
      p->set_done_bytes(static_cast<int64_t>(l.done));
      p->set_phase(l.phase);
    }
    std::lock_guard lock(mu);
    writer->Write(message);
  };
  Result<image::Image> img = Error::NotFound("not looked up");
  if (request->if_missing()) img = images_->store().Get(request->reference());
  if (!img) img = images_->store().Pull(request->reference(), progress);
  if (!img) return ToGrpcStatus(img.error());
  ::sbx::v1::PullImageProgress done;
  done.set_done(true);
  ToProto(*img, done.mutable_image());
  std::lock_guard lock(mu);
  writer->Write(done);
  return grpc::Status::OK;
}

grpc::Status ImageService::ListImages(grpc::ServerContext* context,
                                      const ::sbx::v1::ListImagesRequest*,
                                      ::sbx::v1::ListImagesResponse* response) {
  if (Status allowed = auth_->RequireOperator(*context); !allowed) return ToGrpcStatus(allowed);
  auto images = images_->store().List();
  if (!images) return ToGrpcStatus(images.error());
  for (const auto& img : *images) ToProto(img, response->add_images());
  return grpc::Status::OK;
}

grpc::Status ImageService::RemoveImage(grpc::ServerContext* context,
                                       const ::sbx::v1::RemoveImageRequest* request,
                                       ::sbx::v1::RemoveImageResponse* response) {
  if (Status allowed = auth_->RequireOperator(*context); !allowed) return ToGrpcStatus(allowed);
  if (request->reference().empty()) return ToGrpcStatus(FieldError("reference", "required"));
  // Warm sandboxes hold their image but are nobody's: they give way, those made for its other
  // names too (a name still in use makes them again).
  auto image = images_->store().Get(request->reference());
  if (image) manager_->DropWarm(image->manifest_digest);
  Status removed = images_->store().Remove(request->reference(), request->force());
  if (!removed && removed.error().reason() == "SBX_IMAGE_IN_USE" && image &&
      manager_->DropKeptFiles(image->manifest_digest) > 0) {
    // Ended sandboxes that kept their files held it too: their files give way to the removal.
    removed = images_->store().Remove(request->reference(), request->force());
  }
  if (!removed) return ToGrpcStatus(removed.error());
  auto reclaimed = images_->store().GarbageCollect();
  if (reclaimed) response->set_reclaimed_bytes(static_cast<int64_t>(*reclaimed));
  return grpc::Status::OK;
}

grpc::Status ImageService::LoadImage(grpc::ServerContext* context,
                                     grpc::ServerReader<::sbx::v1::LoadImageChunk>* reader,
                                     ::sbx::v1::LoadImageResponse* response) {
  if (Status allowed = auth_->RequireOperator(*context); !allowed) return ToGrpcStatus(allowed);
  // The archive is spooled to a private temporary file, then loaded like `docker load`.
  char path[] = "/tmp/sbx-load-XXXXXX";
  UniqueFd fd(mkostemp(path, O_CLOEXEC));
  if (!fd) return ToGrpcStatus(Error::Errno("create temporary file"));
  std::string tmp = path;
  std::string tag;
  ::sbx::v1::LoadImageChunk chunk;
  bool first = true;
  uint64_t total = 0;
  while (reader->Read(&chunk)) {
    if (first) tag = chunk.tag();
    first = false;
    total += chunk.data().size();
    if (total > (64ull << 30)) {
      unlink(tmp.c_str());
      return ToGrpcStatus(Error::ResourceExhausted("image archive larger than 64 GiB"));
    }
    if (Status w = sys::WriteAll(fd.get(), chunk.data()); !w) {
      unlink(tmp.c_str());
      return ToGrpcStatus(w.error());
    }
  }
  fd.reset();
  auto images = images_->store().Load(tmp, tag);
  unlink(tmp.c_str());
  if (!images) return ToGrpcStatus(images.error());
  for (const auto& img : *images) ToProto(img, response->add_images());
  return grpc::Status::OK;
}

}  // namespace sbx::daemon
