#include "src/daemon/id_ranges.h"

#include <algorithm>

namespace sbx::daemon {

namespace {

// The highest valid id: (uid_t)-1 means "no id" to every id-taking system call.
constexpr uint64_t kMaxId = 0xfffffffeull;

bool Intersect(uint32_t a, uint32_t b, uint32_t size) {
  uint64_t a_end = static_cast<uint64_t>(a) + size;
  uint64_t b_end = static_cast<uint64_t>(b) + size;
  return a < b_end && b < a_end;
}

}  // namespace

Status ValidateIdRangeLayout(const IdRangeLayout& layout) {
  if (layout.first_uid == 0 || layout.first_gid == 0) {
    return Error::InvalidArgument("config: id_map_uid and id_map_gid must not be 0 (host root)");
  }
  if (layout.size < 65536) {
    return Error::InvalidArgument(
        "config: id_map_size must be at least 65536 (images use ids up to 65534, nobody)");
  }
  if (layout.count == 0) {
    return Error::InvalidArgument("config: id_map_ranges must be at least 1");
  }
  uint64_t span = (static_cast<uint64_t>(layout.count) + 1) * layout.size;
  if (layout.first_uid + span - 1 > kMaxId || layout.first_gid + span - 1 > kMaxId) {
    return Error::InvalidArgument(
        "config: id_map_ranges ranges of id_map_size ids after the image layers' range at "
        "id_map_uid/id_map_gid go past the last host id (4294967294); at most " +
        std::to_string((kMaxId + 1 - std::max(layout.first_uid, layout.first_gid)) / layout.size -
                       1) +
        " fit");
  }
  return Ok();
}

IdRanges::IdRanges(IdRangeLayout layout) : layout_(layout) {}

runtime::IdMap IdRanges::Slot(uint32_t n) const {
  uint64_t offset = (static_cast<uint64_t>(n) + 1) * layout_.size;
  return {static_cast<uint32_t>(layout_.first_uid + offset),
          static_cast<uint32_t>(layout_.first_gid + offset), layout_.size};
}

bool IdRanges::Overlaps(const runtime::IdMap& ids, const std::string& owner) const {
  for (const auto& [other, held] : by_owner_) {
    if (other == owner) continue;
    uint32_t size = std::max(ids.size, held.size);
    if (Intersect(ids.host_uid, held.host_uid, size) ||
        Intersect(ids.host_gid, held.host_gid, size)) {
      return true;
    }
  }
  return false;
}

Result<runtime::IdMap> IdRanges::Acquire(const std::string& owner) {
  std::lock_guard lock(mu_);
  if (auto it = by_owner_.find(owner); it != by_owner_.end()) return it->second;
  auto taken = taken_slots_.begin();
  for (uint32_t n = 0; n < layout_.count; ++n) {
    if (taken != taken_slots_.end() && *taken == n) {
      ++taken;
      continue;
    }
    runtime::IdMap ids = Slot(n);
    // Only a range adopted off the layout can overlap a free slot.
    if (!off_layout_.empty() && Overlaps(ids, owner)) continue;
    taken_slots_.insert(n);
    by_owner_.emplace(owner, ids);
    return ids;
  }
  return Error::ResourceExhausted("every one of the " + std::to_string(layout_.count) +
                                  " host id ranges for sandboxes is in use (id_map_ranges)");
}

Status IdRanges::Adopt(const std::string& owner, const runtime::IdMap& ids) {
  std::lock_guard lock(mu_);
  if (auto it = by_owner_.find(owner); it != by_owner_.end()) {
    if (it->second == ids) return Ok();
    return Error::FailedPrecondition("sandbox " + owner + " holds another host id range");
  }
  if (ids.size == 0) return Error::InvalidArgument("an empty host id range");
  if (Overlaps(ids, owner)) {
    return Error::AlreadyExists("host ids " + std::to_string(ids.host_uid) + "+" +
                                std::to_string(ids.size) + " of sandbox " + owner +
                                " are another sandbox's");
  }
  by_owner_.emplace(owner, ids);
  uint64_t first = static_cast<uint64_t>(layout_.first_uid) + layout_.size;
  bool on_layout = ids.size == layout_.size && ids.host_uid >= first &&
                   (ids.host_uid - first) % layout_.size == 0 &&
                   (ids.host_uid - first) / layout_.size < layout_.count &&
                   static_cast<uint64_t>(ids.host_gid) - layout_.first_gid ==
                       static_cast<uint64_t>(ids.host_uid) - layout_.first_uid;
  if (on_layout) {
    taken_slots_.insert(static_cast<uint32_t>((ids.host_uid - first) / layout_.size));
  } else {
    off_layout_.push_back(owner);
  }
  return Ok();
}

void IdRanges::Release(const std::string& owner) {
  std::lock_guard lock(mu_);
  auto it = by_owner_.find(owner);
  if (it == by_owner_.end()) return;
  if (auto off = std::find(off_layout_.begin(), off_layout_.end(), owner);
      off != off_layout_.end()) {
    off_layout_.erase(off);
  } else {
    uint64_t first = static_cast<uint64_t>(layout_.first_uid) + layout_.size;
    taken_slots_.erase(static_cast<uint32_t>((it->second.host_uid - first) / layout_.size));
  }
  by_owner_.erase(it);
}

std::optional<runtime::IdMap> IdRanges::Find(const std::string& owner) const {
  std::lock_guard lock(mu_);
  auto it = by_owner_.find(owner);
  if (it == by_owner_.end()) return std::nullopt;
  return it->second;
}

size_t IdRanges::in_use() const {
  std::lock_guard lock(mu_);
  return by_owner_.size();
}

}  // namespace sbx::daemon
