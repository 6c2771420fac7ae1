// File: spec.h
//
// RuntimeSpec is the fully resolved description of one sandbox: the runtime does exactly what it
// says and nothing else. It knows no images and no API: the daemon (or a test, or a user of
// sbx-runtime) resolves an image and a request into this. It is stored as JSON in the sandbox's
// bundle directory (spec.json).

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "src/base/result.h"

namespace sbx::runtime {

struct IdMap {
  uint32_t host_uid = 1000000;  // sandbox uid 0 is this host uid
  uint32_t host_gid = 1000000;
  uint32_t size = 65536;
  bool operator==(const IdMap&) const = default;
};

// The host ids that stand for uid and gid 0 in the files of the image layers.
struct LayerIds {
  uint32_t host_uid = 0;
  uint32_t host_gid = 0;
  bool operator==(const LayerIds&) const = default;
};

enum class WritableKind { kLoop, kTmpfs };

struct WritableLayer {
  WritableKind kind = WritableKind::kLoop;
  uint64_t size_bytes = 10ull << 30;
  uint64_t inodes = 0;  // 0: the filesystem's default
};

struct Rootfs {
  // Read-only layer directories, lowest (base) first. Their files are owned by the sandbox's range
  // (id_map), or by the range `layer_ids` starts.
  std::vector<std::string> layers;
  // Where the layers' files are not the sandbox's own (sandboxes in ranges of their own share
  // layers unpacked once): the runtime mounts each layer idmapped, from the id_map.size ids at
  // `layer_ids` onto the sandbox's range. Unset: the layers are in the sandbox's range already.
  std::optional<LayerIds> layer_ids;
  WritableLayer writable;
  bool readonly = false;
};

struct Process {
  std::vector<std::string> args;  // empty: no main process (the sandbox idles until stopped)
  std::vector<std::string> env;   // KEY=VALUE
  std::string cwd = "/";
  std::string user;  // "uid[:gid]" or names from the sandbox's /etc/passwd
  // Capabilities dropped from the default set for every process of the sandbox ("ALL": all).
  std::vector<std::string> drop_capabilities;
  // Made ahead of time: sbx-init starts no process until the host sends the real one
  // (agent::MsgType::kStartMain); args, env, cwd and user here are then replaced.
  bool await_start = false;
};

struct Resources {
  uint64_t memory_bytes = 2ull << 30;
  uint64_t cpu_millis = 2000;  // 1000 = one CPU
  uint64_t pids = 4096;
  uint64_t shm_bytes = 64ull << 20;
  uint64_t nofile = 65536;
};

struct MountedFile {
  std::string path;    // inside the sandbox (absolute)
  std::string source;  // host file with the content (in the bundle)
  uint32_t mode = 0444;
};

struct Network {
  std::string mode = "none";  // "none": a fresh netns with only loopback; "netns": join one
  std::string netns_path;     // for "netns"
  std::vector<std::string> dns_servers;
  std::vector<std::string> dns_search;
  std::vector<std::string> extra_hosts;  // "ip name..." lines for /etc/hosts
};

struct RuntimeSpec {
  std::string id;
  Rootfs rootfs;
  Process process;
  std::string hostname;
  Resources resources;
  std::vector<MountedFile> files;
  IdMap id_map;
  Network network;
  int64_t deadline_unix_ns = 0;  // max lifetime, enforced by sbx-init too
  int64_t stop_grace_ms = 10000;
  uint64_t log_ring_bytes = 1u << 20;
  // Made ahead of time, to be claimed later: the setup runs at the lowest CPU priority and the
  // cgroup gets the lowest CPU weight, so that it takes only CPU time running sandboxes leave.
  // sbx-init itself is put back at nice 0; the host restores the weight when it claims the
  // sandbox (CgroupDriver::SetLimits with kDefaultCpuWeight).
  bool background = false;
};

// Checks what the runtime relies on: ids and paths well-formed, limits within sane bounds.
// Errors name the offending field ("process.cwd: must be absolute").
Status Validate(const RuntimeSpec& spec);

std::string ToJson(const RuntimeSpec& spec);
Result<RuntimeSpec> FromJson(const std::string& json);

}  // namespace sbx::runtime
