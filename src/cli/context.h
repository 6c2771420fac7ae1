// File: context.h
//
// What every `sbx` command shares: the global options, the client (connected on first use),
// error reporting with the documented exit codes, and which terminals are attached.

#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sbx/client.h"

namespace sbx::cli {

// Exit codes (docs/cli.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;      // the operation failed
inline constexpr int kExitUsage = 2;        // bad flags or arguments
inline constexpr int kExitUnreachable = 3;  // sbxd cannot be reached
// run, exec and sh pass the command's exit code through; their own failures use these.
inline constexpr int kExitTimeout = 124;          // --timeout expired; the command was killed
inline constexpr int kExitSbxFailed = 125;        // sbx failed before or while running it
inline constexpr int kExitCannotInvoke = 126;     // the command is not executable
inline constexpr int kExitCommandNotFound = 127;  // the command does not exist
inline constexpr int kExitInterrupted = 130;      // Ctrl-C

class Context {
 public:
  Context();

  // --url; empty: $SBX_BASE_URL, else the local socket.
  std::string base_url;
  // What main() returns; commands set it.
  int exit_code = kExitOk;
  bool stdin_tty = false;
  bool stdout_tty = false;
  bool stderr_tty = false;

  // The client, connected on first use; on failure the error is reported and exit_code set.
  Client* client();

  // Prints "sbx: <message> [REASON]" (and a hint for well-known reasons) to stderr, sets and
  // returns the exit code: kExitUnreachable for an absent daemon, else `failure_code`.
  int Report(const Error& error, int failure_code = kExitFailure);
  // A usage error: the message and a pointer to --help; exit code 2.
  int Usage(const std::string& message, const std::string& command);
  void Warn(const std::string& message) const;

  // The command after the positional argument of `run` and `exec` (split off before CLI11
  // parses, so the command's own flags are not taken for ours).
  std::vector<std::string> trailing;

 private:
  std::optional<Client> client_;
};

// The annotation that holds a sandbox's name (`sbx run --name`); sbxd itself has no names.
inline constexpr const char* kNameAnnotation = "sbx.name";

// What a user typed for a sandbox, made an id: a full id, a name given with `run --name`, or a
// unique prefix of an id. A prefix matching several ids is an error listing them; a reference
// matching nothing is returned as it is, so sbxd's own "not found" reaches the user.
Result<std::string> ResolveId(Client& client, const std::string& reference);

// The lines of a file or stdin ("-"), for --env-file.
Result<std::vector<std::string>> ReadLines(const std::string& path);

// -e KEY=VALUE / -e KEY and --env-file FILE (KEY=VALUE lines; blank lines and # comments are
// skipped) merged, later ones winning.
Result<std::map<std::string, std::string>> CollectEnv(const std::vector<std::string>& files,
                                                      const std::vector<std::string>& assignments);

}  // namespace sbx::cli
