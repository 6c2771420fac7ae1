#include "src/daemon/services/status_mapping.h"

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "src/base/strings.h"

namespace sbx::daemon {

namespace {

std::string DefaultReason(Code code) {
  switch (code) {
    case Code::kNotFound:
      return "CWSANDBOX_NOT_FOUND";
    case Code::kInvalidArgument:
      return "CWSANDBOX_INVALID_REQUEST";
    case Code::kUnavailable:
      return "CWSANDBOX_BACKEND_UNAVAILABLE";
    case Code::kDeadlineExceeded:
      return "CWSANDBOX_DEADLINE_EXCEEDED";
    case Code::kResourceExhausted:
      return "CWSANDBOX_RESOURCE_EXHAUSTED";
    case Code::kUnimplemented:
      return "CWSANDBOX_NOT_IMPLEMENTED";
    case Code::kPermissionDenied:
      return "CWSANDBOX_PERMISSION_DENIED";
    case Code::kUnauthenticated:
      return "CWSANDBOX_UNAUTHENTICATED";
    case Code::kFailedPrecondition:
      return "CWSANDBOX_FAILED_PRECONDITION";
    default:
      return "CWSANDBOX_INTERNAL";
  }
}

}  // namespace

Error FieldError(const std::string& field, const std::string& description) {
  return Error::InvalidArgument(field + ": " + description)
      .WithReason("CWSANDBOX_INVALID_REQUEST")
      .WithMetadata("field", field);
}

grpc::Status ToGrpcStatus(const Error& error) {
  auto code = static_cast<grpc::StatusCode>(static_cast<int>(error.code()));
  // Messages may quote what a sandbox or a registry said; string fields must be UTF-8, or the
  // client cannot parse the details.
  std::string message = ToValidUtf8(error.message());
  google::rpc::Status status;
  status.set_code(static_cast<int>(error.code()));
  status.set_message(message);
  google::rpc::ErrorInfo info;
  info.set_reason(
      ToValidUtf8(error.reason().empty() ? DefaultReason(error.code()) : error.reason()));
  info.set_domain(kErrorDomain);
  std::string field;
  for (const auto& [k, v] : error.metadata()) {
    (*info.mutable_metadata())[ToValidUtf8(k)] = ToValidUtf8(v);
    if (k == "field") field = ToValidUtf8(v);
  }
  status.add_details()->PackFrom(info);
  if (error.code() == Code::kInvalidArgument && !field.empty()) {
    google::rpc::BadRequest bad;
    auto* violation = bad.add_field_violations();
    violation->set_field(field);
    std::string description = message;
    if (description.rfind(field + ": ", 0) == 0) description = description.substr(field.size() + 2);
    violation->set_description(description);
    status.add_details()->PackFrom(bad);
  }
  return grpc::Status(code, message, status.SerializeAsString());
}

}  // namespace sbx::daemon
