// File: id_ranges.h
//
// Host id ranges for sandboxes' user namespaces: every live sandbox gets one of its own, so that
// no host uid or gid belongs to two sandboxes (a process that ever got out as one sandbox's root
// would own nothing of another's), and the kernel's per-user counters (inotify instances and
// watches, pending signals, message queue bytes, processes) are charged to each sandbox's own
// host user.
//
// The layout, from the daemon's configuration: the first `size` ids at `first_uid`/`first_gid`
// belong to the image layers' files, which no sandbox gets (each sandbox sees the layers through
// idmapped mounts); sandbox range n, for n from 0 to count - 1, starts `(n + 1) * size` ids
// further. Acquire hands out the lowest free range. A range is taken until Release: the caller
// releases it once nothing of the sandbox runs any more. Ranges of sandboxes re-adopted after a
// restart are taken back with Adopt, wherever they lie (the layout may have changed since).
//
// Bookkeeping only: no I/O. Thread-safe.

#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/runtime/spec.h"

namespace sbx::daemon {

struct IdRangeLayout {
  uint32_t first_uid = 1000000;  // the image layers' range; sandboxes' ranges follow it
  uint32_t first_gid = 1000000;
  uint32_t size = 65536;
  uint32_t count = 4096;  // sandbox ranges
};

// Checks that the layout is usable: a size that holds uid 65534 (nobody), no range at host id 0
// and every range below the invalid id 4294967295. Errors name the configuration field.
Status ValidateIdRangeLayout(const IdRangeLayout& layout);

class IdRanges {
 public:
  explicit IdRanges(IdRangeLayout layout);

  // The range of `owner`: the one it holds, or the lowest free one, now taken.
  // RESOURCE_EXHAUSTED when every range is taken.
  Result<runtime::IdMap> Acquire(const std::string& owner);
  // Takes `ids` for `owner` (a sandbox that kept running across a restart). ALREADY_EXISTS when
  // another owner holds ids of it.
  Status Adopt(const std::string& owner, const runtime::IdMap& ids);
  // Frees the range of `owner`, if it holds one.
  void Release(const std::string& owner);
  std::optional<runtime::IdMap> Find(const std::string& owner) const;
  size_t in_use() const;

 private:
  runtime::IdMap Slot(uint32_t n) const;
  // Whether `ids` shares a uid or a gid with a range held by someone other than `owner`.
  bool Overlaps(const runtime::IdMap& ids, const std::string& owner) const;

  const IdRangeLayout layout_;
  mutable std::mutex mu_;
  std::map<std::string, runtime::IdMap> by_owner_;
  std::set<uint32_t> taken_slots_;       // slots of the layout held by someone
  std::vector<std::string> off_layout_;  // owners of adopted ranges that are no slot of it
};

}  // namespace sbx::daemon
