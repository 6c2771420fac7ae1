#include "src/agent/init/exec_sessions.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "src/agent/init/proc_tree.h"
#include "src/agent/init/spawn.h"
#include "src/agent/init/users.h"
#include "src/base/clock.h"
#include "src/sys/fs.h"

namespace sbx::agent {

namespace {

// Stdin queued for the process beyond this stops reading from the host.
constexpr size_t kStdinHighWater = 1u << 20;
// After a session's process exits, output from children still holding its pipes is awaited this
// long before the exit is reported.
constexpr int64_t kExitDrainMs = 100;

std::string OutputPayload(bool is_stderr, std::string data) {
  Output out;
  out.stream = is_stderr ? StreamId::kStderr : StreamId::kStdout;
  out.data = std::move(data);
  return out.Encode();
}

}  // namespace

struct ExecSessions::Exec {
  uint64_t id = 0;
  pid_t pid = 0;
  uint64_t conn_id = 0;  // 0 once the connection is closed
  bool tty = false;
  UniqueFd out;    // stdout pipe, or the pty master
  UniqueFd err;    // stderr pipe (not in tty mode)
  UniqueFd stdin;  // write end of the stdin pipe (a dup of the master in tty mode)
  std::string stdin_pending;
  bool stdin_close_requested = false;
  bool exited = false;
  int status = 0;
  bool timed_out = false;
  bool paused = false;
  int64_t deadline_ms = -1;
  int64_t drain_deadline_ms = -1;
  uint32_t out_events = 0;
  uint32_t err_events = 0;
  uint32_t in_events = 0;
};

ExecSessions::ExecSessions(ServerLoop& loop, const InitConfig& config, int null_fd)
    : loop_(loop), config_(config), null_fd_(null_fd) {}

ExecSessions::~ExecSessions() = default;

ExecSessions::Exec* ExecSessions::Find(uint64_t id) {
  auto it = execs_.find(id);
  return it == execs_.end() ? nullptr : it->second.get();
}

void ExecSessions::Start(Conn& conn, std::string_view payload) {
  auto request = ExecStart::Decode(payload);
  if (!request) return loop_.Fail(conn, request.error());
  if (request->argv.empty()) return loop_.Fail(conn, Error::InvalidArgument("empty command"));
  auto user = ResolveSandboxUser(request->user.empty() ? config_.user : request->user);
  if (!user) return loop_.Fail(conn, user.error());
  std::string cwd = request->cwd.empty() ? config_.cwd : request->cwd;
  if (cwd.empty() || cwd[0] != '/') {
    return loop_.Fail(conn, Error::InvalidArgument("cwd must be absolute"));
  }

  auto exec = std::make_unique<Exec>();
  exec->id = next_id_++;
  exec->tty = request->tty;
  SpawnRequest spawn;
  spawn.argv = request->argv;
  spawn.env = BuildEnvironment(config_.env, request->env, *user, request->tty);
  spawn.cwd = cwd;
  spawn.user = *user;
  spawn.dropped_capabilities = config_.dropped_capabilities;
  spawn.tty = request->tty;
  UniqueFd child_in, child_out, child_err;
  if (request->tty) {
    auto pty = OpenPty(request->rows, request->cols);
    if (!pty) return loop_.Fail(conn, pty.error());
    int dup_fd = fcntl(pty->master.get(), F_DUPFD_CLOEXEC, 3);
    if (dup_fd < 0) return loop_.Fail(conn, Error::Errno("dup"));
    exec->stdin.reset(dup_fd);
    exec->out = std::move(pty->master);
    child_in = std::move(pty->slave);
    spawn.stdin_fd = spawn.stdout_fd = spawn.stderr_fd = child_in.get();
  } else {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return loop_.Fail(conn, Error::Errno("pipe"));
    exec->out.reset(fds[0]);
    child_out.reset(fds[1]);
    if (pipe2(fds, O_CLOEXEC) != 0) return loop_.Fail(conn, Error::Errno("pipe"));
    exec->err.reset(fds[0]);
    child_err.reset(fds[1]);
    if (request->stdin_open) {
      if (pipe2(fds, O_CLOEXEC) != 0) return loop_.Fail(conn, Error::Errno("pipe"));
      child_in.reset(fds[0]);
      exec->stdin.reset(fds[1]);
    }
    spawn.stdin_fd = child_in ? child_in.get() : null_fd_;
    spawn.stdout_fd = child_out.get();
    spawn.stderr_fd = child_err.get();
  }
  auto pid = SpawnProcess(spawn);
  if (!pid) return loop_.Fail(conn, pid.error());
  exec->pid = *pid;
  exec->conn_id = conn.id;
  if (request->timeout_ms > 0) exec->deadline_ms = MonotonicMillis() + request->timeout_ms;
  if (!request->tty && !request->stdin_open) exec->stdin_close_requested = true;
  (void)sys::SetNonBlocking(exec->out.get(), true);
  if (exec->err) (void)sys::SetNonBlocking(exec->err.get(), true);
  if (exec->stdin) (void)sys::SetNonBlocking(exec->stdin.get(), true);
  exec->out_events = EPOLLIN;
  (void)loop_.Watch(exec->out.get(), WatchKey(WatchKind::kExecOut, exec->id), EPOLLIN);
  if (exec->err) {
    exec->err_events = EPOLLIN;
    (void)loop_.Watch(exec->err.get(), WatchKey(WatchKind::kExecErr, exec->id), EPOLLIN);
  }
  if (exec->stdin) (void)loop_.Watch(exec->stdin.get(), WatchKey(WatchKind::kExecIn, exec->id), 0);
  conn.kind = Conn::Kind::kExec;
  conn.exec_id = exec->id;
  exec_by_pid_[exec->pid] = exec->id;
  pid_t started = exec->pid;
  execs_.emplace(exec->id, std::move(exec));
  loop_.Send(conn, MsgType::kExecStarted, ExecStarted{started}.Encode());
}

void ExecSessions::OnFrame(Conn& conn, const Frame& frame) {
  Exec* exec = Find(conn.exec_id);
  if (exec == nullptr) return;
  switch (frame.type) {
    case MsgType::kStdin:
      if (exec->stdin && !exec->stdin_close_requested) {
        exec->stdin_pending += frame.payload;
        WriteStdin(*exec);
        if (exec->stdin_pending.size() > kStdinHighWater) loop_.PauseReading(conn);
      }
      return;
    case MsgType::kStdinClose:
      exec->stdin_close_requested = true;
      WriteStdin(*exec);
      return;
    case MsgType::kResize:
      if (exec->tty) {
        if (auto resize = Resize::Decode(frame.payload)) {
          (void)ResizePty(exec->out.get(), resize->rows, resize->cols);
        }
      }
      return;
    case MsgType::kSignal:
      if (auto sig = SignalRequest::Decode(frame.payload)) {
        if (sig->signal > 0 && sig->signal < 65 && !exec->exited) kill(-exec->pid, sig->signal);
      }
      return;
    case MsgType::kKill:
      if (!exec->exited) KillTree(exec->pid, SIGKILL);
      return;
    default:
      return;
  }
}

void ExecSessions::OnConnDrained(Conn& conn) {
  if (conn.kind != Conn::Kind::kExec || !conn.exec_id || conn.pending() >= kOutHighWater / 2) {
    return;
  }
  Exec* exec = Find(conn.exec_id);
  if (exec != nullptr && exec->paused) SetPaused(*exec, false);
}

void ExecSessions::Kill(uint64_t exec_id) {
  Exec* exec = Find(exec_id);
  if (exec != nullptr && !exec->exited) KillTree(exec->pid, SIGKILL);
}

void ExecSessions::Detach(uint64_t exec_id) {
  if (Exec* exec = Find(exec_id)) exec->conn_id = 0;
}

void ExecSessions::UpdateEvents(Exec& exec) {
  uint32_t out = (exec.out && !exec.paused) ? static_cast<uint32_t>(EPOLLIN) : 0u;
  if (exec.out && out != exec.out_events) {
    exec.out_events = out;
    loop_.Rewatch(exec.out.get(), WatchKey(WatchKind::kExecOut, exec.id), out);
  }
  uint32_t err = (exec.err && !exec.paused) ? static_cast<uint32_t>(EPOLLIN) : 0u;
  if (exec.err && err != exec.err_events) {
    exec.err_events = err;
    loop_.Rewatch(exec.err.get(), WatchKey(WatchKind::kExecErr, exec.id), err);
  }
  uint32_t in = (exec.stdin && !exec.stdin_pending.empty()) ? static_cast<uint32_t>(EPOLLOUT) : 0u;
  if (exec.stdin && in != exec.in_events) {
    exec.in_events = in;
    loop_.Rewatch(exec.stdin.get(), WatchKey(WatchKind::kExecIn, exec.id), in);
  }
}

void ExecSessions::SetPaused(Exec& exec, bool paused) {
  exec.paused = paused;
  UpdateEvents(exec);
}

void ExecSessions::ClosePipe(UniqueFd& fd) {
  loop_.Unwatch(fd.get());
  fd.reset();
}

void ExecSessions::QueueOutput(const Exec& exec, bool is_stderr, std::string data) {
  if (Conn* conn = loop_.FindConn(exec.conn_id)) {
    conn->out += EncodeFrame(MsgType::kOutput, OutputPayload(is_stderr, std::move(data)));
  }
}

void ExecSessions::OnOutput(uint64_t exec_id, bool is_stderr) {
  Exec* exec = Find(exec_id);
  if (exec == nullptr) return;
  UniqueFd& fd = is_stderr ? exec->err : exec->out;
  if (!fd) return;
  // One read per event keeps a chatty exec from starving the others; level-triggered epoll
  // brings us back.
  std::string data;
  switch (ReadPipe(fd.get(), data)) {
    case PipeRead::kData:
      if (Conn* conn = loop_.FindConn(exec->conn_id)) {
        loop_.Send(*conn, MsgType::kOutput, OutputPayload(is_stderr, std::move(data)));
        conn = loop_.FindConn(exec->conn_id);
        if (conn != nullptr && conn->pending() > kOutHighWater) SetPaused(*exec, true);
      }
      return;
    case PipeRead::kEmpty:
      return;
    case PipeRead::kClosed:
      ClosePipe(fd);
      // The terminal is gone: nothing can be written to it either.
      if (exec->tty && exec->stdin) ClosePipe(exec->stdin);
      MaybeFinish(*exec);
      return;
  }
}

void ExecSessions::OnStdinWritable(uint64_t exec_id) {
  if (Exec* exec = Find(exec_id)) WriteStdin(*exec);
}

void ExecSessions::WriteStdin(Exec& exec) {
  while (exec.stdin && !exec.stdin_pending.empty()) {
    ssize_t n = write(exec.stdin.get(), exec.stdin_pending.data(), exec.stdin_pending.size());
    if (n > 0) {
      exec.stdin_pending.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    // The process closed its stdin: drop what it will never read.
    exec.stdin_pending.clear();
    ClosePipe(exec.stdin);
    break;
  }
  if (exec.stdin && exec.stdin_pending.empty() && exec.stdin_close_requested) {
    if (exec.tty) {
      // EOF on a terminal is the EOF character at the start of a line.
      char eot = 4;
      (void)!write(exec.stdin.get(), &eot, 1);
    } else {
      ClosePipe(exec.stdin);
    }
  }
  UpdateEvents(exec);
  if (exec.stdin_pending.size() <= kStdinHighWater) {
    Conn* conn = loop_.FindConn(exec.conn_id);
    if (conn != nullptr && conn->read_paused) loop_.ResumeReading(*conn);
  }
}

void ExecSessions::MaybeFinish(Exec& exec) {
  if (!exec.exited) return;
  // Output written before the exit is already in the pipes; reading it also tells (EOF) whether
  // anything else still holds them.
  for (int i = 0; i < 16 && (exec.out || exec.err); ++i) {
    bool progressed = false;
    for (bool is_stderr : {false, true}) {
      UniqueFd& fd = is_stderr ? exec.err : exec.out;
      if (!fd) continue;
      std::string data;
      switch (ReadPipe(fd.get(), data)) {
        case PipeRead::kData:
          progressed = true;
          QueueOutput(exec, is_stderr, std::move(data));
          break;
        case PipeRead::kClosed:
          ClosePipe(fd);
          progressed = true;
          break;
        case PipeRead::kEmpty:
          break;
      }
    }
    if (!progressed) break;
  }
  if (!exec.out && !exec.err) {
    Finish(exec.id);
    return;
  }
  if (exec.drain_deadline_ms < 0) exec.drain_deadline_ms = MonotonicMillis() + kExitDrainMs;
}

void ExecSessions::Finish(uint64_t id) {
  auto it = execs_.find(id);
  if (it == execs_.end()) return;
  Exec& exec = *it->second;
  if (Conn* conn = loop_.FindConn(exec.conn_id)) {
    // Deliver what is still buffered in the pipes, regardless of backpressure.
    for (bool is_stderr : {false, true}) {
      UniqueFd& fd = is_stderr ? exec.err : exec.out;
      std::string data;
      while (fd && ReadPipe(fd.get(), data) == PipeRead::kData) {
        QueueOutput(exec, is_stderr, std::move(data));
      }
    }
    ExitInfo info = ExitFromStatus(exec.status);
    info.timed_out = exec.timed_out;
    conn->exec_id = 0;
    loop_.Reply(*conn, MsgType::kExit, info.Encode());
  }
  for (UniqueFd* fd : {&exec.out, &exec.err, &exec.stdin}) ClosePipe(*fd);
  exec_by_pid_.erase(exec.pid);
  execs_.erase(it);
}

bool ExecSessions::OnExit(pid_t pid, int status) {
  auto it = exec_by_pid_.find(pid);
  if (it == exec_by_pid_.end()) return false;
  Exec* exec = Find(it->second);
  if (exec == nullptr) return true;
  exec->exited = true;
  exec->status = status;
  exec->deadline_ms = -1;
  MaybeFinish(*exec);
  return true;
}

int64_t ExecSessions::NextDeadline() const {
  int64_t next = -1;
  for (const auto& [id, exec] : execs_) {
    for (int64_t deadline : {exec->deadline_ms, exec->drain_deadline_ms}) {
      if (deadline >= 0 && (next < 0 || deadline < next)) next = deadline;
    }
  }
  return next;
}

void ExecSessions::RunTimers(int64_t now_ms) {
  std::vector<uint64_t> to_finish;
  for (auto& [id, exec] : execs_) {
    if (exec->deadline_ms >= 0 && now_ms >= exec->deadline_ms) {
      exec->deadline_ms = -1;
      if (!exec->exited) {
        exec->timed_out = true;
        KillTree(exec->pid, SIGKILL);
      }
    }
    if (exec->drain_deadline_ms >= 0 && now_ms >= exec->drain_deadline_ms) to_finish.push_back(id);
  }
  for (uint64_t id : to_finish) Finish(id);
}

}  // namespace sbx::agent
