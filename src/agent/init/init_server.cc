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

#include <cstdio>
#include <cstring>

#include "src/base/clock.h"
#include "src/sys/fs.h"

namespace sbx::agent {

namespace {

constexpr size_t kMaxConnections = 4096;
// One read from a host connection.
constexpr size_t kConnReadChunk = 64u << 10;

}  // namespace

InitServer::InitServer(InitConfig config, UniqueFd listen_fd)
    : initial_config_(std::move(config)), listen_fd_(std::move(listen_fd)) {}

InitServer::~InitServer() = default;

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
  SBX_TRY(Watch(signal_fd_.get(), WatchKey(WatchKind::kSignal, 0), EPOLLIN));
  SBX_TRY(sys::SetNonBlocking(listen_fd_.get(), true));
  SBX_TRY(Watch(listen_fd_.get(), WatchKey(WatchKind::kListen, 0), EPOLLIN));
  SBX_ASSIGN_OR_RETURN(root_fd_, sys::Open("/", O_PATH | O_DIRECTORY));
  SBX_ASSIGN_OR_RETURN(null_fd_, sys::Open("/dev/null", O_RDWR));
  ServerLoop& loop = *this;
  main_ = std::make_unique<MainProcess>(loop, std::move(initial_config_), null_fd_.get());
  execs_ = std::make_unique<ExecSessions>(loop, main_->config(), null_fd_.get());
  files_ = std::make_unique<FileOps>(loop, main_->config(), root_fd_.get());
  return Ok();
}

int InitServer::Run() {
  if (Status s = Setup(); !s) {
    fprintf(stderr, "sbx-init: %s\n", s.error().ToString().c_str());
    return 1;
  }
  main_->StartUnlessAwaited();
  Loop();
  return 0;
}

void InitServer::Loop() {
  epoll_event events[64];
  while (!main_->exit_acknowledged()) {
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
  uint64_t id = WatchIdOf(key);
  switch (WatchKindOf(key)) {
    case WatchKind::kListen:
      Accept();
      return;
    case WatchKind::kSignal:
      OnSignal();
      return;
    case WatchKind::kConn: {
      Conn* conn = FindConn(id);
      if (conn != nullptr && (events & EPOLLOUT)) OnConnWritable(*conn);
      conn = FindConn(id);
      if (conn != nullptr && (events & (EPOLLIN | EPOLLHUP | EPOLLERR))) OnConnReadable(*conn);
      return;
    }
    case WatchKind::kExecOut:
    case WatchKind::kExecErr:
      execs_->OnOutput(id, WatchKindOf(key) == WatchKind::kExecErr);
      return;
    case WatchKind::kExecIn:
      execs_->OnStdinWritable(id);
      return;
    case WatchKind::kMainOut:
    case WatchKind::kMainErr:
      main_->OnOutput(WatchKindOf(key) == WatchKind::kMainErr);
      return;
  }
}

int InitServer::NextTimeout() const {
  int64_t next = main_->NextDeadline();
  int64_t exec = execs_->NextDeadline();
  if (exec >= 0 && (next < 0 || exec < next)) next = exec;
  return PollTimeout(next);
}

void InitServer::RunTimers() {
  int64_t now = MonotonicMillis();
  main_->RunTimers(now);
  execs_->RunTimers(now);
}

// ---------------------------------------------------------------------------------------------
// Descriptors

Status InitServer::Watch(int fd, uint64_t key, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = key;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return Error::Errno("epoll add");
  return Ok();
}

void InitServer::Rewatch(int fd, uint64_t key, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = key;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_MOD, fd, &ev);
}

void InitServer::Unwatch(int fd) {
  if (fd >= 0) epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
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
    conn->id = next_conn_id_++;
    conn->fd.reset(fd);
    conn->events = EPOLLIN | EPOLLRDHUP;
    if (!Watch(fd, WatchKey(WatchKind::kConn, conn->id), conn->events)) continue;
    conns_.emplace(conn->id, std::move(conn));
  }
}

void InitServer::UpdateConnEvents(Conn& conn) {
  uint32_t events = 0;
  if (!conn.read_paused && !conn.close_after_flush) events |= EPOLLIN | EPOLLRDHUP;
  if (conn.pending() > 0) events |= EPOLLOUT;
  if (events != conn.events) {
    conn.events = events;
    Rewatch(conn.fd.get(), WatchKey(WatchKind::kConn, conn.id), events);
  }
}

void InitServer::PauseReading(Conn& conn) {
  conn.read_paused = true;
  UpdateConnEvents(conn);
}

void InitServer::ResumeReading(Conn& conn) {
  conn.read_paused = false;
  UpdateConnEvents(conn);
  OnConnReadable(conn);
}

void InitServer::OnConnReadable(Conn& conn) {
  uint64_t id = conn.id;
  char buf[kConnReadChunk];
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
    if (conn.kind == Conn::Kind::kExec && conn.exec_id) execs_->Kill(conn.exec_id);
    CloseConn(id);
  }
}

void InitServer::OnConnWritable(Conn& conn) {
  uint64_t id = conn.id;
  Flush(conn);
  if (Conn* open = FindConn(id)) files_->OnConnDrained(*open);
  if (Conn* open = FindConn(id)) main_->OnConnDrained(*open);
  if (Conn* open = FindConn(id)) execs_->OnConnDrained(*open);
}

void InitServer::Send(Conn& conn, MsgType type, std::string_view payload) {
  if (conn.out_pos > 0 && conn.out_pos == conn.out.size()) {
    conn.out.clear();
    conn.out_pos = 0;
  }
  conn.out += EncodeFrame(type, payload);
  Flush(conn);
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
  Unwatch(conn.fd.get());
  if (conn.exec_id) execs_->Detach(conn.exec_id);
  conns_.erase(it);
}

void InitServer::HandleFrame(Conn& conn, Frame frame) {
  switch (conn.kind) {
    case Conn::Kind::kNew:
      HandleRequest(conn, frame);
      return;
    case Conn::Kind::kExec:
      execs_->OnFrame(conn, frame);
      return;
    case Conn::Kind::kFileWrite:
      if (!files_->OnFrame(conn, frame)) CloseConn(conn.id);
      return;
    default:
      // Other conversations take no further frames from the host.
      return;
  }
}

void InitServer::HandleRequest(Conn& conn, const Frame& frame) {
  if (frame.type == MsgType::kExecStart) return execs_->Start(conn, frame.payload);
  if (FileOps::Handles(frame.type)) return files_->Start(conn, frame);
  if (MainProcess::Handles(frame.type)) return main_->Start(conn, frame);
  Fail(conn, Error::InvalidArgument(std::string("unexpected request ") + MsgTypeName(frame.type)));
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
        main_->Signal(static_cast<int>(info.ssi_signo));
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
    if (!main_->OnExit(pid, status)) (void)execs_->OnExit(pid, status);
  }
}

}  // namespace sbx::agent
