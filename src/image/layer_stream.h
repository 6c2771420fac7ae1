// File: layer_stream.h
//
// Reads a layer blob and yields its decoded tar stream: gzip (including multi-member), zstd or
// plain, detected from the first bytes rather than trusted from the media type. While decoding it
// hashes the decoded bytes (the layer's diff_id) and enforces the expansion bounds on the decoded
// side, where a decompression bomb actually grows:
//   * at most `max_bytes` for this layer;
//   * optionally a budget shared by all layers of an image (decremented as bytes appear).
// Exceeding either is kResourceExhausted; corrupt or truncated input is kDataLoss.
//
// Not thread-safe; one stream per layer.

#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/image/digest.h"

namespace sbx::image {

enum class Compression { kNone, kGzip, kZstd };
std::string_view CompressionName(Compression c);

struct StreamLimits {
  uint64_t max_bytes = 8ull << 30;
  // Shared budget of the whole image (may be null). May go negative by one chunk at most.
  std::atomic<int64_t>* image_budget = nullptr;
  // Called before the stream decodes each further kSpaceCheckBytes: an error (the disk is nearly
  // full) ends the stream. May be empty.
  std::function<Status()> check_space;
};

inline constexpr uint64_t kSpaceCheckBytes = 64ull << 20;

class LayerStream {
 public:
  // Reads from `fd` (not owned) starting at its current offset.
  static Result<std::unique_ptr<LayerStream>> Open(int fd, StreamLimits limits);
  virtual ~LayerStream() = default;

  // Up to `size` decoded bytes; 0 at the end of the stream.
  Result<size_t> Read(char* buf, size_t size);

  Compression compression() const { return compression_; }
  uint64_t decoded_bytes() const { return decoded_; }
  uint64_t compressed_bytes() const { return consumed_; }
  // "sha256:..." of the decoded bytes read so far.
  std::string DiffId() const { return hasher_.Digest(); }

 protected:
  LayerStream(int fd, StreamLimits limits, Compression c)
      : fd_(fd), limits_(limits), compression_(c) {}
  // Produces decoded bytes; 0 at the end.
  virtual Result<size_t> Decode(char* buf, size_t size) = 0;
  // Refills the input buffer; false at end of file.
  Result<bool> Fill();

  int fd_;
  StreamLimits limits_;
  Compression compression_;
  std::vector<char> in_;
  size_t in_pos_ = 0;
  size_t in_len_ = 0;
  bool eof_ = false;
  uint64_t consumed_ = 0;

 private:
  Sha256 hasher_;
  uint64_t decoded_ = 0;
};

}  // namespace sbx::image
