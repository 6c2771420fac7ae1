#include "src/net/nftables.h"

#include <nftables/libnftables.h>

#include "src/base/strings.h"

namespace sbx::net {

namespace {

std::string FirstLines(const std::string& text, size_t max_lines) {
  std::string out;
  size_t lines = 0;
  for (const auto& line : Split(text, '\n')) {
    if (line.empty()) continue;
    if (++lines > max_lines) {
      out += " ...";
      break;
    }
    if (!out.empty()) out += "; ";
    out += line;
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Nftables>> Nftables::Open() {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr) return Error::Internal("cannot create an nftables context");
  if (nft_ctx_buffer_output(ctx) != 0 || nft_ctx_buffer_error(ctx) != 0) {
    nft_ctx_free(ctx);
    return Error::Internal("cannot buffer nftables output");
  }
  return std::unique_ptr<Nftables>(new Nftables(ctx));
}

Nftables::~Nftables() { nft_ctx_free(ctx_); }

Status Nftables::Run(const std::string& commands) {
  std::lock_guard lock(mu_);
  int rc = nft_run_cmd_from_buffer(ctx_, commands.c_str());
  std::string errors = nft_ctx_get_error_buffer(ctx_);
  (void)nft_ctx_get_output_buffer(ctx_);
  if (rc != 0) {
    return Error::Internal("nftables: " +
                           (errors.empty() ? "commit failed" : FirstLines(errors, 6)));
  }
  return Ok();
}

Result<std::string> Nftables::Query(const std::string& command) {
  std::lock_guard lock(mu_);
  int rc = nft_run_cmd_from_buffer(ctx_, command.c_str());
  std::string errors = nft_ctx_get_error_buffer(ctx_);
  std::string output = nft_ctx_get_output_buffer(ctx_);
  if (rc != 0) return Error::NotFound("nftables: " + FirstLines(errors, 6));
  return output;
}

}  // namespace sbx::net
