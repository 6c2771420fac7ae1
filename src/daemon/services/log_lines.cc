#include "src/daemon/services/log_lines.h"

#include <algorithm>

namespace sbx::daemon {

std::vector<LogLineSplitter::Line> LogLineSplitter::Feed(std::string_view data, uint64_t end_offset,
                                                         int64_t time_ns) {
  std::vector<Line> out;
  uint64_t offset = end_offset - data.size();
  while (!data.empty()) {
    size_t room = max_line_bytes_ - pending_.size();
    size_t newline = data.find('\n');
    size_t take = std::min(newline == std::string_view::npos ? data.size() : newline + 1, room);
    pending_.append(data.substr(0, take));
    data.remove_prefix(take);
    offset += take;
    if (pending_.back() == '\n' || pending_.size() == max_line_bytes_) {
      out.push_back({std::move(pending_), time_ns, offset});
      pending_.clear();
    }
  }
  pending_time_ns_ = time_ns;
  pending_end_ = offset;
  return out;
}

std::optional<LogLineSplitter::Line> LogLineSplitter::Flush() {
  if (pending_.empty()) return std::nullopt;
  Line line{std::move(pending_), pending_time_ns_, pending_end_};
  pending_.clear();
  return line;
}

}  // namespace sbx::daemon
