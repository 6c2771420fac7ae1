#include "src/daemon/daemon.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>

#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/daemon/api_server.h"
#include "src/daemon/byte_budget.h"
#include "src/daemon/helper_runtime.h"
#include "src/daemon/http_server.h"
#include "src/daemon/image_store_provider.h"
#include "src/daemon/metrics.h"
#include "src/daemon/sandbox_manager.h"
#include "src/daemon/store.h"
#include "src/net/bridge_network.h"
#include "src/net/network_provider.h"
#include "src/runtime/cgroup/favor_migrations.h"
#include "src/sys/features.h"
#include "src/sys/fs.h"

namespace sbx::daemon {

namespace {

// Connections, sandboxes and their sockets all take descriptors; the soft limit a service manager
// hands out (1024 under systemd) is far below what sbxd may use.
void RaiseDescriptorLimit() {
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0 || nofile.rlim_cur == nofile.rlim_max) return;
  nofile.rlim_cur = nofile.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) {
    SBX_LOG_WARN("could not raise the descriptor limit: {}", strerror(errno));
  }
}

// The build tree keeps sbx-runtime and sbx-init next to sbxd; an installation keeps them in a
// directory of their own (libexec), since they are not commands for users' PATH.
std::string DefaultRuntimePath(const std::string& sbxd_dir) {
  std::string beside = sbxd_dir + "/sbx-runtime";
  if (access(beside.c_str(), X_OK) == 0) return beside;
  return std::filesystem::path(sbxd_dir + "/" SBX_HELPER_DIR_FROM_SBXD "/sbx-runtime")
      .lexically_normal()
      .string();
}

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
    RaiseDescriptorLimit();
    SBX_TRY(sys::MakeDirs(config_.run_dir, 0755));
    SBX_ASSIGN_OR_RETURN(api_, ApiServer::Bind(config_));
    SBX_TRY(sys::MakeDirs(config_.state_dir, 0700));
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
        config_.runtime_path.empty() ? DefaultRuntimePath(bin_dir) : config_.runtime_path;
    runtime.init_binary = sys::DirName(runtime.runtime_binary) + "/sbx-init";
    for (const auto& binary : {runtime.runtime_binary, runtime.init_binary}) {
      if (access(binary.c_str(), X_OK) != 0) {
        return Error::FailedPrecondition(
            Quote(binary) + " is missing; install it, or name sbx-runtime in runtime_path");
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

    response_memory_ =
        std::make_unique<ByteBudget>(config_.response_memory, config_.response_memory_per_tenant);
    ApiDependencies deps;
    deps.manager = manager_.get();
    deps.images = images_.get();
    deps.metrics = &metrics_;
    deps.network = network_.get();
    deps.response_memory = response_memory_.get();
    deps.cgroup_version = layout.version;
    SBX_TRY(api_->Serve(deps));
    if (!config_.metrics_listen.empty()) {
      SBX_TRY(http_.Start(config_.metrics_listen, [this] { return metrics_.Render(); }));
    }
    // The ports actually bound: a configured port 0 takes any free one.
    SBX_LOG_INFO("sbxd serving unix={} tcp={} metrics={} runner={}", config_.listen_unix,
                 config_.listen_tcp.empty() ? "off" : std::to_string(api_->tcp_port()),
                 config_.metrics_listen.empty() ? "off" : std::to_string(http_.port()),
                 config_.runner_id);
    return Ok();
  }

  void Shutdown() override {
    if (stopped_) return;
    stopped_ = true;
    if (api_) api_->Shutdown();
    http_.Stop();
    if (manager_) manager_->Shutdown();
    if (runtime_) runtime_->Stop();
    favor_migrations_.Release();
    SBX_LOG_INFO("sbxd stopped; sandboxes keep running");
  }

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
    ConnectionCounts conns = api_->connections();
    out += "# TYPE sbx_api_connections gauge\n";
    out += "sbx_api_connections{transport=\"unix\"} " + std::to_string(conns.local) + "\n";
    out += "sbx_api_connections{transport=\"tcp\"} " + std::to_string(conns.remote) + "\n";
    out += "# TYPE sbx_api_connections_refused_total counter\n";
    out += "sbx_api_connections_refused_total{transport=\"unix\"} " +
           std::to_string(conns.refused_local) + "\n";
    out += "sbx_api_connections_refused_total{transport=\"tcp\"} " +
           std::to_string(conns.refused_remote) + "\n";
    out += "# TYPE sbx_response_memory_bytes gauge\nsbx_response_memory_bytes " +
           std::to_string(response_memory_->in_use()) + "\n";
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
  std::unique_ptr<ByteBudget> response_memory_;
  std::unique_ptr<ApiServer> api_;
  runtime::FavorMigrations favor_migrations_;
  HttpServer http_;
  bool stopped_ = false;
};

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::Create(Config config) {
  return std::unique_ptr<Daemon>(new DaemonImpl(std::move(config)));
}

}  // namespace sbx::daemon
