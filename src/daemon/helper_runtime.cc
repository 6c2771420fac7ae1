#include "src/daemon/helper_runtime.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <set>

#include "src/agent/client.h"
#include "src/agent/connection.h"
#include "src/base/clock.h"
#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/runtime/container.h"
#include "src/runtime/seccomp_policy.h"
#include "src/runtime/writable_layer.h"
#include "src/sys/fs.h"

namespace sbx::daemon {

namespace {

constexpr int kCreateTimeoutMs = 120000;
constexpr int kConnectTimeoutMs = 2000;
constexpr int kCallTimeoutMs = 5000;
constexpr size_t kMaxSavedLogBytes = 16u << 20;

// The names of the entries of `dir` that `keep` accepts (none when it cannot be read).
std::vector<std::string> ListNames(const std::string& dir,
                                   const std::function<bool(const std::string&)>& keep) {
  std::vector<std::string> names;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != ".." && keep(name)) names.push_back(name);
    }
    closedir(d);
  }
  return names;
}

}  // namespace

HelperRuntime::HelperRuntime(HelperRuntimeOptions options, runtime::CgroupDriver* cgroups)
    : options_(std::move(options)), cgroups_(cgroups) {}

HelperRuntime::~HelperRuntime() { Stop(); }

std::string HelperRuntime::BundleDir(const std::string& id) const {
  return options_.run_dir + "/sandboxes/" + id;
}
std::string HelperRuntime::DisksDir() const { return options_.state_dir + "/disks"; }
std::string HelperRuntime::PoolDir() const { return options_.state_dir + "/disk-pool"; }

Status HelperRuntime::Start() {
  SBX_ASSIGN_OR_RETURN(init_copy_, runtime::SealedCopyOfInit(options_.init_binary));
  // Compiling the seccomp policy takes milliseconds; it is done once and handed to every helper
  // in a sealed memfd it reads.
  SBX_ASSIGN_OR_RETURN(std::string bpf, runtime::DefaultPolicyBpf());
  seccomp_program_.reset(memfd_create("sbx-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!seccomp_program_) return Error::Errno("memfd_create");
  SBX_TRY(sys::WriteAll(seccomp_program_.get(), bpf));
  if (fcntl(seccomp_program_.get(), F_ADD_SEALS,
            F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) {
    return Error::Errno("seal the seccomp program");
  }
  SBX_TRY(sys::MakeDirs(options_.run_dir + "/sandboxes", 0700));
  SBX_TRY(sys::MakeDirs(DisksDir(), 0700));
  // Layers a previous run prepared died with its mounts; pooled images and templates of another
  // format (the disk size or id range changed since) would never be taken.
  for (const auto& name : ListNames(DisksDir(), [](const std::string& n) {
         return StartsWith(n, kPreparedPrefix) && EndsWith(n, ".img");
       })) {
    unlink((DisksDir() + "/" + name).c_str());
  }
  if (options_.loop_writable_layers) {
    if (Status pruned = runtime::PrunePool(PoolDir(), options_.disk_format); !pruned) {
      SBX_LOG_WARN("disk pool: {}", pruned.error().message());
    }
  }
  helpers_ =
      std::make_unique<RuntimeHelpers>(options_.runtime_binary, options_.cgroup_parent,
                                       init_copy_.get(), seccomp_program_.get(), options_.helpers);
  SBX_TRY(helpers_->Start());
  if (options_.loop_writable_layers && options_.disk_pool_size > 0) {
    disks_ = std::make_unique<DiskPool>(PoolDir(), DisksDir(), options_.disk_format,
                                        options_.disk_pool_size);
    disks_->Start();
  }
  return Ok();
}

void HelperRuntime::Stop() {
  disks_.reset();
  helpers_.reset();
}

Result<std::string> HelperRuntime::WriteBundle(const SandboxPlan& plan) {
  runtime::RuntimeSpec spec = plan.spec;
  std::string bundle = BundleDir(spec.id);
  SBX_TRY(sys::MakeDirs(bundle + "/files", 0700));
  for (size_t i = 0; i < spec.files.size() && i < plan.file_contents.size(); ++i) {
    spec.files[i].source = bundle + "/files/" + std::to_string(i);
    SBX_TRY(sys::WriteFile(spec.files[i].source, plan.file_contents[i], 0600));
  }
  SBX_TRY(sys::WriteFile(bundle + "/spec.json", runtime::ToJson(spec), 0600));
  return bundle;
}

Result<RuntimeSandbox> HelperRuntime::Create(const SandboxPlan& plan) {
  const std::string& id = plan.spec.id;
  if (plan.file_contents.size() != plan.spec.files.size()) {
    return Error::InvalidArgument("a plan needs the content of each of its mounted files");
  }
  auto bundle = WriteBundle(plan);
  if (!bundle) {
    (void)sys::RemoveTree(BundleDir(id));
    return std::move(bundle).error();
  }
  runtime::HelperCreateRequest create;
  create.bundle_dir = *bundle;
  create.disk_dir = DisksDir();
  std::optional<PreparedDisk> disk;
  if (options_.loop_writable_layers) {
    create.disk_pool_dir = PoolDir();
    if (disks_) disk = disks_->Take(id);
    if (disk) {
      create.writable_image = disk->image;
      create.writable_mount_fd = disk->mount.get();
    }
  }
  auto state = helpers_->Create(create, kCreateTimeoutMs);
  if (!state) {
    // The helper undid its own part; the bundle and a pooled image it never adopted remain.
    if (disk) unlink(disk->image.c_str());
    (void)sys::RemoveTree(*bundle);
    return std::move(state).error();
  }
  return RuntimeSandbox{id, *bundle, state->socket_path, state->init_pid, state->init_start_time};
}

Status HelperRuntime::Destroy(const std::string& id) {
  Status destroyed = runtime::DestroySandbox(id, BundleDir(id), *cgroups_);
  // A layer image is named for its sandbox: one whose bundle was already gone is removed too.
  std::string image = DisksDir() + "/" + id + ".img";
  if (unlink(image.c_str()) != 0 && errno != ENOENT && destroyed) {
    destroyed = Error::Errno("remove " + Quote(image));
  }
  return destroyed;
}

Status HelperRuntime::KeepOnlyFiles(const RuntimeSandbox& sandbox) {
  runtime::CgroupLimits limits;
  limits.pids = 1;
  limits.cpu_weight = runtime::kBackgroundCpuWeight;
  SBX_TRY_CTX(SetLimits(sandbox.id, limits), "limit the ended sandbox");
  SBX_TRY(cgroups_->KillAllBut(sandbox.id, sandbox.init_pid, kCallTimeoutMs));
  // The pid spared must still be this sandbox's sbx-init, not a process that took its number.
  if (!Alive(sandbox)) return Error::Unavailable("sbx-init of " + sandbox.id + " is gone");
  return Ok();
}

Status HelperRuntime::SetLimits(const std::string& id, const runtime::CgroupLimits& limits) {
  return helpers_->SetLimits(id, limits, kCallTimeoutMs);
}

Result<runtime::CgroupStats> HelperRuntime::Stats(const std::string& id) {
  return cgroups_->Stats(id);
}

Result<RuntimeProvider::DiskUsage> HelperRuntime::WritableLayerUsage(
    const RuntimeSandbox& sandbox) {
  // The sandbox's root is its overlay, whose statfs is its upper layer's: the writable layer.
  // SECURITY: the root is only looked at (O_PATH, fstatfs), nothing in it is opened or
  // followed; the sandbox cannot move it (pivot_root needs a capability it does not have). The
  // process is checked after the open, so a pid reused meanwhile is not mistaken for it.
  std::string root = "/proc/" + std::to_string(sandbox.init_pid) + "/root";
  auto fd = sys::Open(root, O_PATH | O_DIRECTORY);
  if (!fd) return std::move(fd).error();
  if (!Alive(sandbox)) return Error::NotFound("sandbox " + Quote(sandbox.id) + " is not running");
  struct statfs fs {};
  if (fstatfs(fd->get(), &fs) != 0) return Error::Errno("statfs " + Quote(root));
  DiskUsage usage;
  usage.total_bytes = static_cast<uint64_t>(fs.f_blocks) * fs.f_bsize;
  usage.used_bytes = static_cast<uint64_t>(fs.f_blocks - fs.f_bfree) * fs.f_bsize;
  return usage;
}

bool HelperRuntime::Alive(const RuntimeSandbox& sandbox) {
  return runtime::ProcessAlive(sandbox.init_pid, sandbox.init_start_time);
}

std::vector<std::string> HelperRuntime::Leftovers() {
  std::set<std::string> ids;
  for (const auto& name : cgroups_->List()) ids.insert(name);
  for (const auto& name :
       ListNames(options_.run_dir + "/sandboxes", [](const std::string&) { return true; })) {
    ids.insert(name);
  }
  // Prepared layers belong to no sandbox (the disk pool removes a previous run's at its start).
  for (const auto& name : ListNames(DisksDir(), [](const std::string& n) {
         return EndsWith(n, ".img") && !StartsWith(n, kPreparedPrefix);
       })) {
    ids.insert(name.substr(0, name.size() - 4));
  }
  return {ids.begin(), ids.end()};
}

void HelperRuntime::RemoveSharedState() {
  // With no sandbox left, nothing of this daemon stays in the cgroup hierarchies.
  if (cgroups_->List().empty() && cgroups_->RemoveParentIfEmpty()) {
    SBX_LOG_INFO("cgroup parent {} removed", options_.cgroup_parent);
  }
}

Status HelperRuntime::StartMain(const RuntimeSandbox& sandbox, const agent::InitConfig& main) {
  return agent::AgentClient(sandbox.socket_path, kConnectTimeoutMs).StartMain(main, kCallTimeoutMs);
}

Result<agent::StatusReply> HelperRuntime::MainStatus(const RuntimeSandbox& sandbox) {
  return agent::AgentClient(sandbox.socket_path, kConnectTimeoutMs).GetStatus(kCallTimeoutMs);
}

Status HelperRuntime::SignalMain(const RuntimeSandbox& sandbox, int signal) {
  return agent::AgentClient(sandbox.socket_path, kConnectTimeoutMs)
      .SignalMain(signal, kConnectTimeoutMs);
}

Status HelperRuntime::SetDeadline(const RuntimeSandbox& sandbox, int64_t deadline_unix_ns) {
  return agent::AgentClient(sandbox.socket_path, kConnectTimeoutMs)
      .SetDeadline(deadline_unix_ns, kConnectTimeoutMs);
}

Result<agent::StatusReply> HelperRuntime::WaitMain(const RuntimeSandbox& sandbox,
                                                   int64_t deadline_ms) {
  return agent::AgentClient(sandbox.socket_path, kConnectTimeoutMs).WaitMain(deadline_ms);
}

Status HelperRuntime::AckExit(const RuntimeSandbox& sandbox) {
  return agent::AgentClient(sandbox.socket_path, kConnectTimeoutMs).AckExit(kConnectTimeoutMs);
}

Result<SavedLogs> HelperRuntime::ReadLogs(const RuntimeSandbox& sandbox) {
  // Saved as the chunks sbx-init kept (offset, time, stream, data), so logs of an ended sandbox
  // answer since_time and timestamps like live ones.
  agent::FieldWriter chunks;
  std::optional<uint64_t> start;
  SBX_TRY(agent::AgentClient(sandbox.socket_path, 1000)
              .StreamLogs(
                  {0, false},
                  [&](const agent::LogChunk& chunk) {
                    if (!start) start = chunk.offset;
                    chunks.PutBytes(1, chunk.Encode());
                    return chunks.data().size() < kMaxSavedLogBytes;
                  },
                  nullptr, MonotonicMillis() + kCallTimeoutMs));
  if (!start) return Error::NotFound("the main process wrote nothing");
  return SavedLogs{chunks.Take(), *start};
}

Result<UniqueFd> HelperRuntime::WatchMain(const RuntimeSandbox& sandbox) {
  SBX_ASSIGN_OR_RETURN(agent::Connection conn,
                       agent::Connection::Dial(sandbox.socket_path, kConnectTimeoutMs));
  SBX_TRY(conn.Send(agent::MsgType::kWaitMain, "", MonotonicMillis() + kConnectTimeoutMs));
  // The single reply frame (or the connection closing, if sbx-init dies) makes it readable.
  return conn.Release();
}

}  // namespace sbx::daemon
