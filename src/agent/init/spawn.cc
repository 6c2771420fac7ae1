#include "src/agent/init/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>

#include "src/agent/protocol.h"
#include "src/base/strings.h"
#include "src/sys/process.h"

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

namespace sbx::agent {

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// sys::kSandboxOomScoreAdj, as text the forked child writes without allocating.
constexpr char kOomScoreAdj[] = "1000";
static_assert(sys::kSandboxOomScoreAdj == 1000);

struct ChildFailure {
  int stage;
  int err;
};

enum Stage {
  kStageSetsid = 1,
  kStageTty,
  kStageDup,
  kStageGroups,
  kStageGid,
  kStageUid,
  kStageCwd,
  kStageOom,
  kStageCapabilities,
  kStageExec
};

const char* StageName(int stage) {
  switch (stage) {
    case kStageSetsid:
      return "setsid";
    case kStageTty:
      return "set controlling terminal";
    case kStageDup:
      return "set up stdio";
    case kStageGroups:
      return "setgroups";
    case kStageGid:
      return "setgid";
    case kStageUid:
      return "setuid";
    case kStageCwd:
      return "chdir";
    case kStageOom:
      return "set oom_score_adj";
    case kStageCapabilities:
      return "drop capabilities";
    case kStageExec:
      return "exec";
  }
  return "start";
}

// ASYNC-SIGNAL-SAFE: runs in the forked child; only syscalls, no allocation.
[[noreturn]] void Fail(int pipe_fd, int stage) {
  ChildFailure failure{stage, errno};
  (void)!write(pipe_fd, &failure, sizeof failure);
  _exit(127);
}

}  // namespace

std::vector<std::string> BuildEnvironment(const std::vector<std::string>& base,
                                          const std::vector<std::string>& overrides,
                                          const ResolvedUser& user, bool tty) {
  std::vector<std::string> env;
  auto set = [&env](const std::string& entry) {
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) return;
    std::string_view key(entry.data(), eq + 1);
    for (auto& existing : env) {
      if (StartsWith(existing, key)) {
        existing = entry;
        return;
      }
    }
    env.push_back(entry);
  };
  for (const auto& e : base) set(e);
  for (const auto& e : overrides) set(e);
  auto has = [&env](std::string_view key) {
    for (const auto& e : env) {
      if (e.size() > key.size() && StartsWith(e, key) && e[key.size()] == '=') return true;
    }
    return false;
  };
  if (!has("PATH")) env.push_back(std::string("PATH=") + kDefaultPath);
  if (!has("HOME")) env.push_back("HOME=" + user.home);
  if (tty && !has("TERM")) env.emplace_back("TERM=xterm");
  return env;
}

Result<pid_t> SpawnProcess(const SpawnRequest& request) {
  if (request.argv.empty() || request.argv[0].empty()) {
    return Error::InvalidArgument("empty command");
  }
  for (const auto& arg : request.argv) {
    if (arg.find('\0') != std::string::npos)
      return Error::InvalidArgument("command has a NUL byte");
  }
  // A NUL would silently cut a variable short; the host checks first, this is the last word.
  for (const auto& entry : request.env) {
    if (entry.find('\0') != std::string::npos) {
      return Error::InvalidArgument("environment variable " +
                                    Quote(entry.substr(0, entry.find('=')), 64) +
                                    " has a NUL byte");
    }
  }
  // Everything the child needs is prepared before fork, so the child only makes syscalls.
  std::vector<char*> argv;
  for (const auto& a : request.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  std::string path_value = kDefaultPath;
  for (const auto& e : request.env) {
    envp.push_back(const_cast<char*>(e.c_str()));
    if (StartsWith(e, "PATH=")) path_value = e.substr(5);
  }
  envp.push_back(nullptr);
  std::vector<std::string> candidates;
  if (request.argv[0].find('/') != std::string::npos) {
    candidates.push_back(request.argv[0]);
  } else {
    for (const auto& dir : Split(path_value, ':')) {
      candidates.push_back((dir.empty() ? std::string(".") : dir) + "/" + request.argv[0]);
    }
  }
  std::vector<gid_t> groups = request.user.groups;

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return Error::Errno("pipe");
  UniqueFd err_read(pipe_fds[0]);
  UniqueFd err_write(pipe_fds[1]);

  pid_t pid = fork();
  if (pid < 0) return Error::Errno("fork");
  if (pid == 0) {
    // ASYNC-SIGNAL-SAFE: from here to exec only syscalls.
    int wfd = err_write.get();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
    if (setsid() < 0) Fail(wfd, kStageSetsid);
    if (request.tty && ioctl(request.stdin_fd, TIOCSCTTY, 0) != 0) Fail(wfd, kStageTty);
    int fds[3] = {request.stdin_fd, request.stdout_fd, request.stderr_fd};
    for (int target = 0; target < 3; ++target) {
      if (fds[target] == target) {
        int flags = fcntl(target, F_GETFD);
        if (flags >= 0) fcntl(target, F_SETFD, flags & ~FD_CLOEXEC);
      } else if (dup2(fds[target], target) < 0) {
        Fail(wfd, kStageDup);
      }
    }
    // SECURITY: the sandbox's processes are the OOM killer's first victims, never sbx-init's
    // near-immunity. The runtime set sbx-init's floor (oom_score_adj_min) to this value, so
    // neither the process nor anything it starts can lower it again.
    int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (oom < 0 || write(oom, kOomScoreAdj, sizeof kOomScoreAdj - 1) < 0) Fail(wfd, kStageOom);
    close(oom);
    // SECURITY: capabilities the sandbox's spec dropped leave the bounding set before the ids
    // change, so neither a process of root's nor any program it executes gets them back (the
    // inheritable and ambient sets are empty). Dropping needs CAP_SETPCAP: it goes last. EINVAL
    // is a capability this kernel does not have.
    uint64_t dropped = request.dropped_capabilities;
    for (int cap = 0; cap < 64; ++cap) {
      if (cap == CAP_SETPCAP || ((dropped >> cap) & 1) == 0) continue;
      if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
        Fail(wfd, kStageCapabilities);
    }
    if (((dropped >> CAP_SETPCAP) & 1) != 0 && prctl(PR_CAPBSET_DROP, CAP_SETPCAP, 0, 0, 0) != 0) {
      Fail(wfd, kStageCapabilities);
    }
    if (setgroups(groups.size(), groups.data()) != 0) Fail(wfd, kStageGroups);
    if (setresgid(request.user.gid, request.user.gid, request.user.gid) != 0) Fail(wfd, kStageGid);
    if (setresuid(request.user.uid, request.user.uid, request.user.uid) != 0) Fail(wfd, kStageUid);
    if (chdir(request.cwd.c_str()) != 0) Fail(wfd, kStageCwd);
    // SECURITY: no descriptor of sbx-init (sockets, the root fd, other execs' pipes) may reach the
    // process. The error pipe is already CLOEXEC.
    syscall(SYS_close_range, 3, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */);
    int exec_errno = ENOENT;
    for (const auto& candidate : candidates) {
      execve(candidate.c_str(), argv.data(), envp.data());
      if (errno == EACCES || exec_errno == ENOENT) exec_errno = errno;
      if (errno != ENOENT && errno != ENOTDIR && errno != EACCES) break;
    }
    errno = exec_errno;
    Fail(wfd, kStageExec);
  }
  err_write.reset();
  ChildFailure failure{};
  ssize_t n;
  do {
    n = read(err_read.get(), &failure, sizeof failure);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof failure)) {
    // The child is gone (it _exit-ed after reporting); the caller's reaper collects it.
    std::string what = std::string(StageName(failure.stage));
    if (failure.stage == kStageExec) what += " " + Quote(request.argv[0]);
    if (failure.stage == kStageCwd) what += " " + Quote(request.cwd);
    Error error = Error::FromErrno(failure.err, what);
    if (failure.stage == kStageExec && (failure.err == ENOENT || failure.err == ENOTDIR)) {
      error = Error::NotFound("command " + Quote(request.argv[0]) + " not found" +
                              (request.argv[0].find('/') == std::string::npos ? " in PATH" : ""))
                  .WithReason(kReasonCommandNotFound);
    } else if (failure.stage == kStageExec && failure.err == EACCES) {
      error.WithReason(kReasonCommandNotExecutable);
    } else if (failure.stage == kStageCwd) {
      error.WithCode(Code::kInvalidArgument);
    }
    return Error(error).WithMetadata("pid", std::to_string(pid));
  }
  return pid;
}

Result<Pty> OpenPty(unsigned rows, unsigned cols) {
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
  if (master < 0) return Error::Errno("open /dev/ptmx");
  Pty pty;
  pty.master.reset(master);
  int unlock = 0;
  if (ioctl(master, TIOCSPTLCK, &unlock) != 0) return Error::Errno("unlock pty");
  int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) return Error::Errno("open pty peer");
  pty.slave.reset(slave);
  if (rows > 0 && cols > 0) SBX_TRY(ResizePty(master, rows, cols));
  return pty;
}

Status ResizePty(int master_fd, unsigned rows, unsigned cols) {
  winsize ws{};
  ws.ws_row = static_cast<unsigned short>(rows > 0xffff ? 0xffff : rows);
  ws.ws_col = static_cast<unsigned short>(cols > 0xffff ? 0xffff : cols);
  if (ioctl(master_fd, TIOCSWINSZ, &ws) != 0) return Error::Errno("resize pty");
  return Ok();
}

ExitInfo ExitFromStatus(int status) {
  sys::ExitStatus exit = sys::DecodeWaitStatus(status);
  ExitInfo info;
  info.exit_code = exit.exit_code;
  info.signal = exit.signal;
  info.signaled = exit.signaled;
  return info;
}

PipeRead ReadPipe(int fd, std::string& data) {
  char buf[64u << 10];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) {
    data.assign(buf, static_cast<size_t>(n));
    return PipeRead::kData;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return PipeRead::kEmpty;
  return PipeRead::kClosed;
}

}  // namespace sbx::agent
