// File: sandbox_proto.h
//
// Records and states as the wire's messages: the one place that knows how a SandboxRecord reads
// in coreweave.sandbox.v1.

#pragma once

#include <optional>
#include <string>
#include <vector>

#include <google/protobuf/timestamp.pb.h>

#include "coreweave/sandbox/v1/sandbox.pb.h"
#include "src/daemon/sandbox_record.h"
#include "src/net/network_provider.h"

namespace sbx::daemon {

namespace v1 = ::coreweave::sandbox::v1;

google::protobuf::Timestamp ToTimestamp(int64_t unix_ns);
v1::State ToProtoState(State state);
std::optional<State> FromProtoState(v1::State state);
// A record as the wire's Sandbox message, with the exposed services of a live sandbox.
v1::Sandbox ToProto(const SandboxRecord& record, const std::string& runner_id,
                    const std::vector<net::ServiceEndpoint>& services = {});
// Kubernetes quantities as the API reports them: "2", "500m"; "2Gi", "512Mi", or bytes.
std::string FormatCpu(uint64_t millis);
std::string FormatMemory(uint64_t bytes);

}  // namespace sbx::daemon
