// sbx rm: remove sandboxes at once.

#include <cstdio>

#include "src/cli/commands.h"

namespace sbx::cli {

void AddRmCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::vector<std::string> ids;
    bool missing_ok = false;
    bool quiet = false;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("rm", "Remove sandboxes at once");
  cmd->footer(
      "Everything in them is killed without a grace period and their files are deleted ('sbx\n"
      "stop' ends them gracefully). Prints each id and returns without waiting. Ended\n"
      "sandboxes stay listed by 'sbx ls --all' until sbxd's retention period passes.");
  cmd->alias("delete");
  cmd->add_option("SANDBOX_ID", flags->ids, "the sandboxes")->required()->type_name("");
  cmd->add_flag("--missing-ok", flags->missing_ok, "a sandbox that does not exist is no error");
  cmd->add_flag("-q,--quiet", flags->quiet, "print nothing");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    StopOptions now;
    now.grace_seconds = 0;
    now.missing_ok = flags->missing_ok;
    now.wait = false;
    StopEach(ctx, flags->ids, now, flags->quiet, flags->output == "json");
  });
}

}  // namespace sbx::cli
