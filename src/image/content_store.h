// File: content_store.h
//
// A content-addressed blob store shared by every image:
//
//   <root>/blobs/sha256/<hex>   committed blobs; the name is the sha256 of the content
//   <root>/ingest/<hex>-<rand>  blobs being written
//
// A blob becomes visible only complete and verified: an Ingest hashes what is written, and Commit
// checks the size and digest, fsyncs, and renames into blobs/ (an existing blob with the same
// digest is simply kept). An Ingest that is destroyed without Commit deletes its file, so bad or
// interrupted input never leaves a half-written blob behind.
//
// Thread-safe: every method may be called concurrently. Coalescing of concurrent downloads of one
// blob is the caller's business (the Store does it).

#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"
#include "src/image/digest.h"

namespace sbx::image {

// A destination for streamed bytes that can start over (a download restarted from zero).
class BlobSink {
 public:
  virtual ~BlobSink() = default;
  virtual Status Write(std::string_view data) = 0;
  virtual Status Restart() = 0;
  virtual uint64_t written() const = 0;
  // "sha256:..." of what was written.
  virtual std::string Digest() const = 0;
};

class Ingest : public BlobSink {
 public:
  Ingest(const Ingest&) = delete;
  Ingest& operator=(const Ingest&) = delete;
  ~Ingest() override;

  // kDataLoss once more than the expected size is written.
  Status Write(std::string_view data) override;
  Status Restart() override;
  uint64_t written() const override { return written_; }
  std::string Digest() const override { return hasher_.Digest(); }

  // Verifies size and digest (kDataLoss naming both when they differ) and publishes the blob.
  // An ingest started without a digest publishes under the digest of what was written.
  Status Commit();
  // The blob's digest (known after Commit for an ingest started without one).
  const std::string& digest() const { return digest_; }

 private:
  friend class ContentStore;
  Ingest(std::string digest, uint64_t expected_size, std::string tmp_path, std::string blob_dir,
         UniqueFd fd);

  std::string digest_;
  uint64_t expected_size_;
  bool size_is_bound_ = false;  // no digest given: expected_size_ is only a maximum
  std::string tmp_path_;
  std::string blob_dir_;
  UniqueFd fd_;
  Sha256 hasher_;
  uint64_t written_ = 0;
  bool committed_ = false;
};

struct BlobInfo {
  std::string digest;
  uint64_t size = 0;
};

class ContentStore {
 public:
  // Creates the directories under `root` if needed and removes leftovers of interrupted ingests.
  static Result<std::unique_ptr<ContentStore>> Open(const std::string& root);

  std::string BlobPath(std::string_view digest) const;
  bool Has(std::string_view digest) const;
  // kNotFound when absent.
  Result<uint64_t> Size(std::string_view digest) const;
  Result<UniqueFd> OpenBlob(std::string_view digest) const;
  // Reads a small blob (manifest, config) and verifies its digest again (cheap at these sizes,
  // and it catches on-disk corruption before we act on the document).
  Result<std::string> ReadBlob(std::string_view digest, size_t max_bytes) const;
  // Stores `data` as the blob `digest` (verified).
  Status WriteBlob(std::string_view digest, std::string_view data);
  // Starts writing the blob `digest` of `expected_size` bytes. With an empty `digest` the blob
  // is whatever gets written (at most `expected_size` bytes), published under its own digest.
  Result<std::unique_ptr<Ingest>> StartIngest(std::string_view digest, uint64_t expected_size);
  // Removes a blob; a missing blob is fine.
  Status Delete(std::string_view digest);
  Result<std::vector<BlobInfo>> List() const;

  const std::string& root() const { return root_; }

 private:
  explicit ContentStore(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace sbx::image
