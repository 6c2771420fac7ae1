// Fuzzes the parsers of registry documents: the first byte picks manifest/index (with a
// Content-Type), image config, or platform selection over a parsed index.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "src/image/config.h"
#include "src/image/manifest.h"
#include "src/image/platform.h"

using namespace sbx::image;  // NOLINT(google-build-using-namespace)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // JUSTIFICATION: fuzzer input is raw bytes.
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 4) {
    case 0:
      (void)ParseManifestDocument(body);
      break;
    case 1:
      (void)ParseManifestDocument(body, media_type::kDockerManifestList);
      break;
    case 2:
      (void)ParseImageConfig(body);
      break;
    default: {
      auto doc = ParseManifestDocument(body, media_type::kOciIndex);
      if (doc && doc->is_index) {
        (void)SelectManifest(doc->index, *Platform::Parse("linux/amd64"));
        (void)SelectManifest(doc->index, *Platform::Parse("linux/arm/v7"));
      }
      break;
    }
  }
  return 0;
}
