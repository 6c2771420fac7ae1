#include "src/daemon/api_server.h"

#include <grp.h>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include "src/base/log.h"
#include "src/base/strings.h"
#include "src/daemon/api_listener.h"
#include "src/daemon/services/api_key_credentials.h"
#include "src/daemon/services/archive_service.h"
#include "src/daemon/services/auth.h"
#include "src/daemon/services/call_scope.h"
#include "src/daemon/services/discovery_service.h"
#include "src/daemon/services/image_service.h"
#include "src/daemon/services/lifetime_service.h"
#include "src/daemon/services/sandbox_service.h"
#include "src/daemon/services/system_service.h"
#include "src/daemon/services/usage_service.h"
#include "src/sys/fs.h"

namespace sbx::daemon {

namespace {

constexpr int kKeepaliveTimeMs = 60000;
constexpr int kMaxResponseBytes = 100 << 20;
constexpr int kKeepaliveTimeoutMs = 20000;

// One side's services, bound to that side's authenticator.
struct ServiceSet {
  ServiceSet(const Config& config, const ApiDependencies& deps, ApiSide side)
      : auth(config, side),
        sandbox(deps.manager, &auth, deps.metrics, deps.network, deps.response_memory),
        discovery(deps.manager, &auth),
        system(deps.manager, &auth, deps.cgroup_version),
        images(deps.images, &auth, deps.manager),
        archive(deps.manager, &auth),
        lifetime(deps.manager, &auth),
        usage(deps.manager, &auth) {}

  void RegisterOn(grpc::ServerBuilder& builder) {
    builder.RegisterService(&sandbox);
    builder.RegisterService(&discovery);
    builder.RegisterService(&system);
    builder.RegisterService(&images);
    builder.RegisterService(&archive);
    builder.RegisterService(&lifetime);
    builder.RegisterService(&usage);
  }

  Authenticator auth;
  SandboxService sandbox;
  DiscoveryService discovery;
  SystemService system;
  ImageService images;
  ArchiveService archive;
  LifetimeService lifetime;
  UsageService usage;
};

using FromFd = grpc::ServerBuilder::experimental_type::ExternalConnectionType;

class ApiServerImpl final : public ApiServer {
 public:
  explicit ApiServerImpl(Config config) : config_(std::move(config)) {}
  ~ApiServerImpl() override { Shutdown(); }

  Status Bind() {
    const Config& config = config_;
    ApiListener::Options options;
    options.unix_path = config.listen_unix;
    options.unix_mode = config.unix_socket_mode;
    if (!config.unix_socket_group.empty()) {
      group* g = getgrnam(config.unix_socket_group.c_str());
      if (g == nullptr) return Error::InvalidArgument("unknown group " + config.unix_socket_group);
      options.unix_gid = g->gr_gid;
    }
    options.tcp_address = config.listen_tcp;
    options.tcp_max_connections = static_cast<size_t>(config.tcp_max_connections);
    options.tcp_max_connections_per_client =
        static_cast<size_t>(config.tcp_max_connections_per_client);
    SBX_TRY(sys::MakeDirs(sys::DirName(config.listen_unix), 0755));
    SBX_ASSIGN_OR_RETURN(listener_, ApiListener::Listen(options));
    return Ok();
  }

  Status Serve(const ApiDependencies& deps) override {
    const Config& config = config_;
    local_services_ = std::make_unique<ServiceSet>(config, deps, ApiSide::kLocal);
    remote_services_ = std::make_unique<ServiceSet>(config, deps, ApiSide::kRemote);
    int max_message = MaxRequestBytes(config);
    {
      grpc::ServerBuilder builder;
      Common(builder, max_message);
      local_acceptor_ = builder.experimental().AddExternalConnectionAcceptor(
          FromFd::FROM_FD, grpc::InsecureServerCredentials());
      local_services_->RegisterOn(builder);
      local_ = builder.BuildAndStart();
      if (!local_) return Error::Internal("could not start the local gRPC server");
    }
    if (!config.listen_tcp.empty()) {
      std::optional<TlsKeyPair> tls;
      if (!config.tls_cert.empty()) {
        TlsKeyPair pair;
        SBX_ASSIGN_OR_RETURN(pair.cert_chain, sys::ReadFile(config.tls_cert));
        SBX_ASSIGN_OR_RETURN(pair.private_key, sys::ReadFile(config.tls_key));
        tls = std::move(pair);
      }
      grpc::ServerBuilder builder;
      Common(builder, max_message);
      builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                                 config.tcp_handshake_timeout_seconds * 1000);
      builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                                 config.tcp_idle_timeout_seconds * 1000);
      builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
      builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
      remote_acceptor_ = builder.experimental().AddExternalConnectionAcceptor(
          FromFd::FROM_FD, ApiKeyServerCredentials(&remote_services_->auth, std::move(tls)));
      remote_services_->RegisterOn(builder);
      remote_ = builder.BuildAndStart();
      if (!remote_) return Error::Internal("could not start the remote gRPC server");
    }
    listener_->Start(local_acceptor_.get(), remote_acceptor_.get());
    return Ok();
  }

  void Shutdown() override {
    if (stopped_) return;
    stopped_ = true;
    if (listener_) listener_->Stop();
    // Running calls get a moment to finish; streams still open after that are cancelled.
    auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(5);
    if (remote_) remote_->Shutdown(deadline);
    if (local_) local_->Shutdown(deadline);
  }

  int tcp_port() const override { return listener_ ? listener_->tcp_port() : 0; }
  ConnectionLimits connection_limits() const override {
    return listener_ ? listener_->limits() : ConnectionLimits{};
  }
  ConnectionCounts connections() const override {
    return listener_ ? listener_->Counts() : ConnectionCounts{};
  }

 private:
  static void Common(grpc::ServerBuilder& builder, int max_message) {
    builder.SetMaxReceiveMessageSize(max_message);
    // What the clients accept (wire-v1: 100 MiB); an Exec's output may exceed a file's size.
    builder.SetMaxSendMessageSize(kMaxResponseBytes);
    // sbxd binds its sockets itself, without SO_REUSEPORT; nothing gRPC binds may share either.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.experimental().SetInterceptorCreators(CallScopeInterceptors());
  }

  Config config_;
  std::unique_ptr<ServiceSet> local_services_;
  std::unique_ptr<ServiceSet> remote_services_;
  std::unique_ptr<ApiListener> listener_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> local_acceptor_;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> remote_acceptor_;
  std::unique_ptr<grpc::Server> local_;
  std::unique_ptr<grpc::Server> remote_;
  bool stopped_ = false;
};

}  // namespace

int MaxRequestBytes(const Config& config) {
  // A WriteFile's envelope, and room for one a little over the limit to be told so plainly
  // (CWSANDBOX_FILE_TOO_LARGE) rather than by gRPC's bare RESOURCE_EXHAUSTED.
  return static_cast<int>(config.max_file_bytes + (4u << 20));
}

Result<std::unique_ptr<ApiServer>> ApiServer::Bind(const Config& config) {
  auto server = std::make_unique<ApiServerImpl>(config);
  SBX_TRY(server->Bind());
  return std::unique_ptr<ApiServer>(std::move(server));
}

}  // namespace sbx::daemon
