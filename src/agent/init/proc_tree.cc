#include "src/agent/init/proc_tree.h"

#include <dirent.h>
#include <signal.h>

#include <map>
#include <set>
#include <vector>

#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::agent {

bool ParseProcStat(const std::string& text, ProcStat* out) {
  // pid (comm) state ppid pgrp session ...
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return false;
  auto pid = ParseInt64(Trim(std::string_view(text).substr(0, open)));
  if (!pid) return false;
  auto fields = Split(std::string(Trim(std::string_view(text).substr(close + 1))), ' ');
  if (fields.size() < 4) return false;
  auto ppid = ParseInt64(fields[1]);
  auto pgrp = ParseInt64(fields[2]);
  auto session = ParseInt64(fields[3]);
  if (!ppid || !pgrp || !session) return false;
  out->pid = static_cast<pid_t>(*pid);
  out->ppid = static_cast<pid_t>(*ppid);
  out->pgrp = static_cast<pid_t>(*pgrp);
  out->session = static_cast<pid_t>(*session);
  out->state = fields[0].empty() ? '?' : fields[0][0];
  return true;
}

namespace {

std::vector<ProcStat> ScanProc(const std::string& proc) {
  std::vector<ProcStat> out;
  DIR* dir = opendir(proc.c_str());
  if (dir == nullptr) return out;
  while (dirent* entry = readdir(dir)) {
    if (!ParseInt64(entry->d_name)) continue;
    auto text = sys::ReadFile(proc + "/" + entry->d_name + "/stat", 4096);
    ProcStat st;
    if (text && ParseProcStat(*text, &st)) out.push_back(st);
  }
  closedir(dir);
  return out;
}

}  // namespace

int KillTree(pid_t root, int sig, const std::string& proc) {
  std::set<pid_t> signalled;
  for (int pass = 0; pass < 16; ++pass) {
    std::vector<ProcStat> all = ScanProc(proc);
    std::multimap<pid_t, pid_t> children;
    for (const auto& p : all) children.emplace(p.ppid, p.pid);
    std::set<pid_t> victims;
    std::set<pid_t> alive;
    std::vector<pid_t> stack{root};
    for (const auto& p : all) {
      // Zombies are already dead: signalling one succeeds but achieves nothing. They still link
      // their children to the tree.
      if (p.state != 'Z' && p.state != 'X') alive.insert(p.pid);
      if (p.pid == root || p.pgrp == root || p.session == root) stack.push_back(p.pid);
    }
    while (!stack.empty()) {
      pid_t pid = stack.back();
      stack.pop_back();
      if (pid <= 1 || !victims.insert(pid).second) continue;
      auto range = children.equal_range(pid);
      for (auto it = range.first; it != range.second; ++it) stack.push_back(it->second);
    }
    int hit = 0;
    for (pid_t pid : victims) {
      if (alive.count(pid) && kill(pid, sig) == 0) {
        ++hit;
        signalled.insert(pid);
      }
    }
    if (hit == 0 || sig != SIGKILL) break;
  }
  return static_cast<int>(signalled.size());
}

}  // namespace sbx::agent
