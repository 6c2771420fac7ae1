// Fuzzes every decoder the host runs on bytes from sbx-init (and sbx-init on bytes from the host):
// the first byte picks the message type, the rest is the payload.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "src/agent/connection.h"
#include "src/agent/protocol.h"

using namespace sbx::agent;  // NOLINT(google-build-using-namespace)

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // JUSTIFICATION: fuzzer input is raw bytes.
  std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 17) {
    case 0:
      (void)ExecStart::Decode(payload);
      break;
    case 1:
      (void)Output::Decode(payload);
      break;
    case 2:
      (void)ExitInfo::Decode(payload);
      break;
    case 3:
      (void)ErrorReply::Decode(payload);
      break;
    case 4:
      (void)FileInfo::Decode(payload);
      break;
    case 5:
      (void)DirEntries::Decode(payload);
      break;
    case 6:
      (void)StatusReply::Decode(payload);
      break;
    case 7:
      (void)LogChunk::Decode(payload);
      break;
    case 8:
      (void)LogEnd::Decode(payload);
      break;
    case 9:
      (void)InitConfig::Decode(payload);
      break;
    case 10:
      (void)FileWrite::Decode(payload);
      break;
    case 11:
      (void)ExecStarted::Decode(payload);
      break;
    case 13:
      (void)MkdirRequest::Decode(payload);
      break;
    case 14:
      (void)SymlinkRequest::Decode(payload);
      break;
    case 15:
      (void)LinkTarget::Decode(payload);
      break;
    case 16:
      (void)DeadlineRequest::Decode(payload);
      break;
    default: {
      FrameBuffer buffer;
      buffer.Append(payload.data(), payload.size());
      while (auto frame = buffer.Pop()) {
        if (!*frame) break;
      }
      break;
    }
  }
  return 0;
}
