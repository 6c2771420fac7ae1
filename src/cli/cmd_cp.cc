// sbx cp: files and directory trees between this machine and a sandbox, as tar streams.

#include <unistd.h>

#include <cstdio>

#include "src/base/strings.h"
#include "src/cli/attach.h"
#include "src/cli/commands.h"
#include "src/cli/format.h"

namespace sbx::cli {

namespace {

struct CpFlags {
  std::string source;
  std::string destination;
  bool follow_links = false;
  bool quiet = false;
};

int Cp(Context& ctx, const CpFlags& f) {
  auto from = SplitSandboxPath(f.source);
  auto to = SplitSandboxPath(f.destination);
  if (from.has_value() == to.has_value()) {
    return ctx.Usage("one of SRC and DEST must be SANDBOX_ID:PATH and the other a local path",
                     "cp");
  }
  auto& remote = from ? *from : *to;
  if (remote.second.empty()) {
    return ctx.Usage("empty path after " + Quote(remote.first + ":"), "cp");
  }
  Client* client = ctx.client();
  if (client == nullptr) return ctx.exit_code;
  CopyOptions options;
  options.follow_links = f.follow_links;
  options.on_skip = [&ctx](const std::string& path, const std::string& why) {
    ctx.Warn("skipped " + Quote(path) + ": " + why);
  };
  Result<CopyStats> copied = CopyStats{};
  if (to && f.source == "-") {
    // A tar stream on stdin, extracted into the directory DEST.
    copied = client->PutArchive(to->first, to->second, [](const ChunkWriter& write) -> Status {
      std::string buffer(1 << 20, '\0');
      while (true) {
        ssize_t n = read(STDIN_FILENO, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::Errno("read stdin");
        if (n == 0) return Ok();
        SBX_TRY(write(std::string_view(buffer.data(), static_cast<size_t>(n))));
      }
    });
  } else if (from && f.destination == "-") {
    // SRC as a tar stream on stdout.
    Status streamed = client->GetArchive(from->first, from->second, [](std::string_view chunk) {
      if (!WriteFully(STDOUT_FILENO, chunk)) return Status(Error::Errno("write stdout"));
      return Ok();
    });
    if (!streamed) return ctx.Report(streamed.error());
    return ctx.exit_code = kExitOk;
  } else if (to) {
    copied = client->CopyToSandbox(to->first, f.source, to->second, options);
  } else {
    copied = client->CopyFromSandbox(from->first, from->second, f.destination, options);
  }
  if (!copied) return ctx.Report(copied.error());
  if (!f.quiet && ctx.stderr_tty) {
    fprintf(stderr, "copied %lld file%s, %s\n", static_cast<long long>(copied->files),
            copied->files == 1 ? "" : "s",
            FormatBytes(static_cast<uint64_t>(copied->bytes)).c_str());
  }
  return ctx.exit_code = kExitOk;
}

}  // namespace

void AddCpCommand(CLI::App& app, Context& ctx) {
  auto flags = std::make_shared<CpFlags>();
  CLI::App* cmd = app.add_subcommand("cp", "Copy files and directories between here and a sandbox");
  cmd->footer(
      "Examples:\n"
      "  sbx cp ./src SANDBOX_ID:/work     into /work when it is a directory, else as /work\n"
      "  sbx cp SANDBOX_ID:/work/out ./    the other way, with the same rules\n"
      "A source ending in /. copies a directory's contents; DEST ending in / is a directory\n"
      "(created when missing). '-' is a tar stream on stdin (SRC) or stdout (DEST). Symlinks\n"
      "are copied as links; modes are kept (setuid bits dropped), owners are not.");
  cmd->add_option("SRC", flags->source, "SANDBOX_ID:PATH, a local path, or -")
      ->required()
      ->type_name("");
  cmd->add_option("DEST", flags->destination, "SANDBOX_ID:PATH, a local path, or -")
      ->required()
      ->type_name("");
  cmd->add_flag("-L,--follow-link", flags->follow_links,
                "copy what a local SRC symlink points to instead of the link");
  cmd->add_flag("-q,--quiet", flags->quiet, "no summary");
  cmd->callback([&ctx, flags] { Cp(ctx, *flags); });
}

}  // namespace sbx::cli
