#include "src/agent/init/log_ring.h"

#include <algorithm>

namespace sbx::agent {

void LogRing::Append(StreamId stream, std::string_view data, int64_t time_ns) {
  if (data.empty()) return;
  if (data.size() > capacity_) {
    // Only the tail of an oversized write can be kept.
    size_t drop = data.size() - capacity_;
    end_ += drop;
    data.remove_prefix(drop);
  }
  // Coalesce with the previous chunk when it is from the same stream and close in time, so tiny
  // writes do not cost a header each.
  if (!chunks_.empty() && chunks_.back().stream == stream &&
      time_ns - chunks_.back().time_ns < 1000000 && chunks_.back().data.size() < 16384) {
    chunks_.back().data.append(data);
  } else {
    chunks_.push_back(Chunk{end_, time_ns, stream, std::string(data)});
  }
  size_ += data.size();
  end_ += data.size();
  while (size_ > capacity_ && !chunks_.empty()) {
    Chunk& front = chunks_.front();
    size_t excess = size_ - capacity_;
    if (front.data.size() <= excess) {
      size_ -= front.data.size();
      chunks_.pop_front();
    } else {
      front.data.erase(0, excess);
      front.offset += excess;
      size_ -= excess;
    }
  }
  start_ = chunks_.empty() ? end_ : chunks_.front().offset;
}

std::vector<LogChunk> LogRing::Read(uint64_t offset, size_t max_bytes) const {
  std::vector<LogChunk> out;
  size_t budget = max_bytes;
  for (const Chunk& chunk : chunks_) {
    if (budget == 0) break;
    uint64_t chunk_end = chunk.offset + chunk.data.size();
    if (chunk_end <= offset) continue;
    size_t skip = offset > chunk.offset ? static_cast<size_t>(offset - chunk.offset) : 0;
    size_t take = std::min(chunk.data.size() - skip, budget);
    out.push_back(
        LogChunk{chunk.offset + skip, chunk.time_ns, chunk.stream, chunk.data.substr(skip, take)});
    budget -= take;
  }
  return out;
}

}  // namespace sbx::agent
