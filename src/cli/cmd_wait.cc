// sbx wait: block until sandboxes have ended and print their exit codes.

#include <cstdio>

#include "src/cli/commands.h"
#include "src/cli/format.h"

namespace sbx::cli {

namespace {

// Long enough for any lifetime sbxd grants; the sandbox's own lifetime ends the wait first.
constexpr auto kWaitForever = std::chrono::hours(24 * 366);

}  // namespace

void AddWaitCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::vector<std::string> ids;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("wait", "Wait until sandboxes have ended; print exit codes");
  cmd->footer(
      "Blocks until each sandbox has ended, then prints the exit code of its main process, one\n"
      "line per sandbox in the order given. A sandbox that ended without one (it failed to\n"
      "start) is an error naming its state and reason.");
  cmd->add_option("SANDBOX_ID", flags->ids, "the sandboxes (ids, names or id prefixes)")
      ->required()
      ->type_name("");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    Client* client = ctx.client();
    if (client == nullptr) return;
    bool json = flags->output == "json";
    int code = kExitOk;
    nlohmann::ordered_json ended_json = nlohmann::ordered_json::array();
    for (const auto& reference : flags->ids) {
      auto id = ResolveId(*client, reference);
      auto ended = id ? client->WaitUntilDone(*id, kWaitForever) : Result<Sandbox>(id.error());
      if (!ended) {
        code = ctx.Report(ended.error());
        if (code == kExitUnreachable) break;
        continue;
      }
      if (json) {
        ended_json.push_back(ToJson(*ended));
        continue;
      }
      if (!ended->exit_code) {
        code = ctx.Report(Error::FailedPrecondition(
            "sandbox " + ended->id + " ended " + std::string(StateName(ended->state)) +
            (ended->state_reason.empty() ? "" : " (" + ended->state_reason + ")") +
            " without an exit code"));
        continue;
      }
      printf("%d\n", *ended->exit_code);
      fflush(stdout);
    }
    if (json) printf("%s\n", ended_json.dump(2).c_str());
    ctx.exit_code = code;
  });
}

}  // namespace sbx::cli
