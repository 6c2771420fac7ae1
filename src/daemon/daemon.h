// File: daemon.h
//
// Daemon wires sbxd together: configuration, store, image store, cgroup driver, sandbox manager,
// the gRPC services on the unix socket (and TCP when configured), and the metrics endpoint.
//
//   auto daemon = Daemon::Create(config);
//   SBX_TRY((*daemon)->Start());
//   ... wait for SIGTERM ...
//   (*daemon)->Shutdown();   // stops serving; sandboxes keep running

#pragma once

#include <memory>
#include <string>

#include "src/base/result.h"
#include "src/daemon/config.h"

namespace sbx::daemon {

class Daemon {
 public:
  static Result<std::unique_ptr<Daemon>> Create(Config config);
  virtual ~Daemon() = default;
  virtual Status Start() = 0;
  virtual void Shutdown() = 0;
};

}  // namespace sbx::daemon
