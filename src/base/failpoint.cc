#include "src/base/failpoint.h"

#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>

#include "src/base/strings.h"

namespace sbx::failpoint {

namespace {

std::atomic<bool> armed_any{false};
// Written once, before armed_any is set; read only after it is seen set.
std::set<std::string>* armed = nullptr;

}  // namespace

const std::vector<std::string>& AllPoints() {
  static const auto* points = new std::vector<std::string>{
      kCreateAfterImage,  kCreateAfterNetwork, kCreateAfterRuntime,
      kEndBeforeTeardown, kEndAfterTeardown,   kPullAfterDownload,
      kPullDuringUnpack,  kRecoveryAfterPlan,  kRecoveryAfterLeftovers};
  return *points;
}

Result<std::set<std::string>> Parse(std::string_view value, const std::vector<std::string>& known) {
  std::set<std::string> points;
  for (const auto& entry : Split(std::string(value), ',')) {
    if (entry.empty()) continue;
    size_t eq = entry.find('=');
    std::string name = entry.substr(0, eq);
    std::string action = eq == std::string::npos ? "" : entry.substr(eq + 1);
    if (action != "crash") {
      return Error::InvalidArgument(std::string(kEnvironmentVariable) + ": " + Quote(entry) +
                                    " must be <point>=crash");
    }
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return Error::InvalidArgument(std::string(kEnvironmentVariable) + ": no point named " +
                                    Quote(name) + "; the points are " + Join(known, ", "));
    }
    points.insert(name);
  }
  return points;
}

Status ArmFromEnvironment() {
  const char* value = getenv(kEnvironmentVariable);
  if (!value || !*value) return Ok();
  SBX_ASSIGN_OR_RETURN(std::set<std::string> points, Parse(value));
  if (points.empty()) return Ok();
  armed = new std::set<std::string>(std::move(points));  // lives as long as the process
  armed_any.store(true, std::memory_order_release);
  return Ok();
}

void Check(const char* name) {
  if (!armed_any.load(std::memory_order_acquire)) return;
  if (armed->count(name)) raise(SIGKILL);
}

}  // namespace sbx::failpoint
