// sbx doctor: is this host ready for sandboxes? Each check gets a one-line verdict and, when it
// fails, what will not work and what to do.
//
// When sbxd answers, its own view of the host counts (SystemService.GetInfo); when it does not,
// sbx says so and probes this machine itself with the same probes sbxd uses (src/sys/features:
// host inspection, not API use). Registry reachability (GET /v2/ of each configured mirror) and
// the kernel version are checked here either way.

#include <sys/statvfs.h>
#include <sys/utsname.h>

#include <cstdio>
#include <fstream>

#include <curl/curl.h>

#include "src/base/strings.h"
#include "src/cli/commands.h"
#include "src/cli/format.h"
#include "src/sys/features.h"

namespace sbx::cli {

namespace {

enum class Verdict { kOk, kWarn, kFail };

struct Finding {
  std::string name;
  Verdict verdict = Verdict::kOk;
  std::string detail;
  std::string advice;  // what will not work, and what to do
};

struct Advice {
  const char* name;
  bool required;
  const char* advice;
};

constexpr Advice kAdvice[] = {
    {"root", true,
     "sbxd cannot create namespaces, cgroups or mounts; run sbxd as real root (not inside a "
     "user namespace or a rootless container)"},
    {"userns", true,
     "sandboxes cannot start (each runs in a user namespace); enable them: sysctl -w "
     "user.max_user_namespaces=15000, and persist it in /etc/sysctl.d"},
    {"overlayfs", true,
     "images cannot become sandbox root file systems; load the module: modprobe overlay"},
    {"openat2", true,
     "files cannot be confined to a sandbox's root, so sbxd refuses to run; upgrade to Linux "
     "5.6 or newer"},
    {"pidfd", true, "processes cannot be tracked safely; upgrade to Linux 5.3 or newer"},
    {"seccomp", true,
     "the system-call filter cannot be installed, so sandboxes do not start; use a kernel built "
     "with CONFIG_SECCOMP_FILTER"},
    {"cgroups", true,
     "no CPU, memory or process limits, so sandboxes cannot be created; boot with cgroup v2 "
     "(systemd.unified_cgroup_hierarchy=1) and the cpu, memory and pids controllers enabled"},
    {"loop", false,
     "writable_layer \"loop\" (the default) fails; modprobe loop, or set \"writable_layer\": "
     "\"tmpfs\" in /etc/sbx/sbxd.json"},
};

const Advice* AdviceFor(const std::string& name) {
  for (const auto& a : kAdvice) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

Finding FromCheck(const std::string& name, bool ok, const std::string& detail, bool local) {
  Finding f{name, Verdict::kOk, detail, ""};
  if (ok) return f;
  const Advice* advice = AdviceFor(name);
  f.verdict = advice == nullptr || advice->required ? Verdict::kFail : Verdict::kWarn;
  f.advice = advice != nullptr ? advice->advice : "";
  if (local && name == "root") {
    // This process is not sbxd: not being root here says little about the daemon.
    f.verdict = Verdict::kWarn;
    f.advice = "sbxd must run as root; run 'sudo sbx doctor' for checks that need root";
  }
  return f;
}

struct Settings {
  std::vector<std::string> registries;
  std::string state_dir = "/var/lib/sbx";
};

// What sbxd's configuration file says about registries and the state directory.
void ReadConfig(const std::string& path, Settings* settings, std::vector<std::string>* notes) {
  std::ifstream in(path);
  if (!in) return;
  auto config = nlohmann::json::parse(in, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    notes->push_back("could not parse " + path);
    return;
  }
  if (config.contains("registry_mirrors") && config["registry_mirrors"].is_array()) {
    for (const auto& m : config["registry_mirrors"]) {
      if (m.is_string()) settings->registries.push_back(m.get<std::string>());
    }
  }
  if (config.contains("state_dir") && config["state_dir"].is_string()) {
    settings->state_dir = config["state_dir"].get<std::string>();
  }
}

size_t Discard(char*, size_t size, size_t count, void*) { return size * count; }

Finding CheckRegistry(const std::string& base) {
  std::string url = base;
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.find("://") == std::string::npos) url = "https://" + url;
  url += "/v2/";
  Finding f{"registry", Verdict::kOk, "", ""};
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    f.verdict = Verdict::kWarn;
    f.detail = "cannot initialise libcurl to check " + url;
    return f;
  }
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Discard);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, (std::string("sbx/") + kClientVersion).c_str());
  auto started = std::chrono::steady_clock::now();
  CURLcode result = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  started)
                .count();
  if (result != CURLE_OK) {
    f.verdict = Verdict::kWarn;
    f.detail =
        "cannot reach " + url + ": " + (error[0] != '\0' ? error : curl_easy_strerror(result));
    f.advice =
        "images not already in the store cannot be pulled; check the network and proxy, or set "
        "a reachable mirror (registry_mirrors in /etc/sbx/sbxd.json; 'sbx doctor --registry URL' "
        "checks another)";
    return f;
  }
  f.detail = url + " answered " + std::to_string(status) + " in " + std::to_string(ms) + " ms";
  // 401 is a registry asking for a token: reachable.
  if (status != 200 && status != 401) {
    f.verdict = Verdict::kWarn;
    f.advice = "this does not look like an OCI registry; pulls through it will likely fail";
  }
  return f;
}

Finding CheckDisk(const std::string& dir, std::optional<int64_t> free_bytes) {
  Finding f{"disk", Verdict::kOk, "", ""};
  if (!free_bytes) {
    // The state directory may not exist yet: measure the file system it would be on.
    std::string path = dir;
    struct statvfs fs {};
    while (statvfs(path.c_str(), &fs) != 0 && path.size() > 1) {
      size_t slash = path.rfind('/');
      path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
    }
    free_bytes = static_cast<int64_t>(fs.f_bavail * fs.f_frsize);
  }
  f.detail = FormatBytes(static_cast<uint64_t>(*free_bytes)) + " free in " + dir;
  if (*free_bytes < (1ll << 30)) {
    f.verdict = Verdict::kFail;
    f.advice =
        "image pulls and sandboxes' writable layers will fail for lack of space; free "
        "space, or move state_dir to a larger disk";
  } else if (*free_bytes < (5ll << 30)) {
    f.verdict = Verdict::kWarn;
    f.advice =
        "enough for a few images only; each sandbox's writable layer takes up to "
        "default_disk (10Gi) as it fills";
  }
  return f;
}

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kOk:
      return "ok";
    case Verdict::kWarn:
      return "warn";
    case Verdict::kFail:
      return "FAIL";
  }
  return "?";
}

}  // namespace

void AddDoctorCommand(CLI::App& app, Context& ctx) {
  struct Flags {
    std::vector<std::string> registries;
    std::string config = "/etc/sbx/sbxd.json";
    std::string state_dir;
    std::string output = "table";
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("doctor", "Check that this host can run sandboxes");
  cmd->footer(
      "Checks sbxd, the kernel's features (user namespaces, overlayfs, openat2, pidfd,\n"
      "seccomp, loop devices), cgroups, disk space and registry reachability, says what will\n"
      "not work and why, and exits 1 when something required fails. When sbxd does not\n"
      "answer, sbx probes this machine itself.");
  cmd->add_option("--registry", flags->registries,
                  "registry or mirror URL to check (repeatable; default: sbxd.json's "
                  "registry_mirrors, else Docker Hub)")
      ->type_name("URL");
  cmd->add_option("--config", flags->config, "sbxd's configuration file")->type_name("FILE");
  cmd->add_option("--state-dir", flags->state_dir, "sbxd's state directory")->type_name("DIR");
  cmd->add_option("-o,--output", flags->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->type_name("FORMAT");
  cmd->callback([&ctx, flags] {
    std::vector<Finding> findings;
    std::vector<std::string> notes;
    std::optional<SystemInfo> info;
    Client* client = ctx.client();
    if (client == nullptr) return;
    auto answered = client->GetInfo();
    // The running daemon's own configuration counts; its file only when it cannot say.
    Settings settings;
    if (answered && answered->config) {
      settings.registries = answered->config->registry_mirrors;
      settings.state_dir = answered->config->state_dir;
      if (answered->config->registry_mirrors.empty()) {
        notes.push_back("sbxd has no registry mirror: images come from docker.io itself");
      } else {
        notes.push_back("registries checked are sbxd's own mirrors (" +
                        Join(answered->config->registry_mirrors, ", ") + "), then docker.io");
      }
    } else {
      ReadConfig(flags->config, &settings, &notes);
      if (answered) notes.push_back("sbxd did not say its configuration (not an operator)");
    }
    if (!flags->registries.empty()) settings.registries = flags->registries;
    if (settings.registries.empty()) settings.registries.push_back("https://registry-1.docker.io");
    if (!flags->state_dir.empty()) settings.state_dir = flags->state_dir;

    if (answered) {
      info = *answered;
      findings.push_back({"daemon", Verdict::kOk,
                          "sbxd " + info->version + " at " + client->base_url() + ", runner " +
                              info->runner_id + ", " + std::to_string(info->running_sandboxes) +
                              " sandboxes running",
                          ""});
    } else {
      findings.push_back(
          {"daemon", Verdict::kFail, answered.error().message(),
           "nothing can run until sbxd is up: start it as root (sudo sbxd, or systemctl start "
           "sbxd); the checks below are this machine's, probed by sbx itself"});
    }
    utsname u{};
    if (uname(&u) == 0) {
      findings.push_back({"kernel", Verdict::kOk, std::string(u.sysname) + " " + u.release, ""});
    }
    if (info) {
      for (const auto& check : info->checks) {
        findings.push_back(FromCheck(check.name, check.ok, check.detail, false));
      }
    } else {
      for (const auto& [name, feature] : sys::ProbeAll()) {
        findings.push_back(FromCheck(name, feature.available, feature.detail, true));
      }
    }
    findings.push_back(info ? CheckDisk("sbxd's state directory", info->disk_free_bytes)
                            : CheckDisk(settings.state_dir, std::nullopt));
    for (const auto& r : settings.registries) findings.push_back(CheckRegistry(r));

    bool failed = false;
    for (const auto& f : findings) failed = failed || f.verdict == Verdict::kFail;
    if (flags->output == "json") {
      nlohmann::ordered_json out = nlohmann::ordered_json::array();
      for (const auto& f : findings) {
        out.push_back({{"name", f.name},
                       {"verdict", VerdictName(f.verdict)},
                       {"detail", f.detail},
                       {"advice", f.advice}});
      }
      printf("%s\n", out.dump(2).c_str());
    } else {
      for (const auto& f : findings) {
        printf("%-5s %-10s %s\n", VerdictName(f.verdict), f.name.c_str(), f.detail.c_str());
        if (!f.advice.empty()) printf("      %-10s -> %s\n", "", f.advice.c_str());
      }
      for (const auto& n : notes) printf("note: %s\n", n.c_str());
      printf("%s\n", failed ? "sbx will not work on this host until the FAIL lines are fixed."
                            : "This host can run sandboxes.");
    }
    ctx.exit_code = failed ? kExitFailure : kExitOk;
  });
}

}  // namespace sbx::cli
