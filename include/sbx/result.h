// File: sbx/result.h (installed; part of the C++ client API)
//
// Result<T> holds either a T or an sbx::Error; Status is Result<void>. The member names are a
// subset of std::expected (has_value, value, error, operator*, operator->, value_or) so that a
// later move to std::expected is mechanical.
//
//   Result<UniqueFd> OpenConfig(const std::string& path);
//
//   Status Load() {
//     SBX_ASSIGN_OR_RETURN(UniqueFd fd, OpenConfig(path_));
//     SBX_TRY_CTX(Parse(fd.get()), "parse " + path_);
//     return Ok();
//   }

#pragma once

#include <cstdlib>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include "sbx/error.h"

namespace sbx {

namespace internal {
[[noreturn]] void ResultValueOnError(const Error& error);
[[noreturn]] void ResultErrorOnValue();
}  // namespace internal

template <typename T>
class [[nodiscard]] Result {
 public:
  using value_type = T;

  Result(const T& value) : data_(value) {}            // NOLINT(google-explicit-constructor)
  Result(T&& value) : data_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(const Error& error) : data_(error) {}        // NOLINT(google-explicit-constructor)
  Result(Error&& error) : data_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  template <typename U, typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                                    !std::is_same_v<std::decay_t<U>, T> &&
                                                    !std::is_same_v<std::decay_t<U>, Error> &&
                                                    !std::is_same_v<std::decay_t<U>, Result<T>>>>
  Result(U&& value) : data_(T(std::forward<U>(value))) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const { return data_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & {
    if (!has_value()) internal::ResultValueOnError(std::get<1>(data_));
    return std::get<0>(data_);
  }
  const T& value() const& {
    if (!has_value()) internal::ResultValueOnError(std::get<1>(data_));
    return std::get<0>(data_);
  }
  T&& value() && {
    if (!has_value()) internal::ResultValueOnError(std::get<1>(data_));
    return std::get<0>(std::move(data_));
  }
  template <typename U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(data_) : static_cast<T>(std::forward<U>(fallback));
  }

  const Error& error() const& {
    if (has_value()) internal::ResultErrorOnValue();
    return std::get<1>(data_);
  }
  Error& error() & {
    if (has_value()) internal::ResultErrorOnValue();
    return std::get<1>(data_);
  }
  Error&& error() && {
    if (has_value()) internal::ResultErrorOnValue();
    return std::get<1>(std::move(data_));
  }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> data_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(const Error& error) : error_(error) {}        // NOLINT(google-explicit-constructor)
  Result(Error&& error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool has_value() const { return !error_.has_value(); }
  explicit operator bool() const { return has_value(); }
  void value() const {
    if (error_) internal::ResultValueOnError(*error_);
  }
  const Error& error() const& {
    if (!error_) internal::ResultErrorOnValue();
    return *error_;
  }
  Error& error() & {
    if (!error_) internal::ResultErrorOnValue();
    return *error_;
  }
  Error&& error() && {
    if (!error_) internal::ResultErrorOnValue();
    return std::move(*error_);
  }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

inline Status Ok() { return {}; }

}  // namespace sbx

#define SBX_INTERNAL_CONCAT_IMPL(a, b) a##b
#define SBX_INTERNAL_CONCAT(a, b) SBX_INTERNAL_CONCAT_IMPL(a, b)

// Returns the error of `expr` (a Result or Status) from the enclosing function.
#define SBX_TRY(expr)                            \
  do {                                           \
    auto&& sbx_try_result_ = (expr);             \
    if (!sbx_try_result_.has_value()) {          \
      return std::move(sbx_try_result_).error(); \
    }                                            \
  } while (0)

// Same, wrapping the error with `context` (evaluated only on error).
#define SBX_TRY_CTX(expr, context)                             \
  do {                                                         \
    auto&& sbx_try_result_ = (expr);                           \
    if (!sbx_try_result_.has_value()) {                        \
      return std::move(sbx_try_result_).error().Wrap(context); \
    }                                                          \
  } while (0)

#define SBX_INTERNAL_ASSIGN_OR_RETURN(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.has_value()) {                             \
    return std::move(tmp).error();                    \
  }                                                   \
  lhs = std::move(tmp).value()

// `SBX_ASSIGN_OR_RETURN(auto fd, Open(path));` declares (or assigns) `lhs` from the value of
// `expr`, or returns its error.
#define SBX_ASSIGN_OR_RETURN(lhs, expr) \
  SBX_INTERNAL_ASSIGN_OR_RETURN(SBX_INTERNAL_CONCAT(sbx_result_, __LINE__), lhs, expr)

#define SBX_INTERNAL_ASSIGN_OR_RETURN_CTX(tmp, lhs, expr, context) \
  auto tmp = (expr);                                               \
  if (!tmp.has_value()) {                                          \
    return std::move(tmp).error().Wrap(context);                   \
  }                                                                \
  lhs = std::move(tmp).value()

#define SBX_ASSIGN_OR_RETURN_CTX(lhs, expr, context) \
  SBX_INTERNAL_ASSIGN_OR_RETURN_CTX(SBX_INTERNAL_CONCAT(sbx_result_, __LINE__), lhs, expr, context)
