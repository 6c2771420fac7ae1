#include "src/sys/entry_path.h"

#include "src/base/strings.h"

namespace sbx::sys {

Result<std::vector<std::string>> CleanEntryPath(std::string_view name,
                                                const EntryPathRules& rules) {
  if (name.empty()) return Error::InvalidArgument("empty name");
  if (name.size() > rules.max_bytes) {
    return Error::InvalidArgument("name longer than " + std::to_string(rules.max_bytes) +
                                  " bytes: " + Quote(name.substr(0, 64)) + "...");
  }
  if (name.find('\0') != std::string_view::npos) {
    return Error::InvalidArgument("name " + Quote(name, 200) + " contains a NUL byte");
  }
  if (!name.empty() && name.front() == '/' && !rules.strip_leading_slash) {
    return Error::InvalidArgument("absolute name " + Quote(name, 200) + " is not allowed");
  }
  std::vector<std::string> components;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view part = name.substr(start, end - start);
    start = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!rules.resolve_dotdot) {
        return Error::InvalidArgument("name " + Quote(name, 200) + " contains \"..\"");
      }
      if (components.empty()) {
        return Error::InvalidArgument("name " + Quote(name, 200) + " climbs above its root");
      }
      components.pop_back();
      continue;
    }
    if (part.size() > rules.max_component_bytes) {
      return Error::InvalidArgument("name " + Quote(name.substr(0, 64)) +
                                    "... has a component longer than " +
                                    std::to_string(rules.max_component_bytes) + " bytes");
    }
    components.emplace_back(part);
  }
  if (components.empty() && !rules.allow_root) {
    return Error::InvalidArgument("name " + Quote(name, 200) + " names no entry");
  }
  return components;
}

Result<std::string> CleanEntryName(std::string_view name, const EntryPathRules& rules) {
  SBX_ASSIGN_OR_RETURN(std::vector<std::string> components, CleanEntryPath(name, rules));
  return Join(components, "/");
}

}  // namespace sbx::sys
