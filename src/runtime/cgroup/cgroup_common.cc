#include "src/runtime/cgroup/cgroup_common.h"

#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#include <algorithm>

#include "src/base/strings.h"
#include "src/sys/fs.h"

namespace sbx::runtime::cgroup_internal {

Result<std::vector<pid_t>> ReadProcs(const std::string& dir) {
  SBX_ASSIGN_OR_RETURN(std::string text, sys::ReadFile(dir + "/cgroup.procs", 64u << 20));
  std::vector<pid_t> pids;
  for (const auto& line : Split(text, '\n')) {
    if (auto pid = ParseInt64(Trim(line)); pid && *pid > 0)
      pids.push_back(static_cast<pid_t>(*pid));
  }
  return pids;
}

Status ApplyWrite(const std::string& dir, const CgroupWrite& write) {
  std::string path = dir + "/" + write.file;
  if (write.optional && !sys::PathExists(path)) return Ok();
  return sys::WriteKnob(path, write.value);
}

void Backoff(int attempt) {
  usleep(static_cast<useconds_t>(std::min(500 * (1 << std::min(attempt, 6)), 20000)));
}

Status RemoveDir(const std::string& dir) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return Ok();
    if (errno != EBUSY) return Error::Errno("rmdir " + Quote(dir));
    Backoff(attempt);
  }
  return Error::FromErrno(EBUSY, "rmdir " + Quote(dir));
}

uint64_t KeyedValue(const std::string& text, const std::string& key) {
  for (const auto& line : Split(text, '\n')) {
    auto parts = Split(std::string(Trim(line)), ' ');
    if (parts.size() == 2 && parts[0] == key) return ParseUint64(parts[1]).value_or(0);
  }
  return 0;
}

uint64_t ReadNumber(const std::string& path) {
  auto text = sys::ReadFile(path, 4096);
  if (!text) return 0;
  return ParseUint64(Trim(*text)).value_or(0);
}

std::vector<std::string> ListSubdirs(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_type == DT_DIR && e->d_name[0] != '.') out.emplace_back(e->d_name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace sbx::runtime::cgroup_internal
