// File: sbx/error.h (installed; part of the C++ client API)
//
// sbx::Error is the single error type of the project: a canonical code (the gRPC/absl set), the
// errno that caused it when there is one, a message that carries a chain of context added on the
// way up ("start sandbox: mount overlay on \"/x\": EPERM"), and an optional machine-readable
// reason with metadata (for API errors such as CWSANDBOX_FILE_NOT_FOUND).
//
// Errors are values. They are created where the failure happens, wrapped with context on the
// way up, and logged once, where they are finally handled.

#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sbx {

// Values match google.rpc.Code so that mapping to gRPC is the identity.
enum class Code : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

std::string_view CodeName(Code code);

// Maps an errno value to the closest canonical code (ENOENT -> kNotFound, EPERM/EACCES ->
// kPermissionDenied, ...).
Code CodeFromErrno(int err);

// "EPERM" for EPERM; "E<n>" when the name is unknown.
std::string ErrnoName(int err);

class Error {
 public:
  using Metadata = std::vector<std::pair<std::string, std::string>>;

  Error(Code code, std::string message, int sys_errno = 0);

  // An error from errno `err` while doing `what`; the message reads "<what>: ENOENT (No such file
  // or directory)".
  static Error FromErrno(int err, std::string_view what);
  // Same, reading errno.
  static Error Errno(std::string_view what);

  static Error InvalidArgument(std::string message) {
    return {Code::kInvalidArgument, std::move(message)};
  }
  static Error NotFound(std::string message) { return {Code::kNotFound, std::move(message)}; }
  static Error Internal(std::string message) { return {Code::kInternal, std::move(message)}; }
  static Error FailedPrecondition(std::string message) {
    return {Code::kFailedPrecondition, std::move(message)};
  }
  static Error Unavailable(std::string message) { return {Code::kUnavailable, std::move(message)}; }
  static Error ResourceExhausted(std::string message) {
    return {Code::kResourceExhausted, std::move(message)};
  }
  static Error DeadlineExceeded(std::string message) {
    return {Code::kDeadlineExceeded, std::move(message)};
  }
  static Error PermissionDenied(std::string message) {
    return {Code::kPermissionDenied, std::move(message)};
  }
  static Error AlreadyExists(std::string message) {
    return {Code::kAlreadyExists, std::move(message)};
  }
  static Error DataLoss(std::string message) { return {Code::kDataLoss, std::move(message)}; }
  static Error Unimplemented(std::string message) {
    return {Code::kUnimplemented, std::move(message)};
  }

  // Prepends context: "<context>: <message>".
  Error& Wrap(std::string_view context) &;
  Error&& Wrap(std::string_view context) &&;

  Error& WithReason(std::string reason) &;
  Error&& WithReason(std::string reason) &&;
  Error& WithMetadata(std::string key, std::string value) &;
  Error&& WithMetadata(std::string key, std::string value) &&;
  Error& WithCode(Code code) &;
  Error&& WithCode(Code code) &&;

  Code code() const { return code_; }
  int sys_errno() const { return sys_errno_; }
  const std::string& message() const { return message_; }
  const std::string& reason() const { return reason_; }
  const Metadata& metadata() const { return metadata_; }
  // The metadata value for `key`, or empty.
  std::string MetadataValue(std::string_view key) const;

  // "NOT_FOUND: <message>".
  std::string ToString() const;

 private:
  Code code_;
  int sys_errno_;
  std::string message_;
  std::string reason_;
  Metadata metadata_;
};

}  // namespace sbx
