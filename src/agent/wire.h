// File: wire.h
//
// The framing and field encoding of the sbx-init protocol (host <-> PID 1 of a sandbox).
//
// A frame is an 8-byte header followed by a payload:
//
//   u8 version (kProtocolVersion) | u8 type | u16 flags (0) | u32 payload length (LE)
//
// A payload is a sequence of fields, each `u16 tag | u32 length | bytes`. Unknown tags are
// skipped, so either side can add fields without breaking the other. Integers are little-endian
// u64 inside their field. Repeated fields repeat the tag.
//
// Everything read from sbx-init is hostile input: FieldReader never reads past its buffer, the
// payload length is capped (kMaxPayload) before anything is allocated, and the number of
// repeated items is capped.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"

namespace sbx::agent {

inline constexpr uint8_t kProtocolVersion = 1;
inline constexpr size_t kHeaderSize = 8;
inline constexpr uint32_t kMaxPayload = 1u << 20;
inline constexpr size_t kMaxRepeated = 1u << 16;

struct FrameHeader {
  uint8_t version = kProtocolVersion;
  uint8_t type = 0;
  uint16_t flags = 0;
  uint32_t length = 0;
};

void EncodeHeader(const FrameHeader& header, char out[kHeaderSize]);
// Validates version and length bounds.
Result<FrameHeader> DecodeHeader(const char in[kHeaderSize]);

class FieldWriter {
 public:
  void PutBytes(uint16_t tag, std::string_view value);
  void PutString(uint16_t tag, std::string_view value) { PutBytes(tag, value); }
  void PutU64(uint16_t tag, uint64_t value);
  void PutI64(uint16_t tag, int64_t value) { PutU64(tag, static_cast<uint64_t>(value)); }
  void PutBool(uint16_t tag, bool value) { PutU64(tag, value ? 1 : 0); }
  void PutStrings(uint16_t tag, const std::vector<std::string>& values);

  const std::string& data() const { return data_; }
  std::string Take() { return std::move(data_); }

 private:
  std::string data_;
};

// Iterates the fields of a payload. Decode functions loop:
//   while (reader.Next()) switch (reader.tag()) { ... }
//   if (!reader.ok()) -> malformed
class FieldReader {
 public:
  explicit FieldReader(std::string_view payload) : rest_(payload) {}

  bool Next();
  bool ok() const { return ok_; }
  uint16_t tag() const { return tag_; }
  std::string_view bytes() const { return value_; }
  std::string str() const { return std::string(value_); }
  // A u64 field must be exactly 8 bytes; anything else marks the payload malformed.
  uint64_t u64();
  int64_t i64() { return static_cast<int64_t>(u64()); }
  bool boolean() { return u64() != 0; }
  // Appends to `out`, failing the reader past kMaxRepeated items.
  void AppendTo(std::vector<std::string>& out);

  Status status(std::string_view what) const;

 private:
  std::string_view rest_;
  std::string_view value_;
  uint16_t tag_ = 0;
  bool ok_ = true;
};

}  // namespace sbx::agent
