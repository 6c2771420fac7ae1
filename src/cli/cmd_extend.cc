// sbx extend: a running sandbox's lifetime, extended.

#include <cstdio>

#include "src/base/strings.h"
#include "src/cli/commands.h"
#include "src/cli/format.h"

namespace sbx::cli {

void AddExtendCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::string id;
    std::string duration;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("extend", "Extend a running sandbox's lifetime");
  cmd->footer(
      "Adds DURATION (\"30m\", \"2h\", \"1d\", \"90\" seconds) to the sandbox's lifetime, up to\n"
      "sbxd's max_lifetime_seconds in all, and prints when sbxd will now stop it. 'sbx get' and\n"
      "'sbx ls' show the expiry.");
  cmd->add_option("SANDBOX_ID", flags->id, "the sandbox")->required()->type_name("");
  cmd->add_option("DURATION", flags->duration, "how much longer it may run")
      ->required()
      ->type_name("");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    auto seconds = ParseDuration(flags->duration);
    if (!seconds || *seconds <= 0) {
      return (void)ctx.Usage(
          "DURATION: " + Quote(flags->duration) + " is not a positive duration (e.g. 30m, 2h, 1d)",
          "extend");
    }
    Client* client = ctx.client();
    if (client == nullptr) return;
    auto id = ResolveId(*client, flags->id);
    if (!id) return (void)ctx.Report(id.error());
    auto expires = client->ExtendLifetime(*id, std::chrono::seconds(*seconds));
    if (!expires) return (void)ctx.Report(expires.error());
    if (flags->output == "json") {
      nlohmann::ordered_json out = {{"id", *id}, {"expire_time", FormatTime(*expires)}};
      printf("%s\n", out.dump(2).c_str());
      return;
    }
    auto now = std::chrono::system_clock::now();
    printf("%s expires at %s (%s)\n", id->c_str(), FormatTime(*expires).c_str(),
           FormatExpiry(*expires, now).c_str());
  });
}

}  // namespace sbx::cli
