#include "src/image/reference.h"

#include "src/base/strings.h"
#include "src/image/digest.h"

namespace sbx::image {
namespace {

constexpr size_t kMaxNameLength = 255;
constexpr size_t kMaxTagLength = 128;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
bool ValidPathComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    // A separator: ".", "_", "__" or one or more "-", always followed by an alphanumeric.
    if (c[i] == '.') {
      ++i;
    } else if (c[i] == '_') {
      ++i;
      if (i < c.size() && c[i] == '_') ++i;
    } else if (c[i] == '-') {
      while (i < c.size() && c[i] == '-') ++i;
    } else {
      return false;
    }
    if (i >= c.size() || !IsLowerAlnum(c[i])) return false;
  }
  return true;
}

// [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]
bool ValidDomainComponent(std::string_view c) {
  if (c.empty() || !IsAlnum(c.front()) || !IsAlnum(c.back())) return false;
  for (char ch : c) {
    if (!IsAlnum(ch) && ch != '-') return false;
  }
  return true;
}

bool ValidPort(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  for (char c : port) {
    if (!IsDigit(c)) return false;
  }
  auto value = ParseUint64(port);
  return value && *value >= 1 && *value <= 65535;
}

// host[:port], host being dotted domain components or a bracketed IPv6 address.
std::string DomainProblem(std::string_view domain) {
  std::string_view host = domain;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return "unterminated IPv6 address in registry";
    std::string_view ip = host.substr(1, close - 1);
    if (ip.empty() || ip.find(':') == std::string_view::npos) return "invalid IPv6 address";
    for (char c : ip) {
      if (!IsHex(c) && c != ':' && c != '.') return "invalid IPv6 address";
    }
    std::string_view rest = host.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return "invalid registry host";
      port = rest.substr(1);
      if (!ValidPort(port)) return "invalid registry port";
    }
    return "";
  }
  size_t colon = host.find(':');
  if (colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
    if (!ValidPort(port)) return "invalid registry port " + Quote(port, 16);
  }
  if (host.empty()) return "empty registry host";
  for (const auto& part : Split(host, '.')) {
    if (!ValidDomainComponent(part)) return "invalid registry host " + Quote(host, 64);
  }
  return "";
}

bool ValidTag(std::string_view tag) {
  if (tag.empty() || tag.size() > kMaxTagLength) return false;
  auto word = [](char c) { return IsAlnum(c) || c == '_'; };
  if (!word(tag.front())) return false;
  for (char c : tag) {
    if (!word(c) && c != '.' && c != '-') return false;
  }
  return true;
}

bool Is64Hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!IsDigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

}  // namespace

Result<Reference> Reference::Parse(std::string_view text) {
  auto fail = [&](const std::string& why) {
    return Error::InvalidArgument("invalid image reference " + Quote(text, 300) + ": " + why)
        .WithReason("SBX_INVALID_IMAGE_REFERENCE");
  };
  if (text.empty()) return fail("empty");
  if (text.size() > kMaxNameLength + 1 + kMaxTagLength + 1 + 71) return fail("too long");
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return fail("contains whitespace or a non-printable character");
  }

  Reference ref;
  std::string_view rest = text;
  size_t at = rest.find('@');
  if (at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    Status valid = ValidateDigest(digest);
    if (!valid) return fail(valid.error().message());
    ref.digest = std::string(digest);
    rest = rest.substr(0, at);
  }
  size_t colon = rest.rfind(':');
  size_t slash = rest.rfind('/');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!ValidTag(tag)) {
      return fail("invalid tag " + Quote(tag, 140) + " (want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})");
    }
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return fail("missing repository name");
  if (rest.size() > kMaxNameLength) {
    return fail("name longer than " + std::to_string(kMaxNameLength) + " characters");
  }

  std::string_view domain;
  std::string_view path = rest;
  size_t first_slash = rest.find('/');
  if (first_slash != std::string_view::npos) {
    std::string_view first = rest.substr(0, first_slash);
    bool has_upper = false;
    for (char c : first) has_upper |= (c >= 'A' && c <= 'Z');
    if (first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
        first.front() == '[' || has_upper) {
      domain = first;
      path = rest.substr(first_slash + 1);
    }
  }
  if (!domain.empty()) {
    std::string problem = DomainProblem(domain);
    if (!problem.empty()) return fail(problem);
  }
  if (path.empty()) return fail("missing repository path after the registry");
  for (const auto& component : Split(path, '/')) {
    if (component.empty()) return fail("empty path component");
    if (!ValidPathComponent(component)) {
      bool upper = false;
      for (char c : component) upper |= (c >= 'A' && c <= 'Z');
      if (upper) return fail("repository name must be lowercase");
      return fail("invalid path component " + Quote(component, 80) +
                  " (want lowercase letters and digits separated by '.', '_', '__' or '-')");
    }
  }

  ref.registry = domain.empty() ? std::string(kDockerHub) : std::string(domain);
  if (ref.registry == "index.docker.io") ref.registry = std::string(kDockerHub);
  ref.repository = std::string(path);
  if (ref.registry == kDockerHub && ref.repository.find('/') == std::string::npos) {
    if (domain.empty() && Is64Hex(ref.repository)) {
      return fail("a repository name cannot be a 64-character hex string (an image ID)");
    }
    ref.repository = "library/" + ref.repository;
  }
  // Like Docker, the bound applies to the normalised name ("docker.io/library/...").
  if (ref.Name().size() > kMaxNameLength) {
    return fail("name longer than " + std::to_string(kMaxNameLength) + " characters");
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

std::string Reference::String() const {
  std::string out = Name();
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

}  // namespace sbx::image
