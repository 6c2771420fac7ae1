#include "src/runtime/tool/runtime_tool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "src/agent/client.h"
#include "src/base/clock.h"
#include "src/base/quantity.h"
#include "src/base/strings.h"
#include "src/runtime/container.h"
#include "src/runtime/helper.h"
#include "src/runtime/writable_layer.h"
#include "src/sys/features.h"
#include "src/sys/fs.h"

namespace sbx::runtime {

namespace {

int Fail(const Error& error) {
  fprintf(stderr, "sbx-runtime: %s\n", error.message().c_str());
  switch (error.code()) {
    case Code::kInvalidArgument:
      return 2;
    case Code::kNotFound:
      return 3;
    default:
      return 1;
  }
}

std::string g_cgroup_parent = "sbx";

Result<std::unique_ptr<CgroupDriver>> Cgroups() {
  return MakeCgroupDriver(sys::ProbeCgroups(), g_cgroup_parent);
}

Result<std::string> DefaultInitPath() {
  SBX_ASSIGN_OR_RETURN(std::string dir, sys::SelfExeDir());
  return dir + "/sbx-init";
}

// Restores the terminal on every exit path of an interactive exec.
class RawTerminal {
 public:
  RawTerminal() {
    if (tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    cfmakeraw(&raw);
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) active_ = true;
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;
  ~RawTerminal() {
    if (active_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

int g_winch_pipe = -1;
void OnWinch(int) {
  char c = 1;
  (void)!write(g_winch_pipe, &c, 1);
}

struct ExecFlags {
  std::vector<std::string> command;
  std::vector<std::string> env;
  std::string cwd;
  std::string user;
  bool tty = false;
  bool interactive = false;
  double timeout_seconds = 0;
};

// Runs a command in the sandbox with this process's stdio attached; returns its shell-style exit
// code.
Result<int> AttachExec(const std::string& socket_path, const ExecFlags& flags) {
  agent::AgentClient client(socket_path);
  agent::ExecStart request;
  request.argv = flags.command;
  request.env = flags.env;
  request.cwd = flags.cwd;
  request.user = flags.user;
  request.tty = flags.tty;
  request.stdin_open = flags.interactive;
  request.timeout_ms = static_cast<int64_t>(flags.timeout_seconds * 1000);
  if (flags.tty) {
    winsize ws{};
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
      request.rows = ws.ws_row;
      request.cols = ws.ws_col;
    }
  }
  SBX_ASSIGN_OR_RETURN(agent::ExecStream stream, client.StartExec(request));
  std::unique_ptr<RawTerminal> raw;
  int winch[2] = {-1, -1};
  if (flags.tty && isatty(STDIN_FILENO)) {
    raw = std::make_unique<RawTerminal>();
    if (pipe2(winch, O_CLOEXEC | O_NONBLOCK) == 0) {
      g_winch_pipe = winch[1];
      signal(SIGWINCH, OnWinch);
    }
  }
  UniqueFd winch_read(winch[0]), winch_write(winch[1]);
  bool stdin_open = flags.interactive;
  while (true) {
    pollfd fds[3] = {{stream.fd(), POLLIN, 0},
                     {stdin_open ? STDIN_FILENO : -1, POLLIN, 0},
                     {winch_read.get(), POLLIN, 0}};
    if (!stream.HasBuffered() && poll(fds, 3, -1) < 0 && errno != EINTR) {
      return Error::Errno("poll");
    }
    if (fds[2].revents & POLLIN) {
      char drain[64];
      while (read(winch_read.get(), drain, sizeof drain) > 0) {
      }
      winsize ws{};
      if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) (void)stream.Resize(ws.ws_row, ws.ws_col);
    }
    if (stdin_open && (fds[1].revents & (POLLIN | POLLHUP))) {
      char buf[65536];
      ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
      if (n > 0) {
        SBX_TRY(stream.WriteStdin(std::string_view(buf, static_cast<size_t>(n)),
                                  MonotonicMillis() + 30000));
      } else if (n == 0 || errno != EINTR) {
        stdin_open = false;
        (void)stream.CloseStdin();
      }
    }
    if (stream.HasBuffered() || (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      SBX_ASSIGN_OR_RETURN(agent::ExecEvent event, stream.Next(MonotonicMillis() + 30000));
      if (event.kind == agent::ExecEvent::kExit) {
        if (event.exit.timed_out) fprintf(stderr, "sbx-runtime: command timed out\n");
        return event.exit.ShellCode();
      }
      int out = event.output.stream == agent::StreamId::kStderr ? STDERR_FILENO : STDOUT_FILENO;
      SBX_TRY(sys::WriteAll(out, event.output.data));
    }
  }
}

void AddExecFlags(CLI::App* cmd, ExecFlags& flags) {
  cmd->add_option("-e,--env", flags.env, "KEY=VALUE added to the environment");
  cmd->add_option("-w,--cwd", flags.cwd, "working directory (default: the sandbox's)");
  cmd->add_option("-u,--user", flags.user, "user[:group] to run as");
  cmd->add_flag("-t,--tty", flags.tty, "allocate a terminal");
  cmd->add_flag("-i,--interactive", flags.interactive, "forward stdin");
  cmd->add_option("--timeout", flags.timeout_seconds, "kill the command after this many seconds");
  cmd->add_option("command", flags.command, "command and arguments")->required();
}

Result<RuntimeSpec> ReadSpec(const std::string& bundle) {
  SBX_ASSIGN_OR_RETURN(std::string text, sys::ReadFile(bundle + "/spec.json", 16u << 20));
  return FromJson(text);
}

nlohmann::json StatusJson(const std::string& bundle) {
  nlohmann::json out;
  auto state = ReadState(bundle);
  if (!state) {
    out["error"] = state.error().message();
    return out;
  }
  out["id"] = state->id;
  out["init_pid"] = state->init_pid;
  out["alive"] = ProcessAlive(state->init_pid, state->init_start_time);
  agent::AgentClient client(state->socket_path, 2000);
  if (auto status = client.GetStatus(2000)) {
    out["main_running"] = status->main_running;
    out["main_exited"] = status->main_exited;
    if (status->main_exited) {
      out["exit_code"] = status->main_exit.ShellCode();
      out["signal"] = status->main_exit.signal;
    }
    out["lifetime_exceeded"] = status->lifetime_exceeded;
    if (!status->start_error.empty()) out["start_error"] = status->start_error;
  } else {
    out["agent_error"] = status.error().message();
  }
  if (auto cgroups = Cgroups()) {
    if (auto stats = (*cgroups)->Stats(state->id)) {
      out["oom_kills"] = stats->oom_kills;
      out["memory_bytes"] = stats->memory_bytes;
      out["pids"] = stats->pids;
      out["cpu_usage_ns"] = stats->cpu_usage_ns;
    }
  }
  return out;
}

// Graceful stop: SIGTERM to the main process, up to `grace_ms` for it to exit, then everything
// in the sandbox is killed and removed.
Status StopBundle(const std::string& bundle, int64_t grace_ms) {
  SBX_ASSIGN_OR_RETURN(RuntimeSpec spec, ReadSpec(bundle));
  SBX_ASSIGN_OR_RETURN(auto cgroups, Cgroups());
  if (auto state = ReadState(bundle); state && grace_ms > 0) {
    agent::AgentClient client(state->socket_path, 2000);
    if (client.SignalMain(SIGTERM, 2000)) {
      (void)client.WaitMain(MonotonicMillis() + grace_ms);
    }
  }
  return DestroySandbox(spec.id, bundle, *cgroups);
}

}  // namespace

int RunTool(int argc, char** argv) {
  CLI::App app{"sbx-runtime: create, enter and stop sbx sandboxes from a bundle directory"};
  app.require_subcommand(1);
  app.add_option("--cgroup-parent", g_cgroup_parent,
                 "cgroup directory holding the sandboxes' groups (default sbx)");
  std::string bundle;
  std::string init_path;
  std::string disk_pool;

  auto* create = app.add_subcommand("create", "create a sandbox from <bundle>/spec.json");
  create->add_option("-b,--bundle", bundle, "bundle directory")->required();
  create->add_option("--init", init_path, "sbx-init binary (default: next to sbx-runtime)");
  create->add_option("--disk-pool", disk_pool, "directory of pre-formatted writable layers");
  std::string disk_dir;
  create->add_option("--disk-dir", disk_dir, "where the writable layer's image lives");
  int seccomp_fd = -1;
  create->add_option("--seccomp-fd", seccomp_fd,
                     "inherited descriptor holding the compiled seccomp program");
  int init_fd = -1;
  create->add_option("--init-fd", init_fd,
                     "inherited descriptor of a sealed sbx-init copy (instead of --init)");

  ExecFlags exec_flags;
  auto* exec = app.add_subcommand("exec", "run a command in a sandbox");
  exec->add_option("-b,--bundle", bundle, "bundle directory")->required();
  AddExecFlags(exec, exec_flags);

  int64_t grace_seconds = 10;
  auto* stop = app.add_subcommand("stop", "stop a sandbox and remove it");
  stop->add_option("-b,--bundle", bundle, "bundle directory")->required();
  stop->add_option("-g,--grace", grace_seconds, "seconds the main process has to exit on SIGTERM");

  auto* state_cmd = app.add_subcommand("state", "print a sandbox's state as JSON");
  state_cmd->add_option("-b,--bundle", bundle, "bundle directory")->required();

  bool follow = false;
  auto* logs = app.add_subcommand("logs", "print the main process's output");
  logs->add_option("-b,--bundle", bundle, "bundle directory")->required();
  logs->add_flag("-f,--follow", follow, "keep printing until the main process exits");

  std::string path;
  auto* read_file = app.add_subcommand("read-file", "copy a file out of a sandbox to stdout");
  read_file->add_option("-b,--bundle", bundle, "bundle directory")->required();
  read_file->add_option("path", path, "path in the sandbox")->required();
  uint32_t mode = 0644;
  auto* write_file = app.add_subcommand("write-file", "copy stdin to a file in a sandbox");
  write_file->add_option("-b,--bundle", bundle, "bundle directory")->required();
  write_file->add_option("path", path, "path in the sandbox")->required();
  write_file->add_option("--mode", mode, "permissions of a new file");

  // run: a one-shot sandbox from a root filesystem directory.
  std::string rootfs;
  std::string memory = "1Gi";
  std::string cpus = "1";
  uint64_t pids = 1024;
  bool tmpfs = false;
  std::string disk_size = "1Gi";
  ExecFlags run_flags;
  auto* run = app.add_subcommand("run",
                                 "run a command in a new sandbox made from a rootfs "
                                 "directory, then remove the sandbox");
  run->add_option("--rootfs", rootfs, "root filesystem directory (owned by the id-mapped range)")
      ->required();
  run->add_option("--memory", memory, "memory limit (Kubernetes quantity)");
  run->add_option("--cpus", cpus, "CPU limit (Kubernetes quantity)");
  run->add_option("--pids", pids, "process limit");
  run->add_option("--disk", disk_size, "writable layer size");
  run->add_flag("--tmpfs", tmpfs, "writable layer on tmpfs instead of a loop-mounted image");
  run->add_option("--init", init_path, "sbx-init binary");
  AddExecFlags(run, run_flags);

  std::string pool_size = "10Gi";
  int pool_count = 4;
  uint32_t pool_uid = 1000000;
  auto* pool = app.add_subcommand("disk-pool", "format writable-layer images ahead of time");
  pool->add_option("--dir", disk_pool, "pool directory")->required();
  pool->add_option("--size", pool_size, "image size");
  pool->add_option("--count", pool_count, "images to keep ready");
  pool->add_option("--root-id", pool_uid, "host uid/gid of the sandbox root");

  app.add_subcommand("features", "print what this host supports");

  int serve_fd = -1;
  int serve_init_fd = -1;
  int serve_seccomp_fd = -1;
  auto* serve =
      app.add_subcommand("serve", "serve create requests from sbxd on an inherited socket");
  serve->add_option("--fd", serve_fd, "the socket")->required();
  serve->add_option("--init-fd", serve_init_fd, "sealed sbx-init copy")->required();
  serve->add_option("--seccomp-fd", serve_seccomp_fd, "compiled seccomp program")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (app.got_subcommand("serve")) {
    auto program = sys::ReadFd(serve_seccomp_fd, 1u << 20);
    if (!program) return Fail(program.error());
    close(serve_seccomp_fd);
    auto cgroups = Cgroups();
    if (!cgroups) return Fail(cgroups.error());
    (void)sys::SetCloexec(serve_init_fd, true);
    return ServeHelper(serve_fd, serve_init_fd, *program, **cgroups);
  }
  if (app.got_subcommand("features")) {
    nlohmann::json out;
    for (const auto& [name, feature] : sys::ProbeAll()) {
      out[name] = {{"available", feature.available}, {"detail", feature.detail}};
    }
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  if (init_path.empty()) {
    auto path_result = DefaultInitPath();
    if (!path_result) return Fail(path_result.error());
    init_path = *path_result;
  }
  if (bundle.size() > 1 && bundle.back() == '/') bundle.pop_back();
  if (!bundle.empty() && bundle[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) != nullptr) bundle = std::string(cwd) + "/" + bundle;
  }

  if (app.got_subcommand("create")) {
    auto spec = ReadSpec(bundle);
    if (!spec) return Fail(spec.error());
    auto cgroups = Cgroups();
    if (!cgroups) return Fail(cgroups.error());
    std::string seccomp_bpf;
    if (seccomp_fd >= 0) {
      auto program = sys::ReadFd(seccomp_fd, 1u << 20);
      if (!program) return Fail(program.error());
      seccomp_bpf = std::move(*program);
    }
    auto state = CreateSandbox(*spec,
                               {.bundle_dir = bundle,
                                .init_path = init_path,
                                .init_fd = init_fd,
                                .seccomp_bpf = seccomp_bpf,
                                .disk_pool_dir = disk_pool,
                                .disk_dir = disk_dir},
                               **cgroups);
    if (!state) return Fail(state.error());
    std::cout << StateToJson(*state) << "\n";
    return 0;
  }
  if (app.got_subcommand("exec")) {
    auto state = ReadState(bundle);
    if (!state) return Fail(state.error());
    auto code = AttachExec(state->socket_path, exec_flags);
    if (!code) return Fail(code.error());
    return *code;
  }
  if (app.got_subcommand("stop")) {
    Status stopped = StopBundle(bundle, grace_seconds * 1000);
    if (!stopped) return Fail(stopped.error());
    return 0;
  }
  if (app.got_subcommand("state")) {
    std::cout << StatusJson(bundle).dump(2) << "\n";
    return 0;
  }
  if (app.got_subcommand("logs")) {
    auto state = ReadState(bundle);
    if (!state) return Fail(state.error());
    agent::AgentClient client(state->socket_path);
    agent::LogsRequest request{0, follow};
    Status streamed = client.StreamLogs(
        request,
        [](const agent::LogChunk& chunk) {
          int fd = chunk.stream == agent::StreamId::kStderr ? STDERR_FILENO : STDOUT_FILENO;
          return sys::WriteAll(fd, chunk.data).has_value();
        },
        nullptr, -1);
    if (!streamed) return Fail(streamed.error());
    return 0;
  }
  if (app.got_subcommand("read-file")) {
    auto state = ReadState(bundle);
    if (!state) return Fail(state.error());
    agent::AgentClient client(state->socket_path);
    Status read = client.ReadFile(
        path, 0, [](std::string_view chunk) { return sys::WriteAll(STDOUT_FILENO, chunk); },
        nullptr, 3600000);
    if (!read) return Fail(read.error());
    return 0;
  }
  if (app.got_subcommand("write-file")) {
    auto state = ReadState(bundle);
    if (!state) return Fail(state.error());
    agent::AgentClient client(state->socket_path);
    std::string buffer(1u << 20, '\0');
    Status written = client.WriteFile(
        path, mode,
        [&buffer]() -> Result<std::string_view> {
          ssize_t n;
          do {
            n = read(STDIN_FILENO, buffer.data(), buffer.size());
          } while (n < 0 && errno == EINTR);
          if (n < 0) return Error::Errno("read stdin");
          return std::string_view(buffer.data(), static_cast<size_t>(n));
        },
        3600000);
    if (!written) return Fail(written.error());
    return 0;
  }
  if (app.got_subcommand("disk-pool")) {
    auto size = ParseBytes(pool_size);
    if (!size) return Fail(size.error());
    Status filled = FillPool(disk_pool, {*size, 0, pool_uid, pool_uid}, pool_count);
    if (!filled) return Fail(filled.error());
    return 0;
  }
  if (app.got_subcommand("run")) {
    // The sandbox's init is reaped here when the sandbox is removed.
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    RuntimeSpec spec;
    spec.id = "run-" + RandomHex(6);
    spec.hostname = spec.id;
    char real[4096];
    if (realpath(rootfs.c_str(), real) == nullptr) {
      return Fail(Error::Errno("rootfs " + Quote(rootfs)));
    }
    spec.rootfs.layers = {real};
    spec.rootfs.writable.kind = tmpfs ? WritableKind::kTmpfs : WritableKind::kLoop;
    auto disk = ParseBytes(disk_size);
    auto mem = ParseBytes(memory);
    auto cpu = ParseCpuMillis(cpus);
    if (!disk) return Fail(disk.error());
    if (!mem) return Fail(mem.error());
    if (!cpu) return Fail(cpu.error());
    spec.rootfs.writable.size_bytes = *disk;
    spec.resources.memory_bytes = *mem;
    spec.resources.cpu_millis = *cpu;
    spec.resources.pids = pids;
    spec.resources.shm_bytes = std::min<uint64_t>(64u << 20, *mem);
    spec.process.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
    const char* run_dir = getenv("SBX_RUN_DIR");
    std::string bundle_dir =
        std::string(run_dir && *run_dir ? run_dir : "/run/sbx-runtime") + "/" + spec.id;
    Status made = sys::MakeDirs(bundle_dir, 0700);
    if (!made) return Fail(made.error());
    (void)sys::WriteFile(bundle_dir + "/spec.json", ToJson(spec), 0600);
    auto cgroups = Cgroups();
    if (!cgroups) return Fail(cgroups.error());
    auto state = CreateSandbox(spec, {.bundle_dir = bundle_dir, .init_path = init_path}, **cgroups);
    if (!state) {
      (void)sys::RemoveTree(bundle_dir);
      return Fail(state.error());
    }
    auto code = AttachExec(state->socket_path, run_flags);
    Status destroyed = DestroySandbox(spec.id, bundle_dir, **cgroups);
    if (!code) return Fail(code.error());
    if (!destroyed) return Fail(destroyed.error());
    return *code;
  }
  return 0;
}

}  // namespace sbx::runtime
