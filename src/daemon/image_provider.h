// File: image_provider.h
//
// What the sandbox manager needs from the image store: a reference resolved to unpacked layer
// directories and the image's configuration, and holds that keep an image's layers from being
// collected while sandboxes use them. The production implementation wraps image::Store; tests
// can serve directories.

#pragma once

#include <string>
#include <vector>

#include "src/base/result.h"

namespace sbx::daemon {

struct ResolvedImage {
  std::string reference;                // normalised
  std::string digest;                   // manifest digest
  std::vector<std::string> layer_dirs;  // lowest first
  std::vector<std::string> env;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string working_dir;
  std::string user;
};

class ImageProvider {
 public:
  virtual ~ImageProvider() = default;
  // Local copy, or pulled. kNotFound when the registry has no such image, kInvalidArgument for a
  // malformed reference, kUnavailable when the registry cannot be reached.
  virtual Result<ResolvedImage> Resolve(const std::string& reference) = 0;
  // The local copy only, kNotFound if there is none: never pulls.
  virtual Result<ResolvedImage> ResolveLocal(const std::string& reference) = 0;
  virtual void Hold(const std::string& digest) = 0;
  virtual void Release(const std::string& digest) = 0;
};

}  // namespace sbx::daemon
