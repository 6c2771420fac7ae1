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
#include "src/net/network_provider.h"
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
  // security_context: the main process's (and execs' default) user and group, instead of the
  // image's; a read-only root filesystem; capabilities dropped from the default set.
  std::optional<uint32_t> run_as_user;
  std::optional<uint32_t> run_as_group;
  bool read_only_root = false;
  std::vector<std::string> drop_capabilities;
  uint64_t cpu_request_millis = 0;  // 0: default
  uint64_t cpu_limit_millis = 0;
  uint64_t memory_request_bytes = 0;
  uint64_t memory_limit_bytes = 0;
  int lifetime_seconds = 0;  // 0: default
  std::vector<std::string> tags;
  std::map<std::string, std::string> annotations;
  net::NetworkRequest network;
  std::string runtime_class;
  std::string spec_blob;  // the request's SandboxSpec, serialized, echoed back by Get
  // The same for the same spec however a client serialized it (maps in any order).
  std::string fingerprint;
};

// A new sandbox id: "sb-" and 16 random hex digits.
std::string NewSandboxId();

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
  net::NetworkMode network_mode = net::NetworkMode::kNone;  // as attached
  std::vector<net::EgressRule> effective_egress;            // what the sandbox may reach
  std::string address;      // its IPv4 address, when it has a network
  int grace_seconds = 10;   // of a pending stop
  std::string stop_reason;  // why a stop was asked: USER_STOPPED or LIFETIME_EXCEEDED
  // When the user deleted it (DeleteSandbox or a purge); 0: not deleted. A second delete is
  // NOT_FOUND, except a retry of the first (the same request id).
  int64_t deleted_ns = 0;
  std::string delete_request_id;
  // Until when the files of an ended sandbox stay readable (Unix ns); 0: they are gone. Its
  // sbx-init, cgroup, writable layer and id range stay until then, and nothing else runs in it.
  int64_t files_until_ns = 0;
  // The fingerprint of the request's spec, so a retried request id can be told from a reused one.
  std::string request_fingerprint;
  // How the sandbox ends, decided and recorded before its teardown begins: a teardown that a
  // crash interrupts is finished with this outcome.
  struct Ending {
    State state = State::kTerminated;
    std::string reason;
    std::string message;
    std::optional<int> exit_code;
  };
  std::optional<Ending> ending;
  // The sandbox's own host id range (id_ranges.h), once it has one; kept so that a restarted
  // sbxd gives no other sandbox ids of a sandbox that kept running.
  std::optional<runtime::IdMap> id_map;

  // "EXITED: main process exited with code 0" as the wire's state_reason.
  std::string StateReason() const;
  std::string ToJson() const;
  static Result<SandboxRecord> FromJson(const std::string& json);
};

}  // namespace sbx::daemon
