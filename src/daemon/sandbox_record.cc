#include "src/daemon/sandbox_record.h"

#include <nlohmann/json.hpp>

#include "src/base/strings.h"

namespace sbx::daemon {

using nlohmann::json;

std::string_view StateName(State state) {
  switch (state) {
    case State::kPending:
      return "PENDING";
    case State::kCreating:
      return "CREATING";
    case State::kRunning:
      return "RUNNING";
    case State::kCompleted:
      return "COMPLETED";
    case State::kFailed:
      return "FAILED";
    case State::kTerminating:
      return "TERMINATING";
    case State::kTerminated:
      return "TERMINATED";
  }
  return "UNKNOWN";
}

bool IsTerminal(State state) {
  return state == State::kCompleted || state == State::kFailed || state == State::kTerminated;
}

bool IsActive(State state) {
  return state == State::kCreating || state == State::kRunning || state == State::kTerminating;
}

std::string NewSandboxId() { return "sb-" + RandomHex(8); }

std::string SandboxRecord::StateReason() const {
  if (reason.empty()) return message;
  if (message.empty()) return reason;
  return reason + ": " + message;
}

namespace {

// Rules as the API renders them: a CIDR block and its exceptions, a DNS name, or `any`, with
// ports whose `end_port` is 0 for a single port.
json EgressToJson(const std::vector<net::EgressRule>& rules) {
  json out = json::array();
  for (const auto& r : rules) {
    json ports = json::array();
    for (const auto& p : r.ports) {
      ports.push_back({{"protocol", net::TransportName(p.transport)},
                       {"port", p.first},
                       {"end_port", p.last != p.first ? p.last : 0}});
    }
    json except = json::array();
    for (const auto& x : r.except) except.push_back(x.ToString());
    out.push_back({{"cidr", r.kind == net::EgressKind::kCidr ? r.cidr.ToString() : ""},
                   {"except", except},
                   {"dns_name", r.dns_name.text()},
                   {"any", r.kind == net::EgressKind::kAny},
                   {"ports", ports}});
  }
  return out;
}

// What the daemon wrote itself; a rule it cannot read back is left out of the record.
std::vector<net::EgressRule> EgressFromJson(const json& j) {
  std::vector<net::EgressRule> out;
  if (!j.is_array()) return out;
  for (const auto& r : j) {
    net::EgressRule rule;
    std::string cidr = r.value("cidr", "");
    std::string dns_name = r.value("dns_name", "");
    bool valid = true;
    if (!dns_name.empty()) {
      auto pattern = net::DnsPattern::Parse(dns_name);
      valid = pattern.has_value();
      if (valid) {
        rule.kind = net::EgressKind::kDnsName;
        rule.dns_name = *pattern;
      }
    } else if (!r.value("any", false)) {
      auto prefix = net::ParseIpv4Prefix(cidr);
      valid = prefix.has_value();
      rule.kind = net::EgressKind::kCidr;
      if (valid) rule.cidr = *prefix;
      for (const auto& x : r.value("except", std::vector<std::string>{})) {
        auto except = net::ParseIpv4Prefix(x);
        valid = valid && except.has_value();
        if (except) rule.except.push_back(*except);
      }
    }
    for (const auto& p : r.value("ports", json::array())) {
      auto transport = net::ParseTransport(p.value("protocol", ""));
      auto range = net::MakePortRange(transport.value_or(net::Transport::kTcpAndUdp),
                                      p.value("port", 0), p.value("end_port", 0));
      valid = valid && transport && range;
      if (range) rule.ports.push_back(*range);
    }
    if (valid) out.push_back(std::move(rule));
  }
  return out;
}

}  // namespace

std::string SandboxRecord::ToJson() const {
  json j = {{"id", id},
            {"tenant", tenant},
            {"request_id", request_id},
            {"state", static_cast<int>(state)},
            {"reason", reason},
            {"message", message},
            {"create_ns", create_ns},
            {"start_ns", start_ns},
            {"end_ns", end_ns},
            {"deadline_ns", deadline_ns},
            {"lifetime_seconds", lifetime_seconds},
            {"tags", tags},
            {"image", image},
            {"image_digest", image_digest},
            {"cpu_request_millis", cpu_request_millis},
            {"cpu_limit_millis", cpu_limit_millis},
            {"memory_request_bytes", memory_request_bytes},
            {"memory_limit_bytes", memory_limit_bytes},
            {"spec_blob", HexEncode(spec_blob)},
            {"bundle", bundle},
            {"init_pid", init_pid},
            {"init_start_time", init_start_time},
            {"socket_path", socket_path},
            {"network_mode", static_cast<int>(network_mode)},
            {"effective_egress", EgressToJson(effective_egress)},
            {"address", address},
            {"grace_seconds", grace_seconds},
            {"stop_reason", stop_reason},
            {"deleted_ns", deleted_ns},
            {"delete_request_id", delete_request_id},
            {"files_until_ns", files_until_ns},
            {"request_fingerprint", request_fingerprint}};
  if (exit_code) j["exit_code"] = *exit_code;
  if (ending) {
    j["ending"] = {{"state", static_cast<int>(ending->state)},
                   {"reason", ending->reason},
                   {"message", ending->message}};
    if (ending->exit_code) j["ending"]["exit_code"] = *ending->exit_code;
  }
  if (id_map) {
    j["id_map"] = {
        {"host_uid", id_map->host_uid}, {"host_gid", id_map->host_gid}, {"size", id_map->size}};
  }
  return j.dump();
}

namespace {

std::string HexDecode(const std::string& hex) {
  std::string out;
  out.reserve(hex.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return 0;
  };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>((nibble(hex[i]) << 4) | nibble(hex[i + 1]));
  }
  return out;
}

}  // namespace

Result<SandboxRecord> SandboxRecord::FromJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error::DataLoss("sandbox record is not JSON");
  SandboxRecord r;
  try {
    r.id = j.at("id").get<std::string>();
    r.tenant = j.value("tenant", "");
    r.request_id = j.value("request_id", "");
    int state = j.value("state", 0);
    if (state < 0 || state > static_cast<int>(State::kTerminated)) {
      return Error::DataLoss("sandbox record has state " + std::to_string(state));
    }
    r.state = static_cast<State>(state);
    r.reason = j.value("reason", "");
    r.message = j.value("message", "");
    if (j.contains("exit_code")) r.exit_code = j["exit_code"].get<int>();
    r.create_ns = j.value("create_ns", int64_t{0});
    r.start_ns = j.value("start_ns", int64_t{0});
    r.end_ns = j.value("end_ns", int64_t{0});
    r.deadline_ns = j.value("deadline_ns", int64_t{0});
    r.lifetime_seconds = j.value("lifetime_seconds", 0);
    r.tags = j.value("tags", std::vector<std::string>{});
    r.image = j.value("image", "");
    r.image_digest = j.value("image_digest", "");
    r.cpu_request_millis = j.value("cpu_request_millis", uint64_t{0});
    r.cpu_limit_millis = j.value("cpu_limit_millis", uint64_t{0});
    r.memory_request_bytes = j.value("memory_request_bytes", uint64_t{0});
    r.memory_limit_bytes = j.value("memory_limit_bytes", uint64_t{0});
    r.spec_blob = HexDecode(j.value("spec_blob", ""));
    r.bundle = j.value("bundle", "");
    r.init_pid = j.value("init_pid", 0);
    r.init_start_time = j.value("init_start_time", uint64_t{0});
    r.socket_path = j.value("socket_path", "");
    int mode = j.value("network_mode", 0);
    if (mode < 0 || mode > static_cast<int>(net::NetworkMode::kAllowlist)) {
      return Error::DataLoss("sandbox record has network mode " + std::to_string(mode));
    }
    r.network_mode = static_cast<net::NetworkMode>(mode);
    if (j.contains("effective_egress")) r.effective_egress = EgressFromJson(j["effective_egress"]);
    r.address = j.value("address", "");
    r.grace_seconds = j.value("grace_seconds", 10);
    r.stop_reason = j.value("stop_reason", "");
    r.deleted_ns = j.value("deleted_ns", int64_t{0});
    r.delete_request_id = j.value("delete_request_id", "");
    r.files_until_ns = j.value("files_until_ns", int64_t{0});
    r.request_fingerprint = j.value("request_fingerprint", "");
    if (j.contains("ending")) {
      const json& e = j["ending"];
      int ending_state = e.value("state", -1);
      if (ending_state < 0 || ending_state > static_cast<int>(State::kTerminated) ||
          !IsTerminal(static_cast<State>(ending_state))) {
        return Error::DataLoss("sandbox record has ending state " + std::to_string(ending_state));
      }
      SandboxRecord::Ending ending;
      ending.state = static_cast<State>(ending_state);
      ending.reason = e.value("reason", "");
      ending.message = e.value("message", "");
      if (e.contains("exit_code")) ending.exit_code = e["exit_code"].get<int>();
      r.ending = std::move(ending);
    }
    if (j.contains("id_map")) {
      const auto& ids = j.at("id_map");
      r.id_map = runtime::IdMap{ids.at("host_uid").get<uint32_t>(),
                                ids.at("host_gid").get<uint32_t>(), ids.at("size").get<uint32_t>()};
    }
  } catch (const json::exception& e) {
    return Error::DataLoss(std::string("sandbox record: ") + e.what());
  }
  return r;
}

}  // namespace sbx::daemon
