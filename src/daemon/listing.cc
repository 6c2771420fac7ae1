#include "src/daemon/listing.h"

#include <algorithm>

#include "src/base/strings.h"

namespace sbx::daemon {

Result<ListResult> ListPage(std::vector<const SandboxRecord*> records, const ListFilter& filter) {
  bool include_terminal = filter.show_terminated || (filter.state && IsTerminal(*filter.state));
  std::erase_if(records, [&](const SandboxRecord* r) {
    if (IsTerminal(r->state) && !include_terminal) return true;
    if (filter.state && r->state != *filter.state) return true;
    return !std::all_of(filter.tags.begin(), filter.tags.end(), [r](const std::string& t) {
      return std::find(r->tags.begin(), r->tags.end(), t) != r->tags.end();
    });
  });
  std::sort(records.begin(), records.end(), [](const SandboxRecord* a, const SandboxRecord* b) {
    return a->create_ns != b->create_ns ? a->create_ns < b->create_ns : a->id < b->id;
  });
  size_t start = 0;
  if (!filter.page_token.empty()) {
    auto offset = ParseUint64(filter.page_token);
    if (!offset || *offset > records.size()) {
      return Error::InvalidArgument("invalid page_token " + Quote(filter.page_token));
    }
    start = *offset;
  }
  size_t size = static_cast<size_t>(
      filter.page_size <= 0 ? kDefaultPageSize : std::min(filter.page_size, kMaxPageSize));
  ListResult out;
  for (size_t i = start; i < records.size() && out.sandboxes.size() < size; ++i) {
    out.sandboxes.push_back(*records[i]);
  }
  size_t next = start + out.sandboxes.size();
  if (next < records.size()) out.next_page_token = std::to_string(next);
  return out;
}

}  // namespace sbx::daemon
