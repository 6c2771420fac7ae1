// File: image_fixture.h (tests)
//
// Real registries for the image store's privileged tests: a `docker-registry` process on
// 127.0.0.1 (a free port, storage in a temporary directory, optionally htpasswd or TLS), and the
// fault-injecting proxy image_registry_proxy.py in front of one. Both are killed and reaped when
// the object goes away.

#pragma once

#include <memory>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/sys/process.h"
#include "src/testing/temp_dir.h"

namespace sbx::testing {

class LocalRegistry {
 public:
  struct Options {
    std::string htpasswd;  // file content ("user:$2b$...") enables basic auth
    bool tls = false;      // serve HTTPS with a fresh self-signed certificate for 127.0.0.1
  };
  static Result<std::unique_ptr<LocalRegistry>> Start(const Options& options);
  static Result<std::unique_ptr<LocalRegistry>> Start() { return Start(Options{}); }

  const std::string& host() const { return host_; }  // 127.0.0.1:PORT
  std::string url() const { return (tls_ ? "https://" : "http://") + host_; }
  std::string ca_file() const { return dir_.Sub("cert.pem"); }
  void Stop() { process_ = sys::ChildProcess(); }

 private:
  LocalRegistry() = default;
  TempDir dir_{"sbx-registry"};
  sys::ChildProcess process_;
  std::string host_;
  bool tls_ = false;
};

class RegistryProxy {
 public:
  // `flags` are the proxy's options ("--token", "--drop-blobs-once", ...).
  static Result<std::unique_ptr<RegistryProxy>> Start(const std::string& upstream_url,
                                                      const std::vector<std::string>& flags);
  const std::string& host() const { return host_; }
  std::string url() const { return "http://" + host_; }
  // One line per request: "GET /v2/... auth=<scheme> range=<header>".
  std::vector<std::string> Requests() const;
  int Count(const std::string& substring) const;

 private:
  RegistryProxy() = default;
  TempDir dir_{"sbx-proxy"};
  sys::ChildProcess process_;
  std::string host_;
};

// An htpasswd line with a bcrypt hash (what docker-registry's htpasswd auth accepts).
std::string HtpasswdLine(const std::string& user, const std::string& password);

// A port nothing listens on (bound, then released).
int UnusedPort();

}  // namespace sbx::testing
