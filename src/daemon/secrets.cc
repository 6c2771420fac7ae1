#include "src/daemon/secrets.h"

#include <fcntl.h>

#include <nlohmann/json.hpp>

#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::daemon {

namespace {

bool SafeName(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

}  // namespace

Result<std::vector<std::pair<std::string, std::string>>> ResolveSecrets(
    const std::string& secrets_dir, const std::vector<SecretRef>& refs) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& ref : refs) {
    std::string what = "secret " + Quote(ref.name) + " in store " + Quote(ref.store);
    if (!SafeName(ref.store) || !SafeName(ref.name)) {
      return Error::InvalidArgument(what + ": names may only use letters, digits, '-', '_' and '.'")
          .WithMetadata("field", "secrets");
    }
    if (ref.env_var.empty()) return Error::InvalidArgument(what + ": no env_var to put it in");
    auto root = sys::Open(secrets_dir, O_PATH | O_DIRECTORY);
    if (!root) return Error::InvalidArgument(what + " not found (no secret store configured)");
    auto fd = sys::OpenInRoot(root->get(), ref.store + "/" + ref.name, O_RDONLY);
    if (!fd) return Error::InvalidArgument(what + " not found");
    SBX_ASSIGN_OR_RETURN(std::string value, sys::ReadFd(fd->get(), 1u << 20));
    if (!ref.field.empty()) {
      auto j = nlohmann::json::parse(value, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains(ref.field) ||
          !j[ref.field].is_string()) {
        return Error::InvalidArgument(what + " has no string field " + Quote(ref.field));
      }
      value = j[ref.field].get<std::string>();
    } else if (!value.empty() && value.back() == '\n') {
      value.pop_back();
    }
    // A NUL would cut the variable short where it reaches the process.
    if (value.find('\0') != std::string::npos) {
      return Error::InvalidArgument(what +
                                    " contains a NUL byte; it cannot be an environment "
                                    "variable's value");
    }
    out.emplace_back(ref.env_var, value);
  }
  return out;
}

}  // namespace sbx::daemon
