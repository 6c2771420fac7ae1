// File: sandbox_record.h
//
// What sbxd knows about one sandbox, independent of the wire protocol. States follow the product
// (PENDING -> CREATING -> RUNNING -> COMPLETED | FAILED; stop: TERMINATING -> TERMINATED):
//
//   state        entered when                              leaves to
//   kPending     the create request is accepted             kCreating (capacity available),
//                                                           kFailed (it can never fit)
//   kCreating    capacity is reserved                       kRunning, kFailed
//   kRunning     sbx-init runs                              kCompleted, kFailed, kTerminating,
//                                                           kTerminated (lifetime)
//   kTerminating a stop was requested                       kTerminated
//   kCompleted   main process exited 0                      (terminal)
//   kFailed      main exited non-zero or by a signal, or    (terminal)
//                setup failed
//   kTerminated  stopped by the user or its lifetime        (terminal)
//
// Every terminal record carries `reason` (EXITED, OOM_KILLED, LIFETIME_EXCEEDED, USER_STOPPED,
// IMAGE_PULL_FAILED, STARTUP_FAILED, HOST_LOST) and a human message.

#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/runtime/spec.h"

namespace sbx::daemon {

enum class State { kPending, kCreating, kRunning, kCompleted, kFailed, kTerminating, kTerminated };

std::string_view StateName(State state);
bool IsTerminal(State state);
bool IsActive(State state);  // holds capacity: pending excluded, terminal excluded

struct SecretRef {
  std::string store;
  std::string name;   // path within the store
  std::string field;  // optional JSON field
  std::string env_var;
};

struct FileMount {
  std::string path;
  std::string content;
};

struct PortRange {
  std::string protocol;  // "tcp", "udp", or "" for both
  int port = 0;          // 0: every port
  int end_port = 0;      // 0: just `port`
};

// One allowed egress destination: a CIDR (minus exceptions) or a DNS name, on some ports.
struct EgressRuleSpec {
  std::string cidr;
  std::vector<std::string> except;
  std::string dns_name;  // "pypi.org" or "*.pypi.org"
  bool any = false;      // every public destination
  std::vector<PortRange> ports;
};

enum class NetworkMode {
  kNone,       // loopback only (deny_egress)
  kPublic,     // outbound to public addresses, never to the deny set (the default)
  kAllowlist,  // only the egress rules' destinations, never to the deny set
};

// A port of the sandbox exposed on the host.
struct ServiceSpec {
  int port = 0;
  std::string name;
  std::string protocol = "tcp";  // "tcp" or "udp"
  bool public_access = false;    // reachable from other machines too, not only from the host
  int visibility = 0;            // as requested (the wire's Visibility), echoed in the status
};

struct NetworkRequest {
  NetworkMode mode = NetworkMode::kPublic;
  std::vector<EgressRuleSpec> egress;
  std::vector<ServiceSpec> services;
};

// A validated create request, in domain terms.
struct CreateRequest {
  std::string request_id;
  std::string image;
  std::string command;            // replaces the image's entrypoint and cmd when set
  std::vector<std::string> args;  // replaces the image's cmd
  bool args_given = false;
  std::map<std::string, std::string> env;
  std::vector<SecretRef> secrets;
  std::vector<FileMount> files;
  std::string working_dir;
  uint64_t cpu_request_millis = 0;  // 0: default
  uint64_t cpu_limit_millis = 0;
  uint64_t memory_request_bytes = 0;
  uint64_t memory_limit_bytes = 0;
  int lifetime_seconds = 0;  // 0: default
  std::vector<std::string> tags;
  std::map<std::string, std::string> annotations;
  NetworkRequest network;
  std::string runtime_class;
  std::string spec_blob;  // the request's SandboxSpec, serialized, echoed back by Get
};

struct SandboxRecord {
  std::string id;
  std::string tenant;
  std::string request_id;
  State state = State::kPending;
  std::string reason;   // machine-readable, e.g. "EXITED"
  std::string message;  // human-readable
  std::optional<int> exit_code;
  int64_t create_ns = 0;
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  int64_t deadline_ns = 0;  // create + lifetime
  int lifetime_seconds = 0;
  std::vector<std::string> tags;
  std::string image;         // as requested
  std::string image_digest;  // resolved manifest digest
  uint64_t cpu_request_millis = 0;
  uint64_t cpu_limit_millis = 0;
  uint64_t memory_request_bytes = 0;
  uint64_t memory_limit_bytes = 0;
  std::string spec_blob;
  std::string bundle;
  pid_t init_pid = 0;
  uint64_t init_start_time = 0;
  std::string socket_path;
  NetworkMode network_mode = NetworkMode::kNone;  // as attached
  std::vector<EgressRuleSpec> effective_egress;   // what the sandbox may reach
  std::string address;                            // its IPv4 address, when it has a network
  int grace_seconds = 10;                         // of a pending stop
  // The sandbox's own host id range (id_ranges.h), once it has one; kept so that a restarted
  // sbxd gives no other sandbox ids of a sandbox that kept running.
  std::optional<runtime::IdMap> id_map;

  // "EXITED: main process exited with code 0" as the wire's state_reason.
  std::string StateReason() const;
  std::string ToJson() const;
  static Result<SandboxRecord> FromJson(const std::string& json);
};

}  // namespace sbx::daemon
