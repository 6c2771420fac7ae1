#include "src/agent/connection.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/base/clock.h"
#include "src/sys/socket.h"

namespace sbx::agent {

std::string EncodeFrame(MsgType type, std::string_view payload) {
  std::string out(kHeaderSize, '\0');
  FrameHeader header;
  header.type = static_cast<uint8_t>(type);
  header.length = static_cast<uint32_t>(payload.size());
  EncodeHeader(header, out.data());
  out.append(payload);
  return out;
}

std::optional<Result<Frame>> FrameBuffer::Pop() {
  if (buffered() < kHeaderSize) return std::nullopt;
  auto header = DecodeHeader(buffer_.data() + consumed_);
  if (!header) return Result<Frame>(header.error());
  if (buffered() < kHeaderSize + header->length) return std::nullopt;
  Frame frame{static_cast<MsgType>(header->type),
              buffer_.substr(consumed_ + kHeaderSize, header->length)};
  consumed_ += kHeaderSize + header->length;
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ > (64u << 10)) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  return Result<Frame>(std::move(frame));
}

Result<Connection> Connection::Dial(const std::string& socket_path, int timeout_ms) {
  auto fd = sys::ConnectUnix(socket_path, timeout_ms);
  if (!fd) return std::move(fd).error().WithCode(Code::kUnavailable).Wrap("connect to sbx-init");
  return Connection(std::move(*fd));
}

Status Connection::WriteAll(std::string_view data, int64_t deadline_ms) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd pfd{fd_.get(), POLLOUT, 0};
      int ready = ::poll(&pfd, 1, PollTimeout(deadline_ms));
      if (ready == 0) return Error::DeadlineExceeded("sbx-init did not accept data in time");
      if (ready < 0 && errno != EINTR) return Error::Errno("poll");
      continue;
    }
    return Error::Errno("send to sbx-init").WithCode(Code::kUnavailable);
  }
  return Ok();
}

Status Connection::Send(MsgType type, std::string_view payload, int64_t deadline_ms) {
  if (payload.size() > kMaxPayload) return Error::InvalidArgument("frame payload too large");
  char header[kHeaderSize];
  FrameHeader h;
  h.type = static_cast<uint8_t>(type);
  h.length = static_cast<uint32_t>(payload.size());
  EncodeHeader(h, header);
  SBX_TRY(WriteAll(std::string_view(header, kHeaderSize), deadline_ms));
  return WriteAll(payload, deadline_ms);
}

Result<Frame> Connection::Receive(int64_t deadline_ms) {
  while (true) {
    if (auto frame = in_.Pop()) {
      if (!*frame) return std::move(*frame).error().Wrap("bad frame from sbx-init");
      return std::move(**frame);
    }
    char buf[65536];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n > 0) {
      in_.Append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return Error::Unavailable("sbx-init closed the connection");
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      pollfd pfd{fd_.get(), POLLIN, 0};
      int ready = ::poll(&pfd, 1, PollTimeout(deadline_ms));
      if (ready == 0) return Error::DeadlineExceeded("no answer from sbx-init in time");
      if (ready < 0 && errno != EINTR) return Error::Errno("poll");
      continue;
    }
    return Error::Errno("recv from sbx-init").WithCode(Code::kUnavailable);
  }
}

}  // namespace sbx::agent
