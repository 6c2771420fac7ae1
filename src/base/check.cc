#include "src/base/check.h"

#include <stdio.h>
#include <stdlib.h>

#include "src/base/result.h"

namespace sbx::internal {

void CheckFailed(const char* file, int line, const char* condition, const char* msg) {
  fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, condition, msg ? ": " : "",
          msg ? msg : "");
  abort();
}

void ResultValueOnError(const Error& error) {
  fprintf(stderr, "Result::value() called on an error: %s\n", error.ToString().c_str());
  abort();
}

void ResultErrorOnValue() {
  fprintf(stderr, "Result::error() called on a value\n");
  abort();
}

}  // namespace sbx::internal
