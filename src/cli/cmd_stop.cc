// sbx stop: stop sandboxes gracefully.

#include <cstdio>

#include "src/cli/commands.h"
#include "src/cli/format.h"

namespace sbx::cli {

void AddStopCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::vector<std::string> ids;
    int grace = 10;
    bool missing_ok = false;
    bool no_wait = false;
    bool quiet = false;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("stop", "Stop sandboxes gracefully");
  cmd->footer(
      "SIGTERM to the main process; after the grace period everything in the sandbox is\n"
      "killed. Waits until each has ended and prints its id. A sandbox's files are gone once\n"
      "it ends; its record and logs stay for sbxd's retention period.");
  cmd->add_option("SANDBOX_ID", flags->ids, "the sandboxes")->required()->type_name("");
  cmd->add_option("-g,--grace", flags->grace, "seconds between SIGTERM and SIGKILL (default 10)")
      ->type_name("SECONDS")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--missing-ok", flags->missing_ok, "a sandbox that does not exist is no error");
  cmd->add_flag("--no-wait", flags->no_wait, "return once the stop is requested");
  cmd->add_flag("-q,--quiet", flags->quiet, "print nothing");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    StopOptions options;
    options.grace_seconds = flags->grace;
    options.missing_ok = flags->missing_ok;
    options.wait = !flags->no_wait;
    StopEach(ctx, flags->ids, options, flags->quiet, flags->output == "json");
  });
}

void StopEach(Context& ctx, const std::vector<std::string>& ids, const StopOptions& options,
              bool quiet, bool json) {
  Client* client = ctx.client();
  if (client == nullptr) return;
  int code = kExitOk;
  nlohmann::ordered_json stopped_json = nlohmann::ordered_json::array();
  for (const auto& reference : ids) {
    auto id = ResolveId(*client, reference);
    if (!id) {
      code = ctx.Report(id.error());
      if (code == kExitUnreachable) break;
      continue;
    }
    auto stopped = client->Stop(*id, options);
    if (!stopped) {
      code = ctx.Report(stopped.error());
      if (code == kExitUnreachable) break;
      continue;
    }
    if (!*stopped) continue;
    if (json) {
      stopped_json.push_back(ToJson(**stopped));
    } else if (!quiet) {
      printf("%s\n", id->c_str());
      fflush(stdout);
    }
  }
  if (json) printf("%s\n", stopped_json.dump(2).c_str());
  ctx.exit_code = code;
}

}  // namespace sbx::cli
