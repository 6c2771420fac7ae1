#include "src/cli/format.h"

#include <time.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "src/base/strings.h"

namespace sbx::cli {

namespace {

bool IsEnvName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c == '=' || c == '\0') return false;
  }
  return true;
}

// Digits at `text[*pos]`, at least `min` and at most `max` of them.
std::optional<int> Digits(std::string_view text, size_t* pos, size_t min, size_t max) {
  size_t start = *pos;
  int value = 0;
  while (*pos < text.size() && *pos - start < max &&
         isdigit(static_cast<unsigned char>(text[*pos]))) {
    value = value * 10 + (text[*pos] - '0');
    ++*pos;
  }
  if (*pos - start < min) return std::nullopt;
  return value;
}

bool Expect(std::string_view text, size_t* pos, char c) {
  if (*pos < text.size() &&
      (text[*pos] == c || toupper(static_cast<unsigned char>(text[*pos])) == c)) {
    ++*pos;
    return true;
  }
  return false;
}

std::optional<int> ParsePort(std::string_view text) {
  auto port = ParseUint64(text);
  if (!port || *port == 0 || *port > 65535) return std::nullopt;
  return static_cast<int>(*port);
}

// The characters sbxd allows in a secret store's and a secret's name.
bool IsSecretName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

bool IsIpv4Cidr(std::string_view text) {
  std::string_view address = text;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    auto length = ParseUint64(text.substr(slash + 1));
    if (!length || *length > 32) return false;
    address = text.substr(0, slash);
  }
  auto octets = Split(address, '.');
  if (octets.size() != 4) return false;
  return std::all_of(octets.begin(), octets.end(), [](const std::string& octet) {
    auto value = ParseUint64(octet);
    return value && *value <= 255 && octet.size() <= 3;
  });
}

bool IsDnsPattern(std::string_view name) {
  if (StartsWith(name, "*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  bool letter = false;
  for (char c : name) {
    if (isalpha(static_cast<unsigned char>(c))) letter = true;
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') return false;
  }
  return letter && name.find("..") == std::string_view::npos;
}

}  // namespace

Result<ServicePort> ParsePublish(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Error::InvalidArgument("--publish " + Quote(text) + ": " + why +
                                  " (use [public:]PORT[/tcp|/udp|/sctp], e.g. 8080 or "
                                  "public:53/udp)");
  };
  ServicePort service;
  std::string_view rest = text;
  if (StartsWith(rest, "public:")) {
    service.visibility = Visibility::kPublic;
    rest.remove_prefix(7);
  } else if (StartsWith(rest, "private:")) {
    rest.remove_prefix(8);
  }
  service.protocol = "tcp";
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    service.protocol = std::string(rest.substr(slash + 1));
    rest = rest.substr(0, slash);
    if (service.protocol != "tcp" && service.protocol != "udp" && service.protocol != "sctp") {
      return bad("the protocol is tcp, udp or sctp");
    }
  }
  auto port = ParsePort(rest);
  if (!port) {
    // Docker's HOST:CONTAINER form: sbxd chooses the host port.
    if (rest.find(':') != std::string_view::npos) {
      return bad("sbxd chooses the host port; give the sandbox's port only");
    }
    return bad("the port is a number from 1 to 65535");
  }
  service.port = *port;
  return service;
}

Result<SecretRef> ParseSecret(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Error::InvalidArgument("--secret " + Quote(text) + ": " + why +
                                  " (use [STORE/]NAME[:FIELD][=ENV_VAR], e.g. team/HF_TOKEN)");
  };
  SecretRef secret;
  std::string_view rest = text;
  if (size_t eq = rest.find('='); eq != std::string_view::npos) {
    secret.env_var = std::string(rest.substr(eq + 1));
    rest = rest.substr(0, eq);
    if (secret.env_var.empty()) return bad("the variable's name is empty");
  }
  if (size_t colon = rest.find(':'); colon != std::string_view::npos) {
    secret.field = std::string(rest.substr(colon + 1));
    rest = rest.substr(0, colon);
    if (secret.field.empty()) return bad("the field is empty");
  }
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    secret.store = std::string(rest.substr(0, slash));
    rest = rest.substr(slash + 1);
    if (!IsSecretName(secret.store)) {
      return bad("a store's name is letters, digits, '-', '_' and '.'");
    }
  }
  if (!IsSecretName(rest)) return bad("a secret's name is letters, digits, '-', '_' and '.'");
  secret.name = std::string(rest);
  if (secret.env_var.empty()) secret.env_var = secret.name;
  return secret;
}

Result<EgressRule> ParseEgress(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Error::InvalidArgument("--egress " + Quote(text) + ": " + why +
                                  " (use any, a CIDR or a DNS name, optionally with "
                                  ":PORT[-END][/tcp|/udp], e.g. pypi.org or 203.0.113.0/24:80)");
  };
  if (std::count(text.begin(), text.end(), ':') > 1) {
    return bad("sandboxes have no IPv6, so an IPv6 destination cannot be allowed");
  }
  EgressRule rule;
  std::string_view destination = text;
  if (size_t colon = text.find(':'); colon != std::string_view::npos) {
    destination = text.substr(0, colon);
    std::string_view ports = text.substr(colon + 1);
    EgressRule::Ports range;
    if (size_t slash = ports.find('/'); slash != std::string_view::npos) {
      range.protocol = std::string(ports.substr(slash + 1));
      ports = ports.substr(0, slash);
      if (range.protocol != "tcp" && range.protocol != "udp") {
        return bad("the protocol is tcp or udp");
      }
    }
    std::string_view first = ports;
    if (size_t dash = ports.find('-'); dash != std::string_view::npos) {
      first = ports.substr(0, dash);
      auto end = ParsePort(ports.substr(dash + 1));
      if (!end) return bad("a port is a number from 1 to 65535");
      range.end_port = *end;
    }
    auto port = ParsePort(first);
    if (!port) return bad("a port is a number from 1 to 65535");
    range.port = *port;
    if (range.end_port != 0 && range.end_port < range.port) {
      return bad("the port range ends before it starts");
    }
    rule.ports.push_back(range);
  }
  if (destination == "any") {
    rule.any = true;
  } else if (IsIpv4Cidr(destination)) {
    rule.cidr = std::string(destination);
    if (rule.cidr.find('/') == std::string::npos) rule.cidr += "/32";
  } else if (IsDnsPattern(destination)) {
    rule.dns_name = std::string(destination);
  } else {
    return bad("not an IPv4 CIDR or a DNS name");
  }
  return rule;
}

std::string FormatEgress(const EgressRule& rule) {
  std::string out = rule.any ? "any" : !rule.dns_name.empty() ? rule.dns_name : rule.cidr;
  std::vector<std::string> ports;
  for (const auto& p : rule.ports) {
    std::string range = p.port == 0 ? "*" : std::to_string(p.port);
    if (p.end_port != 0 && p.end_port != p.port) range += "-" + std::to_string(p.end_port);
    if (!p.protocol.empty()) range += "/" + p.protocol;
    ports.push_back(range);
  }
  if (!ports.empty()) out += ":" + Join(ports, ",");
  if (!rule.except.empty()) out += " except " + Join(rule.except, ", ");
  return out;
}

std::string NetworkMode(const Sandbox& s) {
  if (s.deny_egress) return "none";
  bool open = s.egress.empty() ||
              (s.egress.size() == 1 && s.egress.front().any && s.egress.front().ports.empty());
  return open ? "default" : "egress";
}

Result<int64_t> ParseDuration(std::string_view text) {
  std::string_view t = Trim(text);
  if (t.empty()) return Error::InvalidArgument("empty duration");
  if (auto plain = ParseUint64(t)) return static_cast<int64_t>(*plain);
  int64_t total = 0;
  size_t pos = 0;
  while (pos < t.size()) {
    size_t start = pos;
    while (pos < t.size() && isdigit(static_cast<unsigned char>(t[pos]))) ++pos;
    if (pos == start || pos == t.size()) {
      return Error::InvalidArgument("invalid duration " + Quote(text) +
                                    " (use e.g. 90, 90s, 15m, 2h, 1d)");
    }
    auto number = ParseUint64(t.substr(start, pos - start));
    int64_t unit = 0;
    switch (t[pos]) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        return Error::InvalidArgument("invalid duration " + Quote(text) +
                                      " (use e.g. 90, 90s, 15m, 2h, 1d)");
    }
    ++pos;
    if (!number || *number > (1ull << 40)) return Error::InvalidArgument("duration too long");
    total += static_cast<int64_t>(*number) * unit;
  }
  return total;
}

Result<TimePoint> ParseSince(std::string_view text, TimePoint now) {
  if (auto ago = ParseDuration(text)) {
    // Further back than 1970 means everything; the clock's nanoseconds would overflow.
    auto back = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
    return *ago >= back.count() ? TimePoint() : now - std::chrono::seconds(*ago);
  }
  std::string_view t = Trim(text);
  size_t pos = 0;
  tm parts{};
  auto year = Digits(t, &pos, 4, 4);
  bool ok = year && Expect(t, &pos, '-');
  auto month = ok ? Digits(t, &pos, 2, 2) : std::nullopt;
  ok = month && Expect(t, &pos, '-');
  auto day = ok ? Digits(t, &pos, 2, 2) : std::nullopt;
  ok = day && (Expect(t, &pos, 'T') || Expect(t, &pos, ' '));
  auto hour = ok ? Digits(t, &pos, 2, 2) : std::nullopt;
  ok = hour && Expect(t, &pos, ':');
  auto minute = ok ? Digits(t, &pos, 2, 2) : std::nullopt;
  ok = minute && Expect(t, &pos, ':');
  auto second = ok ? Digits(t, &pos, 2, 2) : std::nullopt;
  if (!second) {
    return Error::InvalidArgument("invalid time " + Quote(text) +
                                  " (use RFC 3339, e.g. 2024-05-01T10:00:00Z, or a duration "
                                  "such as 10m)");
  }
  int64_t nanos = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    int64_t scale = 100000000;
    while (pos < t.size() && isdigit(static_cast<unsigned char>(t[pos]))) {
      nanos += (t[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
  }
  int64_t offset = 0;
  if (Expect(t, &pos, 'Z')) {
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    int sign = t[pos] == '-' ? -1 : 1;
    ++pos;
    auto oh = Digits(t, &pos, 2, 2);
    bool colon = Expect(t, &pos, ':');
    auto om = Digits(t, &pos, 2, 2);
    if (!oh || !om || !colon) return Error::InvalidArgument("invalid time zone in " + Quote(text));
    offset = sign * (*oh * 3600 + *om * 60);
  } else {
    return Error::InvalidArgument("the time " + Quote(text) + " needs a zone (Z or +hh:mm)");
  }
  if (pos != t.size()) return Error::InvalidArgument("junk after the time in " + Quote(text));
  // Times are nanoseconds since 1970 in 64 bits, which end in 2262.
  if (*year < 1970 || *year > 2200) {
    return Error::InvalidArgument("the time " + Quote(text) + " is not between 1970 and 2200");
  }
  parts.tm_year = *year - 1900;
  parts.tm_mon = *month - 1;
  parts.tm_mday = *day;
  parts.tm_hour = *hour;
  parts.tm_min = *minute;
  parts.tm_sec = *second;
  time_t secs = timegm(&parts);
  return TimePoint(std::chrono::seconds(secs - offset)) +
         std::chrono::duration_cast<TimePoint::duration>(std::chrono::nanoseconds(nanos));
}

Status CheckQuantity(std::string_view flag, std::string_view value, bool cpu) {
  // The form only (a number and a unit); sbxd checks the value against the node's limits.
  std::string_view t = Trim(value);
  size_t digits = 0;
  size_t dots = 0;
  size_t pos = 0;
  for (; pos < t.size(); ++pos) {
    if (isdigit(static_cast<unsigned char>(t[pos]))) {
      ++digits;
    } else if (t[pos] == '.') {
      ++dots;
    } else {
      break;
    }
  }
  std::string_view unit = t.substr(pos);
  static constexpr std::string_view kCpuUnits[] = {"", "m"};
  static constexpr std::string_view kMemoryUnits[] = {"",  "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
                                                      "k", "K",  "M",  "G",  "T",  "P",  "E"};
  bool known = false;
  if (cpu) {
    for (auto u : kCpuUnits) known = known || unit == u;
  } else {
    for (auto u : kMemoryUnits) known = known || unit == u;
  }
  bool whole = dots == 0 || (dots == 1 && unit != "m");
  bool positive = t.substr(0, pos).find_first_not_of("0.") != std::string_view::npos;
  if (digits == 0 || !whole || !known || !positive) {
    return Error::InvalidArgument(std::string(flag) + " takes a " + (cpu ? "CPU" : "memory") +
                                  " quantity such as " + (cpu ? "2, 0.5 or 500m" : "512Mi or 4Gi") +
                                  ", not " + Quote(value));
  }
  return Ok();
}

Result<std::optional<std::pair<std::string, std::string>>> ParseEnv(std::string_view text) {
  size_t eq = text.find('=');
  std::string name(text.substr(0, eq));
  if (!IsEnvName(name))
    return Error::InvalidArgument("invalid environment variable " + Quote(text));
  if (eq != std::string_view::npos) {
    return std::optional<std::pair<std::string, std::string>>(
        std::pair(name, std::string(text.substr(eq + 1))));
  }
  const char* value = getenv(name.c_str());
  if (value == nullptr) return std::optional<std::pair<std::string, std::string>>();
  return std::optional<std::pair<std::string, std::string>>(std::pair(name, std::string(value)));
}

std::optional<std::pair<std::string, std::string>> SplitSandboxPath(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  if (text.substr(0, colon).find('/') != std::string_view::npos) return std::nullopt;
  return std::pair(std::string(text.substr(0, colon)), std::string(text.substr(colon + 1)));
}

std::string FormatTime(TimePoint time) {
  return FormatUtc(
      std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count());
}

std::string FormatAge(TimePoint time, TimePoint now) {
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(now - time).count();
  if (secs < 0) secs = 0;
  auto plural = [](int64_t n, const char* unit) {
    return std::to_string(n) + " " + unit + (n == 1 ? "" : "s") + " ago";
  };
  if (secs < 60) return plural(secs, "second");
  if (secs < 3600) return plural(secs / 60, "minute");
  if (secs < 86400) return plural(secs / 3600, "hour");
  return plural(secs / 86400, "day");
}

std::string FormatExpiry(TimePoint expiry, TimePoint now) {
  auto left = std::chrono::duration_cast<std::chrono::seconds>(expiry - now);
  if (left.count() <= 0) return "due";
  return "in " + FormatDuration(left);
}

std::string FormatDuration(std::chrono::seconds length) {
  int64_t s = length.count();
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600)
    return std::to_string(s / 60) + "m" + (s % 60 ? " " + std::to_string(s % 60) + "s" : "");
  if (s < 86400)
    return std::to_string(s / 3600) + "h" +
           (s % 3600 >= 60 ? " " + std::to_string(s % 3600 / 60) + "m" : "");
  return std::to_string(s / 86400) + "d" +
         (s % 86400 >= 3600 ? " " + std::to_string(s % 86400 / 3600) + "h" : "");
}

std::string ShortDigest(const std::string& digest) {
  size_t colon = digest.find(':');
  if (colon == std::string::npos) return digest.substr(0, 12);
  return digest.substr(0, colon + 1 + 12);
}

std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

namespace {

// Where the quoted string ending at `close` (the index of its closing quote) opens, or npos.
size_t OpeningQuote(const std::string& text, size_t close) {
  for (size_t i = close; i-- > 0;) {
    if (text[i] != '"') continue;
    size_t backslashes = 0;
    for (size_t k = i; k > 0 && text[k - 1] == '\\'; --k) ++backslashes;
    if (backslashes % 2 == 0) return i;
  }
  return std::string::npos;
}

// `: ENAME (Description)` at `at`: the length of it and the description, or 0.
size_t ErrnoSuffix(const std::string& text, size_t at, std::string* description) {
  if (text.compare(at, 3, ": E") != 0) return 0;
  size_t i = at + 3;
  while (i < text.size() && (isupper(static_cast<unsigned char>(text[i])) ||
                             isdigit(static_cast<unsigned char>(text[i])))) {
    ++i;
  }
  if (i == at + 3 || text.compare(i, 2, " (") != 0) return 0;
  size_t close = text.find(')', i + 2);
  if (close == std::string::npos) return 0;
  *description = text.substr(i + 2, close - i - 2);
  for (char& c : *description) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return close + 1 - at;
}

}  // namespace

std::string InWords(const std::string& message) {
  std::string out;
  size_t copied = 0;  // message[0, copied) is in `out` already
  for (size_t at = message.find(": E"); at != std::string::npos; at = message.find(": E", at + 1)) {
    std::string description;
    size_t length = ErrnoSuffix(message, at, &description);
    if (length == 0 || at < copied) continue;
    size_t begin = at;  // what the words replace: [begin, at)
    std::string subject;
    if (at > 0 && message[at - 1] == '"') {
      size_t open = OpeningQuote(message, at - 1);
      // `rename "a" to "b"` names the first path.
      if (open != std::string::npos && open >= 5 && message.compare(open - 5, 5, "\" to ") == 0) {
        size_t first = OpeningQuote(message, open - 5);
        if (first != std::string::npos) {
          subject = message.substr(first + 1, open - 5 - first - 1);
          open = first;
        }
      } else if (open != std::string::npos) {
        subject = message.substr(open + 1, at - 1 - open - 1);
      }
      if (open != std::string::npos && open >= copied) {
        // The operation before the path ("openat2 ", "rename into ") goes too.
        begin = open;
        while (begin > copied && (islower(static_cast<unsigned char>(message[begin - 1])) ||
                                  isdigit(static_cast<unsigned char>(message[begin - 1])) ||
                                  message[begin - 1] == '_' || message[begin - 1] == ' ')) {
          --begin;
        }
        if (begin < open && message[begin] == ' ') ++begin;
      }
    }
    out += message.substr(copied, begin - copied);
    if (begin != at) out += subject;
    out += ": " + description;
    copied = at + length;
  }
  return out + message.substr(copied);
}

nlohmann::ordered_json ToJson(const Sandbox& s) {
  nlohmann::ordered_json j;
  j["id"] = s.id;
  auto name = s.annotations.find("sbx.name");
  j["name"] = name != s.annotations.end() ? name->second : "";
  j["state"] = std::string(StateName(s.state));
  j["state_reason"] = s.state_reason;
  j["exit_code"] =
      s.exit_code ? nlohmann::ordered_json(*s.exit_code) : nlohmann::ordered_json(nullptr);
  j["image"] = s.image;
  j["command"] = s.command;
  j["args"] = s.args;
  j["env"] = s.env;
  j["working_dir"] = s.working_dir;
  j["tags"] = s.tags;
  j["annotations"] = s.annotations;
  j["cpu"] = s.cpu;
  j["memory"] = s.memory;
  j["max_lifetime_seconds"] = s.max_lifetime_seconds;
  if (auto expiry = s.expire_time()) j["expire_time"] = FormatTime(*expiry);
  j["network"] = NetworkMode(s);
  j["egress"] = nlohmann::ordered_json::array();
  for (const auto& rule : s.egress) j["egress"].push_back(FormatEgress(rule));
  j["services"] = nlohmann::ordered_json::array();
  for (const auto& service : s.services) {
    j["services"].push_back({{"port", service.port},
                             {"name", service.name},
                             {"protocol", service.protocol},
                             {"visibility", std::string(VisibilityName(service.visibility))},
                             {"url", service.url}});
  }
  auto time = [](const std::optional<TimePoint>& t) {
    return t ? nlohmann::ordered_json(FormatTime(*t)) : nlohmann::ordered_json(nullptr);
  };
  j["create_time"] = time(s.create_time);
  j["start_time"] = time(s.start_time);
  j["end_time"] = time(s.end_time);
  j["runner_id"] = s.runner_id;
  j["resource_usage"] = nullptr;
  if (s.resource_usage) {
    j["resource_usage"] = {{"cpu_millicores", s.resource_usage->cpu_millicores},
                           {"memory_mb", s.resource_usage->memory_mb}};
  }
  return j;
}

nlohmann::ordered_json ToJson(const Image& image) {
  nlohmann::ordered_json j;
  j["reference"] = image.reference;
  j["digest"] = image.digest;
  j["size_bytes"] = image.size_bytes;
  j["created_time"] = image.created_time ? nlohmann::ordered_json(FormatTime(*image.created_time))
                                         : nlohmann::ordered_json(nullptr);
  j["references"] = image.references;
  j["platform"] = image.platform;
  return j;
}

}  // namespace sbx::cli
