#include "src/cli/cli.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "sbx/client.h"
#include "src/base/strings.h"
#include "src/cli/commands.h"
#include "src/cli/context.h"

namespace sbx::cli {

namespace {

const CLI::Option* FindOption(const CLI::App& app, const std::string& name, bool is_long) {
  for (const CLI::Option* option : app.get_options()) {
    const auto& names = is_long ? option->get_lnames() : option->get_snames();
    if (std::find(names.begin(), names.end(), name) != names.end()) return option;
  }
  return nullptr;
}

// How many arguments `arg` (an option of `app`) uses: 1, or 2 when its value is the next one.
size_t OptionWidth(const CLI::App& app, const std::string& arg) {
  if (StartsWith(arg, "--")) {
    if (arg.find('=') != std::string::npos) return 1;
    const CLI::Option* option = FindOption(app, arg.substr(2), true);
    return option != nullptr && option->get_expected_max() > 0 ? 2 : 1;
  }
  // A cluster of short flags (-it); a short option taking a value takes the rest of the cluster,
  // or the next argument when it is last.
  for (size_t k = 1; k < arg.size(); ++k) {
    const CLI::Option* option = FindOption(app, std::string(1, arg[k]), false);
    if (option != nullptr && option->get_expected_max() > 0) return k + 1 == arg.size() ? 2 : 1;
  }
  return 1;
}

bool IsOption(const std::string& arg) { return arg.size() > 1 && arg[0] == '-'; }

// The most specific subcommand that was parsed, for "Run 'sbx images pull --help'".
std::string ParsedCommand(const CLI::App& app) {
  std::string name;
  const CLI::App* current = &app;
  while (true) {
    auto parsed = current->get_subcommands();
    if (parsed.empty()) return name;
    current = parsed.front();
    name += (name.empty() ? "" : " ") + current->get_name();
  }
}

// "sbx images pull": the words that lead to `app`.
std::string CommandPath(const CLI::App* app) {
  std::string path = app->get_name();
  for (const CLI::App* parent = app->get_parent(); parent != nullptr;
       parent = parent->get_parent()) {
    path = parent->get_name() + " " + path;
  }
  return path;
}

// Usage lines that name the command, as users type it: "Usage: sbx run [OPTIONS] IMAGE
// [CMD [ARG...]]" (CLI11's own leave the command out of a subcommand's).
class UsageFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App* app, std::string /*name*/) const override {
    std::string path = CommandPath(app);
    std::string out = "Usage: " + path;
    if (!app->get_options([](const CLI::Option* o) { return o->nonpositional(); }).empty()) {
      out += " [OPTIONS]";
    }
    for (const CLI::Option* o :
         app->get_options([](const CLI::Option* o) { return o->get_positional(); })) {
      std::string word = o->get_name(true, false);
      if (o->get_items_expected_max() > 1) word += "...";
      out += " " + (o->get_required() ? word : "[" + word + "]");
    }
    // What `run` and `exec` split off before parsing.
    if (path == "sbx run") out += " [CMD [ARG...]]";
    if (path == "sbx exec") out += " COMMAND [ARG...]";
    if (!app->get_subcommands([](const CLI::App* s) { return !s->get_name().empty(); }).empty()) {
      out += " COMMAND";
    }
    return out + "\n";
  }
};

}  // namespace

void AddOutputOption(CLI::App* cmd, std::string& output) {
  cmd->add_option("-o,--output", output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->type_name("FORMAT");
}

std::vector<std::string> SplitTrailingCommand(CLI::App& app, std::vector<std::string>& args) {
  size_t i = 0;
  while (i < args.size() && IsOption(args[i]) && args[i] != "--") i += OptionWidth(app, args[i]);
  if (i >= args.size()) return {};
  CLI::App* verb = nullptr;
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (sub->check_name(args[i])) verb = sub;
  }
  if (verb == nullptr || (verb->get_name() != "run" && verb->get_name() != "exec")) return {};
  for (++i; i < args.size(); ++i) {
    if (args[i] == "--") {
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
      break;
    }
    if (!IsOption(args[i])) break;
    i += OptionWidth(*verb, args[i]) - 1;
  }
  if (i >= args.size()) return {};
  std::vector<std::string> command(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  args.resize(i + 1);
  // `sbx exec ID -- cmd`: the separator is ours, not the command's.
  if (!command.empty() && command.front() == "--") command.erase(command.begin());
  return command;
}

std::vector<std::string> DefaultShell() {
  return {"/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"};
}

int Main(int argc, char** argv) {
  // A closed pipe shows as a failed write, handled where it happens.
  signal(SIGPIPE, SIG_IGN);
  Context ctx;
  CLI::App app{
      "sbx: run and manage sandboxes on sbxd, locally or remotely.\n\n"
      "Environment: SBX_BASE_URL (sbxd's address: unix:///path, http://host:port, "
      "https://host:port; default unix:///run/sbx/sbxd.sock), SBX_API_KEY (sent as "
      "\"authorization: Bearer <key>\").",
      "sbx"};
  app.require_subcommand(1);
  app.formatter(std::make_shared<UsageFormatter>());
  app.set_version_flag("--version", std::string("sbx ") + kClientVersion);
  app.add_option("--url", ctx.base_url,
                 "sbxd's address (overrides SBX_BASE_URL): unix:///path, http://host:port or "
                 "https://host:port")
      ->type_name("URL");
  app.footer(
      "Run 'sbx COMMAND --help' for a command's options. Exit codes: 0 ok, 1 failed, 2 usage, "
      "3 sbxd unreachable; run/exec/sh pass the command's code through (125: sbx failed, 126: "
      "not executable, 127: not found, 124: timed out). docs/cli.md has the whole reference.");
  AddRunCommand(app, ctx);
  AddExecCommand(app, ctx);
  AddShCommand(app, ctx);
  AddLsCommand(app, ctx);
  AddGetCommand(app, ctx);
  AddStatsCommand(app, ctx);
  AddLogsCommand(app, ctx);
  AddStopCommand(app, ctx);
  AddKillCommand(app, ctx);
  AddWaitCommand(app, ctx);
  AddRmCommand(app, ctx);
  AddExtendCommand(app, ctx);
  AddPurgeCommand(app, ctx);
  AddCpCommand(app, ctx);
  AddImagesCommand(app, ctx);
  AddDoctorCommand(app, ctx);
  AddVersionCommand(app, ctx);
  AddCompletionCommand(app, ctx);

  std::vector<std::string> args(argv + 1, argv + argc);
  // CLI11 would only say that a subcommand is required.
  size_t first = 0;
  while (first < args.size() && IsOption(args[first])) first += OptionWidth(app, args[first]);
  if (first < args.size()) {
    auto subs = app.get_subcommands([](CLI::App*) { return true; });
    if (std::none_of(subs.begin(), subs.end(),
                     [&](CLI::App* sub) { return sub->check_name(args[first]); })) {
      return ctx.Usage("unknown command " + Quote(args[first]), "");
    }
  }
  ctx.trailing = SplitTrailingCommand(app, args);
  std::reverse(args.begin(), args.end());  // CLI11 consumes a vector from the back
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return ctx.Usage(e.what(), ParsedCommand(app));
  }
  return ctx.exit_code;
}

}  // namespace sbx::cli
