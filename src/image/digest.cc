#include "src/image/digest.h"

#include <openssl/evp.h>

#include "src/base/check.h"
#include "src/base/strings.h"

namespace sbx::image {

Status ValidateDigest(std::string_view digest) {
  size_t colon = digest.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Error::InvalidArgument("invalid digest " + Quote(digest, 80) + ": want sha256:<hex>");
  }
  std::string_view algorithm = digest.substr(0, colon);
  std::string_view hex = digest.substr(colon + 1);
  if (algorithm != "sha256") {
    for (char c : algorithm) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '.' ||
                c == '_' || c == '-';
      if (!ok) return Error::InvalidArgument("invalid digest algorithm in " + Quote(digest, 80));
    }
    return Error::Unimplemented("unsupported digest algorithm " + Quote(algorithm, 32) +
                                ": only sha256 is supported");
  }
  if (hex.size() != 64) {
    return Error::InvalidArgument("invalid digest " + Quote(digest, 80) +
                                  ": sha256 needs 64 hex characters");
  }
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return Error::InvalidArgument("invalid digest " + Quote(digest, 80) + ": not lowercase hex");
    }
  }
  return Ok();
}

std::string_view DigestHex(std::string_view digest) {
  size_t colon = digest.find(':');
  return colon == std::string_view::npos ? digest : digest.substr(colon + 1);
}

struct Sha256::State {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : state_(std::make_unique<State>()) {
  state_->ctx = EVP_MD_CTX_new();
  SBX_CHECK(state_->ctx != nullptr);
  Reset();
}

Sha256::~Sha256() {
  if (state_ && state_->ctx) EVP_MD_CTX_free(state_->ctx);
}

Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&& other) noexcept {
  if (this != &other) {
    if (state_ && state_->ctx) EVP_MD_CTX_free(state_->ctx);
    state_ = std::move(other.state_);
  }
  return *this;
}

void Sha256::Reset() { SBX_CHECK(EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr) == 1); }

void Sha256::Update(std::string_view data) {
  if (data.empty()) return;
  SBX_CHECK(EVP_DigestUpdate(state_->ctx, data.data(), data.size()) == 1);
}

std::string Sha256::Digest() const {
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  SBX_CHECK(copy != nullptr);
  SBX_CHECK(EVP_MD_CTX_copy_ex(copy, state_->ctx) == 1);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  SBX_CHECK(EVP_DigestFinal_ex(copy, out, &len) == 1);
  EVP_MD_CTX_free(copy);
  // JUSTIFICATION: the digest bytes are viewed as chars for hex encoding.
  return std::string(kSha256Prefix) +
         HexEncode(std::string_view(reinterpret_cast<const char*>(out), len));
}

std::string Sha256Digest(std::string_view data) {
  Sha256 hasher;
  hasher.Update(data);
  return hasher.Digest();
}

}  // namespace sbx::image
