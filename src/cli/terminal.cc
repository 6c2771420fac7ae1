#include "src/cli/terminal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <atomic>

namespace sbx::cli {

std::optional<WindowSize> GetWindowSize(int fd) {
  winsize ws{};
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) return std::nullopt;
  return WindowSize{ws.ws_row, ws.ws_col};
}

Result<std::unique_ptr<RawMode>> RawMode::Enable(int fd) {
  std::unique_ptr<RawMode> mode(new RawMode());
  if (tcgetattr(fd, &mode->saved_) != 0) return Error::Errno("tcgetattr");
  termios raw = mode->saved_;
  cfmakeraw(&raw);
  if (tcsetattr(fd, TCSANOW, &raw) != 0) return Error::Errno("tcsetattr");
  mode->fd_ = fd;
  return mode;
}

RawMode::~RawMode() {
  if (fd_ >= 0) tcsetattr(fd_, TCSANOW, &saved_);
}

namespace {

// The write end of the active watcher's pipe, for the handler; -1 when none is active.
std::atomic<int> signal_pipe{-1};

void OnSignal(int sig) {
  int fd = signal_pipe.load(std::memory_order_relaxed);
  if (fd < 0) return;
  int saved_errno = errno;
  auto byte = static_cast<unsigned char>(sig);
  // A full pipe drops the signal: hundreds are already waiting to be read.
  (void)!write(fd, &byte, 1);
  errno = saved_errno;
}

}  // namespace

Result<std::unique_ptr<SignalWatcher>> SignalWatcher::Watch(std::initializer_list<int> signals) {
  std::unique_ptr<SignalWatcher> watcher(new SignalWatcher());
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return Error::Errno("create the signal pipe");
  watcher->read_.reset(fds[0]);
  watcher->write_.reset(fds[1]);
  int expected = -1;
  if (!signal_pipe.compare_exchange_strong(expected, fds[1])) {
    return Error::FailedPrecondition("signals are already being watched");
  }
  struct sigaction action {};
  action.sa_handler = OnSignal;
  // Calls interrupted in other threads (gRPC's) resume instead of failing with EINTR.
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  for (int sig : signals) {
    struct sigaction old {};
    if (sigaction(sig, &action, &old) != 0) return Error::Errno("install a signal handler");
    watcher->saved_.emplace_back(sig, old);
  }
  return watcher;
}

SignalWatcher::~SignalWatcher() {
  for (const auto& [sig, old] : saved_) sigaction(sig, &old, nullptr);
  int mine = write_.get();
  signal_pipe.compare_exchange_strong(mine, -1);
}

int SignalWatcher::Read() {
  unsigned char byte = 0;
  if (read(read_.get(), &byte, 1) != 1) return 0;
  return byte;
}

Waker::Waker() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0) {
    read_.reset(fds[0]);
    write_.reset(fds[1]);
  }
}

void Waker::Wake() {
  char c = 1;
  (void)!write(write_.get(), &c, 1);
}

}  // namespace sbx::cli
