#include "src/daemon/daemon.h"

#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/daemon/helper_runtime.h"
#include "src/daemon/http_server.h"
#include "src/daemon/image_store_provider.h"
#include "src/daemon/metrics.h"
#include "src/daemon/sandbox_manager.h"
#include "src/daemon/services/archive_service.h"
#include "src/daemon/services/discovery_service.h"
#include "src/daemon/services/image_service.h"
#include "src/daemon/services/sandbox_service.h"
#include "src/daemon/services/system_service.h"
#include "src/daemon/store.h"
#include "src/net/bridge_network.h"
#include "src/net/network_provider.h"
#include "src/runtime/cgroup/favor_migrations.h"
#include "src/sys/features.h"
#include "src/sys/fs.h"

namespace sbx::daemon {

namespace {

class DaemonImpl : public Daemon {
 public:
  explicit DaemonImpl(Config config) : config_(std::move(config)) {}
  ~DaemonImpl() override { Shutdown(); }

  Status Start() override {
    if (config_.runner_id.empty()) {
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      config_.runner_id = host;
    }
    SBX_TRY(sys::MakeDirs(config_.state_dir, 0700));
    SBX_TRY(sys::MakeDirs(config_.run_dir, 0755));
    SBX_ASSIGN_OR_RETURN(store_, Store::Open(config_.state_dir + "/sbxd.db"));
    sys::CgroupLayout layout = sys::ProbeCgroups();
    SBX_ASSIGN_OR_RETURN(cgroups_, runtime::MakeCgroupDriver(layout, config_.cgroup_parent));
    if (config_.cgroup_favor_migrations) {
      auto favor = runtime::FavorMigrations::Enable();
      if (favor) {
        favor_migrations_ = std::move(*favor);
      } else {
        SBX_LOG_WARN("cgroup migrations stay slow (each create waits for an RCU grace period): {}",
                     favor.error().message());
      }
    }
    SBX_ASSIGN_OR_RETURN(images_, ImageStoreProvider::Open(config_));
    SBX_ASSIGN_OR_RETURN(std::string bin_dir, sys::SelfExeDir());
    HelperRuntimeOptions runtime;
    runtime.runtime_binary =
        config_.runtime_path.empty() ? bin_dir + "/sbx-runtime" : config_.runtime_path;
    runtime.init_binary = sys::DirName(runtime.runtime_binary) + "/sbx-init";
    for (const auto& binary : {runtime.runtime_binary, runtime.init_binary}) {
      if (access(binary.c_str(), X_OK) != 0) {
        return Error::FailedPrecondition(Quote(binary) + " is missing; install it next to sbxd");
      }
    }
    runtime.run_dir = config_.run_dir;
    runtime.state_dir = config_.state_dir;
    runtime.cgroup_parent = config_.cgroup_parent;
    runtime.helpers = config_.runtime_helpers;
    runtime.loop_writable_layers = config_.writable_layer == "loop";
    runtime.disk_pool_size = config_.disk_pool_size;
    runtime.disk_format = {NodeShapeFromConfig(config_).default_disk_bytes, 0, config_.id_map_uid,
                           config_.id_map_gid};
    runtime_ = std::make_unique<HelperRuntime>(std::move(runtime), cgroups_.get());
    SBX_TRY(runtime_->Start());
    if (config_.network == "bridge") {
      SBX_ASSIGN_OR_RETURN(net::BridgeNetworkOptions options, BridgeNetworkOptionsFrom(config_));
      SBX_ASSIGN_OR_RETURN_CTX(network_, net::BridgeNetwork::Create(std::move(options)),
                               "sandbox network (\"network\": \"none\" runs without one)");
    } else {
      network_ = std::make_unique<net::LoopbackOnlyNetwork>();
    }
    manager_ = std::make_unique<SandboxManager>(config_, store_.get(), images_.get(),
                                                network_.get(), runtime_.get(), &metrics_);
    SBX_TRY(manager_->Start());
    metrics_.SetGaugeSource([this] { return Gauges(); });

    auth_ = std::make_unique<Authenticator>(config_);
    sandbox_service_ =
        std::make_unique<SandboxService>(manager_.get(), auth_.get(), &metrics_, network_.get());
    discovery_service_ = std::make_unique<DiscoveryService>(manager_.get(), auth_.get());
    system_service_ = std::make_unique<SystemService>(manager_.get(), auth_.get(), layout.version);
    image_service_ = std::make_unique<ImageService>(images_.get(), auth_.get(), manager_.get());
    archive_service_ = std::make_unique<ArchiveService>(manager_.get(), auth_.get());

    grpc::ServerBuilder builder;
    builder.SetMaxReceiveMessageSize(100 << 20);
    builder.SetMaxSendMessageSize(100 << 20);
    SBX_TRY(sys::MakeDirs(sys::DirName(config_.listen_unix), 0755));
    unlink(config_.listen_unix.c_str());
    builder.AddListeningPort("unix:" + config_.listen_unix, grpc::InsecureServerCredentials());
    if (!config_.listen_tcp.empty()) {
      std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
      if (!config_.tls_cert.empty()) {
        SBX_ASSIGN_OR_RETURN(std::string cert, sys::ReadFile(config_.tls_cert));
        SBX_ASSIGN_OR_RETURN(std::string key, sys::ReadFile(config_.tls_key));
        grpc::SslServerCredentialsOptions options;
        options.pem_key_cert_pairs.push_back({key, cert});
        creds = grpc::SslServerCredentials(options);
      }
      builder.AddListeningPort(config_.listen_tcp, creds, &tcp_port_);
    }
    builder.RegisterService(sandbox_service_.get());
    builder.RegisterService(discovery_service_.get());
    builder.RegisterService(system_service_.get());
    builder.RegisterService(image_service_.get());
    builder.RegisterService(archive_service_.get());
    server_ = builder.BuildAndStart();
    if (!server_)
      return Error::Unavailable("could not start the gRPC server (is the address in use?)");
    if (!config_.listen_tcp.empty() && tcp_port_ == 0) {
      return Error::Unavailable("could not listen on " + config_.listen_tcp);
    }
    // SECURITY: the unix socket is the local trust boundary: root, and the configured group.
    if (chmod(config_.listen_unix.c_str(), config_.unix_socket_mode) != 0) {
      return Error::Errno("chmod " + config_.listen_unix);
    }
    if (!config_.unix_socket_group.empty()) {
      group* g = getgrnam(config_.unix_socket_group.c_str());
      if (g == nullptr) return Error::InvalidArgument("unknown group " + config_.unix_socket_group);
      if (chown(config_.listen_unix.c_str(), 0, g->gr_gid) != 0) {
        return Error::Errno("chown " + config_.listen_unix);
      }
    }
    if (!config_.metrics_listen.empty()) {
      SBX_TRY(http_.Start(config_.metrics_listen, [this] { return metrics_.Render(); }));
    }
    SBX_LOG_INFO("sbxd serving unix={} tcp={} runner={}", config_.listen_unix,
                 config_.listen_tcp.empty() ? "off" : config_.listen_tcp, config_.runner_id);
    return Ok();
  }

  void Shutdown() override {
    if (stopped_) return;
    stopped_ = true;
    if (server_) {
      // Running calls get a moment to finish; streams still open after that are cancelled.
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    }
    http_.Stop();
    if (manager_) manager_->Shutdown();
    if (runtime_) runtime_->Stop();
    favor_migrations_.Release();
    SBX_LOG_INFO("sbxd stopped; sandboxes keep running");
  }

  int tcp_port() const override { return tcp_port_; }
  int metrics_port() const override { return http_.port(); }

 private:
  std::string Gauges() {
    Capacity c = manager_->GetCapacity();
    std::string out;
    out += "# TYPE sbx_sandboxes gauge\n";
    out += "sbx_sandboxes{state=\"RUNNING\"} " + std::to_string(c.running) + "\n";
    out += "sbx_sandboxes{state=\"PENDING\"} " + std::to_string(c.pending) + "\n";
    out += "# TYPE sbx_warm_sandboxes gauge\n";
    for (const auto& [image, ready] : c.warm) {
      out +=
          MetricKey("sbx_warm_sandboxes", {{"image", image}}) + " " + std::to_string(ready) + "\n";
    }
    out += "# TYPE sbx_capacity_cpu_millicores gauge\nsbx_capacity_cpu_millicores " +
           std::to_string(c.cpu_millis) + "\n";
    out += "# TYPE sbx_allocated_cpu_millicores gauge\nsbx_allocated_cpu_millicores " +
           std::to_string(c.allocated_cpu_millis) + "\n";
    out += "# TYPE sbx_capacity_memory_bytes gauge\nsbx_capacity_memory_bytes " +
           std::to_string(c.memory_bytes) + "\n";
    out += "# TYPE sbx_allocated_memory_bytes gauge\nsbx_allocated_memory_bytes " +
           std::to_string(c.allocated_memory_bytes) + "\n";
    out += "# TYPE sbx_capacity_disk_bytes gauge\nsbx_capacity_disk_bytes " +
           std::to_string(c.disk_bytes) + "\n";
    out += "# TYPE sbx_allocated_disk_bytes gauge\nsbx_allocated_disk_bytes " +
           std::to_string(c.allocated_disk_bytes) + "\n";
    // Counted by the kernel (or the DNS forwarder), so read at scrape time like the gauges.
    auto hits = network_->LimitHits();
    if (!hits.empty()) out += "# TYPE sbx_network_limited_total counter\n";
    for (const auto& [limit, count] : hits) {
      out += MetricKey("sbx_network_limited_total", {{"limit", limit}}) + " " +
             std::to_string(count) + "\n";
    }
    return out;
  }

  Config config_;
  Metrics metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<runtime::CgroupDriver> cgroups_;
  std::unique_ptr<ImageStoreProvider> images_;
  std::unique_ptr<HelperRuntime> runtime_;
  std::unique_ptr<net::NetworkProvider> network_;
  std::unique_ptr<SandboxManager> manager_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<SandboxService> sandbox_service_;
  std::unique_ptr<DiscoveryService> discovery_service_;
  std::unique_ptr<SystemService> system_service_;
  std::unique_ptr<ImageService> image_service_;
  std::unique_ptr<ArchiveService> archive_service_;
  std::unique_ptr<grpc::Server> server_;
  runtime::FavorMigrations favor_migrations_;
  HttpServer http_;
  int tcp_port_ = 0;
  bool stopped_ = false;
};

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::Create(Config config) {
  return std::unique_ptr<Daemon>(new DaemonImpl(std::move(config)));
}

}  // namespace sbx::daemon
