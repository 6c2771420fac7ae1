// sbx version: this client's version and the daemon's.

#include <cstdio>

#include "src/cli/commands.h"

namespace sbx::cli {

void AddVersionCommand(CLI::App& app, Context& ctx) {
  auto client_only = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("version", "Print the versions of sbx and sbxd");
  cmd->add_flag("--client", *client_only, "only sbx's own version; do not contact sbxd");
  cmd->callback([&ctx, client_only] {
    printf("sbx %s\n", kClientVersion);
    fflush(stdout);
    if (*client_only) return;
    Client* client = ctx.client();
    if (client == nullptr) return;
    auto info = client->GetInfo();
    if (!info) return (void)ctx.Report(info.error());
    printf("sbxd %s at %s (runner %s)\n", info->version.c_str(), client->base_url().c_str(),
           info->runner_id.c_str());
    ctx.exit_code = kExitOk;
  });
}

}  // namespace sbx::cli
