// File: log_ring.h
//
// LogRing keeps the most recent output of the main process in a bounded buffer, addressed by a
// monotonically increasing byte offset, so a reader can resume where it stopped and learn when
// older output was dropped. Each chunk remembers its stream and arrival time (for `timestamps`
// and `since_time`).

#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "src/agent/protocol.h"

namespace sbx::agent {

class LogRing {
 public:
  explicit LogRing(size_t capacity) : capacity_(capacity) {}

  void Append(StreamId stream, std::string_view data, int64_t time_ns);

  uint64_t start() const { return start_; }
  uint64_t end() const { return end_; }

  // Chunks covering [max(offset, start), end), split where they were appended, at most
  // `max_bytes` of data in total.
  std::vector<LogChunk> Read(uint64_t offset, size_t max_bytes) const;

 private:
  struct Chunk {
    uint64_t offset;
    int64_t time_ns;
    StreamId stream;
    std::string data;
  };
  size_t capacity_;
  size_t size_ = 0;
  uint64_t start_ = 0;
  uint64_t end_ = 0;
  std::deque<Chunk> chunks_;
};

}  // namespace sbx::agent
