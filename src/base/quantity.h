// File: quantity.h
//
// Kubernetes-style resource quantities, as the API and the configuration write them:
// CPU "500m" (millicores), "2", "0.5"; bytes "256Mi", "1G", "1e3", "1024".

#pragma once

#include <cstdint>
#include <string_view>

#include "src/base/result.h"

namespace sbx {

// Millicores. At most a million cores.
Result<uint64_t> ParseCpuMillis(std::string_view quantity);
// Bytes. Below 2^63: a larger quantity could not be a limit the kernel honours.
Result<uint64_t> ParseBytes(std::string_view quantity);

}  // namespace sbx
