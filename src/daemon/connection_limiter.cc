#include "src/daemon/connection_limiter.h"

namespace sbx::daemon {

bool ConnectionLimiter::Fits(ConnectionKind kind, const std::string& host) const {
  if (kind == ConnectionKind::kLocal) return local_ < limits_.local;
  if (remote_ >= limits_.remote) return false;
  auto it = per_host_.find(host);
  return it == per_host_.end() || it->second < limits_.per_host;
}

void ConnectionLimiter::Forget(std::map<int, Connection>::iterator it) {
  if (it->second.kind == ConnectionKind::kLocal) {
    --local_;
  } else {
    --remote_;
    auto host = per_host_.find(it->second.host);
    if (host != per_host_.end() && --host->second == 0) per_host_.erase(host);
  }
  by_fd_.erase(it);
}

bool ConnectionLimiter::Admit(ConnectionKind kind, const std::string& host, int fd,
                              uint64_t identity) {
  if (auto stale = by_fd_.find(fd); stale != by_fd_.end()) Forget(stale);
  if (!Fits(kind, host)) {
    Sweep();
    if (!Fits(kind, host)) {
      ++(kind == ConnectionKind::kLocal ? refused_local_ : refused_remote_);
      return false;
    }
  }
  by_fd_.emplace(fd, Connection{kind, kind == ConnectionKind::kRemote ? host : "", identity});
  if (kind == ConnectionKind::kLocal) {
    ++local_;
  } else {
    ++remote_;
    ++per_host_[host];
  }
  return true;
}

void ConnectionLimiter::Sweep() {
  for (auto it = by_fd_.begin(); it != by_fd_.end();) {
    auto next = std::next(it);
    if (!still_open_(it->first, it->second.identity)) Forget(it);
    it = next;
  }
}

ConnectionCounts ConnectionLimiter::Counts() const {
  return {local_, remote_, refused_local_, refused_remote_};
}

}  // namespace sbx::daemon
