#include "src/base/quantity.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "src/base/strings.h"

namespace sbx {

Result<uint64_t> ParseCpuMillis(std::string_view quantity) {
  std::string q(Trim(quantity));
  if (q.empty()) return Error::InvalidArgument("empty CPU quantity");
  if (q.back() == 'm') {
    auto v = ParseUint64(std::string_view(q).substr(0, q.size() - 1));
    if (!v) return Error::InvalidArgument("invalid CPU quantity " + Quote(q));
    return *v;
  }
  char* end = nullptr;
  double cores = strtod(q.c_str(), &end);
  if (end == q.c_str() || *end != '\0' || !std::isfinite(cores) || cores < 0 || cores > 1e6) {
    return Error::InvalidArgument("invalid CPU quantity " + Quote(q));
  }
  return static_cast<uint64_t>(std::llround(cores * 1000));
}

Result<uint64_t> ParseBytes(std::string_view quantity) {
  std::string q(Trim(quantity));
  if (q.empty()) return Error::InvalidArgument("empty memory quantity");
  struct Suffix {
    const char* text;
    double factor;
  };
  static constexpr Suffix kSuffixes[] = {{"Ki", 1024.0},
                                         {"Mi", 1048576.0},
                                         {"Gi", 1073741824.0},
                                         {"Ti", 1099511627776.0},
                                         {"Pi", 1125899906842624.0},
                                         {"Ei", 1152921504606846976.0},
                                         {"k", 1e3},
                                         {"K", 1e3},
                                         {"M", 1e6},
                                         {"G", 1e9},
                                         {"T", 1e12},
                                         {"P", 1e15},
                                         {"E", 1e18}};
  double factor = 1;
  std::string number = q;
  for (const auto& s : kSuffixes) {
    if (EndsWith(q, s.text)) {
      factor = s.factor;
      number = q.substr(0, q.size() - strlen(s.text));
      break;
    }
  }
  char* end = nullptr;
  double value = strtod(number.c_str(), &end);
  if (number.empty() || end == number.c_str() || *end != '\0' || !std::isfinite(value) ||
      value < 0) {
    return Error::InvalidArgument("invalid memory quantity " + Quote(q));
  }
  double bytes = std::round(value * factor);
  // 2^63 is exactly representable; anything from there on would not convert.
  if (bytes >= 9223372036854775808.0) {
    return Error::InvalidArgument("memory quantity " + Quote(q) + " is too large");
  }
  return static_cast<uint64_t>(bytes);
}

}  // namespace sbx
