#include "src/cli/terminal.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

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

Result<std::unique_ptr<SignalWatcher>> SignalWatcher::Watch(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  std::unique_ptr<SignalWatcher> watcher(new SignalWatcher());
  if (pthread_sigmask(SIG_BLOCK, &set, &watcher->old_mask_) != 0) {
    return Error::Errno("block signals");
  }
  int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) {
    Error error = Error::Errno("signalfd");
    pthread_sigmask(SIG_SETMASK, &watcher->old_mask_, nullptr);
    return error;
  }
  watcher->fd_.reset(fd);
  return watcher;
}

SignalWatcher::~SignalWatcher() {
  // Signals that arrived meanwhile are consumed here rather than delivered when unblocked.
  while (Read() != 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
}

int SignalWatcher::Read() {
  signalfd_siginfo info{};
  if (read(fd_.get(), &info, sizeof info) != static_cast<ssize_t>(sizeof info)) return 0;
  return static_cast<int>(info.ssi_signo);
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
