#include "src/runtime/helper.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/agent/connection.h"
#include "src/agent/protocol.h"
#include "src/base/clock.h"
#include "src/sys/fs.h"

namespace sbx::runtime {

std::string HelperCreateRequest::Encode() const {
  agent::FieldWriter w;
  w.PutString(1, bundle_dir);
  w.PutString(2, disk_pool_dir);
  w.PutString(3, disk_dir);
  return w.Take();
}

Result<HelperCreateRequest> HelperCreateRequest::Decode(std::string_view payload) {
  HelperCreateRequest m;
  agent::FieldReader r(payload);
  while (r.Next()) {
    if (r.tag() == 1) m.bundle_dir = r.str();
    if (r.tag() == 2) m.disk_pool_dir = r.str();
    if (r.tag() == 3) m.disk_dir = r.str();
  }
  SBX_TRY(r.status("helper create request"));
  return m;
}

namespace {

void ReapChildren() {
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
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
    auto readable = conn.WaitReadable(MonotonicMillis() + 200);
    if (!readable) return 1;
    if (!*readable) continue;
    auto frame = conn.Receive(MonotonicMillis() + 5000);
    if (!frame) return 0;  // the daemon went away
    if (static_cast<uint8_t>(frame->type) != kCreateRequest) return 1;
    Result<SandboxState> state = Error::Internal("no request");
    auto request = HelperCreateRequest::Decode(frame->payload);
    if (!request) {
      state = request.error();
    } else {
      auto text = sys::ReadFile(request->bundle_dir + "/spec.json", 16u << 20);
      auto spec = text ? FromJson(*text) : Result<RuntimeSpec>(text.error());
      if (!spec) {
        state = spec.error();
      } else {
        state = CreateSandbox(*spec,
                              {.bundle_dir = request->bundle_dir,
                               .init_fd = init_fd,
                               .seccomp_bpf = seccomp_bpf,
                               .disk_pool_dir = request->disk_pool_dir,
                               .disk_dir = request->disk_dir},
                              cgroups);
      }
    }
    if (!conn.Send(static_cast<agent::MsgType>(kCreateReply), Reply(state),
                   MonotonicMillis() + 5000)) {
      return 1;
    }
  }
}

Result<SandboxState> HelperCreate(int fd, const HelperCreateRequest& request, int timeout_ms) {
  UniqueFd own(fcntl(fd, F_DUPFD_CLOEXEC, 3));
  if (!own) return Error::Errno("dup helper socket");
  agent::Connection conn{std::move(own)};
  int64_t deadline = MonotonicMillis() + timeout_ms;
  SBX_TRY(conn.Send(static_cast<agent::MsgType>(kCreateRequest), request.Encode(), deadline));
  SBX_ASSIGN_OR_RETURN(agent::Frame frame, conn.Receive(deadline));
  if (static_cast<uint8_t>(frame.type) != kCreateReply) {
    return Error::Internal("unexpected reply from the runtime helper");
  }
  agent::FieldReader r(frame.payload);
  while (r.Next()) {
    if (r.tag() == 1) return StateFromJson(r.str());
    if (r.tag() == 2) {
      SBX_ASSIGN_OR_RETURN(agent::ErrorReply reply, agent::ErrorReply::Decode(r.bytes()));
      return reply.ToError();
    }
  }
  return Error::Internal("empty reply from the runtime helper");
}

}  // namespace sbx::runtime
