#include "src/image/auth_challenge.h"

#include <cctype>

#include "src/base/strings.h"

namespace sbx::image {
namespace {

constexpr size_t kMaxHeader = 16384;
constexpr size_t kMaxChallenges = 16;
constexpr size_t kMaxParams = 32;

bool IsTokenChar(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
    case '/':
      return true;
    default:
      return false;
  }
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

class Scanner {
 public:
  explicit Scanner(std::string_view text) : text_(text) {}
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  size_t pos() const { return pos_; }
  void Seek(size_t pos) { pos_ = pos; }
  void Advance() { ++pos_; }
  void SkipSpace() {
    while (!AtEnd() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }
  std::string_view Token() {
    size_t start = pos_;
    while (!AtEnd() && IsTokenChar(text_[pos_])) ++pos_;
    return text_.substr(start, pos_ - start);
  }
  // A quoted-string with backslash escapes; false when unterminated.
  bool Quoted(std::string* out) {
    ++pos_;  // opening quote
    while (!AtEnd()) {
      char c = text_[pos_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (AtEnd()) return false;
        c = text_[pos_++];
      }
      out->push_back(c);
    }
    return false;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

Result<std::vector<AuthChallenge>> ParseAuthChallenges(std::string_view header) {
  auto bad = [&](const std::string& why) {
    return Error::InvalidArgument("malformed WWW-Authenticate header " + Quote(header, 200) + ": " +
                                  why);
  };
  if (header.size() > kMaxHeader) return bad("too long");
  std::vector<AuthChallenge> challenges;
  Scanner s(header);
  while (true) {
    s.SkipSpace();
    while (s.Peek() == ',') {
      s.Advance();
      s.SkipSpace();
    }
    if (s.AtEnd()) break;
    std::string_view scheme = s.Token();
    if (scheme.empty()) return bad("expected an authentication scheme");
    if (challenges.size() >= kMaxChallenges) return bad("too many challenges");
    AuthChallenge challenge;
    challenge.scheme = Lower(scheme);
    // Parameters: name=value pairs separated by commas, until a token that is not followed by
    // "=" (the next challenge's scheme).
    while (true) {
      size_t save = s.pos();
      s.SkipSpace();
      while (s.Peek() == ',') {
        s.Advance();
        s.SkipSpace();
      }
      std::string_view name = s.Token();
      s.SkipSpace();
      if (name.empty() || s.Peek() != '=') {
        if (name.empty() && !s.AtEnd()) return bad("unexpected character");
        s.Seek(save);
        // A token68 credential-style blob ("Basic abc==") is not used by registries; skip it.
        break;
      }
      s.Advance();  // '='
      s.SkipSpace();
      std::string value;
      if (s.Peek() == '"') {
        if (!s.Quoted(&value)) return bad("unterminated quoted string");
      } else {
        value = std::string(s.Token());
        // token68 padding ("abc==") after a name: not a parameter we use.
        while (s.Peek() == '=') s.Advance();
      }
      if (challenge.params.size() >= kMaxParams) return bad("too many parameters");
      challenge.params[Lower(name)] = value;
      s.SkipSpace();
      if (s.AtEnd()) break;
      if (s.Peek() != ',') return bad("expected ',' after a parameter");
    }
    challenges.push_back(std::move(challenge));
    if (s.AtEnd()) break;
    // The next token must start a new challenge; guard against no progress.
    size_t before = s.pos();
    s.SkipSpace();
    while (s.Peek() == ',') {
      s.Advance();
      s.SkipSpace();
    }
    if (!s.AtEnd() && !IsTokenChar(s.Peek())) return bad("unexpected character");
    if (s.pos() == before && !s.AtEnd() && !IsTokenChar(s.Peek())) break;
  }
  return challenges;
}

}  // namespace sbx::image
