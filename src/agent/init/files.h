// File: files.h
//
// File operations inside the sandbox, run by sbx-init. Paths are resolved with the sandbox root as
// the root (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), relative paths against the sandbox working
// directory. Errors carry the reasons of the wire protocol (CWSANDBOX_FILE_NOT_FOUND, ...).

#pragma once

#include <sys/types.h>

#include <string>

#include "src/agent/protocol.h"
#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::agent {

// Validates and makes a path absolute: rejects empty paths, NUL bytes, paths longer than
// PATH_MAX and components longer than NAME_MAX.
Result<std::string> AbsolutePath(const std::string& cwd, const std::string& path);

// Opens a regular file for reading.
Result<std::pair<UniqueFd, FileInfo>> OpenForRead(int root_fd, const std::string& path);

Result<FileInfo> StatPath(int root_fd, const std::string& path);
Result<DirEntries> ListDirectory(int root_fd, const std::string& path, size_t max_entries);

// Creates the directory `path` with `mode` (setuid and setgid bits dropped) owned by uid:gid,
// creating missing parents (0755) when `make_parents`. Whatever already exists at `path` is left
// as it is. Returns what is at `path` afterwards, not following a final symlink: a caller that must
// not write through links (archive extraction) checks the type.
Result<FileInfo> MakeDirectory(int root_fd, const std::string& path, uint32_t mode,
                               bool make_parents, uid_t uid, gid_t gid);

// Creates or atomically replaces the symbolic link `path` -> `target`, owned by uid:gid. The
// target is stored as given; it is resolved (inside the root) only when something follows it. A
// directory at `path` is never replaced.
Status MakeSymlink(int root_fd, const std::string& path, const std::string& target,
                   bool make_parents, uid_t uid, gid_t gid);

// The target of the symbolic link `path`; kInvalidArgument if `path` is not one.
Result<std::string> ReadSymlink(int root_fd, const std::string& path);

// An atomic file replacement in progress: data goes to a temporary file next to the target,
// Commit() renames it into place; destroying an uncommitted write removes the temporary file.
class PendingWrite {
 public:
  PendingWrite() = default;
  PendingWrite(PendingWrite&&) = default;
  PendingWrite& operator=(PendingWrite&&) = default;
  PendingWrite(const PendingWrite&) = delete;
  PendingWrite& operator=(const PendingWrite&) = delete;
  ~PendingWrite();

  static Result<PendingWrite> Begin(int root_fd, const std::string& path, uint32_t mode,
                                    bool make_parents, uid_t default_uid, gid_t default_gid);
  Status Write(std::string_view data);
  Status Commit();
  const std::string& path() const { return path_; }

 private:
  UniqueFd dir_;
  UniqueFd file_;
  std::string tmp_name_;
  std::string final_name_;
  std::string path_;
  bool committed_ = false;
};

}  // namespace sbx::agent
