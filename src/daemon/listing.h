// File: listing.h
//
// A tenant's sandboxes as ListSandboxes pages them: filtered by tags (all must be present) and
// state, ended ones only when asked, in creation order, in pages whose token is the offset of the
// next. Pure.

#pragma once

#include <optional>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/daemon/sandbox_record.h"

namespace sbx::daemon {

inline constexpr int kDefaultPageSize = 100;
inline constexpr int kMaxPageSize = 1000;

struct ListFilter {
  std::vector<std::string> tags;  // all must be present
  std::optional<State> state;
  bool show_terminated = false;
  int page_size = 0;  // 0: kDefaultPageSize; at most kMaxPageSize
  std::string page_token;
};

struct ListResult {
  std::vector<SandboxRecord> sandboxes;
  std::string next_page_token;
};

// One page of `records` (a tenant's, in any order). INVALID_ARGUMENT for a token this listing
// did not give.
Result<ListResult> ListPage(std::vector<const SandboxRecord*> records, const ListFilter& filter);

}  // namespace sbx::daemon
