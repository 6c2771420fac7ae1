// File: clock.h
//
// Monotonic and wall-clock helpers. Deadlines use CLOCK_MONOTONIC milliseconds; timestamps shown
// to users are Unix nanoseconds.

#pragma once

#include <time.h>

#include <cstdint>

namespace sbx {

inline int64_t MonotonicNanos() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline int64_t MonotonicMillis() { return MonotonicNanos() / 1000000; }

inline int64_t WallNanos() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Milliseconds left until `deadline_ms` (monotonic), clamped to [0, INT32_MAX]; -1 if no deadline
// (deadline_ms < 0). Suitable as a poll() timeout.
inline int PollTimeout(int64_t deadline_ms) {
  if (deadline_ms < 0) return -1;
  int64_t left = deadline_ms - MonotonicMillis();
  if (left < 0) return 0;
  if (left > 0x7fffffff) return 0x7fffffff;
  return static_cast<int>(left);
}

}  // namespace sbx
