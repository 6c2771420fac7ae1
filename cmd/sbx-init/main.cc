// sbx-init: PID 1 of every sandbox. Inherits the listening socket on fd 3 and its configuration
// on fd 4 from sbx-runtime.

#include <unistd.h>

#include <cstdio>

#include "src/agent/init/init_server.h"
#include "src/sys/fs.h"

namespace {
constexpr int kListenFd = 3;
constexpr int kConfigFd = 4;
}  // namespace

int main() {
  auto raw = sbx::sys::ReadFd(kConfigFd, 64u << 20);
  close(kConfigFd);
  if (!raw) {
    fprintf(stderr, "sbx-init: read config: %s\n", raw.error().ToString().c_str());
    return 1;
  }
  auto config = sbx::agent::InitConfig::Decode(*raw);
  if (!config) {
    fprintf(stderr, "sbx-init: %s\n", config.error().ToString().c_str());
    return 1;
  }
  (void)sbx::sys::SetCloexec(kListenFd, true);
  sbx::agent::InitServer server(std::move(*config), sbx::UniqueFd(kListenFd));
  return server.Run();
}
