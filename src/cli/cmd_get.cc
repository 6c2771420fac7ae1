// sbx get: one sandbox in detail.

#include <cstdio>

#include "src/base/strings.h"
#include "src/cli/commands.h"
#include "src/cli/format.h"

namespace sbx::cli {

namespace {

std::string Words(const std::string& command, const std::vector<std::string>& args) {
  std::vector<std::string> words;
  if (!command.empty()) words.push_back(command);
  words.insert(words.end(), args.begin(), args.end());
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out += ' ';
    bool plain = !w.empty() && w.find_first_of(" \t\n\"'\\$`;&|<>()*?") == std::string::npos;
    out += plain ? w : Quote(w, 200);
  }
  return out;
}

void Print(const Sandbox& s) {
  auto now = std::chrono::system_clock::now();
  std::vector<std::vector<std::string>> rows;
  auto add = [&rows](const std::string& key, const std::string& value) {
    if (!value.empty()) rows.push_back({key + ":", value});
  };
  add("ID", s.id);
  std::string status(StateName(s.state));
  if (s.exit_code) status += ", exit code " + std::to_string(*s.exit_code);
  if (!s.state_reason.empty()) status += " (" + s.state_reason + ")";
  add("Status", status);
  add("Image", s.image);
  add("Command", Words(s.command, s.args));
  add("Working dir", s.working_dir);
  add("Tags", Join(s.tags, ", "));
  add("CPU", s.cpu);
  add("Memory", s.memory);
  std::string network = NetworkMode(s);
  if (network == "none") {
    add("Network", "none (loopback only)");
  } else if (network == "default") {
    add("Network", "default (public destinations)");
  } else {
    std::vector<std::string> rules;
    for (const auto& rule : s.egress) rules.push_back(FormatEgress(rule));
    add("Network", "egress only to " + Join(rules, ", "));
  }
  for (const auto& service : s.services) {
    std::string where = service.url.empty() ? "not exposed" : service.url;
    add("Service", std::to_string(service.port) + "/" + service.protocol + " " +
                       std::string(VisibilityName(service.visibility)) + " " + where +
                       (service.name.empty() ? "" : " (" + service.name + ")"));
  }
  if (s.max_lifetime_seconds > 0) {
    add("Lifetime", FormatDuration(std::chrono::seconds(s.max_lifetime_seconds)));
  }
  if (auto expiry = s.expire_time()) {
    add("Expires", FormatTime(*expiry) + " (" + FormatExpiry(*expiry, now) + ")");
  }
  auto time = [&](const std::optional<TimePoint>& t) {
    return t ? FormatTime(*t) + " (" + FormatAge(*t, now) + ")" : std::string();
  };
  add("Created", time(s.create_time));
  add("Started", time(s.start_time));
  add("Ended", time(s.end_time));
  add("Runner", s.runner_id);
  if (s.resource_usage) {
    add("Usage", std::to_string(s.resource_usage->cpu_millicores) + "m CPU, " +
                     std::to_string(s.resource_usage->memory_mb) + " MiB memory ('sbx stats' " +
                     "has more)");
  }
  for (const auto& [k, v] : s.env) add("Env", k + "=" + v);
  for (const auto& [k, v] : s.annotations) add("Annotation", k + "=" + v);
  fputs(Table(rows).c_str(), stdout);
}

}  // namespace

void AddGetCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::vector<std::string> ids;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("get", "Show a sandbox in detail");
  cmd->footer(
      "Status, exit code and reason, image, command, limits, tags and times. With several\n"
      "sandboxes, -o json prints an array (one sandbox: an object).");
  cmd->alias("inspect");
  cmd->add_option("SANDBOX_ID", flags->ids, "the sandboxes (ids, names or id prefixes)")
      ->required()
      ->type_name("");
  AddOutputOption(cmd, flags->output);
  cmd->callback([&ctx, flags] {
    Client* client = ctx.client();
    if (client == nullptr) return;
    int code = kExitOk;
    nlohmann::ordered_json found = nlohmann::ordered_json::array();
    bool first = true;
    for (const auto& reference : flags->ids) {
      auto id = ResolveId(*client, reference);
      auto sandbox = id ? client->Get(*id) : Result<Sandbox>(id.error());
      if (!sandbox) {
        code = ctx.Report(sandbox.error());
        if (code == kExitUnreachable) break;
        continue;
      }
      if (flags->output == "json") {
        found.push_back(ToJson(*sandbox));
        continue;
      }
      if (!first) printf("\n");
      first = false;
      Print(*sandbox);
      fflush(stdout);
    }
    if (flags->output == "json" && !found.empty()) {
      printf("%s\n", (flags->ids.size() == 1 ? found.front() : found).dump(2).c_str());
    }
    ctx.exit_code = code;
  });
}

}  // namespace sbx::cli
