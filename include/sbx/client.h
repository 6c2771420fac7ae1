// File: sbx/client.h (installed; the C++ client API of sbx)
//
// A client for sbxd: create sandboxes, run commands in them (collected or streamed, with stdin
// and a terminal), move files and whole directories in and out, read their logs, stop them, and
// manage the node's images. It speaks the daemon's public gRPC API only (coreweave.sandbox.v1 and
// sbx.v1), so it works against any sbxd it can reach, locally or over TCP.
//
//   #include <sbx/client.h>
//
//   auto client = sbx::Client::Connect();  // $SBX_BASE_URL, else unix:///run/sbx/sbxd.sock
//   if (!client) {
//     std::cerr << client.error().message() << "\n";
//     return 1;
//   }
//   sbx::SandboxSpec spec;
//   spec.image = "python:3.11";
//   auto sandbox = client->Create(spec);  // a keep-alive sandbox, RUNNING when this returns
//   if (!sandbox) return 1;
//   auto result = client->Run(sandbox->id, {.command = {"python", "-c", "print(6 * 7)"}});
//   if (result) std::cout << result->stdout_data;  // "42\n"
//   (void)client->Delete(sandbox->id);
//
// Errors are values: every call returns sbx::Result (include/sbx/result.h). An error carries the
// gRPC code, the daemon's message, and its machine-readable reason and metadata (AIP-193
// ErrorInfo, e.g. reason "CWSANDBOX_SANDBOX_NOT_FOUND" with metadata "sandbox_id"); a daemon
// that cannot be reached is Code::kUnavailable with reason kReasonDaemonUnreachable.
//
// A Client is cheap to move and safe to use from several threads at once; the calls block.
// Proto types never appear in this header: the client is a pimpl over the generated stubs.

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sbx/result.h"

namespace sbx {

// The version of this client library.
inline constexpr const char* kClientVersion = "0.1.0";

// The reason of errors raised by the client itself when sbxd cannot be reached (the daemon's
// own reasons, CWSANDBOX_*, are passed through unchanged).
inline constexpr const char* kReasonDaemonUnreachable = "SBX_DAEMON_UNREACHABLE";

inline constexpr const char* kDefaultBaseUrl = "unix:///run/sbx/sbxd.sock";

using TimePoint = std::chrono::system_clock::time_point;

struct ClientOptions {
  // "unix:///path/to/sbxd.sock" (or "unix:/path"), "http://host:port" (plaintext) or
  // "https://host[:port]" (TLS; GRPC_DEFAULT_SSL_ROOTS_FILE_PATH selects a CA bundle). Empty:
  // $SBX_BASE_URL, else $CWSANDBOX_BASE_URL, else kDefaultBaseUrl.
  std::string base_url;
  // Sent as "authorization: Bearer <key>". Empty: $SBX_API_KEY, $CWSANDBOX_API_KEY or
  // $WANDB_API_KEY. The local socket needs none.
  std::string api_key;
  // Deadline of each unary call (streams have none unless asked for).
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
};

enum class SandboxState {
  kUnspecified,
  kPending,
  kCreating,
  kRunning,
  kCompleted,
  kFailed,
  kTerminating,
  kTerminated,
  kPaused,
};

// "RUNNING", "COMPLETED", ...
std::string_view StateName(SandboxState state);
// Accepts "running", "RUNNING", "STATE_RUNNING".
std::optional<SandboxState> ParseState(std::string_view name);
// COMPLETED, FAILED and TERMINATED: the sandbox has ended.
bool IsTerminal(SandboxState state);

// A port of the sandbox offered as a service (`sbx run -p`).
enum class Visibility {
  kDeclared,  // listed, not exposed: nothing outside the sandbox reaches it, it gets no URL
  kPrivate,   // reachable from sbxd's host, through a port of the host
  kPublic,    // also from other machines
};

// "declared", "private", "public".
std::string_view VisibilityName(Visibility visibility);

struct ServicePort {
  int port = 0;          // in the sandbox, 1..65535
  std::string name;      // optional
  std::string protocol;  // "tcp" (empty: tcp), "udp" or "sctp"
  Visibility visibility = Visibility::kPrivate;
};

// A service as the daemon reports it: where it is reached from outside the sandbox.
struct ServiceStatus {
  int port = 0;
  std::string name;
  std::string protocol;  // "tcp", "udp", "sctp"
  Visibility visibility = Visibility::kDeclared;
  std::string url;  // e.g. "http://10.128.0.1:30001", "udp://..."; empty when not exposed
};

// A secret of one of sbxd's secret stores, put into the main process's environment. sbxd reads
// the value; it never passes through the client.
struct SecretRef {
  std::string store = "default";
  std::string name;
  std::string field;    // one string field of a JSON secret; empty: the whole value
  std::string env_var;  // empty: `name`
};

// A destination the sandbox may reach; with any rules, it reaches only what they list (never
// sbxd's deny set). Exactly one of `cidr`, `dns_name` and `any` is set.
struct EgressRule {
  std::string cidr;  // IPv4 block, e.g. "203.0.113.0/24"
  std::vector<std::string> except;
  std::string dns_name;  // e.g. "pypi.org", "*.pypi.org"
  bool any = false;      // every public destination
  struct Ports {
    std::string protocol;  // "tcp", "udp"; empty: both
    int port = 0;          // 0: every port
    int end_port = 0;      // 0: `port` alone
  };
  // Empty: every port of a CIDR or `any` rule; TCP 443 for a name.
  std::vector<Ports> ports;
};

// What to create.
struct SandboxSpec {
  std::string image;  // e.g. "python:3.11"; empty: the daemon's default image
  // The main process. Both empty: a keep-alive process (the sandbox idles until stopped or its
  // lifetime ends), the way to get a sandbox to exec into. Set `use_image_command` to run the
  // image's entrypoint and command instead; `args` alone replaces the image's command.
  std::string command;
  std::vector<std::string> args;
  bool use_image_command = false;
  std::map<std::string, std::string> env;
  std::string working_dir;  // absolute; empty: the image's
  std::string cpu;          // limit, e.g. "2", "500m"
  std::string memory;       // limit, e.g. "4Gi", "512Mi"
  std::string cpu_request;
  std::string memory_request;
  std::vector<std::string> tags;
  int max_lifetime_seconds = 0;    // 0: the daemon's default
  bool deny_egress = false;        // no network but loopback
  std::vector<EgressRule> egress;  // empty: every public destination (unless deny_egress)
  // Exposed ports: all PRIVATE or all PUBLIC (sbxd refuses a mix).
  std::vector<ServicePort> services;
  std::vector<SecretRef> secrets;
  std::map<std::string, std::string> annotations;
  std::vector<std::pair<std::string, std::string>> files;  // read-only files: path, content
  std::string request_id;  // idempotency key: a retried create returns the same sandbox
};

struct Sandbox {
  std::string id;
  SandboxState state = SandboxState::kUnspecified;
  std::string state_reason;  // e.g. "USER_STOPPED", "LIFETIME_EXCEEDED", "OOM_KILLED"
  std::optional<int> exit_code;
  std::string image;
  std::string command;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string working_dir;
  std::vector<std::string> tags;
  std::map<std::string, std::string> annotations;
  std::string cpu;               // effective limits
  std::string memory;            //
  int max_lifetime_seconds = 0;  // effective, from create_time (extend it with ExtendLifetime)
  bool deny_egress = false;
  std::vector<EgressRule> egress;  // the effective rules: [any] for the default network
  std::vector<ServiceStatus> services;
  // A running sandbox's CPU (millicores, recent) and memory (MiB) as Get read them; none from
  // List or once it has ended. GetUsage has more.
  struct ResourceUsage {
    int64_t cpu_millicores = 0;
    int64_t memory_mb = 0;
  };
  std::optional<ResourceUsage> resource_usage;
  std::optional<TimePoint> create_time;
  std::optional<TimePoint> start_time;
  std::optional<TimePoint> end_time;
  std::string runner_id;

  // When sbxd stops it for its lifetime (create_time + max_lifetime_seconds); none once ended.
  std::optional<TimePoint> expire_time() const;
};

// What a running sandbox uses now, as the kernel counts it (Client::GetUsage).
struct SandboxUsage {
  std::string id;
  // Thousandths of a CPU, averaged since the sandbox's previous reading at least a second
  // earlier (by anyone; since its start for the first).
  int64_t cpu_millicores = 0;
  std::chrono::nanoseconds cpu_usage{0};  // CPU time since the sandbox started
  int64_t memory_bytes = 0;               // charged to its cgroup, page cache included
  int64_t memory_limit_bytes = 0;         // 0: none
  int64_t pids = 0;                       // processes and threads, its sbx-init included
  int64_t disk_used_bytes = 0;            // of its writable layer, as df counts it
  int64_t disk_total_bytes = 0;
  std::optional<TimePoint> read_time;
};

struct ListOptions {
  std::vector<std::string> tags;  // sandboxes carrying all of them
  std::optional<SandboxState> state;
  bool include_terminated = false;  // ended sandboxes still within their retention
};

struct StopOptions {
  int grace_seconds = 10;  // SIGTERM, then everything is killed after this long; 0: at once
  bool missing_ok = false;
  bool wait = true;  // until the sandbox has ended
};

struct PurgeResult {
  int count = 0;
  std::vector<std::string> failed_ids;
};

struct ExecOptions {
  std::vector<std::string> command;
  std::map<std::string, std::string> env;  // added to the sandbox's environment
  bool tty = false;                        // a pseudo-terminal: output arrives as stdout only
  uint32_t rows = 0;
  uint32_t cols = 0;
  // 0: none. At expiry the process tree is killed and the call fails with kDeadlineExceeded,
  // reason "CWSANDBOX_COMMAND_TIMEOUT".
  std::chrono::milliseconds timeout{0};
};

struct ExecResult {
  int exit_code = 0;  // 128 + signal when killed by one
  std::string stdout_data;
  std::string stderr_data;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
};

struct ExecCallbacks {
  std::function<void(std::string_view)> on_stdout;
  std::function<void(std::string_view)> on_stderr;
};

// A command running in a sandbox with its streams attached (Client::StartExec).
class ExecSession {
 public:
  ExecSession(const ExecSession&) = delete;
  ExecSession& operator=(const ExecSession&) = delete;
  // Kills the process if it still runs.
  ~ExecSession();

  // These may be called from any thread, also while another thread is in Wait().
  Status WriteStdin(std::string_view data);
  // End of input (on a terminal: the EOF character).
  Status CloseStdin();
  Status Resize(uint32_t rows, uint32_t cols);
  // Kills the process tree; Wait() then fails with kCancelled.
  void Cancel();

  // Delivers output to the callbacks until the process exits, and returns its exit code
  // (128 + signal when killed by one). Call once.
  Result<int> Wait();

  struct Impl;
  explicit ExecSession(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

struct LogOptions {
  bool follow = false;  // keep streaming until the main process's output ends
  int tail_lines = 0;   // 0: everything still held
  std::optional<TimePoint> since;
  bool timestamps = false;  // each line prefixed with its RFC 3339 time
};

struct CopyOptions {
  // Copying into a sandbox: a symlink named as the source is copied as the file or directory
  // it points to instead of as a link.
  bool follow_links = false;
  // Called for what is left out (devices, FIFOs, sockets, hard links), with a reason.
  std::function<void(const std::string& path, const std::string& why)> on_skip;
  // Called as the archive travels, with the bytes moved so far (archive bytes, headers
  // included).
  std::function<void(int64_t bytes)> on_progress;
};

struct CopyStats {
  int64_t files = 0;  // regular files and symlinks
  int64_t bytes = 0;  // of regular files
};

struct LayerProgress {
  std::string digest;
  int64_t total_bytes = 0;
  int64_t done_bytes = 0;
  std::string phase;  // "waiting", "downloading", "verifying", "unpacking", "done", "cached"
};

struct Image {
  std::string reference;  // normalised, e.g. "docker.io/library/python:3.11"
  std::string digest;
  int64_t size_bytes = 0;
  std::optional<TimePoint> created_time;
  std::vector<std::string> references;
  std::string platform;
};

struct HostCheck {
  std::string name;  // "userns", "cgroups", "overlayfs", ...
  bool ok = false;
  std::string detail;
};

struct SystemInfo {
  std::string version;
  std::string runner_id;
  std::vector<HostCheck> checks;
  int64_t capacity_cpu_millicores = 0;
  int64_t capacity_memory_bytes = 0;
  int64_t allocated_cpu_millicores = 0;
  int64_t allocated_memory_bytes = 0;
  int running_sandboxes = 0;
  int64_t disk_free_bytes = 0;
  std::string cgroup_version;
  // The daemon's effective configuration; only operators (the local socket, an operator's API
  // key) are told it.
  struct Config {
    std::vector<std::string> registry_mirrors;
    std::vector<std::string> insecure_registries;
    std::string state_dir;
    std::string network;
    int default_lifetime_seconds = 0;
    int max_lifetime_seconds = 0;
    int files_retention_seconds = 0;  // how long an ended sandbox's files stay readable
  };
  std::optional<Config> config;
};

// Producers for streamed uploads: call `write` with successive chunks, return Ok() at the end
// (or an error, which aborts the upload and is returned).
using ChunkWriter = std::function<Status(std::string_view)>;
using ChunkProducer = std::function<Status(const ChunkWriter& write)>;
// Consumers for streamed downloads: return an error to stop; the call then returns it.
using ChunkSink = std::function<Status(std::string_view)>;

class Client {
 public:
  // Resolves the address and API key (see ClientOptions) and prepares a channel. Connecting is
  // lazy: an unreachable daemon shows as the first call's kUnavailable error.
  static Result<Client> Connect(ClientOptions options = {});

  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  const std::string& base_url() const;

  // --- Sandboxes --------------------------------------------------------------------------
  // Creates a sandbox and, with `wait_running`, waits until it runs (or has already ended).
  Result<Sandbox> Create(const SandboxSpec& spec, bool wait_running = true);
  Result<Sandbox> Get(const std::string& id);
  Result<std::vector<Sandbox>> List(const ListOptions& options = {});
  // Until RUNNING or ended; kDeadlineExceeded after `timeout`.
  Result<Sandbox> WaitUntilRunning(const std::string& id, std::chrono::milliseconds timeout);
  // Until ended; kDeadlineExceeded after `timeout`.
  Result<Sandbox> WaitUntilDone(const std::string& id, std::chrono::milliseconds timeout);
  // Stops gracefully (see StopOptions). The result is nullopt only for a missing sandbox with
  // `missing_ok`.
  Result<std::optional<Sandbox>> Stop(const std::string& id, const StopOptions& options = {});
  // Kills the sandbox at once and returns without waiting.
  Status Delete(const std::string& id, bool missing_ok = false);
  // Stops every sandbox carrying all `tags` (or, with `all`, every sandbox of the caller).
  Result<PurgeResult> Purge(const std::vector<std::string>& tags, bool all = false,
                            bool dry_run = false);

  // --- Commands ---------------------------------------------------------------------------
  // Runs a command to completion and collects its output (up to 16 MiB per stream).
  Result<ExecResult> Run(const std::string& id, const ExecOptions& options);
  // Starts a command with its streams attached; output goes to `callbacks` from Wait().
  Result<std::unique_ptr<ExecSession>> StartExec(const std::string& id, const ExecOptions& options,
                                                 ExecCallbacks callbacks);
  // StartExec with no input, then Wait.
  Result<int> Exec(const std::string& id, const ExecOptions& options, ExecCallbacks callbacks);

  // --- Files ------------------------------------------------------------------------------
  // Whole files up to the daemon's max_file_bytes (32 MiB by default). Relative paths are
  // relative to the sandbox's working directory.
  Result<std::string> ReadFile(const std::string& id, const std::string& path);
  // Creates parent directories and replaces the file atomically.
  Status WriteFile(const std::string& id, const std::string& path, std::string_view content);

  // Copies a file or directory tree of this machine into the sandbox, with the rules of
  // `docker cp`: into `sandbox_path` when it is an existing directory or ends in "/", as
  // `sandbox_path` otherwise; a source ending in "/." copies the directory's contents.
  Result<CopyStats> CopyToSandbox(const std::string& id, const std::string& host_path,
                                  const std::string& sandbox_path, const CopyOptions& options = {});
  // The other way, with the same rules for `host_path`. Names in the archive are checked: nothing
  // is written outside the destination, and no symlink is followed while writing.
  Result<CopyStats> CopyFromSandbox(const std::string& id, const std::string& sandbox_path,
                                    const std::string& host_path, const CopyOptions& options = {});
  // The raw archive calls underneath: a tar stream extracted into the directory `dir` of the
  // sandbox (created when missing), and a file or directory of the sandbox as a tar stream.
  Result<CopyStats> PutArchive(const std::string& id, const std::string& dir,
                               const ChunkProducer& tar);
  Status GetArchive(const std::string& id, const std::string& path, const ChunkSink& tar);

  // --- Logs -------------------------------------------------------------------------------
  // The main process's output (stdout and stderr interleaved). `sink` returns false to stop.
  Status StreamLogs(const std::string& id, const LogOptions& options,
                    const std::function<bool(std::string_view)>& sink);

  // --- Images -----------------------------------------------------------------------------
  // `if_missing`: an image already in the store is answered at once, without the registry.
  Result<Image> PullImage(
      const std::string& reference,
      const std::function<void(const std::vector<LayerProgress>&)>& progress = {},
      const std::string& platform = "", bool if_missing = false);
  Result<std::vector<Image>> ListImages();
  // Returns the bytes reclaimed.
  Result<int64_t> RemoveImage(const std::string& reference, bool force = false);
  // Loads a `docker save` archive or an OCI layout tarball; `tag` names an untagged image.
  Result<std::vector<Image>> LoadImage(const ChunkProducer& archive, const std::string& tag = "");

  // What a running sandbox uses now; kFailedPrecondition once it is not running.
  Result<SandboxUsage> GetUsage(const std::string& id);

  // Extends a running sandbox's lifetime by `by`; returns when sbxd will now stop it.
  Result<TimePoint> ExtendLifetime(const std::string& id, std::chrono::seconds by);

  // --- The node ---------------------------------------------------------------------------
  Result<SystemInfo> GetInfo();

  struct Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sbx
