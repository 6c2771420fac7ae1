#include "src/agent/init/main_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "src/agent/init/spawn.h"
#include "src/agent/init/users.h"
#include "src/base/clock.h"
#include "src/sys/fs.h"

namespace sbx::agent {

MainProcess::MainProcess(ServerLoop& loop, InitConfig config, int null_fd)
    : loop_(loop), config_(std::move(config)), null_fd_(null_fd), logs_(config_.log_ring_bytes) {
  SetLifetimeDeadline();
}

MainProcess::~MainProcess() = default;

void MainProcess::SetLifetimeDeadline() {
  lifetime_deadline_ms_ = -1;
  if (config_.deadline_unix_ns > 0) {
    int64_t left_ms = (config_.deadline_unix_ns - WallNanos()) / 1000000;
    lifetime_deadline_ms_ = MonotonicMillis() + std::max<int64_t>(left_ms, 0);
  }
}

void MainProcess::StartUnlessAwaited() {
  if (!config_.await_start) StartProcess();
}

void MainProcess::StartProcess() {
  state_.started_ns = WallNanos();
  if (config_.argv.empty()) {
    state_.idle = true;
    state_.running = true;
    return;
  }
  auto fail = [this](const Error& error) {
    state_.start_error = error.message();
    state_.exited = true;
    state_.exited_ns = WallNanos();
    state_.exit.exit_code = 127;
    logs_.Append(StreamId::kStderr, "sbx-init: " + error.message() + "\n", state_.exited_ns);
  };
  auto user = ResolveSandboxUser(config_.user);
  if (!user) return fail(user.error());
  int out_fds[2];
  int err_fds[2];
  if (pipe2(out_fds, O_CLOEXEC) != 0 || pipe2(err_fds, O_CLOEXEC) != 0) {
    return fail(Error::Errno("pipe"));
  }
  state_.out.reset(out_fds[0]);
  state_.err.reset(err_fds[0]);
  UniqueFd child_out(out_fds[1]);
  UniqueFd child_err(err_fds[1]);
  SpawnRequest spawn;
  spawn.argv = config_.argv;
  spawn.env = BuildEnvironment(config_.env, {}, *user, false);
  spawn.cwd = config_.cwd;
  spawn.user = *user;
  spawn.dropped_capabilities = config_.dropped_capabilities;
  spawn.stdin_fd = null_fd_;
  spawn.stdout_fd = child_out.get();
  spawn.stderr_fd = child_err.get();
  auto pid = SpawnProcess(spawn);
  if (!pid) {
    state_.out.reset();
    state_.err.reset();
    return fail(pid.error());
  }
  state_.pid = *pid;
  state_.running = true;
  (void)sys::SetNonBlocking(state_.out.get(), true);
  (void)sys::SetNonBlocking(state_.err.get(), true);
  (void)loop_.Watch(state_.out.get(), WatchKey(WatchKind::kMainOut, 0), EPOLLIN);
  (void)loop_.Watch(state_.err.get(), WatchKey(WatchKind::kMainErr, 0), EPOLLIN);
}

bool MainProcess::Handles(MsgType type) {
  switch (type) {
    case MsgType::kStatus:
    case MsgType::kWaitMain:
    case MsgType::kAckExit:
    case MsgType::kSignalMain:
    case MsgType::kStartMain:
    case MsgType::kSetDeadline:
    case MsgType::kLogs:
      return true;
    default:
      return false;
  }
}

void MainProcess::Start(Conn& conn, const Frame& frame) {
  switch (frame.type) {
    case MsgType::kStatus:
      return loop_.Reply(conn, MsgType::kStatusReply, BuildStatus().Encode());
    case MsgType::kWaitMain:
      if (state_.exited) return loop_.Reply(conn, MsgType::kStatusReply, BuildStatus().Encode());
      conn.kind = Conn::Kind::kWaitMain;
      return;
    case MsgType::kAckExit:
      if (!state_.exited) {
        return loop_.Fail(conn, Error::FailedPrecondition("the main process has not exited"));
      }
      state_.acknowledged = true;
      return loop_.Reply(conn, MsgType::kOk, "");
    case MsgType::kSignalMain: {
      auto request = SignalRequest::Decode(frame.payload);
      if (!request || request->signal <= 0 || request->signal > 64) {
        return loop_.Fail(conn, Error::InvalidArgument("bad signal"));
      }
      Signal(request->signal);
      return loop_.Reply(conn, MsgType::kOk, "");
    }
    case MsgType::kStartMain:
      return StartMain(conn, frame.payload);
    case MsgType::kSetDeadline: {
      auto request = DeadlineRequest::Decode(frame.payload);
      if (!request) return loop_.Fail(conn, request.error());
      config_.deadline_unix_ns = request->deadline_unix_ns;
      SetLifetimeDeadline();
      return loop_.Reply(conn, MsgType::kOk, "");
    }
    case MsgType::kLogs: {
      auto request = LogsRequest::Decode(frame.payload);
      if (!request) return loop_.Fail(conn, request.error());
      conn.kind = Conn::Kind::kLogs;
      conn.log_offset = request->offset;
      conn.log_follow = request->follow;
      return PumpLogs(conn);
    }
    default:
      return loop_.Fail(conn, Error::InvalidArgument(std::string("unexpected request ") +
                                                     MsgTypeName(frame.type)));
  }
}

void MainProcess::StartMain(Conn& conn, std::string_view payload) {
  auto request = InitConfig::Decode(payload);
  if (!request) return loop_.Fail(conn, request.error());
  if (!config_.await_start) {
    return loop_.Fail(conn, Error::FailedPrecondition("the main process was already started"));
  }
  // The log ring keeps the size it was made with; everything else is the real process's.
  request->log_ring_bytes = config_.log_ring_bytes;
  request->await_start = false;
  // What the sandbox was made without stays dropped, whatever the host sends now.
  request->dropped_capabilities |= config_.dropped_capabilities;
  config_ = std::move(*request);
  SetLifetimeDeadline();
  StartProcess();
  loop_.Reply(conn, MsgType::kOk, "");
}

PipeRead MainProcess::ReadOutputOnce(bool is_stderr) {
  UniqueFd& fd = is_stderr ? state_.err : state_.out;
  std::string data;
  PipeRead read = ReadPipe(fd.get(), data);
  if (read == PipeRead::kData) {
    logs_.Append(is_stderr ? StreamId::kStderr : StreamId::kStdout, data, WallNanos());
  } else if (read == PipeRead::kClosed) {
    loop_.Unwatch(fd.get());
    fd.reset();
  }
  return read;
}

void MainProcess::OnOutput(bool is_stderr) {
  if (!(is_stderr ? state_.err : state_.out)) return;
  // One read per event, as for exec sessions: level-triggered epoll brings us back.
  if (ReadOutputOnce(is_stderr) == PipeRead::kEmpty) return;
  for (uint64_t id : loop_.ConnsOfKind({Conn::Kind::kLogs})) {
    if (Conn* conn = loop_.FindConn(id)) PumpLogs(*conn);
  }
}

void MainProcess::OnConnDrained(Conn& conn) {
  if (conn.kind == Conn::Kind::kLogs) PumpLogs(conn);
}

void MainProcess::PumpLogs(Conn& conn) {
  uint64_t id = conn.id;
  Conn* open = &conn;
  while ((open = loop_.FindConn(id)) != nullptr && open->pending() < kOutHighWater) {
    if (open->log_offset < logs_.start()) open->log_offset = logs_.start();
    auto chunks = logs_.Read(open->log_offset, kOutHighWater);
    if (chunks.empty()) break;
    for (const auto& chunk : chunks) {
      open->log_offset = chunk.offset + chunk.data.size();
      loop_.Send(*open, MsgType::kLogChunk, chunk.Encode());
      if ((open = loop_.FindConn(id)) == nullptr) return;
    }
  }
  if (open == nullptr || open->pending() >= kOutHighWater) return;
  bool output_done = state_.exited && !state_.out && !state_.err;
  if ((!open->log_follow || output_done) && open->log_offset >= logs_.end()) {
    loop_.Reply(*open, MsgType::kLogEnd, LogEnd{logs_.end(), logs_.start()}.Encode());
  }
}

void MainProcess::Signal(int sig) {
  if (!state_.running) return;
  if (state_.idle) {
    // Without a main process the sandbox "exits" when told to stop: cleanly for the polite
    // signals, as killed for the others.
    Exited((sig == SIGTERM || sig == SIGINT || sig == SIGHUP) ? 0 : sig);
    return;
  }
  kill(state_.pid, sig);
}

bool MainProcess::OnExit(pid_t pid, int status) {
  if (!state_.running || state_.idle || pid != state_.pid) return false;
  Exited(status);
  return true;
}

void MainProcess::Exited(int status) {
  state_.running = false;
  state_.exited = true;
  state_.exited_ns = WallNanos();
  state_.exit = ExitFromStatus(status);
  state_.kill_deadline_ms = -1;
  // The sandbox ends with its main process: nothing else keeps running in it. Only PID 1 of the
  // sandbox's pid namespace may do this: anywhere else, -1 reaches far beyond the sandbox.
  if (getpid() == 1) kill(-1, SIGKILL);
  // Pick up output already in the pipes before telling anyone.
  for (bool is_stderr : {false, true}) {
    while ((is_stderr ? state_.err : state_.out) && ReadOutputOnce(is_stderr) == PipeRead::kData) {
    }
  }
  NotifyWaiters();
}

void MainProcess::NotifyWaiters() {
  for (uint64_t id : loop_.ConnsOfKind({Conn::Kind::kWaitMain, Conn::Kind::kLogs})) {
    Conn* conn = loop_.FindConn(id);
    if (conn == nullptr) continue;
    if (conn->kind == Conn::Kind::kWaitMain) {
      loop_.Reply(*conn, MsgType::kStatusReply, BuildStatus().Encode());
    } else {
      PumpLogs(*conn);
    }
  }
}

StatusReply MainProcess::BuildStatus() const {
  StatusReply s;
  s.init_version = kInitVersion;
  s.main_pid = state_.pid;
  s.main_running = state_.running;
  s.main_exited = state_.exited;
  s.main_exit = state_.exit;
  s.main_started_ns = state_.started_ns;
  s.main_exited_ns = state_.exited_ns;
  s.exit_acknowledged = state_.acknowledged;
  s.lifetime_exceeded = state_.lifetime_exceeded;
  s.start_error = state_.start_error;
  s.log_start = logs_.start();
  s.log_end = logs_.end();
  return s;
}

int64_t MainProcess::NextDeadline() const {
  int64_t next = lifetime_deadline_ms_;
  int64_t kill = state_.kill_deadline_ms;
  if (kill >= 0 && (next < 0 || kill < next)) next = kill;
  return next;
}

void MainProcess::RunTimers(int64_t now_ms) {
  if (lifetime_deadline_ms_ >= 0 && now_ms >= lifetime_deadline_ms_) {
    lifetime_deadline_ms_ = -1;
    if (state_.running) {
      state_.lifetime_exceeded = true;
      Signal(SIGTERM);
      if (state_.running) {
        state_.kill_deadline_ms = now_ms + std::max<int64_t>(config_.stop_grace_ms, 0);
      }
    }
  }
  if (state_.kill_deadline_ms >= 0 && now_ms >= state_.kill_deadline_ms) {
    state_.kill_deadline_ms = -1;
    if (state_.running) Signal(SIGKILL);
  }
}

}  // namespace sbx::agent
