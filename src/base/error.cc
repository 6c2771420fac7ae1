#include "src/base/error.h"

#include <errno.h>
#include <string.h>

#include <string>

namespace sbx {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kCancelled:
      return "CANCELLED";
    case Code::kUnknown:
      return "UNKNOWN";
    case Code::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case Code::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case Code::kNotFound:
      return "NOT_FOUND";
    case Code::kAlreadyExists:
      return "ALREADY_EXISTS";
    case Code::kPermissionDenied:
      return "PERMISSION_DENIED";
    case Code::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case Code::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case Code::kAborted:
      return "ABORTED";
    case Code::kOutOfRange:
      return "OUT_OF_RANGE";
    case Code::kUnimplemented:
      return "UNIMPLEMENTED";
    case Code::kInternal:
      return "INTERNAL";
    case Code::kUnavailable:
      return "UNAVAILABLE";
    case Code::kDataLoss:
      return "DATA_LOSS";
    case Code::kUnauthenticated:
      return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

Code CodeFromErrno(int err) {
  switch (err) {
    case 0:
      return Code::kOk;
    case ENOENT:
    case ESRCH:
    case ENXIO:
    case ENODEV:
      return Code::kNotFound;
    case EPERM:
    case EACCES:
    case EROFS:
      return Code::kPermissionDenied;
    case EEXIST:
      return Code::kAlreadyExists;
    case EINVAL:
    case ENAMETOOLONG:
    case E2BIG:
    case ENOTDIR:
    case EISDIR:
    case ELOOP:
    case EBADF:
      return Code::kInvalidArgument;
    case ENOSPC:
    case EDQUOT:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EAGAIN:
    case EFBIG:
      return Code::kResourceExhausted;
    case ETIMEDOUT:
      return Code::kDeadlineExceeded;
    case ENOSYS:
    case EOPNOTSUPP:
      return Code::kUnimplemented;
    case EBUSY:
    case ENOTEMPTY:
      return Code::kFailedPrecondition;
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
      return Code::kUnavailable;
    case EINTR:
      return Code::kAborted;
    default:
      return Code::kInternal;
  }
}

std::string ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  if (name != nullptr) {
    return name;
  }
  return "E" + std::to_string(err);
}

Error::Error(Code code, std::string message, int sys_errno)
    : code_(code == Code::kOk ? Code::kUnknown : code),
      sys_errno_(sys_errno),
      message_(std::move(message)) {}

Error Error::FromErrno(int err, std::string_view what) {
  std::string message(what);
  message += ": ";
  message += ErrnoName(err);
  message += " (";
  message += strerrordesc_np(err) != nullptr ? strerrordesc_np(err) : "unknown error";
  message += ")";
  return {CodeFromErrno(err), std::move(message), err};
}

Error Error::Errno(std::string_view what) { return FromErrno(errno, what); }

Error& Error::Wrap(std::string_view context) & {
  std::string wrapped(context);
  wrapped += ": ";
  wrapped += message_;
  message_ = std::move(wrapped);
  return *this;
}

Error&& Error::Wrap(std::string_view context) && { return std::move(Wrap(context)); }

Error& Error::WithReason(std::string reason) & {
  reason_ = std::move(reason);
  return *this;
}
Error&& Error::WithReason(std::string reason) && {
  return std::move(WithReason(std::move(reason)));
}

Error& Error::WithMetadata(std::string key, std::string value) & {
  for (auto& [k, v] : metadata_) {
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  }
  metadata_.emplace_back(std::move(key), std::move(value));
  return *this;
}
Error&& Error::WithMetadata(std::string key, std::string value) && {
  return std::move(WithMetadata(std::move(key), std::move(value)));
}

Error& Error::WithCode(Code code) & {
  code_ = code == Code::kOk ? Code::kUnknown : code;
  return *this;
}
Error&& Error::WithCode(Code code) && { return std::move(WithCode(code)); }

std::string Error::MetadataValue(std::string_view key) const {
  for (const auto& [k, v] : metadata_) {
    if (k == key) {
      return v;
    }
  }
  return {};
}

std::string Error::ToString() const {
  std::string out(CodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

}  // namespace sbx
