#include "src/image/content_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::image {
namespace {

Status FsyncDir(const std::string& dir) {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, sys::Open(dir, O_RDONLY | O_DIRECTORY));
  if (::fsync(fd.get()) != 0) return Error::Errno("fsync " + Quote(dir));
  return Ok();
}

}  // namespace

Ingest::Ingest(std::string digest, uint64_t expected_size, std::string tmp_path,
               std::string blob_dir, UniqueFd fd)
    : digest_(std::move(digest)),
      expected_size_(expected_size),
      size_is_bound_(digest_.empty()),
      tmp_path_(std::move(tmp_path)),
      blob_dir_(std::move(blob_dir)),
      fd_(std::move(fd)) {}

Ingest::~Ingest() {
  if (!committed_) ::unlink(tmp_path_.c_str());
}

Status Ingest::Write(std::string_view data) {
  if (written_ + data.size() > expected_size_) {
    if (size_is_bound_) {
      return Error::ResourceExhausted("blob larger than " + std::to_string(expected_size_) +
                                      " bytes")
          .WithReason("SBX_IMAGE_TOO_LARGE");
    }
    return Error::DataLoss("blob " + digest_ + " is larger than the " +
                           std::to_string(expected_size_) + " bytes its descriptor declares")
        .WithReason("SBX_IMAGE_BLOB_SIZE_MISMATCH");
  }
  SBX_TRY_CTX(sys::WriteAll(fd_.get(), data), "write " + Quote(tmp_path_));
  hasher_.Update(data);
  written_ += data.size();
  return Ok();
}

Status Ingest::Restart() {
  if (::ftruncate(fd_.get(), 0) != 0) return Error::Errno("truncate " + Quote(tmp_path_));
  if (::lseek(fd_.get(), 0, SEEK_SET) != 0) return Error::Errno("seek " + Quote(tmp_path_));
  hasher_.Reset();
  written_ = 0;
  return Ok();
}

Status Ingest::Commit() {
  if (committed_) return Ok();
  if (size_is_bound_) {
    digest_ = hasher_.Digest();
    expected_size_ = written_;
  }
  if (written_ != expected_size_) {
    return Error::DataLoss("blob " + digest_ + " is " + std::to_string(written_) +
                           " bytes, its descriptor says " + std::to_string(expected_size_))
        .WithReason("SBX_IMAGE_BLOB_SIZE_MISMATCH");
  }
  std::string actual = hasher_.Digest();
  if (actual != digest_) {
    return Error::DataLoss("digest mismatch: expected " + digest_ + ", got " + actual)
        .WithReason("SBX_IMAGE_DIGEST_MISMATCH")
        .WithMetadata("expected", digest_)
        .WithMetadata("actual", actual);
  }
  if (::fsync(fd_.get()) != 0) return Error::Errno("fsync " + Quote(tmp_path_));
  fd_.reset();
  std::string final_path = blob_dir_ + "/" + std::string(DigestHex(digest_));
  if (::rename(tmp_path_.c_str(), final_path.c_str()) != 0) {
    return Error::Errno("rename " + Quote(tmp_path_) + " to " + Quote(final_path));
  }
  committed_ = true;
  return FsyncDir(blob_dir_);
}

Result<std::unique_ptr<ContentStore>> ContentStore::Open(const std::string& root) {
  SBX_TRY(sys::MakeDirs(root + "/blobs/sha256", 0700));
  SBX_TRY(sys::RemoveTree(root + "/ingest"));
  SBX_TRY(sys::MakeDirs(root + "/ingest", 0700));
  return std::unique_ptr<ContentStore>(new ContentStore(root));
}

std::string ContentStore::BlobPath(std::string_view digest) const {
  return root_ + "/blobs/sha256/" + std::string(DigestHex(digest));
}

bool ContentStore::Has(std::string_view digest) const {
  if (!ValidateDigest(digest)) return false;
  struct stat st {};
  return ::stat(BlobPath(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<uint64_t> ContentStore::Size(std::string_view digest) const {
  SBX_TRY(ValidateDigest(digest));
  struct stat st {};
  if (::stat(BlobPath(digest).c_str(), &st) != 0) {
    return Error::Errno("stat blob " + std::string(digest));
  }
  return static_cast<uint64_t>(st.st_size);
}

Result<UniqueFd> ContentStore::OpenBlob(std::string_view digest) const {
  SBX_TRY(ValidateDigest(digest));
  return sys::Open(BlobPath(digest), O_RDONLY | O_NOFOLLOW);
}

Result<std::string> ContentStore::ReadBlob(std::string_view digest, size_t max_bytes) const {
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, OpenBlob(digest));
  SBX_ASSIGN_OR_RETURN_CTX(std::string data, sys::ReadFd(fd.get(), max_bytes),
                           "read blob " + std::string(digest));
  std::string actual = Sha256Digest(data);
  if (actual != digest) {
    return Error::DataLoss("stored blob " + std::string(digest) +
                           " is corrupt (content hashes to " + actual + ")")
        .WithReason("SBX_IMAGE_DIGEST_MISMATCH");
  }
  return data;
}

Status ContentStore::WriteBlob(std::string_view digest, std::string_view data) {
  if (Has(digest)) {
    if (Sha256Digest(data) != digest) {
      return Error::DataLoss("digest mismatch: expected " + std::string(digest) + ", got " +
                             Sha256Digest(data))
          .WithReason("SBX_IMAGE_DIGEST_MISMATCH");
    }
    return Ok();
  }
  SBX_ASSIGN_OR_RETURN(auto ingest, StartIngest(digest, data.size()));
  SBX_TRY(ingest->Write(data));
  return ingest->Commit();
}

Result<std::unique_ptr<Ingest>> ContentStore::StartIngest(std::string_view digest,
                                                          uint64_t expected_size) {
  if (!digest.empty()) SBX_TRY(ValidateDigest(digest));
  std::string hex(digest.empty() ? std::string_view("unknown") : DigestHex(digest));
  std::string tmp = root_ + "/ingest/" + hex + "-" + RandomHex(6);
  SBX_ASSIGN_OR_RETURN(UniqueFd fd, sys::Open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
  return std::unique_ptr<Ingest>(
      new Ingest(std::string(digest), expected_size, tmp, root_ + "/blobs/sha256", std::move(fd)));
}

Status ContentStore::Delete(std::string_view digest) {
  SBX_TRY(ValidateDigest(digest));
  std::string path = BlobPath(digest);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Error::Errno("unlink " + Quote(path));
  return Ok();
}

Result<std::vector<BlobInfo>> ContentStore::List() const {
  std::vector<BlobInfo> out;
  std::string dir = root_ + "/blobs/sha256";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Error::Errno("open " + Quote(dir));
  while (dirent* e = ::readdir(d)) {
    std::string digest = std::string(kSha256Prefix) + e->d_name;
    if (!ValidateDigest(digest)) continue;
    struct stat st {};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
      continue;
    }
    out.push_back({digest, static_cast<uint64_t>(st.st_size)});
  }
  ::closedir(d);
  return out;
}

}  // namespace sbx::image
