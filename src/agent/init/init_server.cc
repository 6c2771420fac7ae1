#include "src/agent/init/init_server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "src/agent/init/proc_tree.h"
#include "src/agent/init/spawn.h"
#include "src/agent/init/users.h"
#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::agent {

namespace {

// Epoll keys: the top byte says what the descriptor is, the rest is the object's id.
enum Kind : uint64_t {
  kListen = 1,
  kSignal = 2,
  kConnKey = 3,
  kExecOut = 4,
  kExecErr = 5,
  kExecIn = 6,
  kMainOut = 7,
  kMainErr = 8,
};

uint64_t Key(Kind kind, uint64_t id) { return (static_cast<uint64_t>(kind) << 56) | id; }
Kind KindOf(uint64_t key) { return static_cast<Kind>(key >> 56); }
uint64_t IdOf(uint64_t key) { return key & ((1ull << 56) - 1); }

// Output queued for the host beyond this stops reading from the process.
constexpr size_t kOutHighWater = 256u << 10;
// Stdin queued for the process beyond this stops reading from the host.
constexpr size_t kStdinHighWater = 1u << 20;
constexpr size_t kReadChunk = 64u << 10;
constexpr size_t kFileChunk = 256u << 10;
constexpr size_t kMaxConnections = 4096;
constexpr size_t kMaxDirEntries = 100000;
// After an exec's process exits, output from children still holding its pipes is awaited this
// long before the exit is reported.
constexpr int64_t kExitDrainMs = 100;

ExitInfo ExitFromStatus(int status) {
  ExitInfo info;
  if (WIFSIGNALED(status)) {
    info.signaled = true;
    info.signal = WTERMSIG(status);
  } else {
    info.exit_code = WEXITSTATUS(status);
  }
  return info;
}

// The owner of files and directories created through the API: the sandbox's user (root when it
// cannot be resolved).
std::pair<uid_t, gid_t> DefaultOwner(const std::string& user_spec) {
  auto passwd = sys::ReadFile("/etc/passwd", 4u << 20);
  auto group = sys::ReadFile("/etc/group", 4u << 20);
  auto owner = ResolveUser(user_spec, passwd.value_or(""), group.value_or(""));
  if (!owner) return {0, 0};
  return {owner->uid, owner->gid};
}

}  // namespace

struct InitServer::Conn {
  enum class Kind { kNew, kExec, kFileRead, kFileWrite, kLogs, kWaitMain, kDone };
  uint64_t id = 0;
  UniqueFd fd;
  FrameBuffer in;
  std::string out;
  size_t out_pos = 0;
  Kind kind = Kind::kNew;
  bool close_after_flush = false;
  bool read_paused = false;
  uint32_t events = 0;
  uint64_t exec_id = 0;
  UniqueFd file;
  std::unique_ptr<PendingWrite> write;
  uint64_t log_offset = 0;
  bool log_follow = false;
  size_t pending() const { return out.size() - out_pos; }
};

struct InitServer::Exec {
  uint64_t id = 0;
  pid_t pid = 0;
  uint64_t conn_id = 0;
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

InitServer::InitServer(InitConfig config, UniqueFd listen_fd)
    : config_(std::move(config)), listen_fd_(std::move(listen_fd)), logs_(config_.log_ring_bytes) {}

InitServer::~InitServer() = default;

Status InitServer::Register(int fd, uint64_t key, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = key;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return Error::Errno("epoll add");
  return Ok();
}

void InitServer::Modify(int fd, uint64_t key, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = key;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &ev);
}

void InitServer::Unregister(int fd) {
  if (fd >= 0) epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

Status InitServer::Setup() {
  // SECURITY: a non-dumpable PID 1 cannot be ptraced, and its /proc/1/fd (the listening socket)
  // cannot be opened, by processes of the sandbox even when they run as the same user.
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  epoll_fd_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) return Error::Errno("epoll_create1");
  sigset_t mask;
  sigfillset(&mask);
  sigdelset(&mask, SIGSEGV);
  sigdelset(&mask, SIGBUS);
  sigdelset(&mask, SIGFPE);
  sigdelset(&mask, SIGILL);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_.reset(signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_) return Error::Errno("signalfd");
  signal(SIGPIPE, SIG_IGN);
  SBX_TRY(Register(signal_fd_.get(), Key(kSignal, 0), EPOLLIN));
  SBX_TRY(sys::SetNonBlocking(listen_fd_.get(), true));
  SBX_TRY(Register(listen_fd_.get(), Key(kListen, 0), EPOLLIN));
  SBX_ASSIGN_OR_RETURN(root_fd_, sys::Open("/", O_PATH | O_DIRECTORY));
  SBX_ASSIGN_OR_RETURN(null_fd_, sys::Open("/dev/null", O_RDWR));
  SetLifetimeDeadline();
  return Ok();
}

void InitServer::SetLifetimeDeadline() {
  lifetime_deadline_ms_ = -1;
  if (config_.deadline_unix_ns > 0) {
    int64_t left_ms = (config_.deadline_unix_ns - WallNanos()) / 1000000;
    lifetime_deadline_ms_ = MonotonicMillis() + std::max<int64_t>(left_ms, 0);
  }
}

int InitServer::Run() {
  if (Status s = Setup(); !s) {
    fprintf(stderr, "sbx-init: %s\n", s.error().ToString().c_str());
    return 1;
  }
  if (!config_.await_start) StartMain();
  Loop();
  return 0;
}

void InitServer::Loop() {
  epoll_event events[64];
  while (!exit_requested_) {
    int n = epoll_wait(epoll_fd_.get(), events, 64, NextTimeout());
    if (n < 0 && errno != EINTR) {
      fprintf(stderr, "sbx-init: epoll_wait: %s\n", strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) Dispatch(events[i].data.u64, events[i].events);
    RunTimers();
  }
}

void InitServer::Dispatch(uint64_t key, uint32_t events) {
  uint64_t id = IdOf(key);
  switch (KindOf(key)) {
    case kListen:
      Accept();
      return;
    case kSignal:
      OnSignal();
      return;
    case kConnKey: {
      auto it = conns_.find(id);
      if (it == conns_.end()) return;
      if (events & EPOLLOUT) OnConnWritable(*it->second);
      it = conns_.find(id);
      if (it != conns_.end() && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        OnConnReadable(*it->second);
      }
      return;
    }
    case kExecOut:
    case kExecErr: {
      auto it = execs_.find(id);
      if (it != execs_.end()) OnExecOutput(*it->second, KindOf(key) == kExecErr);
      return;
    }
    case kExecIn: {
      auto it = execs_.find(id);
      if (it != execs_.end()) OnExecStdinWritable(*it->second);
      return;
    }
    case kMainOut:
    case kMainErr:
      OnMainOutput(KindOf(key) == kMainErr);
      return;
  }
}

int InitServer::NextTimeout() const {
  int64_t next = -1;
  auto consider = [&next](int64_t deadline) {
    if (deadline >= 0 && (next < 0 || deadline < next)) next = deadline;
  };
  consider(lifetime_deadline_ms_);
  consider(main_.kill_deadline_ms);
  for (const auto& [id, exec] : execs_) {
    consider(exec->deadline_ms);
    consider(exec->drain_deadline_ms);
  }
  return PollTimeout(next);
}

void InitServer::RunTimers() {
  int64_t now = MonotonicMillis();
  if (lifetime_deadline_ms_ >= 0 && now >= lifetime_deadline_ms_) {
    lifetime_deadline_ms_ = -1;
    if (main_.running) {
      main_.lifetime_exceeded = true;
      SignalMain(SIGTERM);
      if (main_.running) main_.kill_deadline_ms = now + std::max<int64_t>(config_.stop_grace_ms, 0);
    }
  }
  if (main_.kill_deadline_ms >= 0 && now >= main_.kill_deadline_ms) {
    main_.kill_deadline_ms = -1;
    if (main_.running) SignalMain(SIGKILL);
  }
  std::vector<uint64_t> to_finish;
  for (auto& [id, exec] : execs_) {
    if (exec->deadline_ms >= 0 && now >= exec->deadline_ms) {
      exec->deadline_ms = -1;
      if (!exec->exited) {
        exec->timed_out = true;
        KillTree(exec->pid, SIGKILL);
      }
    }
    if (exec->drain_deadline_ms >= 0 && now >= exec->drain_deadline_ms) to_finish.push_back(id);
  }
  for (uint64_t id : to_finish) FinishExec(id);
}

// ---------------------------------------------------------------------------------------------
// Connections

void InitServer::Accept() {
  while (true) {
    int fd = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    if (conns_.size() >= kMaxConnections) {
      close(fd);
      continue;
    }
    auto conn = std::make_unique<Conn>();
    conn->id = next_id_++;
    conn->fd.reset(fd);
    conn->events = EPOLLIN | EPOLLRDHUP;
    if (!Register(fd, Key(kConnKey, conn->id), conn->events)) continue;
    conns_.emplace(conn->id, std::move(conn));
  }
}

void InitServer::UpdateConnEvents(Conn& conn) {
  uint32_t events = 0;
  if (!conn.read_paused && !conn.close_after_flush) events |= EPOLLIN | EPOLLRDHUP;
  if (conn.pending() > 0) events |= EPOLLOUT;
  if (events != conn.events) {
    conn.events = events;
    Modify(conn.fd.get(), Key(kConnKey, conn.id), events);
  }
}

void InitServer::OnConnReadable(Conn& conn) {
  uint64_t id = conn.id;
  char buf[kReadChunk];
  bool eof = false;
  while (!conn.read_paused) {
    ssize_t n = recv(conn.fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      conn.in.Append(buf, static_cast<size_t>(n));
      // Handle frames as they complete so a paused connection stops consuming.
      while (true) {
        auto frame = conn.in.Pop();
        if (!frame) break;
        if (!*frame) {
          CloseConn(id);
          return;
        }
        HandleFrame(conn, std::move(**frame));
        if (!conns_.count(id)) return;
      }
      continue;
    }
    if (n == 0) {
      eof = true;
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) eof = true;
    break;
  }
  if (eof) {
    // The host went away (or half-closed). An exec without its host is killed; a pending write
    // is abandoned; everything else just ends.
    if (conn.kind == Conn::Kind::kExec && conn.exec_id) {
      auto it = execs_.find(conn.exec_id);
      if (it != execs_.end() && !it->second->exited) KillTree(it->second->pid, SIGKILL);
    }
    CloseConn(id);
  }
}

void InitServer::OnConnWritable(Conn& conn) {
  Flush(conn);
  if (!conns_.count(conn.id)) return;
  if (conn.kind == Conn::Kind::kFileRead) PumpFileRead(conn);
  if (conn.kind == Conn::Kind::kLogs) PumpLogs(conn);
  if (conn.kind == Conn::Kind::kExec && conn.exec_id && conn.pending() < kOutHighWater / 2) {
    auto it = execs_.find(conn.exec_id);
    if (it != execs_.end() && it->second->paused) PauseExec(*it->second, false);
  }
}

void InitServer::Send(Conn& conn, MsgType type, const std::string& payload) {
  if (conn.out_pos > 0 && conn.out_pos == conn.out.size()) {
    conn.out.clear();
    conn.out_pos = 0;
  }
  conn.out += EncodeFrame(type, payload);
  Flush(conn);
}

void InitServer::SendError(Conn& conn, const Error& error) {
  Send(conn, MsgType::kError, ErrorReply::FromError(error).Encode());
}

void InitServer::Flush(Conn& conn) {
  while (conn.pending() > 0) {
    ssize_t n = send(conn.fd.get(), conn.out.data() + conn.out_pos, conn.pending(), MSG_NOSIGNAL);
    if (n > 0) {
      conn.out_pos += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    // The host is gone; reading will notice the hang-up.
    conn.out.clear();
    conn.out_pos = 0;
    break;
  }
  if (conn.pending() == 0) {
    conn.out.clear();
    conn.out_pos = 0;
    if (conn.close_after_flush) {
      CloseConn(conn.id);
      return;
    }
  } else if (conn.out_pos > (1u << 20)) {
    conn.out.erase(0, conn.out_pos);
    conn.out_pos = 0;
  }
  UpdateConnEvents(conn);
}

void InitServer::CloseAfterFlush(Conn& conn) {
  conn.close_after_flush = true;
  conn.kind = Conn::Kind::kDone;
  Flush(conn);
}

void InitServer::CloseConn(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& conn = *it->second;
  Unregister(conn.fd.get());
  if (conn.exec_id) {
    auto exec = execs_.find(conn.exec_id);
    if (exec != execs_.end()) exec->second->conn_id = 0;
  }
  conns_.erase(it);
}

void InitServer::HandleFrame(Conn& conn, Frame frame) {
  if (conn.kind == Conn::Kind::kNew) {
    HandleRequest(conn, std::move(frame));
    return;
  }
  if (conn.kind == Conn::Kind::kExec) {
    auto it = execs_.find(conn.exec_id);
    if (it == execs_.end()) return;
    Exec& exec = *it->second;
    switch (frame.type) {
      case MsgType::kStdin:
        if (exec.stdin && !exec.stdin_close_requested) {
          exec.stdin_pending += frame.payload;
          WriteExecStdin(exec);
          if (exec.stdin_pending.size() > kStdinHighWater) {
            conn.read_paused = true;
            UpdateConnEvents(conn);
          }
        }
        return;
      case MsgType::kStdinClose:
        exec.stdin_close_requested = true;
        WriteExecStdin(exec);
        return;
      case MsgType::kResize:
        if (exec.tty) {
          if (auto resize = Resize::Decode(frame.payload)) {
            (void)ResizePty(exec.out.get(), resize->rows, resize->cols);
          }
        }
        return;
      case MsgType::kSignal:
        if (auto sig = SignalRequest::Decode(frame.payload)) {
          if (sig->signal > 0 && sig->signal < 65 && !exec.exited) kill(-exec.pid, sig->signal);
        }
        return;
      case MsgType::kKill:
        if (!exec.exited) KillTree(exec.pid, SIGKILL);
        return;
      default:
        return;
    }
  }
  if (conn.kind == Conn::Kind::kFileWrite) {
    if (frame.type == MsgType::kFileData) {
      Status written = conn.write->Write(frame.payload);
      if (!written) {
        conn.write.reset();
        SendError(conn, written.error());
        CloseAfterFlush(conn);
      }
      return;
    }
    if (frame.type == MsgType::kFileEnd) {
      Status committed = conn.write->Commit();
      conn.write.reset();
      if (committed) {
        Send(conn, MsgType::kOk, "");
      } else {
        SendError(conn, committed.error());
      }
      CloseAfterFlush(conn);
      return;
    }
    CloseConn(conn.id);
    return;
  }
  // Other conversations take no further frames from the host.
}

void InitServer::HandleRequest(Conn& conn, Frame frame) {
  switch (frame.type) {
    case MsgType::kExecStart: {
      auto request = ExecStart::Decode(frame.payload);
      if (!request) {
        SendError(conn, request.error());
        CloseAfterFlush(conn);
        return;
      }
      StartExec(conn, *request);
      return;
    }
    case MsgType::kFileRead: {
      auto request = FileRead::Decode(frame.payload);
      if (!request) {
        SendError(conn, request.error());
        CloseAfterFlush(conn);
        return;
      }
      StartFileRead(conn, *request);
      return;
    }
    case MsgType::kFileWrite: {
      auto request = FileWrite::Decode(frame.payload);
      if (!request) {
        SendError(conn, request.error());
        CloseAfterFlush(conn);
        return;
      }
      StartFileWrite(conn, *request);
      return;
    }
    case MsgType::kStat:
    case MsgType::kListDir: {
      auto request = PathRequest::Decode(frame.payload);
      Result<std::string> path =
          request ? AbsolutePath(config_.cwd, request->path) : Result<std::string>(request.error());
      if (!path) {
        SendError(conn, path.error());
      } else if (frame.type == MsgType::kStat) {
        auto info = StatPath(root_fd_.get(), *path);
        if (info) {
          Send(conn, MsgType::kFileInfo, info->Encode());
        } else {
          SendError(conn, info.error());
        }
      } else {
        auto entries = ListDirectory(root_fd_.get(), *path, kMaxDirEntries);
        if (entries) {
          Send(conn, MsgType::kDirEntries, entries->Encode());
        } else {
          SendError(conn, entries.error());
        }
      }
      CloseAfterFlush(conn);
      return;
    }
    case MsgType::kMkdir:
    case MsgType::kSymlink:
    case MsgType::kReadlink:
      HandleLinkOrDirectory(conn, frame);
      CloseAfterFlush(conn);
      return;
    case MsgType::kStatus:
      Send(conn, MsgType::kStatusReply, BuildStatus().Encode());
      CloseAfterFlush(conn);
      return;
    case MsgType::kWaitMain:
      if (main_.exited) {
        Send(conn, MsgType::kStatusReply, BuildStatus().Encode());
        CloseAfterFlush(conn);
      } else {
        conn.kind = Conn::Kind::kWaitMain;
      }
      return;
    case MsgType::kAckExit:
      if (!main_.exited) {
        SendError(conn, Error::FailedPrecondition("the main process has not exited"));
        CloseAfterFlush(conn);
        return;
      }
      main_.acknowledged = true;
      Send(conn, MsgType::kOk, "");
      CloseAfterFlush(conn);
      exit_requested_ = true;
      return;
    case MsgType::kSignalMain: {
      auto request = SignalRequest::Decode(frame.payload);
      if (!request || request->signal <= 0 || request->signal > 64) {
        SendError(conn, Error::InvalidArgument("bad signal"));
      } else {
        SignalMain(request->signal);
        Send(conn, MsgType::kOk, "");
      }
      CloseAfterFlush(conn);
      return;
    }
    case MsgType::kStartMain: {
      auto request = InitConfig::Decode(frame.payload);
      if (!request) {
        SendError(conn, request.error());
      } else if (!config_.await_start) {
        SendError(conn, Error::FailedPrecondition("the main process was already started"));
      } else {
        // The log ring keeps the size it was made with; everything else is the real process's.
        request->log_ring_bytes = config_.log_ring_bytes;
        request->await_start = false;
        config_ = std::move(*request);
        SetLifetimeDeadline();
        StartMain();
        Send(conn, MsgType::kOk, "");
      }
      CloseAfterFlush(conn);
      return;
    }
    case MsgType::kLogs: {
      auto request = LogsRequest::Decode(frame.payload);
      if (!request) {
        SendError(conn, request.error());
        CloseAfterFlush(conn);
        return;
      }
      conn.kind = Conn::Kind::kLogs;
      conn.log_offset = request->offset;
      conn.log_follow = request->follow;
      PumpLogs(conn);
      return;
    }
    default:
      SendError(conn, Error::InvalidArgument(std::string("unexpected request ") +
                                             MsgTypeName(frame.type)));
      CloseAfterFlush(conn);
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Execs

void InitServer::StartExec(Conn& conn, const ExecStart& request) {
  auto fail = [&](const Error& error) {
    SendError(conn, error);
    CloseAfterFlush(conn);
  };
  if (request.argv.empty()) return fail(Error::InvalidArgument("empty command"));
  std::string user_spec = request.user.empty() ? config_.user : request.user;
  auto passwd = sys::ReadFile("/etc/passwd", 4u << 20);
  auto group = sys::ReadFile("/etc/group", 4u << 20);
  auto user = ResolveUser(user_spec, passwd.value_or(""), group.value_or(""));
  if (!user) return fail(user.error());
  std::string cwd = request.cwd.empty() ? config_.cwd : request.cwd;
  if (cwd.empty() || cwd[0] != '/') return fail(Error::InvalidArgument("cwd must be absolute"));

  auto exec = std::make_unique<Exec>();
  exec->id = next_id_++;
  exec->tty = request.tty;
  SpawnRequest spawn;
  spawn.argv = request.argv;
  spawn.env = BuildEnvironment(config_.env, request.env, *user, request.tty);
  spawn.cwd = cwd;
  spawn.user = *user;
  spawn.tty = request.tty;
  UniqueFd child_in, child_out, child_err;
  if (request.tty) {
    auto pty = OpenPty(request.rows, request.cols);
    if (!pty) return fail(pty.error());
    int dup_fd = fcntl(pty->master.get(), F_DUPFD_CLOEXEC, 3);
    if (dup_fd < 0) return fail(Error::Errno("dup"));
    exec->stdin.reset(dup_fd);
    exec->out = std::move(pty->master);
    child_in = std::move(pty->slave);
    spawn.stdin_fd = spawn.stdout_fd = spawn.stderr_fd = child_in.get();
  } else {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return fail(Error::Errno("pipe"));
    exec->out.reset(fds[0]);
    child_out.reset(fds[1]);
    if (pipe2(fds, O_CLOEXEC) != 0) return fail(Error::Errno("pipe"));
    exec->err.reset(fds[0]);
    child_err.reset(fds[1]);
    if (request.stdin_open) {
      if (pipe2(fds, O_CLOEXEC) != 0) return fail(Error::Errno("pipe"));
      child_in.reset(fds[0]);
      exec->stdin.reset(fds[1]);
    }
    spawn.stdin_fd = child_in ? child_in.get() : null_fd_.get();
    spawn.stdout_fd = child_out.get();
    spawn.stderr_fd = child_err.get();
  }
  auto pid = SpawnProcess(spawn);
  if (!pid) return fail(pid.error());
  exec->pid = *pid;
  exec->conn_id = conn.id;
  if (request.timeout_ms > 0) exec->deadline_ms = MonotonicMillis() + request.timeout_ms;
  if (!request.tty && !request.stdin_open) exec->stdin_close_requested = true;
  (void)sys::SetNonBlocking(exec->out.get(), true);
  if (exec->err) (void)sys::SetNonBlocking(exec->err.get(), true);
  if (exec->stdin) (void)sys::SetNonBlocking(exec->stdin.get(), true);
  exec->out_events = EPOLLIN;
  (void)Register(exec->out.get(), Key(kExecOut, exec->id), EPOLLIN);
  if (exec->err) {
    exec->err_events = EPOLLIN;
    (void)Register(exec->err.get(), Key(kExecErr, exec->id), EPOLLIN);
  }
  if (exec->stdin) (void)Register(exec->stdin.get(), Key(kExecIn, exec->id), 0);
  conn.kind = Conn::Kind::kExec;
  conn.exec_id = exec->id;
  exec_by_pid_[exec->pid] = exec->id;
  Exec& ref = *exec;
  execs_.emplace(exec->id, std::move(exec));
  Send(conn, MsgType::kExecStarted, ExecStarted{ref.pid}.Encode());
}

void InitServer::UpdateExecEvents(Exec& exec) {
  uint32_t out = (exec.out && !exec.paused) ? static_cast<uint32_t>(EPOLLIN) : 0u;
  if (exec.out && out != exec.out_events) {
    exec.out_events = out;
    Modify(exec.out.get(), Key(kExecOut, exec.id), out);
  }
  uint32_t err = (exec.err && !exec.paused) ? static_cast<uint32_t>(EPOLLIN) : 0u;
  if (exec.err && err != exec.err_events) {
    exec.err_events = err;
    Modify(exec.err.get(), Key(kExecErr, exec.id), err);
  }
  uint32_t in = (exec.stdin && !exec.stdin_pending.empty()) ? static_cast<uint32_t>(EPOLLOUT) : 0u;
  if (exec.stdin && in != exec.in_events) {
    exec.in_events = in;
    Modify(exec.stdin.get(), Key(kExecIn, exec.id), in);
  }
}

void InitServer::PauseExec(Exec& exec, bool paused) {
  exec.paused = paused;
  UpdateExecEvents(exec);
}

void InitServer::OnExecOutput(Exec& exec, bool is_stderr) {
  UniqueFd& fd = is_stderr ? exec.err : exec.out;
  if (!fd) return;
  Conn* conn = nullptr;
  if (auto it = conns_.find(exec.conn_id); it != conns_.end()) conn = it->second.get();
  char buf[kReadChunk];
  // One read per event keeps a chatty exec from starving the others; level-triggered epoll
  // brings us back.
  ssize_t n = read(fd.get(), buf, sizeof buf);
  if (n > 0) {
    if (conn != nullptr) {
      Output out;
      out.stream = is_stderr ? StreamId::kStderr : StreamId::kStdout;
      out.data.assign(buf, static_cast<size_t>(n));
      Send(*conn, MsgType::kOutput, out.Encode());
      if (conns_.count(exec.conn_id) && conn->pending() > kOutHighWater) PauseExec(exec, true);
    }
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  // EOF, or EIO from a pty master once every slave descriptor is closed.
  Unregister(fd.get());
  if (exec.tty) {
    Unregister(exec.stdin.get());
    exec.stdin.reset();
  }
  fd.reset();
  MaybeFinishExec(exec);
}

void InitServer::WriteExecStdin(Exec& exec) {
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
    Unregister(exec.stdin.get());
    exec.stdin.reset();
    break;
  }
  if (exec.stdin && exec.stdin_pending.empty() && exec.stdin_close_requested) {
    if (exec.tty) {
      // EOF on a terminal is the EOF character at the start of a line.
      char eot = 4;
      (void)!write(exec.stdin.get(), &eot, 1);
    } else {
      Unregister(exec.stdin.get());
      exec.stdin.reset();
    }
  }
  UpdateExecEvents(exec);
  if (exec.stdin_pending.size() <= kStdinHighWater) {
    auto it = conns_.find(exec.conn_id);
    if (it != conns_.end() && it->second->read_paused) {
      it->second->read_paused = false;
      UpdateConnEvents(*it->second);
      OnConnReadable(*it->second);
    }
  }
}

void InitServer::OnExecStdinWritable(Exec& exec) { WriteExecStdin(exec); }

void InitServer::MaybeFinishExec(Exec& exec) {
  if (!exec.exited) return;
  // Output written before the exit is already in the pipes; reading it also tells (EOF) whether
  // anything else still holds them.
  for (int i = 0; i < 16 && (exec.out || exec.err); ++i) {
    bool progressed = false;
    for (bool is_stderr : {false, true}) {
      UniqueFd& fd = is_stderr ? exec.err : exec.out;
      if (!fd) continue;
      char buf[kReadChunk];
      ssize_t n = read(fd.get(), buf, sizeof buf);
      if (n > 0) {
        progressed = true;
        if (auto c = conns_.find(exec.conn_id); c != conns_.end()) {
          Output out;
          out.stream = is_stderr ? StreamId::kStderr : StreamId::kStdout;
          out.data.assign(buf, static_cast<size_t>(n));
          c->second->out += EncodeFrame(MsgType::kOutput, out.Encode());
        }
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        Unregister(fd.get());
        fd.reset();
        progressed = true;
      }
    }
    if (!progressed) break;
  }
  if (!exec.out && !exec.err) {
    FinishExec(exec.id);
    return;
  }
  if (exec.drain_deadline_ms < 0) exec.drain_deadline_ms = MonotonicMillis() + kExitDrainMs;
}

void InitServer::FinishExec(uint64_t id) {
  auto it = execs_.find(id);
  if (it == execs_.end()) return;
  Exec& exec = *it->second;
  if (auto c = conns_.find(exec.conn_id); c != conns_.end()) {
    Conn& conn = *c->second;
    // Deliver what is still buffered in the pipes, regardless of backpressure.
    for (UniqueFd* fd : {&exec.out, &exec.err}) {
      if (!*fd) continue;
      char buf[kReadChunk];
      ssize_t n;
      while ((n = read(fd->get(), buf, sizeof buf)) > 0) {
        Output out;
        out.stream = fd == &exec.err ? StreamId::kStderr : StreamId::kStdout;
        out.data.assign(buf, static_cast<size_t>(n));
        conn.out += EncodeFrame(MsgType::kOutput, out.Encode());
      }
    }
    ExitInfo info = ExitFromStatus(exec.status);
    info.timed_out = exec.timed_out;
    conn.exec_id = 0;
    Send(conn, MsgType::kExit, info.Encode());
    if (conns_.count(c->first)) CloseAfterFlush(conn);
  }
  for (UniqueFd* fd : {&exec.out, &exec.err, &exec.stdin}) {
    Unregister(fd->get());
    fd->reset();
  }
  exec_by_pid_.erase(exec.pid);
  execs_.erase(it);
}

// ---------------------------------------------------------------------------------------------
// Files

void InitServer::StartFileRead(Conn& conn, const FileRead& request) {
  auto path = AbsolutePath(config_.cwd, request.path);
  if (!path) {
    SendError(conn, path.error().WithMetadata("filepath", request.path));
    CloseAfterFlush(conn);
    return;
  }
  auto opened = OpenForRead(root_fd_.get(), *path);
  if (!opened) {
    SendError(conn, opened.error());
    CloseAfterFlush(conn);
    return;
  }
  conn.kind = Conn::Kind::kFileRead;
  conn.file = std::move(opened->first);
  FileInfo info = opened->second;
  info.path = request.path;
  Send(conn, MsgType::kFileInfo, info.Encode());
  if (request.max_bytes > 0 && info.size > request.max_bytes) {
    // The host refuses it anyway; do not stream it.
    CloseAfterFlush(conn);
    return;
  }
  PumpFileRead(conn);
}

void InitServer::PumpFileRead(Conn& conn) {
  uint64_t id = conn.id;
  std::string chunk(kFileChunk, '\0');
  while (conns_.count(id) && conn.kind == Conn::Kind::kFileRead && conn.pending() < kOutHighWater) {
    ssize_t n = read(conn.file.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      SendError(conn, Error::Errno("read").WithReason("CWSANDBOX_FILE_IO_FAILED"));
      CloseAfterFlush(conn);
      return;
    }
    if (n == 0) {
      conn.file.reset();
      Send(conn, MsgType::kFileEnd, "");
      CloseAfterFlush(conn);
      return;
    }
    Send(conn, MsgType::kFileData, chunk.substr(0, static_cast<size_t>(n)));
  }
}

void InitServer::StartFileWrite(Conn& conn, const FileWrite& request) {
  auto path = AbsolutePath(config_.cwd, request.path);
  if (!path) {
    SendError(conn, path.error().WithMetadata("filepath", request.path));
    CloseAfterFlush(conn);
    return;
  }
  auto [uid, gid] = DefaultOwner(config_.user);
  auto write =
      PendingWrite::Begin(root_fd_.get(), *path, request.mode, request.make_parents, uid, gid);
  if (!write) {
    SendError(conn, write.error());
    CloseAfterFlush(conn);
    return;
  }
  conn.kind = Conn::Kind::kFileWrite;
  conn.write = std::make_unique<PendingWrite>(std::move(*write));
}

void InitServer::HandleLinkOrDirectory(Conn& conn, const Frame& frame) {
  auto fail = [&](Error error, const std::string& path) {
    if (error.MetadataValue("filepath").empty()) error.WithMetadata("filepath", path);
    SendError(conn, error);
  };
  if (frame.type == MsgType::kMkdir) {
    auto request = MkdirRequest::Decode(frame.payload);
    if (!request) return SendError(conn, request.error());
    auto path = AbsolutePath(config_.cwd, request->path);
    if (!path) return fail(std::move(path).error(), request->path);
    auto [uid, gid] = DefaultOwner(config_.user);
    auto info =
        MakeDirectory(root_fd_.get(), *path, request->mode, request->make_parents, uid, gid);
    if (!info) return fail(std::move(info).error(), request->path);
    info->path = request->path;
    return Send(conn, MsgType::kFileInfo, info->Encode());
  }
  if (frame.type == MsgType::kSymlink) {
    auto request = SymlinkRequest::Decode(frame.payload);
    if (!request) return SendError(conn, request.error());
    auto path = AbsolutePath(config_.cwd, request->path);
    if (!path) return fail(std::move(path).error(), request->path);
    auto [uid, gid] = DefaultOwner(config_.user);
    Status made =
        MakeSymlink(root_fd_.get(), *path, request->target, request->make_parents, uid, gid);
    if (!made) return fail(std::move(made).error(), request->path);
    return Send(conn, MsgType::kOk, "");
  }
  auto request = PathRequest::Decode(frame.payload);
  if (!request) return SendError(conn, request.error());
  auto path = AbsolutePath(config_.cwd, request->path);
  if (!path) return fail(std::move(path).error(), request->path);
  auto target = ReadSymlink(root_fd_.get(), *path);
  if (!target) return fail(std::move(target).error(), request->path);
  Send(conn, MsgType::kLinkTarget, LinkTarget{std::move(*target)}.Encode());
}

// ---------------------------------------------------------------------------------------------
// Main process and logs

void InitServer::StartMain() {
  main_.started_ns = WallNanos();
  if (config_.argv.empty()) {
    main_.idle = true;
    main_.running = true;
    return;
  }
  auto passwd = sys::ReadFile("/etc/passwd", 4u << 20);
  auto group = sys::ReadFile("/etc/group", 4u << 20);
  auto user = ResolveUser(config_.user, passwd.value_or(""), group.value_or(""));
  auto fail = [this](const Error& error) {
    main_.start_error = error.message();
    main_.exited = true;
    main_.exited_ns = WallNanos();
    main_.exit.exit_code = 127;
    logs_.Append(StreamId::kStderr, "sbx-init: " + error.message() + "\n", main_.exited_ns);
  };
  if (!user) return fail(user.error());
  int out_fds[2];
  int err_fds[2];
  if (pipe2(out_fds, O_CLOEXEC) != 0 || pipe2(err_fds, O_CLOEXEC) != 0) {
    return fail(Error::Errno("pipe"));
  }
  main_.out.reset(out_fds[0]);
  main_.err.reset(err_fds[0]);
  UniqueFd child_out(out_fds[1]);
  UniqueFd child_err(err_fds[1]);
  SpawnRequest spawn;
  spawn.argv = config_.argv;
  spawn.env = BuildEnvironment(config_.env, {}, *user, false);
  spawn.cwd = config_.cwd;
  spawn.user = *user;
  spawn.stdin_fd = null_fd_.get();
  spawn.stdout_fd = child_out.get();
  spawn.stderr_fd = child_err.get();
  auto pid = SpawnProcess(spawn);
  if (!pid) {
    main_.out.reset();
    main_.err.reset();
    return fail(pid.error());
  }
  main_.pid = *pid;
  main_.running = true;
  (void)sys::SetNonBlocking(main_.out.get(), true);
  (void)sys::SetNonBlocking(main_.err.get(), true);
  (void)Register(main_.out.get(), Key(kMainOut, 0), EPOLLIN);
  (void)Register(main_.err.get(), Key(kMainErr, 0), EPOLLIN);
}

void InitServer::OnMainOutput(bool is_stderr) {
  UniqueFd& fd = is_stderr ? main_.err : main_.out;
  if (!fd) return;
  char buf[kReadChunk];
  ssize_t n = read(fd.get(), buf, sizeof buf);
  if (n > 0) {
    logs_.Append(is_stderr ? StreamId::kStderr : StreamId::kStdout,
                 std::string_view(buf, static_cast<size_t>(n)), WallNanos());
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    Unregister(fd.get());
    fd.reset();
  } else {
    return;
  }
  std::vector<uint64_t> followers;
  for (const auto& [id, conn] : conns_) {
    if (conn->kind == Conn::Kind::kLogs) followers.push_back(id);
  }
  for (uint64_t id : followers) {
    if (auto it = conns_.find(id); it != conns_.end()) PumpLogs(*it->second);
  }
}

void InitServer::PumpLogs(Conn& conn) {
  uint64_t id = conn.id;
  while (conns_.count(id) && conn.pending() < kOutHighWater) {
    if (conn.log_offset < logs_.start()) conn.log_offset = logs_.start();
    auto chunks = logs_.Read(conn.log_offset, kOutHighWater);
    if (chunks.empty()) break;
    for (const auto& chunk : chunks) {
      conn.log_offset = chunk.offset + chunk.data.size();
      Send(conn, MsgType::kLogChunk, chunk.Encode());
      if (!conns_.count(id)) return;
    }
  }
  if (!conns_.count(id) || conn.pending() >= kOutHighWater) return;
  bool output_done = main_.exited && !main_.out && !main_.err;
  if (!conn.log_follow || output_done) {
    if (conn.log_offset >= logs_.end()) {
      Send(conn, MsgType::kLogEnd, LogEnd{logs_.end(), logs_.start()}.Encode());
      if (conns_.count(id)) CloseAfterFlush(conn);
    }
  }
}

void InitServer::SignalMain(int sig) {
  if (!main_.running) return;
  if (main_.idle) {
    // Without a main process the sandbox "exits" when told to stop: cleanly for the polite
    // signals, as killed for the others.
    int status = (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) ? 0 : sig;
    OnMainExit(status);
    return;
  }
  kill(main_.pid, sig);
}

void InitServer::OnMainExit(int status) {
  main_.running = false;
  main_.exited = true;
  main_.exited_ns = WallNanos();
  main_.exit = ExitFromStatus(status);
  main_.kill_deadline_ms = -1;
  // The sandbox ends with its main process: nothing else keeps running in it.
  kill(-1, SIGKILL);
  // Pick up output already in the pipes before telling anyone.
  for (bool is_stderr : {false, true}) {
    UniqueFd& fd = is_stderr ? main_.err : main_.out;
    while (fd) {
      char buf[kReadChunk];
      ssize_t n = read(fd.get(), buf, sizeof buf);
      if (n > 0) {
        logs_.Append(is_stderr ? StreamId::kStderr : StreamId::kStdout,
                     std::string_view(buf, static_cast<size_t>(n)), WallNanos());
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        Unregister(fd.get());
        fd.reset();
      }
      break;
    }
  }
  NotifyMainWaiters();
}

void InitServer::NotifyMainWaiters() {
  std::vector<uint64_t> ids;
  for (const auto& [id, conn] : conns_) {
    if (conn->kind == Conn::Kind::kWaitMain || conn->kind == Conn::Kind::kLogs) ids.push_back(id);
  }
  for (uint64_t id : ids) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    Conn& conn = *it->second;
    if (conn.kind == Conn::Kind::kWaitMain) {
      Send(conn, MsgType::kStatusReply, BuildStatus().Encode());
      if (conns_.count(id)) CloseAfterFlush(conn);
    } else {
      PumpLogs(conn);
    }
  }
}

StatusReply InitServer::BuildStatus() const {
  StatusReply s;
  s.init_version = kInitVersion;
  s.main_pid = main_.pid;
  s.main_running = main_.running;
  s.main_exited = main_.exited;
  s.main_exit = main_.exit;
  s.main_started_ns = main_.started_ns;
  s.main_exited_ns = main_.exited_ns;
  s.exit_acknowledged = main_.acknowledged;
  s.lifetime_exceeded = main_.lifetime_exceeded;
  s.start_error = main_.start_error;
  s.log_start = logs_.start();
  s.log_end = logs_.end();
  return s;
}

// ---------------------------------------------------------------------------------------------
// Signals and reaping

void InitServer::OnSignal() {
  signalfd_siginfo info{};
  bool child = false;
  while (read(signal_fd_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    if (info.ssi_signo == SIGCHLD) {
      child = true;
      continue;
    }
    // SECURITY: only signals from outside the sandbox (sender pid 0 in our pid namespace) are
    // forwarded; a process of the sandbox cannot make PID 1 act on its behalf.
    if (info.ssi_pid != 0) continue;
    switch (info.ssi_signo) {
      case SIGTERM:
      case SIGINT:
      case SIGHUP:
      case SIGQUIT:
      case SIGUSR1:
      case SIGUSR2:
        SignalMain(static_cast<int>(info.ssi_signo));
        break;
      default:
        break;
    }
  }
  if (child) Reap();
}

void InitServer::Reap() {
  while (true) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    if (main_.running && !main_.idle && pid == main_.pid) {
      OnMainExit(status);
      continue;
    }
    auto it = exec_by_pid_.find(pid);
    if (it == exec_by_pid_.end()) continue;
    auto exec = execs_.find(it->second);
    if (exec == execs_.end()) continue;
    exec->second->exited = true;
    exec->second->status = status;
    exec->second->deadline_ms = -1;
    MaybeFinishExec(*exec->second);
  }
}

}  // namespace sbx::agent
