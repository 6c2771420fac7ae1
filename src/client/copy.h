// File: copy.h
//
// The host half of `sbx cp`: a file or directory tree of this machine written as a tar stream,
// and a tar stream from a sandbox extracted onto this machine. Extraction treats the archive as
// hostile (it comes out of a sandbox): names must be relative without "..", nothing is written
// through a symlink (every directory is opened with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS below
// the destination), setuid/setgid bits are dropped, owners are not restored, and devices, FIFOs
// and hard links are skipped.

#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "sbx/client.h"

namespace sbx::client {

// Writes `path` as tar entries: the top entry is named `top`, or, when `top` is empty, only the
// directory's contents are written (named relative to it). `follow_top` follows a symlink at
// `path` itself; symlinks below are always archived as links.
Status WriteHostTree(const std::string& path, const std::string& top, bool follow_top,
                     const CopyOptions& options, const ChunkWriter& write, CopyStats* stats);

// Extracts the tar stream that `next` yields chunk by chunk (false at the end) to `host_path`,
// with `docker cp`'s rules: into it when it is an existing directory (or ends in "/"), as it
// otherwise; an archive whose top entry is "." puts its contents into `host_path`.
Result<CopyStats> ExtractToHost(const std::function<bool(std::string*)>& next,
                                const std::string& host_path, const CopyOptions& options);

// The type flag of the first real entry of a tar stream ('0' file, '5' directory, '2' symlink,
// ...) once `data` holds enough of it; nullopt while more bytes are needed; an error for bytes
// that are not a tar stream.
Result<std::optional<char>> FirstEntryType(std::string_view data);

}  // namespace sbx::client
