// sbx ls: list sandboxes.

#include <cstdio>

#include "src/base/strings.h"
#include "src/cli/commands.h"
#include "src/cli/format.h"

namespace sbx::cli {

namespace {

struct LsFlags {
  bool all = false;
  std::vector<std::string> tags;
  std::string status;
  std::string output = "table";
  bool quiet = false;
};

std::string StatusCell(const Sandbox& s) {
  std::string out(StateName(s.state));
  if (s.exit_code) out += " (" + std::to_string(*s.exit_code) + ")";
  return out;
}

int Ls(Context& ctx, const LsFlags& f) {
  ListOptions options;
  options.tags = f.tags;
  options.include_terminated = f.all;
  if (!f.status.empty()) {
    auto state = ParseState(f.status);
    if (!state) {
      return ctx.Usage("unknown status " + Quote(f.status) +
                           " (pending, creating, running, completed, failed, terminating, "
                           "terminated)",
                       "ls");
    }
    options.state = state;
    // Asking for an ended state means asking for ended sandboxes.
    if (IsTerminal(*state)) options.include_terminated = true;
  }
  Client* client = ctx.client();
  if (client == nullptr) return ctx.exit_code;
  auto listed = client->List(options);
  if (!listed) return ctx.Report(listed.error());
  if (f.quiet) {
    for (const auto& s : *listed) printf("%s\n", s.id.c_str());
    return ctx.exit_code = kExitOk;
  }
  if (f.output == "json") {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& s : *listed) out.push_back(ToJson(s));
    printf("%s\n", out.dump(2).c_str());
    return ctx.exit_code = kExitOk;
  }
  auto now = std::chrono::system_clock::now();
  std::vector<std::vector<std::string>> rows = {
      {"SANDBOX ID", "NAME", "STATUS", "IMAGE", "CREATED", "EXPIRES", "TAGS"}};
  for (const auto& s : *listed) {
    auto expiry = s.expire_time();
    auto name = s.annotations.find(kNameAnnotation);
    rows.push_back(
        {s.id, name != s.annotations.end() ? name->second : "-", StatusCell(s),
         s.image.empty() ? "-" : s.image, s.create_time ? FormatAge(*s.create_time, now) : "-",
         expiry ? FormatExpiry(*expiry, now) : "-", s.tags.empty() ? "-" : Join(s.tags, ",")});
  }
  fputs(Table(rows).c_str(), stdout);
  return ctx.exit_code = kExitOk;
}

}  // namespace

void AddLsCommand(CLI::App& app, Context& ctx) {
  auto flags = std::make_shared<LsFlags>();
  CLI::App* cmd = app.add_subcommand("ls", "List sandboxes");
  cmd->footer(
      "Those not ended; with --all also the ended ones sbxd still remembers (24 hours by\n"
      "default). Columns: SANDBOX ID, NAME, STATUS (with the exit code once ended), IMAGE, "
      "CREATED,\n"
      "EXPIRES (when sbxd stops it for its lifetime; 'sbx extend' adds time), TAGS.");
  cmd->alias("list");
  cmd->add_flag("-a,--all", flags->all, "include ended sandboxes");
  cmd->add_option("-t,--tag", flags->tags, "only sandboxes with this tag (repeatable: all of them)")
      ->type_name("TAG");
  cmd->add_option("-s,--status", flags->status, "only sandboxes in this state, e.g. running")
      ->type_name("STATE");
  cmd->add_option("-o,--output", flags->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->type_name("FORMAT");
  cmd->add_flag("-q,--quiet", flags->quiet, "only the ids, one a line");
  cmd->callback([&ctx, flags] { Ls(ctx, *flags); });
}

}  // namespace sbx::cli
