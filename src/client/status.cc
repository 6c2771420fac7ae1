#include "src/client/status.h"

#include <map>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "sbx/client.h"

namespace sbx::client {

Error FromGrpcStatus(const grpc::Status& status, const std::string& base_url) {
  int raw = static_cast<int>(status.error_code());
  Code code = (raw >= 1 && raw <= 16) ? static_cast<Code>(raw) : Code::kUnknown;
  Error error(
      code, status.error_message().empty() ? std::string(CodeName(code)) : status.error_message());
  google::rpc::Status details;
  bool has_info = false;
  if (!status.error_details().empty() && details.ParseFromString(status.error_details())) {
    std::string field;
    for (const auto& any : details.details()) {
      if (any.Is<google::rpc::ErrorInfo>()) {
        google::rpc::ErrorInfo info;
        if (!any.UnpackTo(&info)) continue;
        has_info = true;
        if (!info.reason().empty()) error.WithReason(info.reason());
        // Sorted, so messages and tests see the same order every time.
        std::map<std::string, std::string> sorted(info.metadata().begin(), info.metadata().end());
        for (const auto& [key, value] : sorted) error.WithMetadata(key, value);
      } else if (any.Is<google::rpc::BadRequest>()) {
        google::rpc::BadRequest bad;
        if (any.UnpackTo(&bad) && bad.field_violations_size() > 0) {
          field = bad.field_violations(0).field();
        }
      }
    }
    if (!field.empty() && error.MetadataValue("field").empty()) error.WithMetadata("field", field);
  }
  if (code == Code::kUnavailable && !has_info) {
    // No details: the daemon did not answer (gRPC itself produced the status).
    return Error(Code::kUnavailable,
                 "cannot reach sbxd at " + base_url + " (" + status.error_message() +
                     "); is sbxd running? Set SBX_BASE_URL to reach another address")
        .WithReason(kReasonDaemonUnreachable);
  }
  return error;
}

}  // namespace sbx::client
