// File: status.h
//
// grpc::Status -> sbx::Error: the code, the daemon's message, and the AIP-193 details it sends in
// grpc-status-details-bin (ErrorInfo's reason and metadata; a BadRequest's first field violation
// as metadata "field" when ErrorInfo has none). A call that never reached a daemon becomes
// kUnavailable with reason kReasonDaemonUnreachable and a message naming the address.

#pragma once

#include <chrono>
#include <string>

#include <grpcpp/grpcpp.h>

#include "src/base/result.h"

namespace sbx::client {

Error FromGrpcStatus(const grpc::Status& status, const std::string& base_url);

// "5 s", "1500 ms": a timeout in a message.
inline std::string FormatTimeout(std::chrono::milliseconds timeout) {
  if (timeout.count() % 1000 == 0) return std::to_string(timeout.count() / 1000) + " s";
  return std::to_string(timeout.count()) + " ms";
}

inline Status ToStatus(const grpc::Status& status, const std::string& base_url) {
  if (status.ok()) return Ok();
  return FromGrpcStatus(status, base_url);
}

}  // namespace sbx::client
