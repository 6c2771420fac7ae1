// File: failpoint.h
//
// Named points inside multi-step operations (a create, a teardown, a pull, a recovery) where a
// test makes the process die exactly as `kill -9` would, to prove that the next start converges
// from there: nothing half made survives, nothing is lost. Off unless the environment names
// points: SBX_FAILPOINTS="create.after_network=crash,end.before_teardown=crash". The one action
// is "crash" (SIGKILL to the process itself). A point costs one atomic load when none is armed.

#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"

namespace sbx::failpoint {

inline constexpr const char* kEnvironmentVariable = "SBX_FAILPOINTS";

// Every point, so that a misspelled name is refused rather than never reached.
// A create: the image is resolved and held; the network is attached; the runtime made the sandbox
// (before it is recorded as running).
inline constexpr const char* kCreateAfterImage = "create.after_image";
inline constexpr const char* kCreateAfterNetwork = "create.after_network";
inline constexpr const char* kCreateAfterRuntime = "create.after_runtime";
// An end (stop, delete, exit): the ending is recorded; the runtime removed the sandbox (before
// the record is final).
inline constexpr const char* kEndBeforeTeardown = "end.before_teardown";
inline constexpr const char* kEndAfterTeardown = "end.after_teardown";
// A pull: the layers are downloaded (before they are unpacked); a layer is half unpacked.
inline constexpr const char* kPullAfterDownload = "pull.after_download";
inline constexpr const char* kPullDuringUnpack = "pull.during_unpack";
// A start's recovery: the plan is made (nothing acted on yet); leftovers are removed (before the
// network is recovered).
inline constexpr const char* kRecoveryAfterPlan = "recovery.after_plan";
inline constexpr const char* kRecoveryAfterLeftovers = "recovery.after_leftovers";

const std::vector<std::string>& AllPoints();

// The points a SBX_FAILPOINTS value arms. INVALID_ARGUMENT names an entry that is not
// "<point>=crash" with a point of `known`.
Result<std::set<std::string>> Parse(std::string_view value,
                                    const std::vector<std::string>& known = AllPoints());

// Arms what SBX_FAILPOINTS names, if it is set. Called once, before any point is reached; an
// error (the process should refuse to start) names what is wrong.
Status ArmFromEnvironment();

// Dies by SIGKILL when `name` is armed.
void Check(const char* name);

}  // namespace sbx::failpoint
