#include "src/daemon/services/call_scope.h"

#include <mutex>
#include <string>
#include <unordered_map>

#include "src/base/strings.h"
#include "src/daemon/services/status_mapping.h"

namespace sbx::daemon {

namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

// Resources held for calls in progress, by the call's context.
struct Registry {
  std::mutex mu;
  std::unordered_map<const grpc::ServerContextBase*, std::vector<std::shared_ptr<void>>> calls;
};

Registry& Calls() {
  static auto* registry = new Registry();
  return *registry;
}

class CallScopeInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit CallScopeInterceptor(ServerRpcInfo* info)
      : context_(info->server_context()),
        method_(info->method()),
        single_request_(info->type() == ServerRpcInfo::Type::UNARY ||
                        info->type() == ServerRpcInfo::Type::SERVER_STREAMING) {
    Registry& registry = Calls();
    std::lock_guard lock(registry.mu);
    registry.calls[context_];
  }

  // The call is over: its response went out (or never will).
  ~CallScopeInterceptor() override {
    std::vector<std::shared_ptr<void>> released;
    {
      Registry& registry = Calls();
      std::lock_guard lock(registry.mu);
      auto it = registry.calls.find(context_);
      if (it != registry.calls.end()) {
        released = std::move(it->second);
        registry.calls.erase(it);
      }
    }
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    // A unary or server-streaming request is parsed before the handler runs; when parsing fails
    // gRPC hands no message and answers a bare INTERNAL.
    if (single_request_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE)) {
      unparsed_ = methods->GetRecvMessage() == nullptr;
    }
    if (unparsed_ && methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      std::string name(method_);
      name = name.substr(name.rfind('/') + 1);
      methods->ModifySendStatus(ToGrpcStatus(
          Error::InvalidArgument("the " + name +
                                 " request could not be parsed: a string field is not valid "
                                 "UTF-8, or the message is malformed")
              .WithReason("CWSANDBOX_INVALID_REQUEST")));
    }
    methods->Proceed();
  }

 private:
  const grpc::ServerContextBase* context_;
  const char* method_;
  bool single_request_;
  bool unparsed_ = false;
};

class CallScopeFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(ServerRpcInfo* info) override {
    return new CallScopeInterceptor(info);
  }
};

}  // namespace

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
CallScopeInterceptors() {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> out;
  out.push_back(std::make_unique<CallScopeFactory>());
  return out;
}

bool HoldUntilCallEnds(const grpc::ServerContextBase* context, std::shared_ptr<void> resource) {
  Registry& registry = Calls();
  std::lock_guard lock(registry.mu);
  auto it = registry.calls.find(context);
  if (it == registry.calls.end()) return false;
  it->second.push_back(std::move(resource));
  return true;
}

}  // namespace sbx::daemon
