// Ports of the host that exposed services take: held by a bound socket while a sandbox exposes
// them, so that nothing else on the host takes them.
#pragma once

#include <string>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::net {

// Binds `port` of `protocol` ("tcp", "udp" or "sctp") on every address, without listening.
Result<UniqueFd> HoldPort(const std::string& protocol, int port);

// Ok when the host's kernel speaks SCTP (an SCTP socket can be made); else why not. Probed once.
Status SctpAvailable();

}  // namespace sbx::net
