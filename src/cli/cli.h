// File: cli.h
//
// `sbx`, the command line of sbx, on the C++ client library. Main() parses the command line,
// runs one command and returns its exit code (docs/cli.md).

#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace sbx::cli {

int Main(int argc, char** argv);

// `run` and `exec` take a command after their positional argument: everything from there on
// belongs to that command, flags included, so it is cut from `args` before CLI11 parses them.
// Exposed for tests.
std::vector<std::string> SplitTrailingCommand(CLI::App& app, std::vector<std::string>& args);

}  // namespace sbx::cli
