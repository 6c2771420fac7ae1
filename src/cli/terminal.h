// File: terminal.h
//
// The terminal side of interactive commands: raw mode for the duration of a session, the window
// size, and signals delivered as a descriptor so one poll loop can wait for input, resizes and
// Ctrl-C together.

#pragma once

#include <signal.h>
#include <termios.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::cli {

struct WindowSize {
  uint32_t rows = 0;
  uint32_t cols = 0;
};

std::optional<WindowSize> GetWindowSize(int fd);

// Puts a terminal in raw mode (no echo, no line editing, no signals from keys: Ctrl-C goes to
// the sandbox as a byte) and restores it when destroyed.
class RawMode {
 public:
  static Result<std::unique_ptr<RawMode>> Enable(int fd);
  ~RawMode();
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

 private:
  RawMode() = default;
  int fd_ = -1;
  termios saved_{};
};

// Catches `signals` and makes them readable from fd(), so one poll loop can wait for input,
// resizes and Ctrl-C together. The handlers write to a pipe: whichever thread the kernel picks
// (gRPC starts threads before this exists, with nothing blocked) the signal is seen, instead of
// being ignored (SIGWINCH) or ending the process (SIGINT). One watcher at a time; the previous
// dispositions come back when it is destroyed.
class SignalWatcher {
 public:
  static Result<std::unique_ptr<SignalWatcher>> Watch(std::initializer_list<int> signals);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

  int fd() const { return read_.get(); }
  // The next pending signal, or 0.
  int Read();

 private:
  SignalWatcher() = default;
  UniqueFd read_;
  UniqueFd write_;
  std::vector<std::pair<int, struct sigaction>> saved_;
};

// A pipe to wake a poll loop from another thread.
class Waker {
 public:
  Waker();
  int fd() const { return read_.get(); }
  void Wake();

 private:
  UniqueFd read_;
  UniqueFd write_;
};

}  // namespace sbx::cli
