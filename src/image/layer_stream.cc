#include "src/image/layer_stream.h"

#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>

#include "src/base/strings.h"

namespace sbx::image {
namespace {

constexpr size_t kInputBuffer = 1u << 20;
// zstd's default window limit (128 MiB); larger windows are refused rather than allocated.
constexpr int kZstdMaxWindowLog = 27;

class PlainStream : public LayerStream {
 public:
  PlainStream(int fd, StreamLimits limits) : LayerStream(fd, limits, Compression::kNone) {}

 protected:
  Result<size_t> Decode(char* buf, size_t size) override {
    if (in_pos_ == in_len_) {
      SBX_ASSIGN_OR_RETURN(bool more, Fill());
      if (!more) return 0;
    }
    size_t n = std::min(size, in_len_ - in_pos_);
    memcpy(buf, in_.data() + in_pos_, n);
    in_pos_ += n;
    return n;
  }
};

class GzipStream : public LayerStream {
 public:
  GzipStream(int fd, StreamLimits limits) : LayerStream(fd, limits, Compression::kGzip) {}
  ~GzipStream() override {
    if (initialized_) inflateEnd(&zs_);
  }
  Status Init() {
    // 16 + MAX_WBITS: gzip wrapper only.
    if (inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) return Error::Internal("inflateInit2 failed");
    initialized_ = true;
    return Ok();
  }

 protected:
  Result<size_t> Decode(char* buf, size_t size) override {
    while (true) {
      if (finished_member_) {
        // Another gzip member may follow (pigz and some registries concatenate members).
        if (in_pos_ == in_len_) {
          SBX_ASSIGN_OR_RETURN(bool more, Fill());
          if (!more) return 0;
        }
        if (inflateReset(&zs_) != Z_OK) return Error::Internal("inflateReset failed");
        finished_member_ = false;
      }
      if (in_pos_ == in_len_ && !eof_) {
        SBX_ASSIGN_OR_RETURN(bool more, Fill());
        (void)more;
      }
      // JUSTIFICATION: zlib's API takes unsigned byte pointers.
      zs_.next_in = reinterpret_cast<Bytef*>(in_.data() + in_pos_);
      zs_.avail_in = static_cast<uInt>(in_len_ - in_pos_);
      zs_.next_out = reinterpret_cast<Bytef*>(buf);
      zs_.avail_out = static_cast<uInt>(size);
      int rc = inflate(&zs_, Z_NO_FLUSH);
      in_pos_ = in_len_ - zs_.avail_in;
      size_t produced = size - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        finished_member_ = true;
        if (produced > 0) return produced;
        continue;
      }
      if (rc == Z_BUF_ERROR) {
        if (produced > 0) return produced;
        if (eof_ && in_pos_ == in_len_) {
          return Error::DataLoss("layer is truncated: the gzip stream ends early")
              .WithReason("SBX_IMAGE_LAYER_CORRUPT");
        }
        continue;
      }
      if (rc != Z_OK) {
        return Error::DataLoss(std::string("layer is not valid gzip: ") +
                               (zs_.msg ? zs_.msg : "inflate error " + std::to_string(rc)))
            .WithReason("SBX_IMAGE_LAYER_CORRUPT");
      }
      if (produced > 0) return produced;
      if (eof_ && in_pos_ == in_len_) {
        return Error::DataLoss("layer is truncated: the gzip stream ends early")
            .WithReason("SBX_IMAGE_LAYER_CORRUPT");
      }
    }
  }

 private:
  z_stream zs_{};
  bool initialized_ = false;
  bool finished_member_ = false;
};

class ZstdStream : public LayerStream {
 public:
  ZstdStream(int fd, StreamLimits limits) : LayerStream(fd, limits, Compression::kZstd) {}
  ~ZstdStream() override {
    if (dctx_) ZSTD_freeDCtx(dctx_);
  }
  Status Init() {
    dctx_ = ZSTD_createDCtx();
    if (dctx_ == nullptr) return Error::Internal("ZSTD_createDCtx failed");
    size_t rc = ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, kZstdMaxWindowLog);
    if (ZSTD_isError(rc)) return Error::Internal("zstd: cannot limit the window size");
    return Ok();
  }

 protected:
  Result<size_t> Decode(char* buf, size_t size) override {
    while (true) {
      if (in_pos_ == in_len_ && !eof_) {
        SBX_ASSIGN_OR_RETURN(bool more, Fill());
        (void)more;
      }
      if (in_pos_ == in_len_ && eof_ && frame_done_) return 0;
      ZSTD_inBuffer in{in_.data() + in_pos_, in_len_ - in_pos_, 0};
      ZSTD_outBuffer out{buf, size, 0};
      size_t rc = ZSTD_decompressStream(dctx_, &out, &in);
      in_pos_ += in.pos;
      if (ZSTD_isError(rc)) {
        return Error::DataLoss(std::string("layer is not valid zstd: ") + ZSTD_getErrorName(rc))
            .WithReason("SBX_IMAGE_LAYER_CORRUPT");
      }
      frame_done_ = (rc == 0);
      if (out.pos > 0) return out.pos;
      if (in_pos_ == in_len_ && eof_) {
        if (frame_done_) return 0;
        return Error::DataLoss("layer is truncated: the zstd stream ends early")
            .WithReason("SBX_IMAGE_LAYER_CORRUPT");
      }
    }
  }

 private:
  ZSTD_DCtx* dctx_ = nullptr;
  bool frame_done_ = true;
};

}  // namespace

std::string_view CompressionName(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "none";
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
  }
  return "unknown";
}

Result<bool> LayerStream::Fill() {
  if (eof_) return false;
  if (in_.empty()) in_.resize(kInputBuffer);
  // Keep unconsumed bytes (only possible for the initial sniffed bytes).
  if (in_pos_ > 0 && in_pos_ < in_len_) {
    memmove(in_.data(), in_.data() + in_pos_, in_len_ - in_pos_);
    in_len_ -= in_pos_;
  } else if (in_pos_ >= in_len_) {
    in_len_ = 0;
  }
  in_pos_ = 0;
  while (true) {
    ssize_t n = ::read(fd_, in_.data() + in_len_, in_.size() - in_len_);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("read layer");
    }
    if (n == 0) {
      eof_ = true;
      return in_len_ > 0;
    }
    in_len_ += static_cast<size_t>(n);
    consumed_ += static_cast<uint64_t>(n);
    return true;
  }
}

Result<std::unique_ptr<LayerStream>> LayerStream::Open(int fd, StreamLimits limits) {
  // Sniff: read the first bytes into a probe stream's buffer and hand them over.
  std::vector<char> head(kInputBuffer);
  size_t len = 0;
  bool eof = false;
  while (len < 4) {
    ssize_t n = ::read(fd, head.data() + len, head.size() - len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("read layer");
    }
    if (n == 0) {
      eof = true;
      break;
    }
    len += static_cast<size_t>(n);
  }
  auto byte = [&](size_t i) { return static_cast<unsigned char>(head[i]); };
  std::unique_ptr<LayerStream> stream;
  if (len >= 2 && byte(0) == 0x1f && byte(1) == 0x8b) {
    auto gz = std::make_unique<GzipStream>(fd, limits);
    SBX_TRY(gz->Init());
    stream = std::move(gz);
  } else if (len >= 4 && byte(0) == 0x28 && byte(1) == 0xb5 && byte(2) == 0x2f && byte(3) == 0xfd) {
    auto zs = std::make_unique<ZstdStream>(fd, limits);
    SBX_TRY(zs->Init());
    stream = std::move(zs);
  } else {
    stream = std::make_unique<PlainStream>(fd, limits);
  }
  stream->in_ = std::move(head);
  stream->in_len_ = len;
  stream->eof_ = eof;
  stream->consumed_ = len;
  return stream;
}

Result<size_t> LayerStream::Read(char* buf, size_t size) {
  if (size == 0) return 0;
  SBX_ASSIGN_OR_RETURN(size_t n, Decode(buf, size));
  if (n == 0) return 0;
  if (limits_.check_space && decoded_ / kSpaceCheckBytes != (decoded_ + n) / kSpaceCheckBytes) {
    SBX_TRY(limits_.check_space());
  }
  decoded_ += n;
  // SECURITY: the bounds apply to what the decoder produces, not to the compressed input.
  if (decoded_ > limits_.max_bytes) {
    return Error::ResourceExhausted("layer expands beyond " + FormatBytes(limits_.max_bytes) +
                                    " (max_layer_bytes)")
        .WithReason("SBX_IMAGE_TOO_LARGE");
  }
  if (limits_.image_budget != nullptr &&
      limits_.image_budget->fetch_sub(static_cast<int64_t>(n)) < static_cast<int64_t>(n)) {
    return Error::ResourceExhausted("image expands beyond its size limit (max_image_bytes)")
        .WithReason("SBX_IMAGE_TOO_LARGE");
  }
  hasher_.Update(std::string_view(buf, n));
  return n;
}

}  // namespace sbx::image
