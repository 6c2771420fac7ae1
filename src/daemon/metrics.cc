#include "src/daemon/metrics.h"

#include <cstdio>
#include <sstream>

namespace sbx::daemon {

std::string MetricKey(const std::string& name, const std::map<std::string, std::string>& labels) {
  if (labels.empty()) return name;
  std::string out = name + "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ",";
    first = false;
    out += k + "=\"";
    for (char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    out += "\"";
  }
  return out + "}";
}

namespace {

std::string Number(double v) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

const std::vector<double>& Metrics::Buckets() {
  static const std::vector<double> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                               0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  return kBuckets;
}

void Metrics::Inc(const std::string& name, const std::map<std::string, std::string>& labels,
                  double by) {
  std::lock_guard lock(mu_);
  counters_[MetricKey(name, labels)] += by;
}

void Metrics::Observe(const std::string& name, double seconds) {
  std::lock_guard lock(mu_);
  Histogram& h = histograms_[name];
  if (h.counts.empty()) h.counts.assign(Buckets().size(), 0);
  for (size_t i = 0; i < Buckets().size(); ++i) {
    if (seconds <= Buckets()[i]) ++h.counts[i];
  }
  ++h.total;
  h.sum += seconds;
}

void Metrics::SetGaugeSource(std::function<std::string()> source) {
  std::lock_guard lock(mu_);
  gauges_ = std::move(source);
}

std::string Metrics::Render() {
  std::function<std::string()> gauges;
  std::ostringstream out;
  {
    std::lock_guard lock(mu_);
    gauges = gauges_;
    std::string last_family;
    for (const auto& [key, value] : counters_) {
      std::string family = key.substr(0, key.find('{'));
      if (family != last_family) {
        out << "# TYPE " << family << " counter\n";
        last_family = family;
      }
      out << key << " " << Number(value) << "\n";
    }
    for (const auto& [name, h] : histograms_) {
      out << "# TYPE " << name << " histogram\n";
      for (size_t i = 0; i < Buckets().size(); ++i) {
        out << name << "_bucket{le=\"" << Number(Buckets()[i]) << "\"} " << h.counts[i] << "\n";
      }
      out << name << "_bucket{le=\"+Inf\"} " << h.total << "\n";
      out << name << "_sum " << Number(h.sum) << "\n";
      out << name << "_count " << h.total << "\n";
    }
  }
  if (gauges) out << gauges();
  return out.str();
}

}  // namespace sbx::daemon
