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

std::string SandboxRecord::StateReason() const {
  if (reason.empty()) return message;
  if (message.empty()) return reason;
  return reason + ": " + message;
}

namespace {

json EgressToJson(const std::vector<EgressRuleSpec>& rules) {
  json out = json::array();
  for (const auto& r : rules) {
    json ports = json::array();
    for (const auto& p : r.ports) {
      ports.push_back({{"protocol", p.protocol}, {"port", p.port}, {"end_port", p.end_port}});
    }
    out.push_back({{"cidr", r.cidr},
                   {"except", r.except},
                   {"dns_name", r.dns_name},
                   {"any", r.any},
                   {"ports", ports}});
  }
  return out;
}

std::vector<EgressRuleSpec> EgressFromJson(const json& j) {
  std::vector<EgressRuleSpec> out;
  if (!j.is_array()) return out;
  for (const auto& r : j) {
    EgressRuleSpec rule;
    rule.cidr = r.value("cidr", "");
    rule.except = r.value("except", std::vector<std::string>{});
    rule.dns_name = r.value("dns_name", "");
    rule.any = r.value("any", false);
    for (const auto& p : r.value("ports", json::array())) {
      rule.ports.push_back({p.value("protocol", ""), p.value("port", 0), p.value("end_port", 0)});
    }
    out.push_back(std::move(rule));
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
            {"grace_seconds", grace_seconds}};
  if (exit_code) j["exit_code"] = *exit_code;
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
    if (mode < 0 || mode > static_cast<int>(NetworkMode::kAllowlist)) {
      return Error::DataLoss("sandbox record has network mode " + std::to_string(mode));
    }
    r.network_mode = static_cast<NetworkMode>(mode);
    if (j.contains("effective_egress")) r.effective_egress = EgressFromJson(j["effective_egress"]);
    r.address = j.value("address", "");
    r.grace_seconds = j.value("grace_seconds", 10);
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
