// File: strings.h
//
// Small string helpers the standard library lacks.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sbx {

std::vector<std::string> Split(std::string_view text, char sep);
std::string Join(const std::vector<std::string>& parts, std::string_view sep);
std::string_view Trim(std::string_view text);
bool StartsWith(std::string_view text, std::string_view prefix);
bool EndsWith(std::string_view text, std::string_view suffix);

// Parses a whole decimal integer; nullopt on any junk, sign where not allowed, or overflow.
std::optional<uint64_t> ParseUint64(std::string_view text);
std::optional<int64_t> ParseInt64(std::string_view text);

// Quotes for messages: "abc" with control characters and bytes that are not valid UTF-8 escaped
// (\xNN), truncated to at most `max` bytes of `text` without splitting a character. The result
// is always valid UTF-8, as protobuf string fields (error messages among them) must be.
std::string Quote(std::string_view text, size_t max = 256);

// `text` with every byte that is not part of a valid UTF-8 sequence written as \xNN.
std::string ToValidUtf8(std::string_view text);

std::string HexEncode(std::string_view bytes);

// 128 random bits as 32 lowercase hex characters (getrandom).
std::string RandomHex(size_t bytes = 16);

// Human-readable size: "1.5 KiB".
std::string FormatBytes(uint64_t bytes);

// A wall-clock time (Unix nanoseconds) in UTC, RFC 3339: "2026-12-07T21:04:05Z", or with
// `fraction_digits` (1-9) of the second: "2026-12-07T21:04:05.123456789Z".
std::string FormatUtc(int64_t unix_ns, int fraction_digits = 0);

}  // namespace sbx
