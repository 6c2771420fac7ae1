// File: secrets.h
//
// Secrets are resolved by the daemon from a configured store and injected as environment
// variables. A store is a directory under `secrets_dir`; a secret is a file in it (its content is
// the value) or, when a field is named, a JSON object whose field is the value. Values never
// appear in logs, errors or status; errors name only the store, secret and field.

#pragma once

#include <string>
#include <utility>
#include <vector>

#include "src/base/result.h"
#include "src/daemon/sandbox_record.h"

namespace sbx::daemon {

// (env_var, value) pairs, or INVALID_ARGUMENT naming the first missing secret.
Result<std::vector<std::pair<std::string, std::string>>> ResolveSecrets(
    const std::string& secrets_dir, const std::vector<SecretRef>& refs);

}  // namespace sbx::daemon
