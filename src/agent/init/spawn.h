// File: spawn.h
//
// Starting processes from sbx-init (PID 1 of the sandbox). sbx-init is single-threaded and small,
// so fork() is cheap and safe. The child resets signals, starts a new session (and takes a
// controlling terminal in tty mode), makes itself one of the OOM killer's first victims
// (oom_score_adj 1000), drops to the requested user, enters the working directory, marks every
// other descriptor close-on-exec and execs, searching the exec's own PATH. Processes inherit
// sbx-init's umask, 022. Failures before exec travel back through a close-on-exec pipe, so the
// caller gets "exec \"nope\": ENOENT" instead of an exit code 127.

#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "src/agent/init/users.h"
#include "src/agent/protocol.h"
#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::agent {

struct SpawnRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // complete environment
  std::string cwd = "/";
  ResolvedUser user;
  // Descriptors for the child's 0, 1, 2. In tty mode all three are the terminal's slave side.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  bool tty = false;
  // Bit n: capability n leaves the child's bounding set (InitConfig::dropped_capabilities).
  uint64_t dropped_capabilities = 0;
};

// Returns the child's pid once it has successfully exec'd.
Result<pid_t> SpawnProcess(const SpawnRequest& request);

// Merges `overrides` (KEY=VALUE) into `base`, later entries winning, and adds PATH, HOME and (for
// tty) TERM when they are missing.
std::vector<std::string> BuildEnvironment(const std::vector<std::string>& base,
                                          const std::vector<std::string>& overrides,
                                          const ResolvedUser& user, bool tty);

// A new pseudo-terminal: the master (non-blocking, CLOEXEC) and its slave, opened through
// TIOCGPTPEER so no path lookup in /dev/pts is involved.
struct Pty {
  UniqueFd master;
  UniqueFd slave;
};
Result<Pty> OpenPty(unsigned rows, unsigned cols);
Status ResizePty(int master_fd, unsigned rows, unsigned cols);

// How a process ended, from its wait status.
ExitInfo ExitFromStatus(int status);

// One read from a process's non-blocking pipe or terminal: data (in `data`), nothing yet, or the
// end (EOF, or EIO from a terminal's master once every slave descriptor is closed).
enum class PipeRead { kData, kEmpty, kClosed };
PipeRead ReadPipe(int fd, std::string& data);

}  // namespace sbx::agent
