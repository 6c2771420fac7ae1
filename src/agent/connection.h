// File: connection.h
//
// Frame I/O over a stream socket. Connection does blocking-with-deadline I/O on a non-blocking
// socket (the host side); FrameBuffer splits bytes from a non-blocking read loop into frames
// (sbx-init's event loop). Both enforce kMaxPayload before allocating.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "src/agent/protocol.h"
#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::agent {

struct Frame {
  MsgType type;
  std::string payload;
};

std::string EncodeFrame(MsgType type, std::string_view payload);

class FrameBuffer {
 public:
  void Append(const char* data, size_t size) { buffer_.append(data, size); }
  // The next complete frame, nullopt when more bytes are needed, or an error for a bad header.
  std::optional<Result<Frame>> Pop();
  size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  std::string buffer_;
  size_t consumed_ = 0;
};

class Connection {
 public:
  Connection() = default;
  explicit Connection(UniqueFd fd) : fd_(std::move(fd)) {}

  // Connects to an sbx-init socket.
  static Result<Connection> Dial(const std::string& socket_path, int timeout_ms = 5000);

  // Deadlines are CLOCK_MONOTONIC milliseconds; < 0 means none.
  Status Send(MsgType type, std::string_view payload, int64_t deadline_ms);
  Result<Frame> Receive(int64_t deadline_ms);
  // Bytes already received but not yet returned by Receive (poll() will not report them).
  bool HasBuffered() const { return in_.buffered() > 0; }

  int fd() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  // Gives up the socket, e.g. to an event loop that waits for the one reply frame.
  UniqueFd Release() { return std::move(fd_); }

 private:
  Status WriteAll(std::string_view data, int64_t deadline_ms);
  UniqueFd fd_;
  FrameBuffer in_;
};

}  // namespace sbx::agent
