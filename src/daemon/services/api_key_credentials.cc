#include "src/daemon/services/api_key_credentials.h"

#include <string_view>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

namespace sbx::daemon {

namespace {

std::string_view View(const grpc_slice& slice) {
  // JUSTIFICATION: a slice's bytes are uint8_t; metadata keys and values are text.
  return {reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(slice)), GRPC_SLICE_LENGTH(slice)};
}

// gRPC core calls this with a request's metadata, before the request's body is read.
void ProcessMetadata(void* state, grpc_auth_context*, const grpc_metadata* md, size_t count,
                     grpc_process_auth_metadata_done_cb done, void* user_data) {
  const auto* auth = static_cast<const Authenticator*>(state);
  auto lookup = [md, count](std::string_view key) -> std::optional<std::string> {
    for (size_t i = 0; i < count; ++i) {
      if (View(md[i].key) == key) return std::string(View(md[i].value));
    }
    return std::nullopt;
  };
  auto caller = auth->Identify(lookup);
  if (!caller) {
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_UNAUTHENTICATED,
         caller.error().message().c_str());
    return;
  }
  std::optional<std::string> method = lookup(":path");
  if (method && IsOperatorMethod(*method) && !caller->is_operator) {
    std::string message = OperatorRequired(*caller).message();
    done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_PERMISSION_DENIED, message.c_str());
    return;
  }
  done(user_data, nullptr, 0, nullptr, 0, GRPC_STATUS_OK, nullptr);
}

class ApiKeyCredentials final : public grpc::ServerCredentials {
 public:
  ApiKeyCredentials(const Authenticator* auth, std::optional<TlsKeyPair> tls)
      : auth_(auth), tls_(std::move(tls)) {}

  // The check is built in; another processor would replace it.
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {}

 private:
  int AddPortToServer(const std::string& address, grpc_server* server) override {
    grpc_server_credentials* creds = nullptr;
    if (tls_) {
      grpc_ssl_pem_key_cert_pair pair{tls_->private_key.c_str(), tls_->cert_chain.c_str()};
      creds = grpc_ssl_server_credentials_create_ex(
          nullptr, &pair, 1, GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, nullptr);
    } else {
      creds = grpc_insecure_server_credentials_create();
    }
    if (creds == nullptr) return 0;
    // SECURITY: requests are authenticated on their headers; no body is read before.
    grpc_server_credentials_set_auth_metadata_processor(
        creds, {ProcessMetadata, nullptr, const_cast<Authenticator*>(auth_)});
    int port = grpc_server_add_http2_port(server, address.c_str(), creds);
    grpc_server_credentials_release(creds);
    return port;
  }

  const Authenticator* auth_;
  std::optional<TlsKeyPair> tls_;
};

}  // namespace

std::shared_ptr<grpc::ServerCredentials> ApiKeyServerCredentials(const Authenticator* auth,
                                                                 std::optional<TlsKeyPair> tls) {
  return std::make_shared<ApiKeyCredentials>(auth, std::move(tls));
}

}  // namespace sbx::daemon
