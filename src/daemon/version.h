// File: version.h

#pragma once

namespace sbx::daemon {

inline constexpr const char* kVersion = "0.1.0";

}  // namespace sbx::daemon
