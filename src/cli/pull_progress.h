// The progress of an image pull, as `sbx images pull` and `sbx run` show it.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "sbx/client.h"

namespace sbx::cli {

// Draws the layers of a pull to `out`. On a terminal: one line per layer with a bar, redrawn in
// place; otherwise a plain line each time a layer changes phase.
class PullProgress {
 public:
  PullProgress(FILE* out, bool terminal) : out_(out), terminal_(terminal) {}

  void Update(const std::vector<LayerProgress>& layers);
  void Finish();
  // Whether anything was shown (an image already in the store shows nothing).
  bool shown() const { return !layers_.empty(); }

 private:
  static std::string Line(const LayerProgress& l);
  void Plain(const LayerProgress& l);
  void Draw();

  FILE* out_;
  bool terminal_;
  std::vector<LayerProgress> layers_;
  size_t drawn_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace sbx::cli
