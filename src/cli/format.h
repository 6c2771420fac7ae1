// File: format.h
//
// Parsing what users type (durations, times, KEY=VALUE, sandbox paths) and formatting what they
// read (tables, ages, sizes, JSON).

#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sbx/client.h"

namespace sbx::cli {

// "90", "90s", "15m", "2h", "1d", "1h30m" -> seconds. Nothing else.
Result<int64_t> ParseDuration(std::string_view text);
// An RFC 3339 time ("2024-05-01T10:00:00Z", "...+02:00", fractional seconds allowed) or a
// duration meaning that long ago ("10m").
Result<TimePoint> ParseSince(std::string_view text, TimePoint now);
// A resource quantity in the form sbxd reads: CPU "2", "0.5" or "500m"; memory in bytes, binary
// units ("512Mi", "4Gi") or decimal ones ("500M"). The error names `flag`.
Status CheckQuantity(std::string_view flag, std::string_view value, bool cpu);
// "KEY=VALUE"; "KEY" alone takes the value from this process's environment (and is skipped
// when unset).
Result<std::optional<std::pair<std::string, std::string>>> ParseEnv(std::string_view text);

// `-p/--publish`: "[public:|private:]PORT[/tcp|/udp|/sctp]" (private and tcp by default).
Result<ServicePort> ParsePublish(std::string_view text);
// `--secret`: "[STORE/]NAME[:FIELD][=ENV_VAR]" (store "default", variable NAME by default).
Result<SecretRef> ParseSecret(std::string_view text);
// `--egress`: "any", an IPv4 CIDR or address, or a DNS name ("pypi.org", "*.pypi.org"), each
// optionally followed by ":PORT[-END][/tcp|/udp]".
Result<EgressRule> ParseEgress(std::string_view text);
// A rule as `--egress` takes it ("pypi.org:443/tcp", "203.0.113.0/24 except 203.0.113.7/32").
std::string FormatEgress(const EgressRule& rule);
// "default" (every public destination), "none" (loopback only) or "egress" (only the rules).
std::string NetworkMode(const Sandbox& sandbox);

// "sandbox-id:/path" -> {"sandbox-id", "/path"}; nullopt for a local path. A colon after a slash
// (./a:b) is part of a local path.
std::optional<std::pair<std::string, std::string>> SplitSandboxPath(std::string_view text);

// A message with the system's words for an error in place of syscall and errno names:
// `openat2 "/nope": ENOENT (No such file or directory)` becomes `/nope: no such file or
// directory`, `read stdin: EIO (Input/output error)` becomes `read stdin: input/output error`.
std::string InWords(const std::string& message);

std::string FormatTime(TimePoint time);                   // RFC 3339, UTC, seconds
std::string FormatAge(TimePoint time, TimePoint now);     // "3 minutes ago"
std::string FormatDuration(std::chrono::seconds length);  // "1h 3m", "42s"
// "in 11h 59m", or "due" once the time has passed.
std::string FormatExpiry(TimePoint expiry, TimePoint now);
std::string ShortDigest(const std::string& digest);  // "sha256:0123456789ab"

// Rows printed as aligned columns (two spaces apart), the first row being the header.
std::string Table(const std::vector<std::vector<std::string>>& rows);

nlohmann::ordered_json ToJson(const Sandbox& sandbox);
nlohmann::ordered_json ToJson(const Image& image);

}  // namespace sbx::cli
