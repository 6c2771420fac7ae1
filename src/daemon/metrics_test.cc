#include "src/daemon/metrics.h"

#include <gtest/gtest.h>

namespace sbx::daemon {
namespace {

TEST(MetricsTest, RendersPrometheusText) {
  Metrics m;
  m.Inc("sbx_x_total", {{"reason", "A\"B"}});
  m.Inc("sbx_x_total", {{"reason", "A\"B"}});
  m.Observe("sbx_latency_seconds", 0.003);
  m.SetGaugeSource([] { return std::string("sbx_g 1\n"); });
  std::string text = m.Render();
  EXPECT_NE(text.find("# TYPE sbx_x_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("sbx_x_total{reason=\"A\\\"B\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("sbx_latency_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("sbx_latency_seconds_bucket{le=\"0.0025\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("sbx_latency_seconds_count 1\n"), std::string::npos);
  EXPECT_NE(text.find("sbx_g 1\n"), std::string::npos);
}

}  // namespace
}  // namespace sbx::daemon
