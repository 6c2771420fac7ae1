// File: call_scope.h
//
// What lives as long as one gRPC call, kept by a server interceptor that every sbxd server
// installs (CallScopeInterceptors()):
//
//   * a request gRPC could not parse (a string field that is not UTF-8, or a malformed message)
//     is answered INVALID_ARGUMENT naming the method, not gRPC's bare INTERNAL;
//   * what a handler hands to HoldUntilCallEnds is released when the call is over, after its
//     response has been sent, not when the handler returns: gRPC serializes and sends a unary
//     response after that, so memory accounted for a response must stay accounted until then.
//
//   auto reservation = budget.Acquire(tenant, bytes, deadline);
//   HoldUntilCallEnds(context, std::make_shared<ByteBudget::Reservation>(std::move(*reservation)));

#pragma once

#include <memory>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

namespace sbx::daemon {

// The interceptor factories to register on a server (ServerBuilder::experimental()
// .SetInterceptorCreators).
std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
CallScopeInterceptors();

// Keeps `resource` until the call of `context` ends. Returns false, leaving `resource` with the
// caller, when the server has no call-scope interceptor.
bool HoldUntilCallEnds(const grpc::ServerContextBase* context, std::shared_ptr<void> resource);

}  // namespace sbx::daemon
