// File: digest.h
//
// Content digests ("sha256:<64 lowercase hex>"), the only algorithm images use in practice, and an
// incremental SHA-256 hasher. A digest string that comes from a manifest, a registry or an archive
// is validated with ValidateDigest before it is used as a file name.
//
//   Sha256 hasher;
//   hasher.Update(chunk);
//   if (hasher.Digest() != descriptor.digest) return Error::DataLoss(...);

#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "src/base/result.h"

namespace sbx::image {

inline constexpr std::string_view kSha256Prefix = "sha256:";

// OK if `digest` is "sha256:" followed by 64 lowercase hex characters. Other algorithms are
// kUnimplemented; anything else is kInvalidArgument.
Status ValidateDigest(std::string_view digest);

// The hex part of a valid digest ("sha256:abc..." -> "abc...").
std::string_view DigestHex(std::string_view digest);

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(std::string_view data);
  // "sha256:<hex>" of everything seen so far; the hasher can keep going afterwards.
  std::string Digest() const;
  void Reset();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// "sha256:<hex>" of `data`.
std::string Sha256Digest(std::string_view data);

}  // namespace sbx::image
