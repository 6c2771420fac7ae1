#include "src/daemon/services/agent_failure.h"

#include "src/base/clock.h"

namespace sbx::daemon {

namespace {

// How long a sandbox whose sbx-init connection broke may still read RUNNING: a main process that
// has just ended is recorded once its sandbox is torn down.
constexpr int64_t kSettleMs = 3000;

// Every failure of the connection itself (connect, send, receive, EOF) is kUnavailable; what
// sbx-init answers (a missing file, say) carries its own code.
bool BrokenConnection(const Error& error) { return error.code() == Code::kUnavailable; }

}  // namespace

Error ExplainAgentFailure(SandboxManager& manager, const std::string& tenant,
                          const std::string& sandbox_id, Error error) {
  if (!BrokenConnection(error)) return error;
  auto record = manager.Get(tenant, sandbox_id);
  if (!record) return std::move(record).error();
  if (record->state == State::kRunning) {
    record = manager.WaitEnded(tenant, sandbox_id, MonotonicMillis() + kSettleMs);
    if (!record) return std::move(record).error();
    if (record->state == State::kRunning) return error;
  }
  // Not running: the same answer a call arriving now would get.
  auto socket = manager.AgentSocket(tenant, sandbox_id, MonotonicMillis());
  if (!socket) return std::move(socket).error();
  return error;
}

}  // namespace sbx::daemon
