// File: create_request_parser.h
//
// The edge of the API: a CreateSandboxRequest becomes a CreateRequest, checked once, here.
// Errors are INVALID_ARGUMENT (or UNIMPLEMENTED for what sbx does not offer) and name the request
// field (AIP-193 BadRequest through FieldError), so nothing below the services parses a request
// again.

#pragma once

#include <string>
#include <vector>

#include "coreweave/sandbox/v1/sandbox.pb.h"
#include "src/base/result.h"
#include "src/daemon/config.h"
#include "src/daemon/sandbox_record.h"

namespace sbx::daemon {

namespace v1 = ::coreweave::sandbox::v1;

Result<CreateRequest> ParseCreateRequest(const v1::CreateSandboxRequest& request,
                                         const Config& config);

// An environment variable's name: non-empty, at most 1024 bytes, no '=' or NUL.
bool ValidEnvName(const std::string& name);

// An exec's command line and environment as sbx-init takes them.
struct ExecProcess {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // "KEY=value"
};

// Checks an Exec's or StreamExec's command and env; errors name the field under `prefix` ("" or
// "init."). A NUL byte anywhere would silently cut an argument or a variable short where it
// reaches the process, so it is INVALID_ARGUMENT.
Result<ExecProcess> ParseExecProcess(const google::protobuf::RepeatedPtrField<std::string>& command,
                                     const google::protobuf::Map<std::string, std::string>& env,
                                     const std::string& prefix);

}  // namespace sbx::daemon
