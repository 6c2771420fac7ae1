#include "src/runtime/spec.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "src/base/strings.h"
#include "src/runtime/capabilities.h"

namespace sbx::runtime {

using nlohmann::json;

namespace {

bool IsValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  }
  return true;
}

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

Status CheckAbsolute(const std::string& path, const std::string& field) {
  if (path.empty() || path[0] != '/') {
    return Error::InvalidArgument(field + ": " + Quote(path) + " must be an absolute path");
  }
  if (HasNul(path) || path.size() >= 4096) {
    return Error::InvalidArgument(field + ": invalid path");
  }
  return Ok();
}

}  // namespace

Status Validate(const RuntimeSpec& spec) {
  if (!IsValidId(spec.id)) {
    return Error::InvalidArgument("id: " + Quote(spec.id) +
                                  " must be 1-64 characters of [A-Za-z0-9_-]");
  }
  for (size_t i = 0; i < spec.rootfs.layers.size(); ++i) {
    SBX_TRY(CheckAbsolute(spec.rootfs.layers[i], "rootfs.layers[" + std::to_string(i) + "]"));
    if (spec.rootfs.layers[i].find_first_of(":,") != std::string::npos) {
      return Error::InvalidArgument("rootfs.layers[" + std::to_string(i) +
                                    "]: layer paths may not contain ':' or ','");
    }
  }
  if (spec.rootfs.layers.empty()) return Error::InvalidArgument("rootfs.layers: no layers");
  if (spec.rootfs.layers.size() > 500)
    return Error::InvalidArgument("rootfs.layers: more than 500 layers");
  const auto& w = spec.rootfs.writable;
  if (w.size_bytes < (1u << 20) || w.size_bytes > (16ull << 40)) {
    return Error::InvalidArgument("rootfs.writable.size_bytes: must be between 1 MiB and 16 TiB");
  }
  SBX_TRY(CheckAbsolute(spec.process.cwd, "process.cwd"));
  for (const auto& a : spec.process.args) {
    if (HasNul(a)) return Error::InvalidArgument("process.args: argument contains a NUL byte");
  }
  if (!spec.process.args.empty() && spec.process.args[0].empty()) {
    return Error::InvalidArgument("process.args: empty command");
  }
  for (const auto& e : spec.process.env) {
    size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0 || HasNul(e)) {
      return Error::InvalidArgument("process.env: " + Quote(e, 64) + " is not KEY=VALUE");
    }
  }
  if (spec.hostname.size() > 63 || HasNul(spec.hostname)) {
    return Error::InvalidArgument("hostname: at most 63 characters");
  }
  const auto& r = spec.resources;
  if (r.memory_bytes < (6u << 20)) {
    return Error::InvalidArgument("resources.memory_bytes: at least 6 MiB is needed");
  }
  if (r.memory_bytes > (1ull << 50))
    return Error::InvalidArgument("resources.memory_bytes: absurd");
  if (r.cpu_millis < 10 || r.cpu_millis > 1024000) {
    return Error::InvalidArgument("resources.cpu_millis: must be between 10 and 1024000");
  }
  if (r.pids < 8 || r.pids > (1u << 22)) {
    return Error::InvalidArgument("resources.pids: must be between 8 and 4194304");
  }
  if (r.nofile < 64 || r.nofile > (1u << 20)) {
    return Error::InvalidArgument("resources.nofile: must be between 64 and 1048576");
  }
  if (r.shm_bytes > r.memory_bytes) {
    return Error::InvalidArgument("resources.shm_bytes: larger than the memory limit");
  }
  for (size_t i = 0; i < spec.files.size(); ++i) {
    std::string field = "files[" + std::to_string(i) + "]";
    SBX_TRY(CheckAbsolute(spec.files[i].path, field + ".path"));
    SBX_TRY(CheckAbsolute(spec.files[i].source, field + ".source"));
    if (spec.files[i].path == "/") return Error::InvalidArgument(field + ".path: cannot be /");
  }
  if (auto dropped = DroppedCapabilityMask(spec.process.drop_capabilities); !dropped) {
    return std::move(dropped).error().Wrap("process.drop_capabilities");
  }
  if (spec.id_map.size == 0 || spec.id_map.host_uid == 0 || spec.id_map.host_gid == 0) {
    return Error::InvalidArgument("id_map: sandbox root must map to an unprivileged host id");
  }
  if (static_cast<uint64_t>(spec.id_map.host_uid) + spec.id_map.size > 0xffffffffull ||
      static_cast<uint64_t>(spec.id_map.host_gid) + spec.id_map.size > 0xffffffffull) {
    return Error::InvalidArgument("id_map: range overflows");
  }
  if (const auto& layer = spec.rootfs.layer_ids;
      layer && (static_cast<uint64_t>(layer->host_uid) + spec.id_map.size > 0xffffffffull ||
                static_cast<uint64_t>(layer->host_gid) + spec.id_map.size > 0xffffffffull)) {
    return Error::InvalidArgument("rootfs.layer_ids: a range of id_map.size ids overflows");
  }
  if (spec.network.mode != "none" && spec.network.mode != "netns") {
    return Error::InvalidArgument("network.mode: " + Quote(spec.network.mode) +
                                  " (expected \"none\" or \"netns\")");
  }
  if (spec.network.mode == "netns")
    SBX_TRY(CheckAbsolute(spec.network.netns_path, "network.netns_path"));
  if (spec.stop_grace_ms < 0 || spec.stop_grace_ms > 3600000) {
    return Error::InvalidArgument("stop_grace_ms: must be between 0 and 3600000");
  }
  return Ok();
}

std::string ToJson(const RuntimeSpec& spec) {
  json files = json::array();
  for (const auto& f : spec.files) {
    files.push_back({{"path", f.path}, {"source", f.source}, {"mode", f.mode}});
  }
  json j = {
      {"id", spec.id},
      {"rootfs",
       {{"layers", spec.rootfs.layers},
        {"layer_ids", spec.rootfs.layer_ids ? json{{"host_uid", spec.rootfs.layer_ids->host_uid},
                                                   {"host_gid", spec.rootfs.layer_ids->host_gid}}
                                            : json(nullptr)},
        {"writable",
         {{"kind", spec.rootfs.writable.kind == WritableKind::kTmpfs ? "tmpfs" : "loop"},
          {"size_bytes", spec.rootfs.writable.size_bytes},
          {"inodes", spec.rootfs.writable.inodes}}},
        {"readonly", spec.rootfs.readonly}}},
      {"process",
       {{"args", spec.process.args},
        {"env", spec.process.env},
        {"cwd", spec.process.cwd},
        {"user", spec.process.user},
        {"drop_capabilities", spec.process.drop_capabilities},
        {"await_start", spec.process.await_start}}},
      {"hostname", spec.hostname},
      {"resources",
       {{"memory_bytes", spec.resources.memory_bytes},
        {"cpu_millis", spec.resources.cpu_millis},
        {"pids", spec.resources.pids},
        {"shm_bytes", spec.resources.shm_bytes},
        {"nofile", spec.resources.nofile}}},
      {"files", files},
      {"id_map",
       {{"host_uid", spec.id_map.host_uid},
        {"host_gid", spec.id_map.host_gid},
        {"size", spec.id_map.size}}},
      {"network",
       {{"mode", spec.network.mode},
        {"netns_path", spec.network.netns_path},
        {"dns_servers", spec.network.dns_servers},
        {"dns_search", spec.network.dns_search},
        {"extra_hosts", spec.network.extra_hosts}}},
      {"deadline_unix_ns", spec.deadline_unix_ns},
      {"stop_grace_ms", spec.stop_grace_ms},
      {"background", spec.background},
      {"log_ring_bytes", spec.log_ring_bytes},
  };
  return j.dump(2);
}

Result<RuntimeSpec> FromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Error::InvalidArgument("spec is not a JSON object");
  RuntimeSpec spec;
  try {
    spec.id = j.at("id").get<std::string>();
    if (j.contains("rootfs")) {
      const auto& r = j.at("rootfs");
      spec.rootfs.layers = r.value("layers", std::vector<std::string>{});
      spec.rootfs.readonly = r.value("readonly", false);
      if (r.contains("layer_ids") && !r.at("layer_ids").is_null()) {
        const auto& ids = r.at("layer_ids");
        spec.rootfs.layer_ids =
            LayerIds{ids.at("host_uid").get<uint32_t>(), ids.at("host_gid").get<uint32_t>()};
      }
      if (r.contains("writable")) {
        const auto& w = r.at("writable");
        std::string kind = w.value("kind", "loop");
        if (kind == "tmpfs") {
          spec.rootfs.writable.kind = WritableKind::kTmpfs;
        } else if (kind == "loop") {
          spec.rootfs.writable.kind = WritableKind::kLoop;
        } else {
          return Error::InvalidArgument("rootfs.writable.kind: " + Quote(kind) +
                                        " (expected \"loop\" or \"tmpfs\")");
        }
        spec.rootfs.writable.size_bytes = w.value("size_bytes", spec.rootfs.writable.size_bytes);
        spec.rootfs.writable.inodes = w.value("inodes", uint64_t{0});
      }
    }
    if (j.contains("process")) {
      const auto& p = j.at("process");
      spec.process.args = p.value("args", std::vector<std::string>{});
      spec.process.env = p.value("env", std::vector<std::string>{});
      spec.process.cwd = p.value("cwd", std::string("/"));
      spec.process.user = p.value("user", std::string());
      spec.process.drop_capabilities = p.value("drop_capabilities", std::vector<std::string>{});
      spec.process.await_start = p.value("await_start", false);
    }
    spec.hostname = j.value("hostname", spec.id);
    if (j.contains("resources")) {
      const auto& r = j.at("resources");
      spec.resources.memory_bytes = r.value("memory_bytes", spec.resources.memory_bytes);
      spec.resources.cpu_millis = r.value("cpu_millis", spec.resources.cpu_millis);
      spec.resources.pids = r.value("pids", spec.resources.pids);
      spec.resources.shm_bytes = r.value("shm_bytes", spec.resources.shm_bytes);
      spec.resources.nofile = r.value("nofile", spec.resources.nofile);
    }
    for (const auto& f : j.value("files", json::array())) {
      spec.files.push_back({f.at("path").get<std::string>(), f.at("source").get<std::string>(),
                            f.value("mode", 0444u)});
    }
    if (j.contains("id_map")) {
      const auto& m = j.at("id_map");
      spec.id_map.host_uid = m.value("host_uid", spec.id_map.host_uid);
      spec.id_map.host_gid = m.value("host_gid", spec.id_map.host_gid);
      spec.id_map.size = m.value("size", spec.id_map.size);
    }
    if (j.contains("network")) {
      const auto& n = j.at("network");
      spec.network.mode = n.value("mode", std::string("none"));
      spec.network.netns_path = n.value("netns_path", std::string());
      spec.network.dns_servers = n.value("dns_servers", std::vector<std::string>{});
      spec.network.dns_search = n.value("dns_search", std::vector<std::string>{});
      spec.network.extra_hosts = n.value("extra_hosts", std::vector<std::string>{});
    }
    spec.deadline_unix_ns = j.value("deadline_unix_ns", int64_t{0});
    spec.stop_grace_ms = j.value("stop_grace_ms", int64_t{10000});
    spec.background = j.value("background", false);
    spec.log_ring_bytes = j.value("log_ring_bytes", uint64_t{1} << 20);
  } catch (const json::exception& e) {
    return Error::InvalidArgument(std::string("spec: ") + e.what());
  }
  return spec;
}

}  // namespace sbx::runtime
