#include "src/daemon/spec_builder.h"

#include <algorithm>

#include "src/base/strings.h"
#include "src/daemon/warm_pool.h"
#include "src/sys/fs.h"

namespace sbx::daemon {

runtime::Process BuildProcess(const CreateRequest& request, const ResolvedImage& image,
                              const SecretEnv& secrets) {
  runtime::Process process;
  if (!request.command.empty()) {
    process.args.push_back(request.command);
    process.args.insert(process.args.end(), request.args.begin(), request.args.end());
  } else {
    process.args = image.entrypoint;
    const auto& args = request.args_given ? request.args : image.cmd;
    process.args.insert(process.args.end(), args.begin(), args.end());
  }
  process.env = image.env;
  auto set_env = [&process](const std::string& key, const std::string& value) {
    std::string prefix = key + "=";
    for (auto& e : process.env) {
      if (StartsWith(e, prefix)) {
        e = prefix + value;
        return;
      }
    }
    process.env.push_back(prefix + value);
  };
  for (const auto& [k, v] : request.env) set_env(k, v);
  for (const auto& [k, v] : secrets) set_env(k, v);
  if (std::none_of(process.env.begin(), process.env.end(),
                   [](const std::string& e) { return StartsWith(e, "PATH="); })) {
    process.env.emplace_back(kDefaultPath);
  }
  process.cwd = !request.working_dir.empty() ? request.working_dir
                : !image.working_dir.empty() ? image.working_dir
                                             : "/";
  process.user = ProcessUser(image.user, request.run_as_user, request.run_as_group);
  return process;
}

std::string ProcessUser(const std::string& image_user, std::optional<uint32_t> run_as_user,
                        std::optional<uint32_t> run_as_group) {
  size_t colon = image_user.find(':');
  std::string user = image_user.substr(0, colon);
  std::string group = colon == std::string::npos ? "" : image_user.substr(colon + 1);
  if (run_as_user) user = std::to_string(*run_as_user);
  if (run_as_group) group = std::to_string(*run_as_group);
  if (user.empty() && !group.empty()) user = "0";
  return group.empty() ? user : user + ":" + group;
}

SandboxPlan BuildPlan(const SpecInputs& inputs, const CreateRequest& request,
                      const ResolvedImage& image, const net::NetworkAttachment& network,
                      const SecretEnv& secrets, const SpecDefaults& defaults) {
  SandboxPlan plan;
  runtime::RuntimeSpec& spec = plan.spec;
  spec.id = inputs.id;
  spec.hostname = inputs.id;
  spec.rootfs.layers = image.layer_dirs;
  spec.rootfs.readonly = request.read_only_root;
  spec.rootfs.writable.kind =
      defaults.loop_writable_layer ? runtime::WritableKind::kLoop : runtime::WritableKind::kTmpfs;
  spec.rootfs.writable.size_bytes = defaults.disk_bytes;
  spec.process = BuildProcess(request, image, secrets);
  spec.process.await_start = inputs.await_start;
  spec.process.drop_capabilities = request.drop_capabilities;
  spec.background = inputs.await_start;
  spec.resources.cpu_millis = inputs.cpu_limit_millis;
  spec.resources.memory_bytes = inputs.memory_limit_bytes;
  spec.resources.pids = defaults.pids;
  spec.resources.shm_bytes = ShmBytesFor(inputs.memory_limit_bytes);
  spec.id_map = inputs.id_map;
  if (inputs.id_map.host_uid != defaults.layers_id_map.host_uid ||
      inputs.id_map.host_gid != defaults.layers_id_map.host_gid) {
    spec.rootfs.layer_ids =
        runtime::LayerIds{defaults.layers_id_map.host_uid, defaults.layers_id_map.host_gid};
  }
  spec.deadline_unix_ns = inputs.deadline_unix_ns;
  spec.stop_grace_ms = defaults.stop_grace_ms;
  if (!network.netns_path.empty()) {
    spec.network.mode = "netns";
    spec.network.netns_path = network.netns_path;
  }
  spec.network.dns_servers = network.dns_servers;
  spec.network.extra_hosts = network.extra_hosts;
  for (const auto& file : request.files) {
    // A relative path is relative to the main process's working directory.
    std::string path = file.path;
    if (path.empty() || path[0] != '/') path = sys::JoinPath(spec.process.cwd, path);
    spec.files.push_back({path, "", 0444});
    plan.file_contents.push_back(file.content);
  }
  return plan;
}

agent::InitConfig MainProcessConfig(runtime::Process process, int64_t deadline_unix_ns,
                                    int64_t stop_grace_ms) {
  agent::InitConfig main;
  main.argv = std::move(process.args);
  main.env = std::move(process.env);
  main.cwd = std::move(process.cwd);
  main.user = std::move(process.user);
  main.deadline_unix_ns = deadline_unix_ns;
  main.stop_grace_ms = stop_grace_ms;
  return main;
}

}  // namespace sbx::daemon
