#include "src/agent/init/users.h"

#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::agent {

namespace {

struct PasswdEntry {
  std::string name;
  uid_t uid;
  gid_t gid;
  std::string home;
};

std::vector<PasswdEntry> ParsePasswd(std::string_view text) {
  std::vector<PasswdEntry> out;
  for (const auto& line : Split(text, '\n')) {
    auto f = Split(line, ':');
    if (f.size() < 7 || f[0].empty()) continue;
    auto uid = ParseUint64(f[2]);
    auto gid = ParseUint64(f[3]);
    if (!uid || !gid || *uid > 0xfffffffe || *gid > 0xfffffffe) continue;
    out.push_back({f[0], static_cast<uid_t>(*uid), static_cast<gid_t>(*gid), f[5]});
  }
  return out;
}

struct GroupEntry {
  std::string name;
  gid_t gid;
  std::vector<std::string> members;
};

std::vector<GroupEntry> ParseGroup(std::string_view text) {
  std::vector<GroupEntry> out;
  for (const auto& line : Split(text, '\n')) {
    auto f = Split(line, ':');
    if (f.size() < 4 || f[0].empty()) continue;
    auto gid = ParseUint64(f[2]);
    if (!gid || *gid > 0xfffffffe) continue;
    std::vector<std::string> members;
    for (const auto& m : Split(f[3], ',')) {
      if (!m.empty()) members.push_back(m);
    }
    out.push_back({f[0], static_cast<gid_t>(*gid), std::move(members)});
  }
  return out;
}

}  // namespace

Result<ResolvedUser> ResolveUser(std::string_view spec, std::string_view passwd,
                                 std::string_view group) {
  std::string user_part(spec);
  std::string group_part;
  bool has_group = false;
  if (auto colon = user_part.find(':'); colon != std::string::npos) {
    group_part = user_part.substr(colon + 1);
    user_part.resize(colon);
    has_group = true;
  }
  if (user_part.empty()) user_part = "0";
  auto users = ParsePasswd(passwd);
  auto groups = ParseGroup(group);

  ResolvedUser out;
  const PasswdEntry* entry = nullptr;
  if (auto uid = ParseUint64(user_part)) {
    if (*uid > 0xfffffffe) return Error::InvalidArgument("user id " + user_part + " out of range");
    out.uid = static_cast<uid_t>(*uid);
    for (const auto& u : users) {
      if (u.uid == out.uid) {
        entry = &u;
        break;
      }
    }
    out.gid = entry ? entry->gid : out.uid == 0 ? 0 : out.uid;
  } else {
    for (const auto& u : users) {
      if (u.name == user_part) {
        entry = &u;
        break;
      }
    }
    if (entry == nullptr) {
      return Error::InvalidArgument("user " + Quote(user_part) + " not found in /etc/passwd");
    }
    out.uid = entry->uid;
    out.gid = entry->gid;
  }
  if (entry != nullptr) {
    out.home = entry->home.empty() ? "/" : entry->home;
    out.name = entry->name;
  } else if (out.uid == 0) {
    out.home = "/root";
    out.name = "root";
  }
  if (has_group) {
    if (auto gid = ParseUint64(group_part)) {
      if (*gid > 0xfffffffe)
        return Error::InvalidArgument("group id " + group_part + " out of range");
      out.gid = static_cast<gid_t>(*gid);
    } else {
      bool found = false;
      for (const auto& g : groups) {
        if (g.name == group_part) {
          out.gid = g.gid;
          found = true;
          break;
        }
      }
      if (!found) {
        return Error::InvalidArgument("group " + Quote(group_part) + " not found in /etc/group");
      }
    }
  }
  out.groups.push_back(out.gid);
  if (!out.name.empty()) {
    for (const auto& g : groups) {
      for (const auto& m : g.members) {
        if (m == out.name && g.gid != out.gid) {
          out.groups.push_back(g.gid);
          break;
        }
      }
      if (out.groups.size() >= 64) break;
    }
  }
  return out;
}

Result<ResolvedUser> ResolveSandboxUser(std::string_view spec) {
  // The sandbox's own files, bounded: they are written by whatever runs in it.
  auto passwd = sys::ReadFile("/etc/passwd", 4u << 20);
  auto group = sys::ReadFile("/etc/group", 4u << 20);
  return ResolveUser(spec, passwd.value_or(""), group.value_or(""));
}

}  // namespace sbx::agent
