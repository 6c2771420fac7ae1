// sbx exec: run a command in a running sandbox, streams attached, exit code passed through.

#include "src/cli/attach.h"
#include "src/cli/commands.h"
#include "src/cli/format.h"

namespace sbx::cli {

namespace {

struct ExecFlags {
  std::string id;
  bool interactive = false;
  bool tty = false;
  std::vector<std::string> env;
  std::vector<std::string> env_files;
  std::string workdir;
  std::string timeout;
};

int Exec(Context& ctx, const ExecFlags& f) {
  if (ctx.trailing.empty()) return ctx.Usage("exec needs a command after the sandbox id", "exec");
  if (f.tty && !ctx.stdin_tty) {
    return ctx.Usage("-t needs a terminal on stdin; drop -t to pipe input with -i", "exec");
  }
  ExecOptions exec;
  auto env = CollectEnv(f.env_files, f.env);
  if (!env) return ctx.Report(env.error(), kExitUsage);
  exec.env = std::move(*env);
  if (!f.timeout.empty()) {
    auto seconds = ParseDuration(f.timeout);
    if (!seconds) return ctx.Report(seconds.error(), kExitUsage);
    exec.timeout = std::chrono::seconds(*seconds);
  }
  if (f.workdir.empty()) {
    exec.command = ctx.trailing;
  } else {
    // The API has no working directory per exec: a shell changes into it first.
    exec.command = {"/bin/sh", "-c", "cd \"$1\" && shift && exec \"$@\"", "sh", f.workdir};
    exec.command.insert(exec.command.end(), ctx.trailing.begin(), ctx.trailing.end());
  }
  return Attach(ctx, f.id, exec, {f.interactive, f.tty});
}

}  // namespace

void AddExecCommand(CLI::App& app, Context& ctx) {
  auto flags = std::make_shared<ExecFlags>();
  CLI::App* cmd = app.add_subcommand("exec", "Run a command in a running sandbox");
  cmd->footer(
      "Full form: sbx exec [OPTIONS] SANDBOX_ID COMMAND [ARG...]\n"
      "The command's output streams here as it is produced and sbx exits with its exit code\n"
      "(124: --timeout expired, 125: sbx failed, 126: not executable, 127: not found).\n"
      "Everything after SANDBOX_ID belongs to the command. Example:\n"
      "  sbx exec -it SANDBOX_ID python3");
  cmd->add_option("SANDBOX_ID", flags->id, "the sandbox")->required()->type_name("");
  cmd->add_flag("-i,--interactive", flags->interactive, "forward stdin to the command");
  cmd->add_flag("-t,--tty", flags->tty,
                "give the command a terminal: raw mode here, window resizes forwarded");
  cmd->add_option("-e,--env", flags->env, "environment variable KEY=VALUE (or KEY: from here)")
      ->type_name("KEY=VALUE");
  cmd->add_option("--env-file", flags->env_files, "KEY=VALUE lines")->type_name("FILE");
  cmd->add_option("-w,--workdir", flags->workdir,
                  "run in this directory (through /bin/sh in the sandbox)")
      ->type_name("DIR");
  cmd->add_option("--timeout", flags->timeout,
                  "kill the command after this long (exit code 124): 30s, 5m, 1h")
      ->type_name("DURATION");
  cmd->callback([&ctx, flags] { Exec(ctx, *flags); });
}

}  // namespace sbx::cli
