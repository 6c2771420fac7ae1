// File: socket.h
//
// Unix-domain stream sockets: listen on a path, connect to a path (with a timeout), and
// socketpairs. All descriptors are CLOEXEC.

#pragma once

#include <string>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::sys {

// Binds and listens on `path` (replacing a stale socket file), with the socket file mode `mode`.
Result<UniqueFd> ListenUnix(const std::string& path, int backlog = 128, mode_t mode = 0600);
// The returned socket is non-blocking.
Result<UniqueFd> ConnectUnix(const std::string& path, int timeout_ms = 5000);
Result<std::pair<UniqueFd, UniqueFd>> SocketPair(int type = 0);

}  // namespace sbx::sys
