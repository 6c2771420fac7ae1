#include "src/agent/wire.h"

#include <cstring>

namespace sbx::agent {

namespace {

void PutLe(char* out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
}

uint64_t GetLe(const char* in, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) {
    value |= static_cast<uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  }
  return value;
}

}  // namespace

void EncodeHeader(const FrameHeader& header, char out[kHeaderSize]) {
  out[0] = static_cast<char>(header.version);
  out[1] = static_cast<char>(header.type);
  PutLe(out + 2, header.flags, 2);
  PutLe(out + 4, header.length, 4);
}

Result<FrameHeader> DecodeHeader(const char in[kHeaderSize]) {
  FrameHeader header;
  header.version = static_cast<uint8_t>(in[0]);
  header.type = static_cast<uint8_t>(in[1]);
  header.flags = static_cast<uint16_t>(GetLe(in + 2, 2));
  header.length = static_cast<uint32_t>(GetLe(in + 4, 4));
  if (header.version != kProtocolVersion) {
    return Error::FailedPrecondition("sbx-init protocol version " + std::to_string(header.version) +
                                     ", expected " + std::to_string(kProtocolVersion));
  }
  if (header.length > kMaxPayload) {
    return Error::InvalidArgument("frame of " + std::to_string(header.length) +
                                  " bytes exceeds the " + std::to_string(kMaxPayload) +
                                  "-byte limit");
  }
  return header;
}

void FieldWriter::PutBytes(uint16_t tag, std::string_view value) {
  char head[6];
  PutLe(head, tag, 2);
  PutLe(head + 2, value.size(), 4);
  data_.append(head, sizeof head);
  data_.append(value);
}

void FieldWriter::PutU64(uint16_t tag, uint64_t value) {
  char buf[8];
  PutLe(buf, value, 8);
  PutBytes(tag, std::string_view(buf, sizeof buf));
}

void FieldWriter::PutStrings(uint16_t tag, const std::vector<std::string>& values) {
  for (const auto& v : values) PutBytes(tag, v);
}

bool FieldReader::Next() {
  if (!ok_ || rest_.empty()) return false;
  if (rest_.size() < 6) {
    ok_ = false;
    return false;
  }
  tag_ = static_cast<uint16_t>(GetLe(rest_.data(), 2));
  uint64_t length = GetLe(rest_.data() + 2, 4);
  if (length > rest_.size() - 6) {
    ok_ = false;
    return false;
  }
  value_ = rest_.substr(6, length);
  rest_.remove_prefix(6 + length);
  return true;
}

uint64_t FieldReader::u64() {
  if (value_.size() != 8) {
    ok_ = false;
    return 0;
  }
  return GetLe(value_.data(), 8);
}

void FieldReader::AppendTo(std::vector<std::string>& out) {
  if (out.size() >= kMaxRepeated) {
    ok_ = false;
    return;
  }
  out.emplace_back(value_);
}

Status FieldReader::status(std::string_view what) const {
  if (ok_) return Ok();
  return Error::InvalidArgument("malformed " + std::string(what) + " message");
}

}  // namespace sbx::agent
