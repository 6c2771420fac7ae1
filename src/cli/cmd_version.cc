// sbx version: this client's version and the daemon's.

#include <cstdio>

#include "src/cli/commands.h"
#include "src/cli/format.h"

namespace sbx::cli {

void AddVersionCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    bool client_only = false;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("version", "Print the versions of sbx and sbxd");
  cmd->add_flag("--client", flags->client_only, "only sbx's own version; do not contact sbxd");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    bool json = flags->output == "json";
    nlohmann::ordered_json out = {{"client", {{"version", kClientVersion}}}};
    // Printed before sbxd is asked, so an unreachable sbxd still leaves sbx's version shown.
    auto flush = [&] {
      if (json) printf("%s\n", out.dump(2).c_str());
    };
    if (!json) {
      printf("sbx %s\n", kClientVersion);
      fflush(stdout);
    }
    if (flags->client_only) return flush();
    Client* client = ctx.client();
    if (client == nullptr) return flush();
    auto info = client->GetInfo();
    if (!info) {
      flush();
      return (void)ctx.Report(info.error());
    }
    if (json) {
      out["server"] = {
          {"version", info->version}, {"url", client->base_url()}, {"runner_id", info->runner_id}};
      return flush();
    }
    printf("sbxd %s at %s (runner %s)\n", info->version.c_str(), client->base_url().c_str(),
           info->runner_id.c_str());
    ctx.exit_code = kExitOk;
  });
}

}  // namespace sbx::cli
