// File: fake_server_loop.h
//
// A ServerLoop for unit tests of sbx-init's concerns: connections are plain Conn objects, and
// descriptors are recorded rather than watched. What a concern sends is delivered to the host at
// once, as by a host that keeps reading, unless the test stops the host reading; then it stays
// queued on the connection, as it would in a full socket, until Deliver().

#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "src/agent/connection.h"
#include "src/agent/init/server_loop.h"

namespace sbx::agent {

class FakeServerLoop : public ServerLoop {
 public:
  // A new connection, as accepted.
  Conn& Open();
  // Every frame the host received on connection `id` so far, in order.
  std::vector<Frame> Received(uint64_t id) const;
  bool IsOpen(uint64_t id) const { return conns_.count(id) != 0; }
  // The one frame received on `id`, a connection since closed, as an answer to a one-shot request
  // is; otherwise an error saying what is wrong with it.
  Result<Frame> Answer(uint64_t id) const;
  // The same, decoded as a `Message` of `type`.
  template <typename Message>
  Result<Message> AnswerAs(uint64_t id, MsgType type) const {
    SBX_ASSIGN_OR_RETURN(Frame frame, Answer(id));
    if (frame.type != type) {
      return Error::FailedPrecondition(std::string("the answer is ") + MsgTypeName(frame.type));
    }
    return Message::Decode(frame.payload);
  }
  // While false, sent frames stay queued on their connection.
  void SetHostReading(bool reading) { host_reading_ = reading; }
  // The host reads everything queued on `id`; a closing connection then closes.
  void Deliver(uint64_t id);
  // What is watched, by descriptor: the key and the events.
  const std::map<int, std::pair<uint64_t, uint32_t>>& watched() const { return watched_; }

  Status Watch(int fd, uint64_t key, uint32_t events) override;
  void Rewatch(int fd, uint64_t key, uint32_t events) override;
  void Unwatch(int fd) override;
  void Send(Conn& conn, MsgType type, std::string_view payload) override;
  void CloseAfterFlush(Conn& conn) override;
  void PauseReading(Conn& conn) override { conn.read_paused = true; }
  void ResumeReading(Conn& conn) override { conn.read_paused = false; }

 private:
  bool host_reading_ = true;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::string> received_;
  std::map<int, std::pair<uint64_t, uint32_t>> watched_;
};

}  // namespace sbx::agent
