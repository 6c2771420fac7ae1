// File: endings.h
//
// How a sandbox ends, in the product's terms: the state, the typed reason and the message a user
// reads, and the exit code (the shell's convention: 128 + signal for a killed process). Pure.

#pragma once

#include <optional>
#include <string>

#include "src/agent/protocol.h"
#include "src/base/result.h"
#include "src/daemon/sandbox_record.h"

namespace sbx::daemon {

// The main process ended by itself (or its sbx-init could not say: `status` is an error).
// `oom_kills` is the sandbox's cgroup count of OOM kills.
SandboxRecord::Ending ExitEnding(const Result<agent::StatusReply>& status, uint64_t oom_kills,
                                 const SandboxRecord& record);

// A stop finished: `exited` is how the main process ended within the grace period, if it did.
SandboxRecord::Ending StopEnding(const std::optional<agent::StatusReply>& exited,
                                 const SandboxRecord& record);

// "SIGKILL", or "signal 99" for a number with no name.
std::string SignalName(int signal);

}  // namespace sbx::daemon
