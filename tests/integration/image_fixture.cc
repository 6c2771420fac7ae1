#include "tests/integration/image_fixture.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "src/base/clock.h"
#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::testing {
namespace {

std::vector<std::string> ChildEnv() {
  std::vector<std::string> env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"};
  if (const char* home = getenv("HOME")) env.push_back(std::string("HOME=") + home);
  return env;
}

// Waits until `path` contains `marker`, returns what follows it up to the end of the line.
Result<std::string> WaitFor(const std::string& path, const std::string& marker,
                            sys::ChildProcess& process, int timeout_ms) {
  int64_t deadline = MonotonicMillis() + timeout_ms;
  while (MonotonicMillis() < deadline) {
    auto text = sys::ReadFile(path, 16u << 20);
    if (text) {
      size_t at = text->find(marker);
      if (at != std::string::npos) {
        size_t end = text->find('\n', at);
        if (end != std::string::npos) {
          return text->substr(at + marker.size(), end - at - marker.size());
        }
      }
    }
    auto exited = process.Wait(0);
    if (exited) {
      return Error::Internal("process exited (" + exited->ToString() +
                             "): " + (text ? *text : std::string()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return Error::DeadlineExceeded("waiting for " + Quote(marker) + " in " + path);
}

std::string FindPython() {
  for (const char* p : {"/usr/bin/python3", "/usr/local/bin/python3"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "python3";
}

}  // namespace

Result<std::unique_ptr<LocalRegistry>> LocalRegistry::Start(const Options& options) {
  std::unique_ptr<LocalRegistry> r(new LocalRegistry());
  r->tls_ = options.tls;
  const std::string& dir = r->dir_.path();
  std::string config =
      "version: 0.1\n"
      "log:\n  level: info\n  accesslog:\n    disabled: true\n"
      "storage:\n  filesystem:\n    rootdirectory: " +
      dir +
      "/data\n"
      "  delete:\n    enabled: true\n"
      "  maintenance:\n    uploadpurging:\n      enabled: false\n"
      "http:\n  addr: 127.0.0.1:0\n  secret: " +
      RandomHex(16) + "\n";
  if (options.tls) {
    auto made = sys::RunCommand(
        {"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
         "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", dir + "/key.pem",
         "-out", dir + "/cert.pem"},
        ChildEnv(), 60000);
    if (!made || made->status.ShellCode() != 0) {
      return Error::Internal("openssl req failed: " + (made ? made->err : made.error().ToString()));
    }
    config += "  tls:\n    certificate: " + dir + "/cert.pem\n    key: " + dir + "/key.pem\n";
  }
  if (!options.htpasswd.empty()) {
    SBX_TRY(sys::WriteFile(dir + "/htpasswd", options.htpasswd + "\n", 0600));
    config += "auth:\n  htpasswd:\n    realm: test-realm\n    path: " + dir + "/htpasswd\n";
  }
  SBX_TRY(sys::WriteFile(dir + "/config.yml", config));
  SBX_ASSIGN_OR_RETURN(UniqueFd log,
                       sys::Open(dir + "/registry.log", O_WRONLY | O_CREAT | O_TRUNC, 0600));
  sys::SpawnOptions spawn;
  spawn.argv = {"/usr/bin/docker-registry", "serve", dir + "/config.yml"};
  spawn.env = ChildEnv();
  spawn.fds = {{1, log.get()}, {2, log.get()}};
  SBX_ASSIGN_OR_RETURN(r->process_, sys::Spawn(spawn));
  SBX_ASSIGN_OR_RETURN(std::string addr,
                       WaitFor(dir + "/registry.log", "listening on ", r->process_, 20000));
  // `addr` continues with the log line's other fields: keep host:port.
  size_t end = addr.find_first_of(" \",");
  r->host_ = addr.substr(0, end);
  return r;
}

Result<std::unique_ptr<RegistryProxy>> RegistryProxy::Start(const std::string& upstream_url,
                                                            const std::vector<std::string>& flags) {
  std::unique_ptr<RegistryProxy> p(new RegistryProxy());
  const std::string& dir = p->dir_.path();
  const char* source = getenv("SBX_SOURCE_DIR");
  std::string script =
      std::string(source ? source : ".") + "/tests/integration/image_registry_proxy.py";
  SBX_ASSIGN_OR_RETURN(UniqueFd out, sys::Open(dir + "/port", O_WRONLY | O_CREAT | O_TRUNC, 0600));
  SBX_ASSIGN_OR_RETURN(UniqueFd err,
                       sys::Open(dir + "/stderr", O_WRONLY | O_CREAT | O_TRUNC, 0600));
  sys::SpawnOptions spawn;
  spawn.argv = {FindPython(), script, "--upstream", upstream_url, "--log", dir + "/requests"};
  spawn.argv.insert(spawn.argv.end(), flags.begin(), flags.end());
  spawn.env = ChildEnv();
  spawn.fds = {{1, out.get()}, {2, err.get()}};
  SBX_ASSIGN_OR_RETURN(p->process_, sys::Spawn(spawn));
  auto port = WaitFor(dir + "/port", "", p->process_, 20000);
  if (!port) {
    auto stderr_text = sys::ReadFile(dir + "/stderr");
    return std::move(port).error().Wrap("proxy: " + (stderr_text ? *stderr_text : ""));
  }
  p->host_ = "127.0.0.1:" + std::string(Trim(*port));
  return p;
}

std::vector<std::string> RegistryProxy::Requests() const {
  auto text = sys::ReadFile(dir_.Sub("requests"), 64u << 20);
  std::vector<std::string> out;
  if (!text) return out;
  for (auto& line : Split(*text, '\n')) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

int RegistryProxy::Count(const std::string& substring) const {
  int n = 0;
  for (const auto& line : Requests()) n += line.find(substring) != std::string::npos;
  return n;
}

std::string HtpasswdLine(const std::string& user, const std::string& password) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", 5, nullptr, 0, salt, sizeof salt) == nullptr) abort();
  crypt_data data{};
  const char* hash = crypt_r(password.c_str(), salt, &data);
  if (hash == nullptr || hash[0] == '*') abort();
  return user + ":" + hash;
}

int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  // JUSTIFICATION: the sockets API takes a generic address pointer.
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) abort();
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace sbx::testing
