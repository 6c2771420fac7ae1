#include "src/image/config.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "src/base/strings.h"
#include "src/image/digest.h"
#include "src/image/manifest.h"
#include "src/image/platform.h"

namespace sbx::image {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxListEntries = 4096;
constexpr size_t kMaxStringBytes = 1u << 20;

// Strings or null; Docker's strslice also accepts a single string.
// Strings of an image config end up in a process's argv, environment, working directory or
// user: a NUL byte would cut them short there.
Status CheckText(const std::string& s, const char* key) {
  if (s.size() > kMaxStringBytes) {
    return Error::ResourceExhausted(std::string("config: ") + key + " entry too long");
  }
  if (s.find('\0') != std::string::npos) {
    return Error::InvalidArgument(std::string("config: ") + key + " contains a NUL byte");
  }
  return Ok();
}

Result<std::vector<std::string>> StringList(const Json& obj, const char* key) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return out;
  if (it->is_string()) {
    SBX_TRY(CheckText(it->get_ref<const std::string&>(), key));
    out.push_back(it->get<std::string>());
    return out;
  }
  if (!it->is_array())
    return Error::InvalidArgument(std::string("config: ") + key + " is not a list");
  if (it->size() > kMaxListEntries) {
    return Error::ResourceExhausted(std::string("config: ") + key + " has too many entries");
  }
  for (const auto& v : *it) {
    if (!v.is_string()) {
      return Error::InvalidArgument(std::string("config: ") + key + " has a non-string entry");
    }
    const auto& s = v.get_ref<const std::string&>();
    SBX_TRY(CheckText(s, key));
    out.push_back(s);
  }
  return out;
}

Result<std::string> String(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string())
    return Error::InvalidArgument(std::string("config: ") + key + " is not a string");
  SBX_TRY(CheckText(it->get_ref<const std::string&>(), key));
  return it->get<std::string>();
}

bool ParseFixed(std::string_view s, size_t pos, size_t len, int* out) {
  if (pos + len > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::string EnvKey(std::string_view entry) {
  size_t eq = entry.find('=');
  return std::string(entry.substr(0, eq));
}

}  // namespace

std::optional<int64_t> ParseRfc3339(std::string_view s) {
  int year, month, day, hour, minute, second;
  if (!ParseFixed(s, 0, 4, &year) || s.size() < 19 || s[4] != '-' || !ParseFixed(s, 5, 2, &month) ||
      s[7] != '-' || !ParseFixed(s, 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !ParseFixed(s, 11, 2, &hour) || s[13] != ':' || !ParseFixed(s, 14, 2, &minute) ||
      s[16] != ':' || !ParseFixed(s, 17, 2, &second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
  }
  int64_t offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!ParseFixed(s, pos + 1, 2, &oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !ParseFixed(s, pos + 4, 2, &om)) {
      return std::nullopt;
    }
    offset = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  int64_t days = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  return days * 86400 + hour * 3600 + minute * 60 + second - offset;
}

Result<ParsedConfig> ParseImageConfig(std::string_view text) {
  if (text.size() > kMaxConfigBytes) {
    return Error::ResourceExhausted("image config larger than " + std::to_string(kMaxConfigBytes) +
                                    " bytes");
  }
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error::InvalidArgument("image config is not a JSON object");
  }
  ParsedConfig out;
  ImageConfig& c = out.config;
  SBX_ASSIGN_OR_RETURN(c.os, String(j, "os"));
  SBX_ASSIGN_OR_RETURN(c.architecture, String(j, "architecture"));
  SBX_ASSIGN_OR_RETURN(c.variant, String(j, "variant"));
  if (!c.architecture.empty()) {
    Platform p = Platform::Normalize(c.os, c.architecture, c.variant);
    c.architecture = p.architecture;
    c.variant = p.variant;
  }
  SBX_ASSIGN_OR_RETURN(std::string created, String(j, "created"));
  if (!created.empty()) out.created_unix = ParseRfc3339(created).value_or(0);

  auto cfg = j.find("config");
  if (cfg != j.end() && !cfg->is_null()) {
    if (!cfg->is_object()) return Error::InvalidArgument("config: \"config\" is not an object");
    SBX_ASSIGN_OR_RETURN(c.env, StringList(*cfg, "Env"));
    SBX_ASSIGN_OR_RETURN(c.entrypoint, StringList(*cfg, "Entrypoint"));
    SBX_ASSIGN_OR_RETURN(c.cmd, StringList(*cfg, "Cmd"));
    SBX_ASSIGN_OR_RETURN(c.working_dir, String(*cfg, "WorkingDir"));
    SBX_ASSIGN_OR_RETURN(c.user, String(*cfg, "User"));
    auto ports = cfg->find("ExposedPorts");
    if (ports != cfg->end() && ports->is_object()) {
      if (ports->size() > kMaxListEntries) {
        return Error::ResourceExhausted("config: too many exposed ports");
      }
      for (const auto& item : ports->items()) c.exposed_ports.push_back(item.key());
      std::sort(c.exposed_ports.begin(), c.exposed_ports.end());
    }
  }

  auto rootfs = j.find("rootfs");
  if (rootfs == j.end() || !rootfs->is_object()) {
    return Error::InvalidArgument("config: missing rootfs");
  }
  SBX_ASSIGN_OR_RETURN(std::string type, String(*rootfs, "type"));
  if (type != "layers") return Error::InvalidArgument("config: rootfs type is not \"layers\"");
  SBX_ASSIGN_OR_RETURN(out.diff_ids, StringList(*rootfs, "diff_ids"));
  if (out.diff_ids.size() > kMaxLayers) {
    return Error::ResourceExhausted("config: more than " + std::to_string(kMaxLayers) + " layers");
  }
  for (const auto& id : out.diff_ids) SBX_TRY_CTX(ValidateDigest(id), "config: diff_id");
  return out;
}

ProcessSpec ResolveProcess(const ImageConfig& image, const Overrides& overrides) {
  ProcessSpec spec;
  if (overrides.command) {
    spec.argv = *overrides.command;
    if (overrides.args)
      spec.argv.insert(spec.argv.end(), overrides.args->begin(), overrides.args->end());
  } else {
    spec.argv = image.entrypoint;
    const auto& tail = overrides.args ? *overrides.args : image.cmd;
    spec.argv.insert(spec.argv.end(), tail.begin(), tail.end());
  }

  spec.env = image.env;
  for (const auto& entry : overrides.env) {
    std::string key = EnvKey(entry);
    bool unset = entry.find('=') == std::string::npos;
    auto it = std::find_if(spec.env.begin(), spec.env.end(),
                           [&](const std::string& e) { return EnvKey(e) == key; });
    if (unset) {
      if (it != spec.env.end()) spec.env.erase(it);
    } else if (it != spec.env.end()) {
      *it = entry;
    } else {
      spec.env.push_back(entry);
    }
  }
  bool has_path = std::any_of(spec.env.begin(), spec.env.end(),
                              [](const std::string& e) { return EnvKey(e) == "PATH"; });
  if (!has_path) spec.env.insert(spec.env.begin(), std::string(kDefaultPath));

  spec.cwd = !overrides.working_dir.empty() ? overrides.working_dir : image.working_dir;
  if (spec.cwd.empty()) spec.cwd = "/";
  if (spec.cwd.front() != '/') spec.cwd = "/" + spec.cwd;
  spec.user = !overrides.user.empty() ? overrides.user : image.user;
  return spec;
}

}  // namespace sbx::image
