#include "src/daemon/services/status_mapping.h"

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

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
  google::rpc::Status status;
  status.set_code(static_cast<int>(error.code()));
  status.set_message(error.message());
  google::rpc::ErrorInfo info;
  info.set_reason(error.reason().empty() ? DefaultReason(error.code()) : error.reason());
  info.set_domain(kErrorDomain);
  std::string field;
  for (const auto& [k, v] : error.metadata()) {
    (*info.mutable_metadata())[k] = v;
    if (k == "field") field = v;
  }
  status.add_details()->PackFrom(info);
  if (error.code() == Code::kInvalidArgument && !field.empty()) {
    google::rpc::BadRequest bad;
    auto* violation = bad.add_field_violations();
    violation->set_field(field);
    std::string description = error.message();
    if (description.rfind(field + ": ", 0) == 0) description = description.substr(field.size() + 2);
    violation->set_description(description);
    status.add_details()->PackFrom(bad);
  }
  return grpc::Status(code, error.message(), status.SerializeAsString());
}

}  // namespace sbx::daemon
