// File: status_mapping.h
//
// The one place where sbx::Error becomes a gRPC status, following AIP-193: the code, the message,
// and grpc-status-details-bin holding a google.rpc.Status with an ErrorInfo (reason, domain
// "cwsandbox.com", metadata) and, for INVALID_ARGUMENT with a "field" metadata entry, a
// BadRequest field violation.

#pragma once

#include <grpcpp/grpcpp.h>

#include "src/base/result.h"

namespace sbx::daemon {

inline constexpr const char* kErrorDomain = "cwsandbox.com";

grpc::Status ToGrpcStatus(const Error& error);
inline grpc::Status ToGrpcStatus(const Status& status) {
  return status ? grpc::Status::OK : ToGrpcStatus(status.error());
}

// An INVALID_ARGUMENT about one request field.
Error FieldError(const std::string& field, const std::string& description);

}  // namespace sbx::daemon
