// File: spec_builder.h
//
// A sandbox's runtime spec from its request and its image, with Docker's rules for what runs:
// the request's command replaces the image's entrypoint and cmd, its args replace the cmd; the
// image's environment, then the request's, then its secrets; the request's working directory,
// else the image's, else "/"; the image's user. Pure: no file, process or kernel is touched, so
// every rule is tested without one.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "src/base/result.h"
#include "src/daemon/image_provider.h"
#include "src/daemon/runtime_provider.h"
#include "src/daemon/sandbox_record.h"
#include "src/net/network_provider.h"
#include "src/runtime/spec.h"

namespace sbx::daemon {

using SecretEnv = std::vector<std::pair<std::string, std::string>>;

// What every sandbox of the node shares, from the daemon's configuration.
struct SpecDefaults {
  bool loop_writable_layer = true;  // else tmpfs
  uint64_t disk_bytes = 10ull << 30;
  uint64_t pids = 4096;
  // The image layers' host ids (the first range of the layout, id_ranges.h): every sandbox sees
  // the layers through idmapped mounts onto its own range.
  runtime::IdMap layers_id_map;
  int64_t stop_grace_ms = 10000;  // sbx-init's own grace when it enforces the lifetime
};

// What is particular to one sandbox.
struct SpecInputs {
  std::string id;
  uint64_t cpu_limit_millis = 0;
  uint64_t memory_limit_bytes = 0;
  int64_t deadline_unix_ns = 0;
  runtime::IdMap id_map;  // the sandbox's own host ids
  // Made ahead of time: no main process until one is sent, set up in the background.
  bool await_start = false;
};

inline constexpr const char* kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The main process: argv, environment, working directory and user.
runtime::Process BuildProcess(const CreateRequest& request, const ResolvedImage& image,
                              const SecretEnv& secrets);

// "user[:group]" as sbx-init takes it: the image's USER, with the security context's
// run_as_user and run_as_group in place of its parts (a group alone runs as the image's user,
// or root).
std::string ProcessUser(const std::string& image_user, std::optional<uint32_t> run_as_user,
                        std::optional<uint32_t> run_as_group);

// The whole plan: the spec and the content of the mounted files.
SandboxPlan BuildPlan(const SpecInputs& inputs, const CreateRequest& request,
                      const ResolvedImage& image, const net::NetworkAttachment& network,
                      const SecretEnv& secrets, const SpecDefaults& defaults);

// The main process as sbx-init takes it when it is sent to a sandbox made ahead of time.
agent::InitConfig MainProcessConfig(runtime::Process process, int64_t deadline_unix_ns,
                                    int64_t stop_grace_ms);

}  // namespace sbx::daemon
