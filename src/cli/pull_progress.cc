#include "src/cli/pull_progress.h"

#include <algorithm>

#include "src/base/strings.h"
#include "src/cli/format.h"

namespace sbx::cli {

namespace {

std::string Bar(int64_t done, int64_t total, size_t width) {
  size_t filled = total > 0 ? static_cast<size_t>(static_cast<double>(std::min(done, total)) /
                                                  static_cast<double>(total) * width)
                            : 0;
  return "[" + std::string(filled, '=') + (filled < width ? ">" : "") +
         std::string(width - std::min(width, filled + 1), ' ') + "]";
}

}  // namespace

void PullProgress::Update(const std::vector<LayerProgress>& layers) {
  for (const auto& l : layers) {
    auto it = std::find_if(layers_.begin(), layers_.end(),
                           [&](const LayerProgress& x) { return x.digest == l.digest; });
    if (it == layers_.end()) {
      layers_.push_back(l);
      if (!terminal_) Plain(l);
      continue;
    }
    if (!terminal_ && it->phase != l.phase) Plain(l);
    *it = l;
  }
  if (!terminal_) return;
  auto now = std::chrono::steady_clock::now();
  bool all_done = std::all_of(layers_.begin(), layers_.end(), [](const LayerProgress& l) {
    return l.phase == "done" || l.phase == "cached";
  });
  if (!all_done && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  Draw();
}

void PullProgress::Finish() {
  if (terminal_ && !layers_.empty()) Draw();
}

std::string PullProgress::Line(const LayerProgress& l) {
  std::string line = ShortDigest(l.digest) + "  " + l.phase;
  line += std::string(line.size() < 34 ? 34 - line.size() : 1, ' ');
  if (l.phase == "downloading" || l.phase == "verifying" || l.phase == "unpacking") {
    line += Bar(l.done_bytes, l.total_bytes, 30) + " ";
  }
  if (l.total_bytes > 0) {
    line += FormatBytes(static_cast<uint64_t>(std::min(l.done_bytes, l.total_bytes))) + " / " +
            FormatBytes(static_cast<uint64_t>(l.total_bytes));
  }
  return line;
}

void PullProgress::Plain(const LayerProgress& l) {
  fprintf(out_, "%s: %s", ShortDigest(l.digest).c_str(), l.phase.c_str());
  if (l.total_bytes > 0) {
    fprintf(out_, " (%s)", FormatBytes(static_cast<uint64_t>(l.total_bytes)).c_str());
  }
  fprintf(out_, "\n");
  fflush(out_);
}

void PullProgress::Draw() {
  std::string out;
  if (drawn_ > 0) out += "\x1b[" + std::to_string(drawn_) + "A";  // back to the first line
  for (const auto& l : layers_) out += "\r\x1b[2K" + Line(l) + "\n";
  drawn_ = layers_.size();
  fputs(out.c_str(), out_);
  fflush(out_);
}

}  // namespace sbx::cli
