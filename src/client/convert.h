// File: convert.h
//
// The client's public types to and from the generated proto messages. Only src/client sees
// proto types; include/sbx never does.

#pragma once

#include "coreweave/sandbox/v1/sandbox.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "sbx/client.h"
#include "sbx/v1/sbx.pb.h"

namespace sbx::client {

namespace cw = ::coreweave::sandbox::v1;

// The keep-alive main process of a sandbox created without a command: waits for a stop and
// exits 0 on SIGTERM/SIGINT (the Python SDK's default).
inline constexpr const char* kKeepAliveCommand = "/bin/sh";
inline constexpr const char* kKeepAliveScript = "trap \"exit 0\" TERM INT; sleep infinity & wait";

void ToProto(const SandboxSpec& spec, cw::CreateSandboxRequest* request);
Sandbox FromProto(const cw::Sandbox& sandbox);
cw::State ToProto(SandboxState state);
SandboxState FromProto(cw::State state);
Image FromProto(const ::sbx::v1::Image& image);

google::protobuf::Timestamp ToTimestamp(TimePoint time);
std::optional<TimePoint> FromTimestamp(const google::protobuf::Timestamp& ts, bool present);

// A random UUID (version 4) for request ids.
std::string NewRequestId();

}  // namespace sbx::client
