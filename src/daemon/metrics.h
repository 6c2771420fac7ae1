// File: metrics.h
//
// A small metrics registry rendered in the Prometheus text format: counters, and histograms with
// fixed buckets. Gauges (sandboxes by state, capacity) are computed by a callback at scrape time.
// Thread-safe.

#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace sbx::daemon {

// `name{label="value",...}` with the values escaped as the text format requires.
std::string MetricKey(const std::string& name, const std::map<std::string, std::string>& labels);

class Metrics {
 public:
  // Counter with a label set such as {"reason", "IMAGE_PULL_FAILED"}.
  void Inc(const std::string& name, const std::map<std::string, std::string>& labels = {},
           double by = 1);
  void Observe(const std::string& name, double seconds);
  // Gauges are produced at render time.
  void SetGaugeSource(std::function<std::string()> source);
  std::string Render();

 private:
  struct Histogram {
    std::vector<uint64_t> counts;
    uint64_t total = 0;
    double sum = 0;
  };
  static const std::vector<double>& Buckets();
  std::mutex mu_;
  std::map<std::string, double> counters_;  // rendered name{labels} -> value
  std::map<std::string, Histogram> histograms_;
  std::function<std::string()> gauges_;
};

}  // namespace sbx::daemon
