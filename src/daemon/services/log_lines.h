// Lines of a sandbox's log, for entries stamped with a time: sbx-init keeps the output as it was
// written (one chunk per write), and a line may take several writes or share one with others.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sbx::daemon {

// A longer line is cut into entries of this size (the last piece ends the line).
inline constexpr size_t kMaxLogLineBytes = 64 * 1024;

class LogLineSplitter {
 public:
  struct Line {
    std::string data;         // with its '\n', except a piece of a longer line or the last line
    int64_t time_ns = 0;      // when the line was complete: the time of its last write
    uint64_t end_offset = 0;  // the log offset just past it
  };

  explicit LogLineSplitter(size_t max_line_bytes = kMaxLogLineBytes)
      : max_line_bytes_(max_line_bytes) {}

  // The lines completed by `data`, written at `time_ns`, which ends at log offset `end_offset`.
  std::vector<Line> Feed(std::string_view data, uint64_t end_offset, int64_t time_ns);

  // The unfinished last line, if there is one (at the end of the log).
  std::optional<Line> Flush();

 private:
  size_t max_line_bytes_;
  std::string pending_;
  int64_t pending_time_ns_ = 0;
  uint64_t pending_end_ = 0;
};

}  // namespace sbx::daemon
