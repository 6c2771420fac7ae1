// File: agent_failure.h
//
// What to tell a caller whose call to a sandbox's sbx-init failed. When the connection broke
// because the sandbox stopped meanwhile (it was deleted, its main process ended, its lifetime ran
// out), the sandbox's state is the answer, not the broken connection: FAILED_PRECONDITION
// (CWSANDBOX_SANDBOX_NOT_RUNNING) naming the state, or NOT_FOUND once the sandbox is gone.
// Other failures pass through unchanged.
//
//   auto stream = client.StartExec(start);
//   if (!stream) return Fail(ExplainAgentFailure(*manager_, tenant, id, stream.error()));

#pragma once

#include <string>

#include "src/base/result.h"
#include "src/daemon/sandbox_manager.h"

namespace sbx::daemon {

Error ExplainAgentFailure(SandboxManager& manager, const std::string& tenant,
                          const std::string& sandbox_id, Error error);

}  // namespace sbx::daemon
