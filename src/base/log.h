// File: log.h
//
// Logging facade over spdlog. Lowercase messages, key=value fields, logged once where an error is
// finally handled. Never log between clone and exec (report through the child error record).
//
//   SBX_LOG_INFO("sandbox started id={} pid={}", id, pid);

#pragma once

#include <string>

#include <spdlog/spdlog.h>

namespace sbx::log {

enum class Format { kText, kJson };

// Configures the process logger: level ("debug", "info", ...), format, and an optional file
// (stderr when empty).
void Init(const std::string& level, Format format = Format::kText, const std::string& file = "");

}  // namespace sbx::log

#define SBX_LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define SBX_LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define SBX_LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define SBX_LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)
