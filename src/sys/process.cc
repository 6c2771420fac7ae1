#include "src/sys/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::sys {

std::string ExitStatus::ToString() const {
  if (signaled) {
    const char* name = sigabbrev_np(signal);
    return std::string("killed by SIG") + (name ? name : std::to_string(signal));
  }
  return "exit code " + std::to_string(exit_code);
}

ExitStatus DecodeWaitStatus(int status) {
  ExitStatus out;
  if (WIFSIGNALED(status)) {
    out.signaled = true;
    out.signal = WTERMSIG(status);
  } else {
    out.exit_code = WEXITSTATUS(status);
  }
  return out;
}

Result<UniqueFd> PidfdOpen(pid_t pid) {
  // JUSTIFICATION: glibc 2.36 has pidfd_open only in <sys/pidfd.h> with a newer glibc; the raw
  // syscall is stable.
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) return Error::Errno("pidfd_open " + std::to_string(pid));
  return UniqueFd(static_cast<int>(fd));
}

Status SetThreadNice(int nice) {
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice) != 0) {
    return Error::Errno("setpriority " + std::to_string(nice));
  }
  return Ok();
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), pidfd_(std::move(other.pidfd_)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) {
      (void)Signal(SIGKILL);
      (void)Wait();
    }
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    (void)Signal(SIGKILL);
    (void)Wait();
  }
}

Status ChildProcess::Signal(int sig) {
  if (pid_ <= 0) return Error::FailedPrecondition("no process");
  if (pidfd_) {
    // JUSTIFICATION: pidfd_send_signal has no glibc 2.36 wrapper; a pidfd cannot be recycled.
    if (syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) != 0 && errno != ESRCH) {
      return Error::Errno("pidfd_send_signal");
    }
    return Ok();
  }
  if (::kill(pid_, sig) != 0 && errno != ESRCH) return Error::Errno("kill");
  return Ok();
}

Result<ExitStatus> ChildProcess::Wait(int timeout_ms) {
  if (pid_ <= 0) return Error::FailedPrecondition("no process to wait for");
  if (timeout_ms >= 0 && pidfd_) {
    pollfd pfd{pidfd_.get(), POLLIN, 0};
    int64_t deadline = MonotonicMillis() + timeout_ms;
    while (true) {
      int n = ::poll(&pfd, 1, PollTimeout(deadline));
      if (n > 0) break;
      if (n == 0)
        return Error::DeadlineExceeded("process " + std::to_string(pid_) + " still running");
      if (errno != EINTR) return Error::Errno("poll pidfd");
    }
  }
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) return Error::Errno("waitpid " + std::to_string(pid_));
  }
  pid_ = -1;
  pidfd_.reset();
  return DecodeWaitStatus(status);
}

pid_t ChildProcess::Release() {
  pidfd_.reset();
  return std::exchange(pid_, -1);
}

Result<ChildProcess> Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) return Error::InvalidArgument("spawn: empty argv");
  // Map the requested fds through fresh duplicates above every target number, so that a dup2
  // onto a target never clobbers a source that is still needed, and the duplicates (CLOEXEC)
  // vanish at exec.
  int max_target = 2;
  for (const auto& [target, source] : options.fds) max_target = std::max(max_target, target);
  std::vector<UniqueFd> staged;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  std::map<int, int> mapping = options.fds;
  for (int std_fd = 0; std_fd <= 2; ++std_fd) {
    if (!mapping.count(std_fd)) {
      posix_spawn_file_actions_addopen(&actions, std_fd, "/dev/null",
                                       std_fd == 0 ? O_RDONLY : O_WRONLY, 0);
    }
  }
  for (const auto& [target, source] : mapping) {
    int dup = ::fcntl(source, F_DUPFD_CLOEXEC, max_target + 1);
    if (dup < 0) {
      posix_spawn_file_actions_destroy(&actions);
      return Error::Errno("dup fd " + std::to_string(source));
    }
    staged.emplace_back(dup);
    posix_spawn_file_actions_adddup2(&actions, dup, target);
  }
  // SECURITY: descriptors the caller inherited without CLOEXEC (from whoever started it) do not
  // reach the child either.
  posix_spawn_file_actions_addclosefrom_np(&actions, max_target + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (options.new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attr, flags);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);

  std::vector<char*> argv;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error::FromErrno(rc, "spawn " + Quote(options.argv[0]));
  auto pidfd = PidfdOpen(pid);
  return ChildProcess(pid, pidfd ? std::move(*pidfd) : UniqueFd());
}

Result<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                 const std::vector<std::string>& env, int timeout_ms,
                                 const std::map<int, int>& extra_fds) {
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Error::Errno("pipe");
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return Error::Errno("pipe");
  UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]);
  SpawnOptions options;
  options.argv = argv;
  options.env = env;
  if (options.env.empty()) {
    options.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  }
  options.fds = extra_fds;
  options.fds[1] = out_w.get();
  options.fds[2] = err_w.get();
  SBX_ASSIGN_OR_RETURN(ChildProcess child, Spawn(options));
  out_w.reset();
  err_w.reset();
  CommandResult result;
  constexpr size_t kCap = 1u << 20;
  int64_t deadline = timeout_ms < 0 ? -1 : MonotonicMillis() + timeout_ms;
  pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  int open = 2;
  while (open > 0) {
    int n = ::poll(fds, 2, PollTimeout(deadline));
    if (n == 0) {
      return Error::DeadlineExceeded(Quote(argv[0]) + " did not finish within " +
                                     std::to_string(timeout_ms) + " ms");
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::Errno("poll");
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[8192];
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got <= 0) {
        fds[i].fd = -1;
        --open;
        continue;
      }
      std::string& sink = i == 0 ? result.out : result.err;
      if (sink.size() < kCap)
        sink.append(buf, std::min(static_cast<size_t>(got), kCap - sink.size()));
    }
  }
  SBX_ASSIGN_OR_RETURN(result.status, child.Wait(PollTimeout(deadline)));
  return result;
}

}  // namespace sbx::sys
