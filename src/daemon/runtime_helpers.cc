#include "src/daemon/runtime_helpers.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "src/base/log.h"
#include "src/sys/fs.h"
#include "src/sys/socket.h"

namespace sbx::daemon {

RuntimeHelpers::RuntimeHelpers(std::string runtime_binary, std::string cgroup_parent, int init_fd,
                               int seccomp_fd, int count)
    : runtime_binary_(std::move(runtime_binary)),
      cgroup_parent_(std::move(cgroup_parent)),
      init_fd_(init_fd),
      seccomp_fd_(seccomp_fd),
      helpers_(static_cast<size_t>(count)) {}

RuntimeHelpers::~RuntimeHelpers() {
  std::lock_guard lock(mu_);
  for (auto& h : helpers_) {
    // Closing the socket ends the helper; the sandboxes it made keep running.
    h.socket.reset();
    if (h.process.valid()) (void)h.process.Wait(5000);
  }
}

Status RuntimeHelpers::Spawn(Helper& helper) {
  SBX_ASSIGN_OR_RETURN(auto pair, sys::SocketPair());
  // Each helper reads the seccomp program from its start: its own open file description.
  UniqueFd program(
      open(("/proc/self/fd/" + std::to_string(seccomp_fd_)).c_str(), O_RDONLY | O_CLOEXEC));
  if (!program) return Error::Errno("reopen the seccomp program");
  sys::SpawnOptions options;
  options.argv = {runtime_binary_, "--cgroup-parent",
                  cgroup_parent_,  "serve",
                  "--fd",          "3",
                  "--init-fd",     "4",
                  "--seccomp-fd",  "5"};
  options.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  options.fds = {{2, STDERR_FILENO}, {3, pair.second.get()}, {4, init_fd_}, {5, program.get()}};
  SBX_ASSIGN_OR_RETURN(helper.process, sys::Spawn(options));
  SBX_TRY(sys::SetNonBlocking(pair.first.get(), true));
  helper.socket = std::move(pair.first);
  helper.busy = false;
  return Ok();
}

Status RuntimeHelpers::Start() {
  std::lock_guard lock(mu_);
  for (auto& h : helpers_) SBX_TRY(Spawn(h));
  return Ok();
}

template <typename T>
T RuntimeHelpers::WithHelper(const std::function<T(int socket)>& call) {
  Helper* helper = nullptr;
  {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [this, &helper] {
      for (auto& h : helpers_) {
        if (!h.busy) {
          helper = &h;
          return true;
        }
      }
      return false;
    });
    helper->busy = true;
  }
  T result = call(helper->socket.get());
  {
    std::lock_guard lock(mu_);
    if (!result && (result.error().code() == Code::kUnavailable ||
                    result.error().code() == Code::kDeadlineExceeded)) {
      // The helper died or hung: replace it.
      SBX_LOG_WARN("runtime helper failed ({}); starting a new one", result.error().message());
      helper->socket.reset();
      (void)helper->process.Signal(SIGKILL);
      (void)helper->process.Wait(5000);
      if (Status s = Spawn(*helper); !s)
        SBX_LOG_ERROR("cannot restart runtime helper: {}", s.error().message());
    }
    helper->busy = false;
  }
  idle_.notify_one();
  return result;
}

Result<runtime::SandboxState> RuntimeHelpers::Create(const runtime::HelperCreateRequest& request,
                                                     int timeout_ms) {
  return WithHelper<Result<runtime::SandboxState>>(
      [&](int socket) { return runtime::HelperCreate(socket, request, timeout_ms); });
}

Status RuntimeHelpers::SetLimits(const std::string& name, const runtime::CgroupLimits& limits,
                                 int timeout_ms) {
  return WithHelper<Status>([&](int socket) {
    return runtime::HelperSetLimits(socket, {name, limits}, timeout_ms);
  });
}

}  // namespace sbx::daemon
