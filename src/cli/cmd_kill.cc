// sbx kill: end sandboxes at once.
//
// The API has no call that signals a main process: the only signals sbxd sends are those of a
// stop, SIGTERM and then, after the grace period, SIGKILL to everything. `kill` is therefore a
// stop without a grace period, and SIGKILL is the only signal it can send.

#include <cstdio>

#include "src/base/strings.h"
#include "src/cli/commands.h"

namespace sbx::cli {

void AddKillCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::vector<std::string> ids;
    std::string signal = "KILL";
    bool quiet = false;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("kill", "Kill everything in sandboxes at once");
  cmd->footer(
      "A stop without a grace period: everything in the sandbox gets SIGKILL. Waits until\n"
      "each has ended and prints its id. sbxd cannot deliver another signal to the main\n"
      "process; 'sbx stop' sends SIGTERM first.");
  cmd->add_option("SANDBOX_ID", flags->ids, "the sandboxes (ids, names or id prefixes)")
      ->required()
      ->type_name("");
  cmd->add_option("-s,--signal", flags->signal, "KILL (SIGKILL, 9), the only one sbxd can send")
      ->type_name("SIGNAL");
  cmd->add_flag("-q,--quiet", flags->quiet, "print nothing");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    const std::string& s = flags->signal;
    if (s != "KILL" && s != "SIGKILL" && s != "9" && s != "kill" && s != "sigkill") {
      return (void)ctx.Usage("--signal " + Quote(s) +
                                 ": sbxd can only kill a sandbox (KILL); 'sbx stop' sends "
                                 "SIGTERM first",
                             "kill");
    }
    StopOptions now;
    now.grace_seconds = 0;
    now.wait = true;
    StopEach(ctx, flags->ids, now, flags->quiet, flags->output == "json");
  });
}

}  // namespace sbx::cli
