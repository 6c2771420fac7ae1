#include "src/cli/context.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "src/base/strings.h"
#include "src/cli/format.h"

namespace sbx::cli {

namespace {

// What to do about the errors users meet most.
std::string Hint(const Error& error) {
  const std::string& reason = error.reason();
  if (reason == "CWSANDBOX_SANDBOX_NOT_FOUND") return "`sbx ls --all` lists your sandboxes";
  if (reason == "CWSANDBOX_SANDBOX_NOT_RUNNING") {
    return "it has ended; `sbx logs` shows its output, `sbx run` starts a new one";
  }
  if (reason == "CWSANDBOX_UNAUTHENTICATED") return "set SBX_API_KEY to a key sbxd knows";
  if (reason == "IMAGE_PULL_FAILED" || reason == "CWSANDBOX_IMAGE_NOT_FOUND" ||
      reason == "SBX_IMAGE_NOT_FOUND") {
    return "check the image name; `sbx doctor` checks that the registry is reachable";
  }
  return "";
}

}  // namespace

Context::Context()
    : stdin_tty(isatty(STDIN_FILENO) != 0),
      stdout_tty(isatty(STDOUT_FILENO) != 0),
      stderr_tty(isatty(STDERR_FILENO) != 0) {}

Client* Context::client() {
  if (client_) return &*client_;
  ClientOptions options;
  options.base_url = base_url;
  auto connected = Client::Connect(options);
  if (!connected) {
    Report(connected.error(), kExitUsage);
    return nullptr;
  }
  client_.emplace(std::move(*connected));
  return &*client_;
}

int Context::Report(const Error& error, int failure_code) {
  std::string line = "sbx: " + InWords(error.message());
  const std::string& reason = error.reason();
  bool unreachable = reason == kReasonDaemonUnreachable;
  // The daemon's reasons are worth showing (scripts and issue reports quote them); generic
  // ones say nothing the message does not.
  if (!reason.empty() && !unreachable && reason != "CWSANDBOX_INTERNAL" &&
      reason != "CWSANDBOX_INVALID_REQUEST" && reason != "CWSANDBOX_NOT_FOUND") {
    line += " [" + reason + "]";
  }
  fprintf(stderr, "%s\n", line.c_str());
  if (std::string hint = Hint(error); !hint.empty()) fprintf(stderr, "hint: %s\n", hint.c_str());
  exit_code = unreachable && failure_code == kExitFailure ? kExitUnreachable : failure_code;
  return exit_code;
}

int Context::Usage(const std::string& message, const std::string& command) {
  fprintf(stderr, "sbx: %s\nRun 'sbx %s--help' for usage.\n", message.c_str(),
          command.empty() ? "" : (command + " ").c_str());
  exit_code = kExitUsage;
  return exit_code;
}

void Context::Warn(const std::string& message) const {
  fprintf(stderr, "sbx: warning: %s\n", message.c_str());
}

Result<std::string> ResolveId(Client& client, const std::string& reference) {
  if (reference.empty()) return Error::InvalidArgument("a sandbox id or name may not be empty");
  ListOptions options;
  options.include_terminated = true;
  SBX_ASSIGN_OR_RETURN(auto sandboxes, client.List(options));
  const Sandbox* named = nullptr;
  std::vector<std::string> prefixed;
  for (const auto& s : sandboxes) {
    if (s.id == reference) return s.id;
    auto name = s.annotations.find(kNameAnnotation);
    if (name != s.annotations.end() && name->second == reference) {
      // Names are unique among the sandboxes that have not ended; an ended one keeps its name
      // until a new sandbox takes it, and the newest ended one answers to it until then.
      bool better =
          named == nullptr || (IsTerminal(named->state) && !IsTerminal(s.state)) ||
          (IsTerminal(named->state) == IsTerminal(s.state) && named->create_time < s.create_time);
      if (better) named = &s;
    }
    if (StartsWith(s.id, reference)) prefixed.push_back(s.id);
  }
  if (named != nullptr) return named->id;
  if (prefixed.size() == 1) return prefixed.front();
  if (prefixed.size() > 1) {
    return Error::InvalidArgument("sandbox id prefix " + Quote(reference) +
                                  " is ambiguous: " + Join(prefixed, ", "));
  }
  return reference;
}

Result<std::vector<std::string>> ReadLines(const std::string& path) {
  std::ifstream in(path == "-" ? "/dev/stdin" : path);
  if (!in) return Error::Errno("open " + Quote(path));
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

Result<std::map<std::string, std::string>> CollectEnv(const std::vector<std::string>& files,
                                                      const std::vector<std::string>& assignments) {
  std::map<std::string, std::string> env;
  auto add = [&env](std::string_view text) -> Status {
    SBX_ASSIGN_OR_RETURN(auto parsed, ParseEnv(text));
    if (parsed) env[parsed->first] = parsed->second;
    return Ok();
  };
  for (const auto& file : files) {
    SBX_ASSIGN_OR_RETURN(auto lines, ReadLines(file));
    for (const auto& line : lines) {
      std::string_view t = Trim(line);
      if (t.empty() || t.front() == '#') continue;
      SBX_TRY_CTX(add(t), "env file " + Quote(file));
    }
  }
  for (const auto& a : assignments) SBX_TRY(add(a));
  return env;
}

}  // namespace sbx::cli
