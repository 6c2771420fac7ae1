// File: tar_builder.h (tests)
//
// Builds tar streams with libarchive's writer, including the hostile ones real tools would never
// produce (absolute paths, "..", links out of the tree, whiteouts of "..", huge paths), and
// compresses them with gzip or zstd.
//
//   TarBuilder tar;
//   tar.Symlink("localetc", "/etc").File("localetc/unbroken", "x");
//   std::string layer = tar.Finish(Compression::kGzip);

#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "src/image/layer_stream.h"

namespace sbx::image::testing {

class TarBuilder {
 public:
  struct Entry {
    std::string path;
    unsigned type = 0;  // AE_IF*
    std::string content;
    uint64_t zeros = 0;  // regular file of this many zero bytes (streamed, for bombs)
    std::string link;    // symlink target or hardlink target
    bool hardlink = false;
    unsigned mode = 0644;
    int64_t uid = 0, gid = 0;
    unsigned rdev_major = 0, rdev_minor = 0;
    std::vector<std::pair<std::string, std::string>> xattrs;
    int64_t mtime = 1700000000;
  };

  TarBuilder& File(const std::string& path, const std::string& content, unsigned mode = 0644,
                   int64_t uid = 0, int64_t gid = 0);
  TarBuilder& Zeros(const std::string& path, uint64_t size);
  TarBuilder& Dir(const std::string& path, unsigned mode = 0755, int64_t uid = 0, int64_t gid = 0);
  TarBuilder& Symlink(const std::string& path, const std::string& target);
  TarBuilder& Hardlink(const std::string& path, const std::string& target);
  TarBuilder& Fifo(const std::string& path);
  TarBuilder& CharDevice(const std::string& path, unsigned major, unsigned minor);
  // Adds an xattr to the last entry.
  TarBuilder& Xattr(const std::string& name, const std::string& value);
  TarBuilder& Add(Entry entry);

  // The tar stream, compressed as asked; `trailer` is appended to the decoded stream (data after
  // the end-of-archive blocks).
  std::string Finish(Compression compression = Compression::kNone,
                     const std::string& trailer = "") const;

 private:
  std::vector<Entry> entries_;
};

// Compresses raw bytes (gzip or zstd); kNone returns them as is.
std::string Compress(const std::string& data, Compression compression);

}  // namespace sbx::image::testing
