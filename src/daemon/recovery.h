// File: recovery.h
//
// What a starting daemon does about what the last one left: its records (the store) and what is
// left of sandboxes on the machine (the runtime's leftovers). The plan is pure: it is computed
// from values, and the sandbox manager carries it out.
//
//   record state                 sbx-init     plan
//   PENDING                      -            ended FAILED (its request lived only in memory)
//   CREATING, RUNNING            alive        adopt: RUNNING, watched again
//   TERMINATING                  alive        finish the stop
//   CREATING/RUNNING/TERMINATING gone         ended: FAILED STARTUP_FAILED / HOST_LOST,
//                                             TERMINATED for a stop
//   any live state, with its end already decided (`ending`)     ended as decided
//   terminal                     -            kept until its retention is over
//
// Whatever is left on the machine of a sandbox that is not adopted or being stopped is destroyed:
// the ended ones, warm sandboxes (never recorded), and anything no record names.

#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "src/daemon/sandbox_record.h"

namespace sbx::daemon {

struct RecoveryPlan {
  std::vector<SandboxRecord> adopt;        // running: hold capacity and the image, watch again
  std::vector<SandboxRecord> finish_stop;  // a stop was under way: finish it
  std::vector<SandboxRecord> ended;        // rewritten as ended (persist them)
  std::vector<SandboxRecord> kept;         // already ended, unchanged
  std::vector<SandboxRecord> kept_files;   // ended, their files kept: hold the image and ids
  std::vector<std::string> destroy;        // ids whose leftovers to remove
};

// `records` in any order (the plan's lists are in creation order); `alive` tells whether a
// record's sbx-init still runs; `leftovers` are the ids the runtime found on the machine.
RecoveryPlan PlanRecovery(std::vector<SandboxRecord> records,
                          const std::function<bool(const SandboxRecord&)>& alive,
                          const std::vector<std::string>& leftovers, int64_t now_ns);

}  // namespace sbx::daemon
