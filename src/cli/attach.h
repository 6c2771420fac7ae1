// File: attach.h
//
// A command running in a sandbox with this process's streams attached: output to stdout and
// stderr as it is produced, stdin forwarded (-i), and with -t a terminal in raw mode whose
// resizes are forwarded. Ctrl-C (outside raw mode), SIGTERM and SIGHUP kill the command.
// Used by `exec`, `sh` and `run -it`.

#pragma once

#include <string>

#include "sbx/client.h"
#include "src/cli/context.h"

namespace sbx::cli {

struct AttachOptions {
  bool forward_stdin = false;
  bool tty = false;
};

// `reference` is a sandbox id, name or id prefix. Returns the command's exit code, or one of the
// codes of context.h for failures of sbx itself (already reported).
int Attach(Context& ctx, const std::string& reference, ExecOptions exec,
           const AttachOptions& options);

// Exit code and report for an error starting or running a command: 127 for a missing command,
// 126 for one that cannot be executed, 124 for a timeout, else 125.
int ReportCommandError(Context& ctx, const Error& error);

// Writes everything to `fd`; false when it cannot (a closed pipe).
bool WriteFully(int fd, std::string_view data);

}  // namespace sbx::cli
