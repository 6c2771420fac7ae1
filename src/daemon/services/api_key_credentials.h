// File: api_key_credentials.h
//
// Server credentials for sbxd's remote (TCP) side, plain or TLS, that check a request's API key
// on its metadata, before gRPC reads the request's body. A request without a valid key is
// answered UNAUTHENTICATED, and one without the operator right for an operator method
// (auth.h) PERMISSION_DENIED, as soon as its headers arrive: gRPC then resets the stream and
// whatever body the client sends is dropped unread, so an unauthenticated client cannot make
// sbxd buffer a message.
//
// grpc::ServerCredentials offers an AuthMetadataProcessor only for TLS; these credentials
// build gRPC's core credentials themselves, so plain TCP gets the same check.
//
//   auto creds = ApiKeyServerCredentials(&remote_auth, tls);   // tls: nullopt for plain TCP
//   builder.experimental().AddExternalConnectionAcceptor(kFromFd, creds);

#pragma once

#include <memory>
#include <optional>
#include <string>

#include <grpcpp/security/server_credentials.h>

#include "src/daemon/services/auth.h"

namespace sbx::daemon {

struct TlsKeyPair {
  std::string cert_chain;   // PEM
  std::string private_key;  // PEM
};

// `auth` (the remote side's) must outlive every server built with the credentials.
std::shared_ptr<grpc::ServerCredentials> ApiKeyServerCredentials(
    const Authenticator* auth, std::optional<TlsKeyPair> tls = std::nullopt);

}  // namespace sbx::daemon
