// File: users.h
//
// Resolving a user specification ("", "name", "1000", "1000:1000", "name:group") against the
// sandbox's own /etc/passwd and /etc/group, as a container runtime does. Pure parsing functions
// are separate from the file reads so they can be tested without a sandbox.

#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"

namespace sbx::agent {

struct ResolvedUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::string home = "/";
  std::string name;
};

// `passwd` and `group` are the contents of /etc/passwd and /etc/group (may be empty).
Result<ResolvedUser> ResolveUser(std::string_view spec, std::string_view passwd,
                                 std::string_view group);

// ResolveUser against the /etc/passwd and /etc/group of the root this process runs in (sbx-init's
// is the sandbox's); a missing file counts as empty.
Result<ResolvedUser> ResolveSandboxUser(std::string_view spec);

}  // namespace sbx::agent
