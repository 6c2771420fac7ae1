#include "src/net/dns_message.h"

#include <algorithm>

#include "src/base/strings.h"

namespace sbx::net {

namespace {

constexpr size_t kHeaderSize = 12;
constexpr uint16_t kFlagQr = 0x8000;
constexpr uint16_t kFlagTc = 0x0200;
constexpr uint16_t kFlagRd = 0x0100;
constexpr uint16_t kFlagRa = 0x0080;
constexpr size_t kMaxRecords = 256;
constexpr int kMaxPointerHops = 32;

Error Malformed(std::string_view what) {
  return Error::InvalidArgument("malformed DNS message: " + std::string(what));
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool HostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

class Reader {
 public:
  explicit Reader(std::string_view packet) : p_(packet) {}

  size_t offset() const { return offset_; }
  bool AtEnd() const { return offset_ >= p_.size(); }

  Result<uint16_t> U16() {
    if (offset_ + 2 > p_.size()) return Malformed("truncated");
    uint16_t v = static_cast<uint16_t>((static_cast<uint8_t>(p_[offset_]) << 8) |
                                       static_cast<uint8_t>(p_[offset_ + 1]));
    offset_ += 2;
    return v;
  }
  Result<uint32_t> U32() {
    SBX_ASSIGN_OR_RETURN(uint16_t hi, U16());
    SBX_ASSIGN_OR_RETURN(uint16_t lo, U16());
    return (static_cast<uint32_t>(hi) << 16) | lo;
  }
  Result<std::string_view> Bytes(size_t n) {
    if (offset_ + n > p_.size()) return Malformed("truncated");
    std::string_view out = p_.substr(offset_, n);
    offset_ += n;
    return out;
  }

  // A possibly compressed name starting here; the cursor moves past its in-place part.
  Result<std::string> Name() {
    size_t end = 0;
    SBX_ASSIGN_OR_RETURN(std::string name, NameAt(offset_, &end));
    offset_ = end;
    return name;
  }

  Result<std::string> NameAt(size_t start, size_t* end) const {
    std::string name;
    size_t pos = start;
    size_t wire_length = 1;
    int hops = 0;
    bool jumped = false;
    while (true) {
      if (pos >= p_.size()) return Malformed("name runs past the message");
      uint8_t len = static_cast<uint8_t>(p_[pos]);
      if ((len & 0xc0) == 0xc0) {
        if (pos + 1 >= p_.size()) return Malformed("truncated pointer");
        size_t target = (static_cast<size_t>(len & 0x3f) << 8) | static_cast<uint8_t>(p_[pos + 1]);
        if (!jumped) *end = pos + 2;
        jumped = true;
        // Pointers must go backwards, which also rules out loops; the hop limit is belt and braces.
        if (target >= pos || ++hops > kMaxPointerHops) return Malformed("bad name pointer");
        pos = target;
        continue;
      }
      if ((len & 0xc0) != 0) return Malformed("unknown label type");
      if (len == 0) {
        if (!jumped) *end = pos + 1;
        return name;
      }
      if (pos + 1 + len > p_.size()) return Malformed("label runs past the message");
      wire_length += len + 1;
      if (wire_length > 255) return Malformed("name longer than 255 bytes");
      if (!name.empty()) name += '.';
      for (size_t i = 0; i < len; ++i) {
        char c = p_[pos + 1 + i];
        if (!HostNameChar(c)) return Malformed("name has a character outside [A-Za-z0-9_-]");
        name += Lower(c);
      }
      pos += 1 + len;
    }
  }

 private:
  std::string_view p_;
  size_t offset_ = 0;
};

struct Header {
  uint16_t id, flags, qd, an, ns, ar;
};

Result<Header> ReadHeader(Reader& r) {
  Header h{};
  SBX_ASSIGN_OR_RETURN(h.id, r.U16());
  SBX_ASSIGN_OR_RETURN(h.flags, r.U16());
  SBX_ASSIGN_OR_RETURN(h.qd, r.U16());
  SBX_ASSIGN_OR_RETURN(h.an, r.U16());
  SBX_ASSIGN_OR_RETURN(h.ns, r.U16());
  SBX_ASSIGN_OR_RETURN(h.ar, r.U16());
  return h;
}

Result<DnsQuestion> ReadQuestion(Reader& r) {
  DnsQuestion q;
  SBX_ASSIGN_OR_RETURN(q.name, r.Name());
  SBX_ASSIGN_OR_RETURN(q.type, r.U16());
  SBX_ASSIGN_OR_RETURN(q.klass, r.U16());
  return q;
}

void PutU16(std::string& out, uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

void PutU32(std::string& out, uint32_t v) {
  PutU16(out, static_cast<uint16_t>(v >> 16));
  PutU16(out, static_cast<uint16_t>(v & 0xffff));
}

void PutName(std::string& out, const std::string& name) {
  if (!name.empty()) {
    for (const auto& label : Split(name, '.')) {
      out += static_cast<char>(label.size());
      out += label;
    }
  }
  out += '\0';
}

void PutHeader(std::string& out, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an) {
  PutU16(out, id);
  PutU16(out, flags);
  PutU16(out, qd);
  PutU16(out, an);
  PutU16(out, 0);
  PutU16(out, 0);
}

}  // namespace

Result<uint16_t> DnsMessageId(std::string_view packet) {
  if (packet.size() < kHeaderSize) return Malformed("shorter than a header");
  Reader r(packet);
  return r.U16();
}

Result<DnsQuery> ParseDnsQuery(std::string_view packet) {
  Reader r(packet);
  SBX_ASSIGN_OR_RETURN(Header h, ReadHeader(r));
  if (h.flags & kFlagQr) return Malformed("not a query");
  if (((h.flags >> 11) & 0xf) != 0) return Error::Unimplemented("only standard queries");
  if (h.qd != 1) return Malformed("a query needs exactly one question");
  if (h.an != 0 || h.ns != 0 || h.ar > 8) return Malformed("unexpected records in a query");
  DnsQuery q;
  q.id = h.id;
  q.recursion_desired = h.flags & kFlagRd;
  SBX_ASSIGN_OR_RETURN(q.question, ReadQuestion(r));
  for (int i = 0; i < h.ar; ++i) {
    SBX_ASSIGN_OR_RETURN(std::string name, r.Name());
    SBX_ASSIGN_OR_RETURN(uint16_t type, r.U16());
    SBX_ASSIGN_OR_RETURN(uint16_t klass, r.U16());
    SBX_ASSIGN_OR_RETURN(uint32_t ttl, r.U32());
    (void)ttl;
    SBX_ASSIGN_OR_RETURN(uint16_t rdlength, r.U16());
    SBX_TRY(r.Bytes(rdlength));
    if (type == kDnsTypeOpt && name.empty()) q.udp_size = std::max<uint16_t>(512, klass);
  }
  return q;
}

Result<DnsAnswer> ParseDnsAnswer(std::string_view packet) {
  Reader r(packet);
  SBX_ASSIGN_OR_RETURN(Header h, ReadHeader(r));
  if (!(h.flags & kFlagQr)) return Malformed("not a response");
  if (h.qd > 1) return Malformed("more than one question");
  DnsAnswer a;
  a.id = h.id;
  a.rcode = h.flags & 0xf;
  a.truncated = h.flags & kFlagTc;
  for (int i = 0; i < h.qd; ++i) {
    SBX_ASSIGN_OR_RETURN(DnsQuestion q, ReadQuestion(r));
    a.questions.push_back(std::move(q));
  }
  for (int i = 0; i < h.an && a.records.size() < kMaxRecords; ++i) {
    if (a.truncated && r.AtEnd()) break;
    DnsRecord rec;
    SBX_ASSIGN_OR_RETURN(rec.name, r.Name());
    SBX_ASSIGN_OR_RETURN(rec.type, r.U16());
    SBX_ASSIGN_OR_RETURN(uint16_t klass, r.U16());
    SBX_ASSIGN_OR_RETURN(rec.ttl, r.U32());
    SBX_ASSIGN_OR_RETURN(uint16_t rdlength, r.U16());
    size_t rdata_start = r.offset();
    SBX_ASSIGN_OR_RETURN(std::string_view rdata, r.Bytes(rdlength));
    if (klass != kDnsClassIn) continue;
    if (rec.type == kDnsTypeA) {
      if (rdata.size() != 4) return Malformed("A record of the wrong size");
      rec.address = (static_cast<uint32_t>(static_cast<uint8_t>(rdata[0])) << 24) |
                    (static_cast<uint32_t>(static_cast<uint8_t>(rdata[1])) << 16) |
                    (static_cast<uint32_t>(static_cast<uint8_t>(rdata[2])) << 8) |
                    static_cast<uint8_t>(rdata[3]);
      a.records.push_back(std::move(rec));
    } else if (rec.type == kDnsTypeCname) {
      size_t end = 0;
      SBX_ASSIGN_OR_RETURN(rec.target, Reader(packet).NameAt(rdata_start, &end));
      if (end > rdata_start + rdlength) return Malformed("CNAME runs past its record");
      a.records.push_back(std::move(rec));
    }
  }
  return a;
}

std::string BuildDnsAnswer(const DnsQuery& query, int rcode, const std::vector<DnsRecord>& records,
                           size_t max_size) {
  std::string out;
  uint16_t flags = kFlagQr | kFlagRa | static_cast<uint16_t>(rcode & 0xf);
  if (query.recursion_desired) flags |= kFlagRd;
  PutHeader(out, query.id, flags, 1, 0);
  PutName(out, query.question.name);
  PutU16(out, query.question.type);
  PutU16(out, query.question.klass);
  uint16_t count = 0;
  bool truncated = false;
  for (const auto& rec : records) {
    std::string rr;
    if (rec.name == query.question.name) {
      PutU16(rr, 0xc000 | kHeaderSize);  // a pointer to the question's name
    } else {
      PutName(rr, rec.name);
    }
    PutU16(rr, rec.type);
    PutU16(rr, kDnsClassIn);
    PutU32(rr, rec.ttl);
    if (rec.type == kDnsTypeA) {
      PutU16(rr, 4);
      PutU32(rr, rec.address);
    } else {
      std::string target;
      PutName(target, rec.target);
      PutU16(rr, static_cast<uint16_t>(target.size()));
      rr += target;
    }
    if (out.size() + rr.size() > max_size) {
      truncated = true;
      break;
    }
    out += rr;
    ++count;
  }
  if (truncated) flags |= kFlagTc;
  out[2] = static_cast<char>(flags >> 8);
  out[3] = static_cast<char>(flags & 0xff);
  out[6] = static_cast<char>(count >> 8);
  out[7] = static_cast<char>(count & 0xff);
  return out;
}

std::string BuildDnsError(uint16_t id, int rcode) {
  std::string out;
  PutHeader(out, id, static_cast<uint16_t>(kFlagQr | kFlagRa | (rcode & 0xf)), 0, 0);
  return out;
}

std::string WithDnsId(std::string packet, uint16_t id) {
  if (packet.size() >= 2) {
    packet[0] = static_cast<char>(id >> 8);
    packet[1] = static_cast<char>(id & 0xff);
  }
  return packet;
}

bool DnsNameMatches(std::string_view pattern, std::string_view name) {
  auto normalize = [](std::string_view s) {
    std::string out(s);
    if (!out.empty() && out.back() == '.') out.pop_back();
    std::transform(out.begin(), out.end(), out.begin(), Lower);
    return out;
  };
  std::string p = normalize(pattern);
  std::string n = normalize(name);
  if (StartsWith(p, "*.")) {
    std::string suffix = p.substr(1);  // ".pypi.org"
    return n.size() > suffix.size() && EndsWith(n, suffix);
  }
  return !p.empty() && p == n;
}

}  // namespace sbx::net
