// sbx sh: an interactive shell in a running sandbox.

#include "src/base/strings.h"
#include "src/cli/attach.h"
#include "src/cli/commands.h"

namespace sbx::cli {

void AddShCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::string id;
    std::string shell;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("sh", "Open a shell in a running sandbox");
  cmd->footer(
      "bash when the image has it, else sh. With a terminal on stdin the shell gets one too\n"
      "(raw mode, window resizes forwarded); otherwise stdin is piped to it. Exits with the\n"
      "shell's exit code.");
  cmd->add_option("SANDBOX_ID", flags->id, "the sandbox")->required()->type_name("");
  cmd->add_option("--cmd", flags->shell, "the shell to run instead, e.g. \"/bin/bash -l\"")
      ->type_name("SHELL");
  cmd->callback([&ctx, flags] {
    ExecOptions exec;
    exec.command = DefaultShell();
    if (!flags->shell.empty()) {
      // "--cmd '/bin/bash -l'": words separated by spaces.
      exec.command.clear();
      for (auto& word : Split(flags->shell, ' ')) {
        if (!word.empty()) exec.command.push_back(std::move(word));
      }
      if (exec.command.empty()) return (void)ctx.Usage("--cmd is empty", "sh");
    }
    Attach(ctx, flags->id, exec, {true, ctx.stdin_tty});
  });
}

}  // namespace sbx::cli
