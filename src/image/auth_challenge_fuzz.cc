// Fuzzes the WWW-Authenticate parser with registry-controlled headers.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "src/image/auth_challenge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // JUSTIFICATION: fuzzer input is raw bytes.
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)sbx::image::ParseAuthChallenges(text);
  return 0;
}
