// Fuzzes the reference parser: no input may crash it, and whatever it accepts normalises to a
// string that parses back to the same reference.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "src/image/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // JUSTIFICATION: fuzzer input is raw bytes.
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto ref = sbx::image::Reference::Parse(text);
  if (ref) {
    auto again = sbx::image::Reference::Parse(ref->String());
    if (!again || !(*again == *ref)) abort();
  }
  return 0;
}
