#include "src/image/platform.h"

#include <algorithm>
#include <cctype>

#include "src/base/strings.h"

namespace sbx::image {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool ValidField(std::string_view s) {
  if (s.empty() || s.size() > 32) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

int ArmVersion(std::string_view variant) {
  if (variant == "v5") return 5;
  if (variant == "v6") return 6;
  if (variant == "v7") return 7;
  if (variant == "v8") return 8;
  return 0;
}

}  // namespace

Platform Platform::Normalize(std::string_view os, std::string_view architecture,
                             std::string_view variant) {
  Platform p{Lower(os), Lower(architecture), Lower(variant)};
  if (p.os == "macos") p.os = "darwin";
  if (p.architecture == "x86_64" || p.architecture == "x86-64" || p.architecture == "amd64") {
    p.architecture = "amd64";
    if (p.variant == "v1") p.variant.clear();
  } else if (p.architecture == "i386" || p.architecture == "i686") {
    p.architecture = "386";
  } else if (p.architecture == "aarch64" || p.architecture == "arm64") {
    p.architecture = "arm64";
    if (p.variant.empty() || p.variant == "8") p.variant = "v8";
  } else if (p.architecture == "armhf") {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (p.architecture == "armel") {
    p.architecture = "arm";
    p.variant = "v6";
  } else if (p.architecture == "arm") {
    if (p.variant.empty() || p.variant == "7") p.variant = "v7";
    if (p.variant == "5" || p.variant == "6" || p.variant == "8") p.variant = "v" + p.variant;
  }
  return p;
}

Result<Platform> Platform::Parse(std::string_view text) {
  auto parts = Split(text, '/');
  if (parts.size() < 2 || parts.size() > 3) {
    return Error::InvalidArgument("invalid platform " + Quote(text, 64) +
                                  ": want os/architecture[/variant]");
  }
  for (auto& part : parts) {
    part = Lower(part);
    if (!ValidField(part)) {
      return Error::InvalidArgument("invalid platform " + Quote(text, 64) + ": bad field " +
                                    Quote(part, 40));
    }
  }
  return Normalize(parts[0], parts[1], parts.size() == 3 ? parts[2] : "");
}

std::string Platform::String() const {
  std::string out = os + "/" + architecture;
  if (!variant.empty()) out += "/" + variant;
  return out;
}

int PlatformMatchScore(const Platform& wanted_raw, const Platform& candidate_raw) {
  Platform wanted = Platform::Normalize(wanted_raw.os, wanted_raw.architecture, wanted_raw.variant);
  Platform candidate =
      Platform::Normalize(candidate_raw.os, candidate_raw.architecture, candidate_raw.variant);
  if (wanted.os != candidate.os || wanted.architecture != candidate.architecture) return 0;
  if (wanted.variant == candidate.variant) return 100;
  if (wanted.architecture == "arm") {
    // An armv7 CPU runs v6 and v5 code; prefer the newest variant it can run.
    int want = ArmVersion(wanted.variant);
    int have = ArmVersion(candidate.variant);
    if (want > 0 && have > 0 && have < want) return 50 + have;
    return 0;
  }
  if (wanted.architecture == "amd64") {
    // amd64 micro-architecture levels (v2, v3, v4): a plain amd64 image runs everywhere.
    if (candidate.variant.empty()) return 50;
    return 0;
  }
  return 0;
}

}  // namespace sbx::image
