// sbx logs: the main process's output.

#include <unistd.h>

#include "src/cli/attach.h"
#include "src/cli/commands.h"
#include "src/cli/format.h"

namespace sbx::cli {

void AddLogsCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::string id;
    bool follow = false;
    int tail = 0;
    std::string since;
    bool timestamps = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("logs", "Print the output of a sandbox's main process");
  cmd->footer(
      "stdout and stderr, interleaved as produced; also after the sandbox ended, while sbxd\n"
      "keeps its record.");
  cmd->add_option("SANDBOX_ID", flags->id, "the sandbox")->required()->type_name("");
  cmd->add_flag("-f,--follow", flags->follow, "keep printing until the main process ends");
  cmd->add_option("--tail", flags->tail, "only the last N lines")
      ->type_name("N")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--since", flags->since,
                  "only output from this time on: RFC 3339 (2024-05-01T10:00:00Z) or a "
                  "duration ago (10m)")
      ->type_name("TIME");
  cmd->add_flag("-t,--timestamps", flags->timestamps, "prefix each line with its time");
  cmd->callback([&ctx, flags] {
    LogOptions options;
    options.follow = flags->follow;
    options.tail_lines = flags->tail;
    options.timestamps = flags->timestamps;
    if (!flags->since.empty()) {
      auto since = ParseSince(flags->since, std::chrono::system_clock::now());
      if (!since) return (void)ctx.Report(since.error(), kExitUsage);
      options.since = *since;
    }
    Client* client = ctx.client();
    if (client == nullptr) return;
    auto id = ResolveId(*client, flags->id);
    if (!id) return (void)ctx.Report(id.error());
    Status streamed = client->StreamLogs(
        *id, options, [](std::string_view data) { return WriteFully(STDOUT_FILENO, data); });
    if (!streamed) return (void)ctx.Report(streamed.error());
    ctx.exit_code = kExitOk;
  });
}

}  // namespace sbx::cli
