// sbx stats: what running sandboxes use (CPU, memory, processes, disk), once or refreshed.

#include <poll.h>

#include <cstdio>

#include "src/base/strings.h"
#include "src/cli/commands.h"
#include "src/cli/format.h"
#include "src/cli/terminal.h"

namespace sbx::cli {

namespace {

constexpr int kRefreshMs = 1000;

struct Target {
  std::string id;
  std::string name;
};

std::string NameOf(const Sandbox& s) {
  auto name = s.annotations.find(kNameAnnotation);
  return name != s.annotations.end() ? name->second : "";
}

std::string Percent(int64_t thousandths) {
  char text[32];
  snprintf(text, sizeof text, "%.1f%%", static_cast<double>(thousandths) / 10.0);
  return text;
}

std::string OfLimit(int64_t used, int64_t limit) {
  return FormatBytes(static_cast<uint64_t>(used)) + " / " +
         (limit > 0 ? FormatBytes(static_cast<uint64_t>(limit)) : std::string("-"));
}

std::string Table(const std::vector<std::pair<Target, SandboxUsage>>& rows) {
  std::vector<std::vector<std::string>> cells = {
      {"SANDBOX ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "PIDS", "DISK USED / SIZE"}};
  for (const auto& [target, u] : rows) {
    std::string memory_percent =
        u.memory_limit_bytes > 0 ? Percent(u.memory_bytes * 1000 / u.memory_limit_bytes) : "-";
    cells.push_back({target.id, target.name.empty() ? "-" : target.name, Percent(u.cpu_millicores),
                     OfLimit(u.memory_bytes, u.memory_limit_bytes), memory_percent,
                     std::to_string(u.pids), OfLimit(u.disk_used_bytes, u.disk_total_bytes)});
  }
  return ::sbx::cli::Table(cells);
}

nlohmann::ordered_json ToJson(const Target& target, const SandboxUsage& u) {
  nlohmann::ordered_json j;
  j["id"] = target.id;
  j["name"] = target.name;
  j["cpu_millicores"] = u.cpu_millicores;
  j["cpu_seconds"] = std::chrono::duration<double>(u.cpu_usage).count();
  j["memory_bytes"] = u.memory_bytes;
  j["memory_limit_bytes"] = u.memory_limit_bytes;
  j["pids"] = u.pids;
  j["disk_used_bytes"] = u.disk_used_bytes;
  j["disk_total_bytes"] = u.disk_total_bytes;
  j["read_time"] = u.read_time ? nlohmann::ordered_json(FormatTime(*u.read_time))
                               : nlohmann::ordered_json(nullptr);
  return j;
}

// The caller's running sandboxes, for a stats without ids.
Result<std::vector<Target>> RunningSandboxes(Client& client) {
  ListOptions options;
  options.state = SandboxState::kRunning;
  SBX_ASSIGN_OR_RETURN(auto sandboxes, client.List(options));
  std::vector<Target> targets;
  for (const auto& s : sandboxes) targets.push_back({s.id, NameOf(s)});
  return targets;
}

}  // namespace

void AddStatsCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::vector<std::string> ids;
    bool no_stream = false;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("stats", "Show what running sandboxes use: CPU, memory, disk");
  cmd->footer(
      "Without SANDBOX_ID: every running sandbox of yours. On a terminal the table is redrawn\n"
      "every second until Ctrl-C; --no-stream (or output that is not a terminal, or -o json)\n"
      "prints it once. CPU % is of one CPU (200% is two), averaged since the sandbox's previous\n"
      "reading at least a second earlier (since its start for the first); memory includes the\n"
      "page cache; PIDS counts processes and threads; DISK is its writable layer, as df counts.");
  cmd->add_option("SANDBOX_ID", flags->ids, "the sandboxes (ids, names or id prefixes)")
      ->type_name("");
  cmd->add_flag("--no-stream", flags->no_stream, "print once instead of refreshing");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    Client* client = ctx.client();
    if (client == nullptr) return;
    bool json = flags->output == "json";
    bool stream = !flags->no_stream && !json && ctx.stdout_tty;
    int code = kExitOk;
    std::vector<Target> named;
    for (const auto& reference : flags->ids) {
      auto id = ResolveId(*client, reference);
      auto sandbox = id ? client->Get(*id) : Result<Sandbox>(id.error());
      if (!sandbox) {
        code = ctx.Report(sandbox.error());
        if (code == kExitUnreachable) return;
        continue;
      }
      named.push_back({sandbox->id, NameOf(*sandbox)});
    }
    if (!flags->ids.empty() && named.empty()) {
      ctx.exit_code = code;
      return;
    }
    std::unique_ptr<SignalWatcher> signals;
    if (stream) {
      auto watched = SignalWatcher::Watch({SIGINT, SIGTERM, SIGHUP});
      if (!watched) {
        ctx.exit_code = ctx.Report(watched.error());
        return;
      }
      signals = std::move(*watched);
    }
    while (true) {
      std::vector<Target> targets = named;
      if (flags->ids.empty()) {
        auto running = RunningSandboxes(*client);
        if (!running) {
          ctx.exit_code = ctx.Report(running.error());
          return;
        }
        targets = std::move(*running);
      }
      std::vector<std::pair<Target, SandboxUsage>> rows;
      for (const auto& target : targets) {
        auto usage = client->GetUsage(target.id);
        if (usage) {
          rows.emplace_back(target, *usage);
          continue;
        }
        // While streaming, a sandbox that ended leaves the table; printed once, its id asked
        // for, that is an error.
        if (stream && usage.error().code() == Code::kFailedPrecondition) continue;
        if (usage.error().code() == Code::kFailedPrecondition && flags->ids.empty()) continue;
        code = ctx.Report(usage.error());
        if (code == kExitUnreachable) return;
      }
      if (!stream) {
        if (json) {
          nlohmann::ordered_json out = nlohmann::ordered_json::array();
          for (const auto& [target, usage] : rows) out.push_back(ToJson(target, usage));
          printf("%s\n", out.dump(2).c_str());
        } else {
          fputs(Table(rows).c_str(), stdout);
        }
        ctx.exit_code = code;
        return;
      }
      // Home and clear, then the table: redrawn in place like `docker stats`.
      printf("\033[H\033[2J%s", Table(rows).c_str());
      fflush(stdout);
      if (!flags->ids.empty() && rows.empty()) break;
      pollfd fd = {signals->fd(), POLLIN, 0};
      if (poll(&fd, 1, kRefreshMs) > 0 && signals->Read() != 0) break;
    }
    ctx.exit_code = kExitOk;
  });
}

}  // namespace sbx::cli
