// sbx run: create a sandbox from an image and run a command in it.
//
//   sbx run IMAGE CMD...          the command is the sandbox's main process; its output streams
//                                 here and its exit code is ours (Ctrl-C stops the sandbox)
//   sbx run -d IMAGE [CMD...]     create and print the id; without CMD the sandbox idles, ready
//                                 for `sbx exec` and `sbx sh`
//   sbx run -it IMAGE [CMD...]    an interactive command (default: a shell) in a new sandbox

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <thread>

#include "src/base/strings.h"
#include "src/cli/attach.h"
#include "src/cli/commands.h"
#include "src/cli/format.h"
#include "src/cli/pull_progress.h"
#include "src/cli/terminal.h"

namespace sbx::cli {

namespace {

struct RunFlags {
  std::string image;
  bool detach = false;
  bool interactive = false;
  bool tty = false;
  bool remove = false;
  bool quiet = false;
  std::vector<std::string> env;
  std::vector<std::string> env_files;
  std::string workdir;
  std::string cpu;
  std::string memory;
  std::string cpu_request;
  std::string memory_request;
  std::vector<std::string> tags;
  std::string lifetime;
  std::string network = "default";
  std::vector<std::string> egress;
  std::vector<std::string> publish;
  std::vector<std::string> secrets;
  std::vector<std::string> annotations;
  std::vector<std::string> mount_files;
  std::string request_id;
  std::string name;
  std::string output = "table";
};

// Names are what users type instead of ids, so they are kept to characters that need no
// quoting and cannot be mistaken for a flag or a SANDBOX_ID:PATH.
bool IsValidName(const std::string& name) {
  if (name.empty() || name.size() > 128 || !isalnum(static_cast<unsigned char>(name[0]))) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

// A name belongs to one sandbox at a time among those that have not ended. (Two runs racing
// for one name may both get it: sbxd has no names to hold it.)
Status CheckNameFree(Client& client, const std::string& name) {
  SBX_ASSIGN_OR_RETURN(auto running, client.List());
  for (const auto& s : running) {
    auto taken = s.annotations.find(kNameAnnotation);
    if (taken != s.annotations.end() && taken->second == name) {
      return Error::AlreadyExists("the name " + Quote(name) + " is already in use by sandbox " +
                                  s.id + "; 'sbx rm " + name + "' frees it");
    }
  }
  return Ok();
}

// How long `run` waits for a sandbox to start (an image pull included).
constexpr auto kStartTimeout = std::chrono::minutes(10);

Result<SandboxSpec> BuildSpec(const RunFlags& f, const std::vector<std::string>& command,
                              bool main_is_command) {
  SandboxSpec spec;
  spec.image = f.image;
  if (main_is_command) {
    if (!command.empty()) {
      spec.command = command[0];
      spec.args.assign(command.begin() + 1, command.end());
    } else {
      spec.use_image_command = true;
    }
  }
  SBX_ASSIGN_OR_RETURN(spec.env, CollectEnv(f.env_files, f.env));
  spec.working_dir = f.workdir;
  const std::pair<const char*, const std::string*> quantities[] = {
      {"--cpu", &f.cpu},
      {"--cpu-request", &f.cpu_request},
      {"--memory", &f.memory},
      {"--memory-request", &f.memory_request}};
  for (const auto& [flag, value] : quantities) {
    if (!value->empty()) SBX_TRY(CheckQuantity(flag, *value, StartsWith(flag, "--cpu")));
  }
  spec.cpu = f.cpu;
  spec.memory = f.memory;
  spec.cpu_request = f.cpu_request;
  spec.memory_request = f.memory_request;
  spec.tags = f.tags;
  if (!f.lifetime.empty()) {
    SBX_ASSIGN_OR_RETURN(int64_t seconds, ParseDuration(f.lifetime));
    if (seconds <= 0 || seconds > 0x7fffffff) {
      return Error::InvalidArgument("--lifetime must be between 1s and 68 years");
    }
    spec.max_lifetime_seconds = static_cast<int>(seconds);
  }
  if (f.network == "none") {
    spec.deny_egress = true;
  } else if (f.network != "default") {
    return Error::InvalidArgument("--network must be \"default\" or \"none\", not " +
                                  Quote(f.network));
  }
  if (spec.deny_egress && !f.egress.empty()) {
    return Error::InvalidArgument("--egress cannot be combined with --network none");
  }
  for (const auto& text : f.egress) {
    SBX_ASSIGN_OR_RETURN(EgressRule rule, ParseEgress(text));
    spec.egress.push_back(std::move(rule));
  }
  for (const auto& text : f.publish) {
    SBX_ASSIGN_OR_RETURN(ServicePort service, ParsePublish(text));
    // sbxd refuses the mix too; said here, before anything is created, in the flag's terms.
    if (!spec.services.empty() && service.visibility != spec.services.front().visibility) {
      return Error::InvalidArgument("--publish: a sandbox's ports are all public or all private; " +
                                    Quote(text) + " differs from " + Quote(f.publish.front()));
    }
    spec.services.push_back(service);
  }
  for (const auto& text : f.secrets) {
    SBX_ASSIGN_OR_RETURN(SecretRef secret, ParseSecret(text));
    spec.secrets.push_back(std::move(secret));
  }
  for (const auto& a : f.annotations) {
    size_t eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Error::InvalidArgument("--annotation takes KEY=VALUE, not " + Quote(a));
    }
    spec.annotations[a.substr(0, eq)] = a.substr(eq + 1);
  }
  for (const auto& m : f.mount_files) {
    size_t colon = m.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == m.size() || m[colon + 1] != '/') {
      return Error::InvalidArgument("--mount-file takes HOST_FILE:/SANDBOX_PATH, not " + Quote(m));
    }
    FILE* file = fopen(m.substr(0, colon).c_str(), "rb");
    if (file == nullptr) return Error::Errno("open " + Quote(m.substr(0, colon)));
    std::string content;
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, file)) > 0) content.append(buf, n);
    fclose(file);
    spec.files.emplace_back(m.substr(colon + 1), std::move(content));
  }
  spec.request_id = f.request_id;
  if (!f.name.empty()) {
    if (!IsValidName(f.name)) {
      return Error::InvalidArgument("--name " + Quote(f.name) +
                                    ": a name is letters, digits, '_', '.' and '-', starting "
                                    "with a letter or digit");
    }
    spec.annotations[kNameAnnotation] = f.name;
  }
  return spec;
}

// Creates the sandbox and waits for it to run; reports and returns nullopt when it does not.
// An image not yet on the node is pulled first, its progress on stderr: the create would
// otherwise wait through the whole pull without a word. Nothing shows for an image already there.
bool PullIfMissing(Context& ctx, Client& client, const std::string& image, bool quiet) {
  if (image.empty()) return true;
  PullProgress progress(stderr, ctx.stderr_tty);
  bool announced = false;
  auto pulled = client.PullImage(
      image,
      [&](const std::vector<LayerProgress>& layers) {
        if (quiet) return;
        if (!announced) fprintf(stderr, "sbx: pulling %s\n", image.c_str());
        announced = true;
        progress.Update(layers);
      },
      "", /*if_missing=*/true);
  if (!quiet) progress.Finish();
  if (pulled) return true;
  // Only operators may pull: for everyone else the create pulls, without progress.
  if (pulled.error().code() == Code::kPermissionDenied) return true;
  ctx.Report(pulled.error(), kExitSbxFailed);
  return false;
}

std::optional<Sandbox> Start(Context& ctx, Client& client, const SandboxSpec& spec) {
  auto created = client.Create(spec, false);
  if (!created) {
    ctx.Report(created.error(), kExitSbxFailed);
    return std::nullopt;
  }
  Sandbox sandbox = *created;
  if (sandbox.state != SandboxState::kRunning && !IsTerminal(sandbox.state)) {
    if (ctx.stderr_tty) {
      fprintf(stderr, "sbx: waiting for sandbox %s to start (%s)...\n", sandbox.id.c_str(),
              std::string(StateName(sandbox.state)).c_str());
    }
    auto running = client.WaitUntilRunning(sandbox.id, kStartTimeout);
    if (!running) {
      ctx.Report(running.error(), kExitSbxFailed);
      return std::nullopt;
    }
    sandbox = *running;
  }
  if (sandbox.state == SandboxState::kFailed && !sandbox.exit_code) {
    ctx.Report(Error::FailedPrecondition("sandbox " + sandbox.id +
                                         " failed to start: " + sandbox.state_reason)
                   .WithReason(sandbox.state_reason.substr(0, sandbox.state_reason.find(':'))),
               kExitSbxFailed);
    return std::nullopt;
  }
  return sandbox;
}

// Where the published ports are reached, on stderr: stdout is the id's (`id=$(sbx run -d ...)`)
// or the command's.
void PrintServices(const Sandbox& sandbox) {
  for (const auto& service : sandbox.services) {
    if (service.url.empty()) continue;
    fprintf(stderr, "sbx: port %d/%s published (%s) at %s\n", service.port,
            service.protocol.c_str(), std::string(VisibilityName(service.visibility)).c_str(),
            service.url.c_str());
  }
}

int ExitCodeOf(Context& ctx, const Sandbox& sandbox) {
  if (sandbox.exit_code) return ctx.exit_code = *sandbox.exit_code;
  fprintf(stderr, "sbx: sandbox %s ended %s%s\n", sandbox.id.c_str(),
          std::string(StateName(sandbox.state)).c_str(),
          sandbox.state_reason.empty() ? "" : (" (" + sandbox.state_reason + ")").c_str());
  return ctx.exit_code = kExitSbxFailed;
}

// The main process in the foreground: its output streams here until it ends.
int Foreground(Context& ctx, Client& client, const Sandbox& sandbox, bool remove) {
  auto signals = SignalWatcher::Watch({SIGINT, SIGTERM, SIGHUP});
  if (!signals) return ctx.Report(signals.error(), kExitSbxFailed);
  Waker done;
  Status streamed = Ok();
  std::thread logs([&] {
    LogOptions options;
    options.follow = true;
    streamed = client.StreamLogs(
        sandbox.id, options, [](std::string_view data) { return WriteFully(STDOUT_FILENO, data); });
    done.Wake();
  });
  int interrupts = 0;
  pollfd fds[2] = {{done.fd(), POLLIN, 0}, {(*signals)->fd(), POLLIN, 0}};
  while (true) {
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[0].revents != 0) break;
    while (int sig = (*signals)->Read()) {
      (void)sig;
      if (++interrupts == 1) {
        fprintf(stderr, "sbx: stopping sandbox %s (again to leave it and return)\n",
                sandbox.id.c_str());
        StopOptions stop;
        stop.wait = false;
        if (remove) stop.grace_seconds = 0;
        (void)client.Stop(sandbox.id, stop);
      } else {
        fprintf(stderr, "sbx: left sandbox %s stopping\n", sandbox.id.c_str());
        fflush(stdout);
        // The log stream's thread is blocked in gRPC: leave without unwinding it.
        _exit(kExitInterrupted);
      }
    }
  }
  logs.join();
  if (!streamed && streamed.error().code() != Code::kCancelled) {
    ctx.Warn("log stream: " + streamed.error().message());
  }
  auto ended = client.WaitUntilDone(sandbox.id, std::chrono::seconds(60));
  if (remove) (void)client.Delete(sandbox.id, true);
  if (!ended) return ctx.Report(ended.error(), kExitSbxFailed);
  if (interrupts > 0 && !ended->exit_code) return ctx.exit_code = kExitInterrupted;
  return ExitCodeOf(ctx, *ended);
}

int Run(Context& ctx, const RunFlags& f) {
  const std::vector<std::string>& command = ctx.trailing;
  bool attach = f.interactive || f.tty;
  if (f.detach && attach) return ctx.Usage("-d cannot be combined with -i or -t", "run");
  if (f.detach && f.remove) return ctx.Usage("-d cannot be combined with --rm", "run");
  if (f.tty && !ctx.stdin_tty) {
    return ctx.Usage("-t needs a terminal on stdin; drop -t to pipe input with -i", "run");
  }
  // A detached sandbox without a command idles (ready for exec); interactive commands run as
  // execs in an idling sandbox; otherwise the command (or the image's) is the main process.
  bool main_is_command = !attach && (!f.detach || !command.empty());
  auto spec = BuildSpec(f, command, main_is_command);
  if (!spec) return ctx.Report(spec.error(), kExitUsage);
  Client* client = ctx.client();
  if (client == nullptr) return ctx.exit_code = kExitSbxFailed;
  if (!f.name.empty()) {
    if (Status free = CheckNameFree(*client, f.name); !free) {
      int code = ctx.Report(free.error());
      return ctx.exit_code = code == kExitUnreachable ? kExitSbxFailed : code;
    }
  }
  if (!PullIfMissing(ctx, *client, spec->image, f.quiet)) return ctx.exit_code;
  auto started = Start(ctx, *client, *spec);
  if (!started) return ctx.exit_code;
  const Sandbox& sandbox = *started;
  if (!f.quiet) PrintServices(sandbox);
  if (f.detach) {
    if (f.output == "json") {
      printf("%s\n", ToJson(sandbox).dump(2).c_str());
    } else {
      printf("%s\n", sandbox.id.c_str());
    }
    if (auto expiry = sandbox.expire_time(); expiry && !f.quiet) {
      fprintf(stderr, "sbx: sandbox %s expires at %s (%s); 'sbx extend %s DURATION' adds time\n",
              sandbox.id.c_str(), FormatTime(*expiry).c_str(),
              FormatExpiry(*expiry, std::chrono::system_clock::now()).c_str(), sandbox.id.c_str());
    }
    return ctx.exit_code = kExitOk;
  }
  if (!attach) return Foreground(ctx, *client, sandbox, f.remove);
  if (sandbox.state != SandboxState::kRunning) return ExitCodeOf(ctx, sandbox);
  ExecOptions exec;
  exec.command = command.empty() ? DefaultShell() : command;
  int code = Attach(ctx, sandbox.id, exec, {f.interactive, f.tty});
  if (f.remove) {
    if (Status removed = client->Delete(sandbox.id, true); !removed) {
      ctx.Warn("could not remove sandbox " + sandbox.id + ": " + removed.error().message());
    }
  } else if (!f.quiet) {
    fprintf(stderr,
            "sbx: sandbox %s keeps running: 'sbx sh %s' to get back in, 'sbx rm %s' to "
            "remove it\n",
            sandbox.id.c_str(), sandbox.id.c_str(), sandbox.id.c_str());
  }
  return ctx.exit_code = code;
}

}  // namespace

void AddRunCommand(CLI::App& app, Context& ctx) {
  auto flags = std::make_shared<RunFlags>();
  CLI::App* cmd =
      app.add_subcommand("run", "Create a sandbox from an image and run a command in it");
  cmd->footer(
      "Full form: sbx run [OPTIONS] IMAGE [CMD [ARG...]]\n"
      "  sbx run IMAGE CMD...        CMD is the sandbox's main process; its output streams here\n"
      "                              and sbx exits with its code (Ctrl-C stops the sandbox)\n"
      "  sbx run -d IMAGE [CMD...]   create, print the id and return; without CMD the sandbox\n"
      "                              idles, ready for 'sbx exec' and 'sbx sh'\n"
      "  sbx run -it IMAGE [CMD...]  run CMD (default: a shell) interactively in a new sandbox;\n"
      "                              without --rm the sandbox keeps running afterwards\n"
      "Without CMD (and without -d, -i, -t) the image's own command runs. Everything after\n"
      "IMAGE belongs to CMD. Exit code: CMD's; 125 when sbx failed (e.g. a bad image).");
  cmd->add_option("IMAGE", flags->image, "the image, e.g. python:3.11 or busybox:latest")
      ->required()
      ->type_name("");
  cmd->add_flag("-d,--detach", flags->detach, "create the sandbox, print its id and return");
  cmd->add_flag("-i,--interactive", flags->interactive,
                "run CMD as an interactive process with stdin forwarded");
  cmd->add_flag("-t,--tty", flags->tty, "give CMD a terminal (raw mode, resizes forwarded)");
  cmd->add_flag("--rm", flags->remove, "remove the sandbox when CMD ends");
  cmd->add_option("-e,--env", flags->env, "environment variable KEY=VALUE (or KEY: from here)")
      ->type_name("KEY=VALUE");
  cmd->add_option("--env-file", flags->env_files, "KEY=VALUE lines")->type_name("FILE");
  cmd->add_option("-w,--workdir", flags->workdir, "working directory (absolute)")->type_name("DIR");
  cmd->add_option("--cpu", flags->cpu, "CPU limit, e.g. 2 or 500m")->type_name("QTY");
  cmd->add_option("-m,--memory", flags->memory, "memory limit, e.g. 4Gi or 512Mi")
      ->type_name("QTY");
  cmd->add_option("--cpu-request", flags->cpu_request, "CPU reserved on the node")
      ->type_name("QTY");
  cmd->add_option("--memory-request", flags->memory_request, "memory reserved on the node")
      ->type_name("QTY");
  cmd->add_option("--tag", flags->tags, "tag (repeatable; 'sbx ls --tag', 'sbx purge --tag')")
      ->type_name("TAG");
  cmd->add_option("--lifetime", flags->lifetime,
                  "stop the sandbox after this long: 90s, 15m, 2h, 1d (default: sbxd's)")
      ->type_name("DURATION");
  cmd->add_option("--network", flags->network, "default (outbound access) or none (loopback only)")
      ->type_name("MODE");
  cmd->add_option("--egress", flags->egress,
                  "allow only these destinations (repeatable): any, CIDR or DNS name, "
                  "with :PORT[-END][/tcp|/udp]")
      ->type_name("RULE");
  cmd->add_option("-p,--publish", flags->publish,
                  "expose a port of the sandbox through a port of the host (repeatable); "
                  "public: also to other machines")
      ->type_name("[public:]PORT[/PROTO]");
  cmd->add_option("--secret", flags->secrets,
                  "a secret of sbxd's secret stores as an environment variable (repeatable)")
      ->type_name("[STORE/]NAME[:FIELD][=VAR]");
  cmd->add_option("--annotation", flags->annotations, "annotation KEY=VALUE (repeatable)")
      ->type_name("KEY=VALUE");
  cmd->add_option("--mount-file", flags->mount_files,
                  "a file of this machine, read-only in the sandbox (repeatable)")
      ->type_name("FILE:/PATH");
  cmd->add_option("--request-id", flags->request_id,
                  "idempotency key: a retried run with the same id gets the same sandbox")
      ->type_name("ID");
  cmd->add_option("--name", flags->name,
                  "a name usable wherever a sandbox id is (unique among running sandboxes)")
      ->type_name("NAME");
  cmd->add_option("-o,--output", flags->output, "with -d: table (the id) or json (the sandbox)")
      ->check(CLI::IsMember({"table", "json"}))
      ->type_name("FORMAT");
  cmd->add_flag("-q,--quiet", flags->quiet, "no notes on stderr");
  cmd->callback([&ctx, flags] { Run(ctx, *flags); });
}

}  // namespace sbx::cli
