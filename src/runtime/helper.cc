#include "src/runtime/helper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "src/agent/connection.h"
#include "src/agent/protocol.h"
#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::runtime {

std::string HelperCreateRequest::Encode() const {
  agent::FieldWriter w;
  w.PutString(1, bundle_dir);
  w.PutString(2, disk_pool_dir);
  w.PutString(3, disk_dir);
  w.PutString(4, writable_image);
  return w.Take();
}

Result<HelperCreateRequest> HelperCreateRequest::Decode(std::string_view payload) {
  HelperCreateRequest m;
  agent::FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.bundle_dir = r.str();
    if (r.tag() == 2) m.disk_pool_dir = r.str();
    if (r.tag() == 3) m.disk_dir = r.str();
    if (r.tag() == 4) m.writable_image = r.str();
  }
  SBX_TRY(r.status("helper create request"));
  return m;
}

std::string HelperSetLimitsRequest::Encode() const {
  agent::FieldWriter w;
  w.PutString(1, name);
  w.PutU64(2, limits.memory_bytes);
  w.PutU64(3, limits.cpu_millis);
  w.PutU64(4, limits.pids);
  w.PutU64(5, limits.cpu_weight);
  return w.Take();
}

Result<HelperSetLimitsRequest> HelperSetLimitsRequest::Decode(std::string_view payload) {
  HelperSetLimitsRequest m;
  agent::FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.name = r.str();
    if (r.tag() == 2) m.limits.memory_bytes = r.u64();
    if (r.tag() == 3) m.limits.cpu_millis = r.u64();
    if (r.tag() == 4) m.limits.pids = r.u64();
    if (r.tag() == 5) m.limits.cpu_weight = r.u64();
  }
  SBX_TRY(r.status("helper set-limits request"));
  if (m.name.empty() || m.name.find('/') != std::string::npos || m.name[0] == '.') {
    return Error::InvalidArgument("set-limits request: bad cgroup name " + Quote(m.name));
  }
  return m;
}

namespace {

// The request frame goes in one sendmsg, with the prepared writable mount (if any) attached.
Status SendRequest(int fd, const std::string& frame, int passed_fd) {
  iovec iov{const_cast<char*>(frame.data()), frame.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (passed_fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &passed_fd, sizeof(int));
  }
  // The socket is a stream socketpair: a request is small enough to go in one call.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(frame.size())) return Ok();
    if (n >= 0) return Error::Internal("short write to the runtime helper");
    if (errno == EAGAIN) {
      pollfd pfd{fd, POLLOUT, 0};
      poll(&pfd, 1, 100);
      continue;
    }
    if (errno != EINTR)
      return Error::Errno("send to the runtime helper").WithCode(Code::kUnavailable);
  }
  return Error::Unavailable("the runtime helper does not take requests");
}

// Reads one request frame and the descriptor that came with it (or -1).
Result<std::pair<agent::Frame, UniqueFd>> ReceiveRequest(int fd, int64_t deadline_ms) {
  std::string data;
  UniqueFd passed;
  while (true) {
    if (data.size() >= agent::kHeaderSize) {
      SBX_ASSIGN_OR_RETURN(agent::FrameHeader header, agent::DecodeHeader(data.data()));
      if (data.size() >= agent::kHeaderSize + header.length) {
        agent::Frame frame{static_cast<agent::MsgType>(header.type),
                           data.substr(agent::kHeaderSize, header.length)};
        return std::make_pair(std::move(frame), std::move(passed));
      }
    }
    char buf[65536];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n == 0) return Error::Unavailable("the daemon closed the helper socket");
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return Error::Errno("recvmsg");
      pollfd pfd{fd, POLLIN, 0};
      if (poll(&pfd, 1, PollTimeout(deadline_ms)) == 0) {
        return Error::DeadlineExceeded("incomplete request from the daemon");
      }
      continue;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
          int got;
          memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          if (!passed) {
            passed.reset(got);
          } else {
            close(got);  // at most one descriptor per request
          }
        }
      }
    }
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > agent::kHeaderSize + agent::kMaxPayload) {
      return Error::InvalidArgument("oversized request");
    }
  }
}

void ReapChildren() {
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

std::string ErrorPayload(const Error& error) {
  agent::FieldWriter w;
  w.PutBytes(2, agent::ErrorReply::FromError(error).Encode());
  return w.Take();
}

// The error a reply carries, or Ok: an empty reply is success.
Status ReplyStatus(std::string_view payload) {
  agent::FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 2) {
      SBX_ASSIGN_OR_RETURN(agent::ErrorReply reply, agent::ErrorReply::Decode(r.bytes()));
      return reply.ToError();
    }
  }
  SBX_TRY(r.status("runtime helper reply"));
  return Ok();
}

Result<SandboxState> CreateFromRequest(const agent::Frame& frame, int mount_fd, int init_fd,
                                       const std::string& seccomp_bpf, CgroupDriver& cgroups) {
  SBX_ASSIGN_OR_RETURN(HelperCreateRequest request, HelperCreateRequest::Decode(frame.payload));
  SBX_ASSIGN_OR_RETURN(std::string text,
                       sys::ReadFile(request.bundle_dir + "/spec.json", 16u << 20));
  SBX_ASSIGN_OR_RETURN(RuntimeSpec spec, FromJson(text));
  return CreateSandbox(spec,
                       {.bundle_dir = request.bundle_dir,
                        .init_fd = init_fd,
                        .seccomp_bpf = seccomp_bpf,
                        .disk_pool_dir = request.disk_pool_dir,
                        .disk_dir = request.disk_dir,
                        .writable_mount_fd = mount_fd,
                        .writable_image = request.writable_image},
                       cgroups);
}

std::string Reply(const Result<SandboxState>& state) {
  agent::FieldWriter w;
  if (state) {
    w.PutString(1, StateToJson(*state));
  } else {
    w.PutBytes(2, agent::ErrorReply::FromError(state.error()).Encode());
  }
  return w.Take();
}

}  // namespace

int ServeHelper(int fd, int init_fd, const std::string& seccomp_bpf, CgroupDriver& cgroups) {
  agent::Connection conn{UniqueFd(fd)};
  (void)sys::SetNonBlocking(conn.fd(), true);
  while (true) {
    // Sandboxes' init processes are our children: reap the ones that ended, between requests
    // and at least every 200 ms.
    ReapChildren();
    pollfd pfd{conn.fd(), POLLIN, 0};
    int ready = poll(&pfd, 1, 200);
    if (ready < 0 && errno != EINTR) return 1;
    if (ready <= 0) continue;
    auto received = ReceiveRequest(conn.fd(), MonotonicMillis() + 5000);
    if (!received) return 0;  // the daemon went away
    auto& [frame, mount_fd] = *received;
    std::string reply;
    uint8_t reply_type = 0;
    switch (static_cast<uint8_t>(frame.type)) {
      case kCreateRequest:
        reply_type = kCreateReply;
        reply = Reply(CreateFromRequest(frame, mount_fd ? mount_fd.get() : -1, init_fd, seccomp_bpf,
                                        cgroups));
        break;
      case kSetLimitsRequest: {
        reply_type = kSetLimitsReply;
        auto request = HelperSetLimitsRequest::Decode(frame.payload);
        Status set =
            request ? cgroups.SetLimits(request->name, request->limits) : Status(request.error());
        reply = set ? std::string() : ErrorPayload(set.error());
        break;
      }
      default:
        return 1;
    }
    if (!conn.Send(static_cast<agent::MsgType>(reply_type), reply, MonotonicMillis() + 5000)) {
      return 1;
    }
  }
}

Result<SandboxState> HelperCreate(int fd, const HelperCreateRequest& request, int timeout_ms) {
  UniqueFd own(fcntl(fd, F_DUPFD_CLOEXEC, 3));
  if (!own) return Error::Errno("dup helper socket");
  agent::Connection conn{std::move(own)};
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_TRY(SendRequest(
      conn.fd(), agent::EncodeFrame(static_cast<agent::MsgType>(kCreateRequest), request.Encode()),
      request.writable_mount_fd));
  SBX_ASSIGN_OR_RETURN(agent::Frame frame, conn.Receive(deadline));
  if (static_cast<uint8_t>(frame.type) != kCreateReply) {
    return Error::Internal("unexpected reply from the runtime helper");
  }
  agent::FieldReader r(frame.payload);
  while (r.Next()) {
    if (r.tag() == 1) return StateFromJson(r.str());
  }
  SBX_TRY(ReplyStatus(frame.payload));
  return Error::Internal("empty reply from the runtime helper");
}

Status HelperSetLimits(int fd, const HelperSetLimitsRequest& request, int timeout_ms) {
  UniqueFd own(fcntl(fd, F_DUPFD_CLOEXEC, 3));
  if (!own) return Error::Errno("dup helper socket");
  agent::Connection conn{std::move(own)};
  SBX_TRY(SendRequest(
      conn.fd(),
      agent::EncodeFrame(static_cast<agent::MsgType>(kSetLimitsRequest), request.Encode()), -1));
  SBX_ASSIGN_OR_RETURN(agent::Frame frame, conn.Receive(MonotonicMillis() + timeout_ms));
  if (static_cast<uint8_t>(frame.type) != kSetLimitsReply) {
    return Error::Internal("unexpected reply from the runtime helper");
  }
  return ReplyStatus(frame.payload);
}

}  // namespace sbx::runtime
