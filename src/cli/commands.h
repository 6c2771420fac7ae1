// File: commands.h
//
// One function per verb adds its subcommand to the app; each lives in cmd_<verb>.cc.

#pragma once

#include <CLI/CLI.hpp>

#include "src/cli/context.h"

namespace sbx::cli {

void AddRunCommand(CLI::App& app, Context& ctx);
void AddExecCommand(CLI::App& app, Context& ctx);
void AddShCommand(CLI::App& app, Context& ctx);
void AddLsCommand(CLI::App& app, Context& ctx);
void AddGetCommand(CLI::App& app, Context& ctx);
void AddLogsCommand(CLI::App& app, Context& ctx);
void AddStopCommand(CLI::App& app, Context& ctx);
void AddRmCommand(CLI::App& app, Context& ctx);
void AddExtendCommand(CLI::App& app, Context& ctx);
void AddPurgeCommand(CLI::App& app, Context& ctx);
void AddCpCommand(CLI::App& app, Context& ctx);
void AddImagesCommand(CLI::App& app, Context& ctx);
void AddDoctorCommand(CLI::App& app, Context& ctx);
void AddVersionCommand(CLI::App& app, Context& ctx);
void AddCompletionCommand(CLI::App& app, Context& ctx);

void AddWaitCommand(CLI::App& app, Context& ctx);
void AddKillCommand(CLI::App& app, Context& ctx);
void AddStatsCommand(CLI::App& app, Context& ctx);

// -o/--output table|json, for every command that prints something.
void AddOutputOption(CLI::App* cmd, std::string& output);

// Stops each sandbox (an id, a name or an id prefix) in turn with `options` and prints the ids it
// stopped (unless `quiet`), or with `json` an array of the sandboxes as they were left; sets
// ctx.exit_code from the last failure, and gives up once sbxd is unreachable. stop, rm and kill.
void StopEach(Context& ctx, const std::vector<std::string>& ids, const StopOptions& options,
              bool quiet, bool json);

// The interactive shell `sh` starts when not told which: bash when the image has it, else sh.
std::vector<std::string> DefaultShell();

}  // namespace sbx::cli
