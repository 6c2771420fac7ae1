#include "src/daemon/main.h"

#include <signal.h>
#include <sys/prctl.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "src/base/failpoint.h"
#include "src/base/log.h"
#include "src/daemon/config.h"
#include "src/daemon/daemon.h"
#include "src/daemon/version.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"

namespace sbx::daemon {

int Main(int argc, char** argv) {
  CLI::App app{
      "sbxd: the sbx daemon. Creates sandboxes on this machine and serves the "
      "coreweave.sandbox.v1 API (and sbx.v1) on a unix socket and, optionally, TCP."};
  std::string config_path;
  std::string state_dir, run_dir, listen_unix, listen_tcp, metrics_listen, log_level, writable;
  std::string cgroup_parent, network;
  std::vector<std::string> mirrors, insecure;
  bool print_config = false;
  bool version = false;
  app.add_option("-c,--config", config_path,
                 "configuration file (JSON; see docs/configuration.md)");
  app.add_option("--state-dir", state_dir, "durable state (default /var/lib/sbx)");
  app.add_option("--run-dir", run_dir, "ephemeral state (default /run/sbx)");
  app.add_option("--listen-unix", listen_unix, "unix socket (default /run/sbx/sbxd.sock)");
  app.add_option("--listen-tcp", listen_tcp, "host:port for TCP clients (needs api_keys)");
  app.add_option("--metrics-listen", metrics_listen, "host:port for Prometheus /metrics");
  app.add_option("--registry-mirror", mirrors, "docker.io mirror URL (repeatable)");
  app.add_option("--insecure-registry", insecure,
                 "host:port reachable over plain HTTP (repeatable)");
  app.add_option("--writable-layer", writable, "loop or tmpfs");
  app.add_option("--cgroup-parent", cgroup_parent,
                 "cgroup directory for this daemon's sandboxes (default sbx)");
  app.add_option("--network", network, "bridge (the default) or none (loopback only)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.add_flag("--print-config", print_config, "print the effective configuration and exit");
  app.add_flag("--version", version, "print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (version) {
    std::cout << "sbxd " << kVersion << "\n";
    return 0;
  }
  Config config;
  if (!config_path.empty()) {
    auto loaded = Config::Load(config_path);
    if (!loaded) {
      fprintf(stderr, "sbxd: %s\n", loaded.error().message().c_str());
      return 2;
    }
    config = *loaded;
  }
  if (!state_dir.empty()) config.state_dir = state_dir;
  if (!run_dir.empty()) config.run_dir = run_dir;
  if (!listen_unix.empty()) config.listen_unix = listen_unix;
  if (!run_dir.empty() && listen_unix.empty() && config_path.empty()) {
    config.listen_unix = run_dir + "/sbxd.sock";
  }
  if (!listen_tcp.empty()) config.listen_tcp = listen_tcp;
  if (!metrics_listen.empty()) config.metrics_listen = metrics_listen;
  if (!mirrors.empty()) config.registry_mirrors = mirrors;
  if (!insecure.empty()) config.insecure_registries = insecure;
  if (!writable.empty()) config.writable_layer = writable;
  if (!cgroup_parent.empty()) config.cgroup_parent = cgroup_parent;
  if (!network.empty()) {
    if (network != "bridge" && network != "none") {
      fprintf(stderr, "sbxd: --network must be bridge or none\n");
      return 2;
    }
    config.network = network;
  }
  if (!log_level.empty()) config.log_level = log_level;
  if (!config.listen_tcp.empty() && config.api_keys.empty()) {
    fprintf(stderr, "sbxd: listen_tcp needs api_keys in the configuration file\n");
    return 2;
  }
  if (print_config) {
    std::cout << config.ToJson() << "\n";
    return 0;
  }
  log::Init(config.log_level,
            config.log_format == "json" ? log::Format::kJson : log::Format::kText);
  // Tests of crash recovery only: an armed failpoint kills sbxd at that step.
  if (Status armed = failpoint::ArmFromEnvironment(); !armed) {
    fprintf(stderr, "sbxd: %s\n", armed.error().message().c_str());
    return 2;
  }
  if (const char* points = getenv(failpoint::kEnvironmentVariable); points && *points) {
    SBX_LOG_WARN("failpoints armed, sbxd will kill itself at: {}", points);
  }
  // Sandboxes' init processes are re-parented to sbxd when the sbx-runtime that started them
  // exits; sbxd reaps them when it removes their sandbox.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  // The OOM killer's last victim, with the runtime helpers, which inherit it (sys/process.h).
  if (Status low =
          sys::WriteKnob("/proc/self/oom_score_adj", std::to_string(sys::kDaemonOomScoreAdj));
      !low) {
    SBX_LOG_WARN("oom_score_adj of sbxd left as it was: {}", low.error().message());
  }
  // Signals are taken synchronously below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  auto daemon = Daemon::Create(config);
  if (!daemon) {
    SBX_LOG_ERROR("{}", daemon.error().ToString());
    return 1;
  }
  if (Status started = (*daemon)->Start(); !started) {
    SBX_LOG_ERROR("cannot start: {}", started.error().ToString());
    fprintf(stderr, "sbxd: %s\n", started.error().message().c_str());
    return 1;
  }
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    SBX_LOG_INFO("SIGHUP ignored (restart sbxd to reload its configuration)");
  }
  SBX_LOG_INFO("signal {} received, shutting down", sig);
  (*daemon)->Shutdown();
  return 0;
}

}  // namespace sbx::daemon
