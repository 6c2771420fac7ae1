#include "src/agent/init/fake_server_loop.h"

namespace sbx::agent {

Conn& FakeServerLoop::Open() {
  auto conn = std::make_unique<Conn>();
  conn->id = next_id_++;
  Conn& ref = *conn;
  conns_.emplace(ref.id, std::move(conn));
  return ref;
}

std::vector<Frame> FakeServerLoop::Received(uint64_t id) const {
  std::vector<Frame> frames;
  auto it = received_.find(id);
  if (it == received_.end()) return frames;
  FrameBuffer buffer;
  buffer.Append(it->second.data(), it->second.size());
  while (auto frame = buffer.Pop()) {
    if (!*frame) break;
    frames.push_back(std::move(**frame));
  }
  return frames;
}

Result<Frame> FakeServerLoop::Answer(uint64_t id) const {
  if (IsOpen(id)) return Error::FailedPrecondition("the connection is still open");
  auto frames = Received(id);
  if (frames.size() != 1) {
    return Error::FailedPrecondition(std::to_string(frames.size()) + " frames, not one");
  }
  return std::move(frames[0]);
}

void FakeServerLoop::Deliver(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& conn = *it->second;
  received_[id] += conn.out.substr(conn.out_pos);
  conn.out.clear();
  conn.out_pos = 0;
  if (conn.close_after_flush) conns_.erase(it);
}

Status FakeServerLoop::Watch(int fd, uint64_t key, uint32_t events) {
  if (watched_.count(fd)) return Error::AlreadyExists("watched twice");
  watched_[fd] = {key, events};
  return Ok();
}

void FakeServerLoop::Rewatch(int fd, uint64_t key, uint32_t events) {
  if (watched_.count(fd)) watched_[fd] = {key, events};
}

void FakeServerLoop::Unwatch(int fd) { watched_.erase(fd); }

void FakeServerLoop::Send(Conn& conn, MsgType type, std::string_view payload) {
  conn.out += EncodeFrame(type, payload);
  if (host_reading_) Deliver(conn.id);
}

void FakeServerLoop::CloseAfterFlush(Conn& conn) {
  conn.close_after_flush = true;
  conn.kind = Conn::Kind::kDone;
  if (host_reading_ || conn.pending() == 0) Deliver(conn.id);
}

}  // namespace sbx::agent
