// File: check.h
//
// Invariant checks. SBX_CHECK is always fatal; SBX_DCHECK only in debug builds. Never check
// something the environment or an input controls: return an Error for that.

#pragma once

namespace sbx::internal {
[[noreturn]] void CheckFailed(const char* file, int line, const char* condition, const char* msg);
}  // namespace sbx::internal

#define SBX_CHECK(cond)                                                 \
  do {                                                                  \
    if (!(cond)) {                                                      \
      ::sbx::internal::CheckFailed(__FILE__, __LINE__, #cond, nullptr); \
    }                                                                   \
  } while (0)

#define SBX_CHECK_MSG(cond, msg)                                      \
  do {                                                                \
    if (!(cond)) {                                                    \
      ::sbx::internal::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
    }                                                                 \
  } while (0)

#ifdef NDEBUG
#define SBX_DCHECK(cond) \
  do {                   \
  } while (0)
#else
#define SBX_DCHECK(cond) SBX_CHECK(cond)
#endif
