// File: platform.h
//
// Platforms ("linux/amd64", "linux/arm64/v8", "linux/arm/v7") and the matching rules used to
// pick one manifest out of an OCI index or a Docker manifest list, following containerd's
// normalisation: architecture aliases (x86_64 -> amd64, aarch64 -> arm64, armhf -> arm/v7), arm64
// means arm64/v8, and an arm/v7 host also runs arm/v6 and arm/v5 images (less preferred).

#pragma once

#include <string>
#include <string_view>

#include "src/base/result.h"

namespace sbx::image {

struct Platform {
  std::string os;            // "linux"
  std::string architecture;  // "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"
  std::string variant;       // "v8" for arm64, "v7"/"v6"/"v5" for arm; empty otherwise

  // "os/arch[/variant]", normalised. kInvalidArgument on malformed text.
  static Result<Platform> Parse(std::string_view text);
  // Normalises fields from a manifest or a config (aliases, default variants).
  static Platform Normalize(std::string_view os, std::string_view architecture,
                            std::string_view variant);

  std::string String() const;
  bool operator==(const Platform&) const = default;
};

// How well an image built for `candidate` runs on `wanted`: 0 = not at all; higher is better
// (an exact match scores highest).
int PlatformMatchScore(const Platform& wanted, const Platform& candidate);

}  // namespace sbx::image
