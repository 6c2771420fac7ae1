// sbx cp: files and directory trees between this machine and a sandbox, as tar streams.

#include <unistd.h>

#include <algorithm>
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
  std::string output = "table";
};

// A progress line on a terminal, redrawn in place, once a copy is big enough to take a while.
class CopyProgress {
 public:
  explicit CopyProgress(bool enabled) : enabled_(enabled) {}

  void Update(int64_t bytes) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (bytes < kBigCopy || (shown_ && now - last_ < kRedrawInterval)) return;
    last_ = now;
    double seconds = std::max(std::chrono::duration<double>(now - start_).count(), 0.001);
    auto rate = static_cast<uint64_t>(static_cast<double>(bytes) / seconds);
    fprintf(stderr, "\r\x1b[2Kcopying: %s (%s/s)",
            FormatBytes(static_cast<uint64_t>(bytes)).c_str(), FormatBytes(rate).c_str());
    fflush(stderr);
    shown_ = true;
  }

  // Clears the line, so what follows starts at the left margin.
  void Finish() {
    if (shown_) fprintf(stderr, "\r\x1b[2K");
    shown_ = false;
  }

 private:
  static constexpr int64_t kBigCopy = 16 << 20;
  static constexpr auto kRedrawInterval = std::chrono::milliseconds(100);
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_{};
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
  auto id = ResolveId(*client, remote.first);
  if (!id) return ctx.Report(id.error());
  remote.first = *id;
  CopyProgress progress(ctx.stderr_tty && !f.quiet);
  CopyOptions options;
  options.on_progress = [&progress](int64_t bytes) { progress.Update(bytes); };
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
  progress.Finish();
  if (!copied) return ctx.Report(copied.error());
  if (f.output == "json") {
    nlohmann::ordered_json out = {{"files", copied->files}, {"bytes", copied->bytes}};
    printf("%s\n", out.dump(2).c_str());
  } else if (!f.quiet && ctx.stderr_tty) {
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
  cmd->add_flag("-q,--quiet", flags->quiet, "no summary and no progress line");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] { Cp(ctx, *flags); });
}

}  // namespace sbx::cli
