// sbx purge: stop every sandbox with given tags.

#include <algorithm>
#include <cstdio>

#include "src/base/strings.h"
#include "src/cli/commands.h"
#include "src/cli/format.h"

namespace sbx::cli {

void AddPurgeCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::vector<std::string> tags;
    bool all = false;
    bool yes = false;
    bool dry_run = false;
    bool no_wait = false;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("purge", "Stop every sandbox with the given tags");
  cmd->footer(
      "Every sandbox that carries all the given tags (or, with --all --yes, every sandbox you\n"
      "own), for example the leftovers of a batch job:\n"
      "  sbx purge --tag job-42");
  cmd->add_option("-t,--tag", flags->tags, "tag the sandboxes carry (repeatable: all of them)")
      ->type_name("TAG");
  cmd->add_flag("--all", flags->all, "every sandbox you own (needs --yes)");
  cmd->add_flag("-y,--yes", flags->yes, "confirm --all");
  cmd->add_flag("--dry-run", flags->dry_run, "only count what would be stopped");
  cmd->add_flag("--no-wait", flags->no_wait, "return once the stops are requested");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    if (flags->tags.empty() && !flags->all) {
      return (void)ctx.Usage("purge needs --tag TAG (or --all --yes)", "purge");
    }
    if (flags->all && !flags->tags.empty()) {
      return (void)ctx.Usage("--all and --tag exclude each other", "purge");
    }
    if (flags->all && !flags->yes && !flags->dry_run) {
      return (void)ctx.Usage("--all stops every sandbox you own; add --yes to confirm", "purge");
    }
    Client* client = ctx.client();
    if (client == nullptr) return;
    // The purge answers with a count only: the sandboxes to wait for are those it was to stop.
    std::vector<std::string> waiting;
    if (!flags->dry_run && !flags->no_wait) {
      ListOptions options;
      options.tags = flags->tags;
      auto listed = client->List(options);
      if (!listed) return (void)ctx.Report(listed.error());
      for (const auto& s : *listed) waiting.push_back(s.id);
    }
    auto purged = client->Purge(flags->tags, flags->all, flags->dry_run);
    if (!purged) return (void)ctx.Report(purged.error());
    for (const auto& id : purged->failed_ids) {
      fprintf(stderr, "sbx: could not stop %s\n", id.c_str());
    }
    int code = purged->failed_ids.empty() ? kExitOk : kExitFailure;
    for (const auto& id : waiting) {
      if (std::find(purged->failed_ids.begin(), purged->failed_ids.end(), id) !=
          purged->failed_ids.end()) {
        continue;
      }
      // The longest grace period a purge gives, and then some.
      auto ended = client->WaitUntilDone(id, std::chrono::seconds(120));
      if (!ended && ended.error().code() != Code::kNotFound) code = ctx.Report(ended.error());
    }
    if (flags->output == "json") {
      nlohmann::ordered_json out = {{"count", purged->count},
                                    {"dry_run", flags->dry_run},
                                    {"failed_ids", purged->failed_ids}};
      printf("%s\n", out.dump(2).c_str());
    } else {
      const char* verb = flags->dry_run ? "would stop" : "stopped";
      printf("%s %d sandbox%s\n", verb, purged->count, purged->count == 1 ? "" : "es");
    }
    ctx.exit_code = code;
  });
}

}  // namespace sbx::cli
