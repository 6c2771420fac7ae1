// Runtime benchmark: create -> first exec output, and exec round trip, for sbx and, in the same
// run on the same root filesystem, runc and Docker. Prints a table and writes JSON.
//
//   runtime_bench --rootfs DIR [--runs 200] [--peers runc,docker] [--json out.json] [--own-ranges]
//
// DIR must be owned by the sandbox id range (uid 1000000); the bench copies nothing. With
// --own-ranges every sandbox gets a host id range of its own after that one and sees DIR through
// an idmapped mount, as sbxd makes them.

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "src/agent/client.h"
#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/runtime/container.h"
#include "src/sys/features.h"
#include "src/sys/fs.h"
#include "src/sys/process.h"

using namespace sbx;  // NOLINT(google-build-using-namespace)

namespace {

struct Series {
  std::string name;
  std::vector<double> ms;
  double Percentile(double p) const {
    if (ms.empty()) return 0;
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    size_t index = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[std::min(index, sorted.size() - 1)];
  }
};

double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

// Time from starting `argv` until its first byte of stdout (the process may keep running).
Result<double> TimeToFirstOutput(const std::vector<std::string>& argv) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Error::Errno("pipe");
  UniqueFd r(fds[0]), w(fds[1]);
  int64_t start = MonotonicNanos();
  SBX_ASSIGN_OR_RETURN(
      sys::ChildProcess child,
      sys::Spawn({.argv = argv,
                  .env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
                  .fds = {{1, w.get()}}}));
  w.reset();
  char c;
  ssize_t n = read(r.get(), &c, 1);
  int64_t first = MonotonicNanos();
  SBX_ASSIGN_OR_RETURN(auto status, child.Wait(60000));
  if (n != 1 || status.ShellCode() != 0) {
    return Error::Internal(argv[0] + " failed: " + status.ToString());
  }
  return Ms(first - start);
}

// Runs a command with its output discarded (a detached container must not hold our pipes).
Status RunQuiet(const std::vector<std::string>& argv) {
  SBX_ASSIGN_OR_RETURN(sys::ChildProcess child,
                       sys::Spawn({.argv = argv, .env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}}));
  SBX_ASSIGN_OR_RETURN(auto status, child.Wait(60000));
  if (status.ShellCode() != 0) return Error::Internal(argv[0] + " " + status.ToString());
  return Ok();
}

Result<double> TimeCommand(const std::vector<std::string>& argv) {
  int64_t start = MonotonicNanos();
  SBX_ASSIGN_OR_RETURN(auto r, sys::RunCommand(argv, {}, 60000));
  if (r.status.ShellCode() != 0) return Error::Internal(argv[0] + " failed: " + r.err);
  return Ms(MonotonicNanos() - start);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sbx runtime benchmark"};
  std::string rootfs;
  int runs = 200;
  std::string peers = "runc,docker";
  std::string json_out;
  std::string bin_dir;
  bool own_ranges = false;
  app.add_option("--rootfs", rootfs, "root filesystem (busybox) owned by uid 1000000")->required();
  app.add_option("--runs", runs, "iterations per measurement");
  app.add_option("--peers", peers, "comma-separated: runc, docker");
  app.add_option("--json", json_out, "write results as JSON here");
  app.add_option("--bin-dir", bin_dir, "directory with sbx-init (default: next to this binary)");
  app.add_flag("--own-ranges", own_ranges,
               "a host id range per sandbox, the root filesystem idmapped onto it (as sbxd does)");
  CLI11_PARSE(app, argc, argv);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  if (bin_dir.empty()) bin_dir = sys::SelfExeDir().value_or(".");
  auto cgroups = runtime::MakeCgroupDriver(sys::ProbeCgroups(), "sbx-bench");
  if (!cgroups) {
    fprintf(stderr, "%s\n", cgroups.error().ToString().c_str());
    return 1;
  }
  std::string run_dir = "/tmp/sbx-bench-" + RandomHex(4);
  (void)sys::MakeDirs(run_dir);
  std::vector<Series> results;
  // One sealed copy of sbx-init for every create, as sbxd does.
  auto init = runtime::SealedCopyOfInit(bin_dir + "/sbx-init");
  if (!init) {
    fprintf(stderr, "%s\n", init.error().ToString().c_str());
    return 1;
  }

  uint32_t next_range = 0;
  auto spec_for = [&](const std::string& id) {
    runtime::RuntimeSpec spec;
    if (own_ranges) {
      uint32_t base = 1000000 + (1 + next_range++ % 64) * 65536;
      spec.id_map = {base, base, 65536};
      spec.rootfs.layer_ids = runtime::LayerIds{1000000, 1000000};
    }
    spec.id = id;
    spec.hostname = id;
    spec.rootfs.layers = {rootfs};
    spec.rootfs.writable.kind = runtime::WritableKind::kTmpfs;
    spec.rootfs.writable.size_bytes = 256u << 20;
    spec.resources.memory_bytes = 512u << 20;
    spec.resources.cpu_millis = 1000;
    spec.process.env = {"PATH=/bin:/usr/bin"};
    return spec;
  };

  // sbx: create -> first byte of an exec's output, then removal (not timed).
  Series create{"sbx create -> first exec output", {}};
  Series exec_rt{"sbx exec round trip (true)", {}};
  for (int i = 0; i < runs; ++i) {
    std::string id = "b" + RandomHex(5);
    std::string bundle = run_dir + "/" + id;
    (void)sys::MakeDirs(bundle, 0700);
    int64_t start = MonotonicNanos();
    auto state = runtime::CreateSandbox(spec_for(id),
                                        {.bundle_dir = bundle, .init_fd = init->get()}, **cgroups);
    if (!state) {
      fprintf(stderr, "create: %s\n", state.error().ToString().c_str());
      return 1;
    }
    agent::AgentClient client(state->socket_path);
    auto stream = client.StartExec({.argv = {"echo", "hi"}});
    if (!stream) {
      fprintf(stderr, "exec: %s\n", stream.error().ToString().c_str());
      return 1;
    }
    auto event = stream->Next(MonotonicMillis() + 10000);
    create.ms.push_back(Ms(MonotonicNanos() - start));
    if (!event) return 1;
    if (i == 0) {
      // Exec round trips in a warm sandbox.
      for (int j = 0; j < runs; ++j) {
        int64_t t = MonotonicNanos();
        auto s = client.StartExec({.argv = {"true"}});
        if (!s) return 1;
        while (true) {
          auto e = s->Next(MonotonicMillis() + 10000);
          if (!e) return 1;
          if (e->kind == agent::ExecEvent::kExit) break;
        }
        exec_rt.ms.push_back(Ms(MonotonicNanos() - t));
      }
    }
    (void)runtime::DestroySandbox(id, bundle, **cgroups);
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }
  results.push_back(create);
  results.push_back(exec_rt);

  auto has_peer = [&](const std::string& name) { return peers.find(name) != std::string::npos; };
  if (has_peer("runc") && access("/usr/sbin/runc", X_OK) == 0) {
    // runc: a bundle whose config runs `echo hi`; `runc run` until first output.
    std::string bundle = run_dir + "/runc";
    (void)sys::MakeDirs(bundle);
    auto spec = sys::RunCommand({"/usr/sbin/runc", "spec", "--bundle", bundle});
    if (spec && spec->status.ShellCode() == 0) {
      auto text = sys::ReadFile(bundle + "/config.json");
      auto j = nlohmann::json::parse(*text);
      j["root"]["path"] = rootfs;
      j["root"]["readonly"] = true;
      j["process"]["terminal"] = false;
      j["process"]["args"] = {"echo", "hi"};
      (void)sys::WriteFile(bundle + "/config.json", j.dump());
      Series runc_run{"runc run (echo) -> first output", {}};
      for (int i = 0; i < runs; ++i) {
        std::string id = "r" + RandomHex(5);
        auto t = TimeToFirstOutput({"/usr/sbin/runc", "run", "--bundle", bundle, id});
        if (!t) {
          fprintf(stderr, "runc: %s\n", t.error().ToString().c_str());
          break;
        }
        runc_run.ms.push_back(*t);
      }
      results.push_back(runc_run);
      // runc exec round trip into a running container.
      j["process"]["args"] = {"sleep", "1000"};
      (void)sys::WriteFile(bundle + "/config.json", j.dump());
      std::string id = "rx" + RandomHex(4);
      if (RunQuiet({"/usr/sbin/runc", "run", "--detach", "--bundle", bundle, id})) {
        Series runc_exec{"runc exec round trip (true)", {}};
        for (int i = 0; i < runs; ++i) {
          auto t = TimeCommand({"/usr/sbin/runc", "exec", id, "true"});
          if (!t) break;
          runc_exec.ms.push_back(*t);
        }
        results.push_back(runc_exec);
        (void)sys::RunCommand({"/usr/sbin/runc", "delete", "--force", id});
      }
    }
  }
  if (has_peer("docker") && access("/usr/bin/docker", X_OK) == 0) {
    auto info =
        sys::RunCommand({"/usr/bin/docker", "info", "--format", "{{.ServerVersion}}"}, {}, 10000);
    if (info && info->status.ShellCode() == 0) {
      std::string image = "sbx-bench/rootfs:" + RandomHex(4);
      auto imported = sys::RunCommand(
          {"/bin/sh", "-c", "tar -C '" + rootfs + "' -c . | /usr/bin/docker import - " + image}, {},
          120000);
      if (imported && imported->status.ShellCode() == 0) {
        Series docker_run{"docker run --rm (echo) -> first output", {}};
        for (int i = 0; i < runs; ++i) {
          auto t = TimeToFirstOutput(
              {"/usr/bin/docker", "run", "--rm", "--network", "none", image, "echo", "hi"});
          if (!t) {
            fprintf(stderr, "docker run: %s\n", t.error().ToString().c_str());
            break;
          }
          docker_run.ms.push_back(*t);
        }
        results.push_back(docker_run);
        std::string name = "sbx-bench-" + RandomHex(4);
        auto started = sys::RunCommand({"/usr/bin/docker", "run", "-d", "--network", "none",
                                        "--name", name, image, "sleep", "1000"},
                                       {}, 60000);
        if (started && started->status.ShellCode() == 0) {
          Series docker_exec{"docker exec round trip (true)", {}};
          for (int i = 0; i < runs; ++i) {
            auto t = TimeCommand({"/usr/bin/docker", "exec", name, "true"});
            if (!t) break;
            docker_exec.ms.push_back(*t);
          }
          results.push_back(docker_exec);
          (void)sys::RunCommand({"/usr/bin/docker", "rm", "-f", name}, {}, 60000);
        }
        (void)sys::RunCommand({"/usr/bin/docker", "rmi", image}, {}, 60000);
      }
    } else {
      fprintf(stderr, "docker: no engine answering; skipped\n");
    }
  }
  (void)sys::RemoveTree(run_dir);
  (void)(*cgroups)->RemoveParentIfEmpty();

  nlohmann::json out = nlohmann::json::array();
  printf("%-44s %8s %10s %10s\n", "measurement", "runs", "p50 (ms)", "p99 (ms)");
  for (const auto& s : results) {
    printf("%-44s %8zu %10.3f %10.3f\n", s.name.c_str(), s.ms.size(), s.Percentile(0.5),
           s.Percentile(0.99));
    out.push_back({{"name", s.name},
                   {"runs", s.ms.size()},
                   {"p50_ms", s.Percentile(0.5)},
                   {"p99_ms", s.Percentile(0.99)}});
  }
  if (!json_out.empty()) (void)sys::WriteFile(json_out, out.dump(2));
  return 0;
}
