// File: fs.h
//
// File-system helpers that return Result and open everything O_CLOEXEC. Functions taking a
// `dirfd` resolve relative to it; OpenInRoot resolves a path with the directory as the root
// (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so "..", absolute paths and symlinks can never leave
// it. That is the only way code should follow a path it does not control.

#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::sys {

Result<UniqueFd> Open(const std::string& path, int flags, mode_t mode = 0);
Result<UniqueFd> OpenAt(int dirfd, const std::string& path, int flags, mode_t mode = 0);

// openat2(2) with `resolve` flags; retries EAGAIN (a racing rename or mount) a bounded number of
// times.
Result<UniqueFd> OpenAt2(int dirfd, const std::string& path, uint64_t flags, uint64_t mode,
                         uint64_t resolve);

// Opens `path` inside the tree rooted at `root_fd` as if `root_fd` were "/".
Result<UniqueFd> OpenInRoot(int root_fd, const std::string& path, uint64_t flags,
                            uint64_t mode = 0);

// Reads a whole file; fails with kResourceExhausted beyond `max_bytes`.
Result<std::string> ReadFile(const std::string& path, size_t max_bytes = 16u << 20);
Result<std::string> ReadFd(int fd, size_t max_bytes = 16u << 20);

// Writes `content` to an existing file (used for cgroup and /proc knobs: no O_CREAT, no trunc).
Status WriteKnob(const std::string& path, std::string_view content);
Status WriteKnobAt(int dirfd, const std::string& name, std::string_view content);

// Creates or truncates `path` with `mode` and writes `content`.
Status WriteFile(const std::string& path, std::string_view content, mode_t mode = 0644);
// Same, atomically: a temporary file in the same directory renamed over `path`, fsync'ed first
// unless `sync` is false.
Status WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode = 0644,
                       bool sync = true);

Status WriteAll(int fd, std::string_view data);

// mkdir -p; existing directories are fine.
Status MakeDirs(const std::string& path, mode_t mode = 0755);

// rm -rf that never follows symlinks and never descends into another mount; a missing path is
// success. The one tree removal of sbx: of bundles, layers, whiteouts and archives alike.
Status RemoveTree(const std::string& path);
// The same for `name` in the directory `parent_fd`.
Status RemoveTreeAt(int parent_fd, const std::string& name);

bool PathExists(const std::string& path);

// The size of the filesystem holding `path` and what an unprivileged writer may still use of it.
struct FilesystemSpace {
  uint64_t total_bytes = 0;
  uint64_t available_bytes = 0;
};
Result<FilesystemSpace> SpaceOf(const std::string& path);
// The memory the host can give without swapping (MemAvailable of `meminfo`, /proc/meminfo's
// format), in bytes.
Result<uint64_t> AvailableMemory(const std::string& meminfo = "/proc/meminfo");

// The directory part of a path ("a/b/c" -> "a/b", "c" -> ".", "/c" -> "/").
std::string DirName(std::string_view path);
std::string BaseName(std::string_view path);
std::string JoinPath(std::string_view a, std::string_view b);

// The absolute path of the running executable's directory.
Result<std::string> SelfExeDir();

// Sets or clears FD_CLOEXEC.
Status SetCloexec(int fd, bool on);
Status SetNonBlocking(int fd, bool on);

}  // namespace sbx::sys
