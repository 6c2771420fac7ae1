// File: entry_path.h
//
// Names that come from outside — tar entries of image layers and archives, paths in API requests —
// cleaned lexically into components below a root before anything is looked up. One cleaner for
// every such name, so the rules cannot drift apart: empty and "." components are dropped, no
// component is ".." that climbs above the root, and lengths are bounded. The caller still resolves
// the components under the root by descriptor (openat2 RESOLVE_IN_ROOT / RESOLVE_NO_SYMLINKS):
// lexical cleaning does not see symlinks.

#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"

namespace sbx::sys {

struct EntryPathRules {
  // A leading "/" is dropped, as tar does, instead of refused.
  bool strip_leading_slash = false;
  // ".." that stays below the root is resolved ("a/../b" is "b") instead of refused.
  bool resolve_dotdot = false;
  // A name that cleans to nothing (".", "./") names the root instead of being refused. An empty
  // name is always refused.
  bool allow_root = false;
  size_t max_bytes = 4096;
  size_t max_component_bytes = 255;
};

// Entries of an image layer: tar's conventions ("/etc" is "etc", "a/../b" is "b", "./" is the
// layer's root), never above the root.
inline constexpr EntryPathRules kLayerEntryRules{
    .strip_leading_slash = true, .resolve_dotdot = true, .allow_root = true};

// Entries of a tar stream copied into or out of a sandbox: relative, no "..", "." is the target
// directory itself.
inline constexpr EntryPathRules kArchiveEntryRules{.allow_root = true, .max_bytes = 4095};

// The cleaned components, or INVALID_ARGUMENT saying what is wrong with `name`.
Result<std::vector<std::string>> CleanEntryPath(std::string_view name, const EntryPathRules& rules);

// The same, joined with "/" ("" for the root).
Result<std::string> CleanEntryName(std::string_view name, const EntryPathRules& rules);

}  // namespace sbx::sys
