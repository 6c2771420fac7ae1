// File: capabilities.h
//
// The capabilities a sandbox's processes keep (inside their user namespace, where they only act
// on what that namespace owns): Docker's default set without NET_RAW, MKNOD and AUDIT_WRITE
// (containerd 2.0 dropped those too). Everything else is removed from the bounding set, so no
// exec can regain it; the inheritable and ambient sets are empty.

#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"

namespace sbx::runtime {

std::vector<int> DefaultCapabilities();
std::string CapabilityName(int cap);
// "NET_ADMIN", "CAP_NET_ADMIN" or "cap_net_admin"; INVALID_ARGUMENT for a name the kernel does not
// know.
Result<int> ParseCapability(std::string_view name);
// The capabilities named in `drop` as a mask (bit n: capability n); "ALL" is every capability.
Result<uint64_t> DroppedCapabilityMask(const std::vector<std::string>& drop);

// Drops the bounding set to `keep`, sets permitted = effective = `keep` and empties the
// inheritable and ambient sets.
Status ApplyCapabilities(const std::vector<int>& keep);

// Whether this process has `cap` in its effective set.
bool HasEffectiveCapability(int cap);

}  // namespace sbx::runtime
