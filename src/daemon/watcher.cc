#include "src/daemon/watcher.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <limits>

namespace sbx::daemon {

Watcher::Watcher(std::function<int64_t()> wall_ns) : wall_ns_(std::move(wall_ns)) {}

Status Watcher::Open() {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return Error::Errno("epoll_create1");
  wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) return Error::Errno("eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    return Error::Errno("epoll_ctl");
  }
  return Ok();
}

Status Watcher::WatchMain(const std::string& id, UniqueFd fd) {
  std::lock_guard lock(mu_);
  if (auto old = mains_.find(id); old != mains_.end()) {
    by_token_.erase(old->second.token);
    mains_.erase(old);  // closing the descriptor takes it out of the epoll set
  }
  uint64_t token = next_token_++;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.u64 = token;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) return Error::Errno("epoll_ctl");
  by_token_[token] = id;
  mains_[id] = MainWatch{std::move(fd), token};
  return Ok();
}

void Watcher::UnwatchMain(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = mains_.find(id);
  if (it == mains_.end()) return;
  by_token_.erase(it->second.token);
  mains_.erase(it);
}

void Watcher::SetLifetime(const std::string& id, int64_t deadline_ns) {
  {
    std::lock_guard lock(mu_);
    if (deadline_ns > 0) {
      lifetimes_[id] = deadline_ns;
    } else {
      lifetimes_.erase(id);
    }
  }
  Wake();
}

void Watcher::SetRetention(const std::string& id, int64_t forget_at_ns) {
  {
    std::lock_guard lock(mu_);
    retention_[id] = forget_at_ns;
  }
  Wake();
}

void Watcher::SetFilesDeadline(const std::string& id, int64_t until_ns) {
  {
    std::lock_guard lock(mu_);
    files_[id] = until_ns;
  }
  Wake();
}

void Watcher::Forget(const std::string& id) {
  UnwatchMain(id);
  std::lock_guard lock(mu_);
  lifetimes_.erase(id);
  files_.erase(id);
  retention_.erase(id);
}

void Watcher::Wake() {
  uint64_t one = 1;
  if (wake_) (void)!write(wake_.get(), &one, sizeof one);
}

int64_t Watcher::NextTimerLocked() const {
  int64_t next = std::numeric_limits<int64_t>::max();
  for (const auto* timers : {&lifetimes_, &files_, &retention_}) {
    for (const auto& [id, at] : *timers) next = std::min(next, at);
  }
  return next;
}

std::vector<WatchEvent> Watcher::DueTimersLocked(int64_t now) {
  std::vector<WatchEvent> due;
  auto take = [&](std::map<std::string, int64_t>& timers, WatchEvent::Kind kind) {
    for (auto it = timers.begin(); it != timers.end();) {
      if (it->second <= now) {
        due.push_back({kind, it->first});
        it = timers.erase(it);
      } else {
        ++it;
      }
    }
  };
  take(lifetimes_, WatchEvent::Kind::kLifetimeReached);
  take(files_, WatchEvent::Kind::kFilesExpired);
  take(retention_, WatchEvent::Kind::kRetentionOver);
  return due;
}

std::vector<WatchEvent> Watcher::Wait(int max_wait_ms) {
  int timeout = max_wait_ms;
  {
    std::lock_guard lock(mu_);
    int64_t now = wall_ns_();
    int64_t next = NextTimerLocked();
    if (next <= now) return DueTimersLocked(now);
    if (next != std::numeric_limits<int64_t>::max()) {
      int64_t until_next = (next - now) / 1000000 + 1;
      timeout = static_cast<int>(timeout < 0 ? until_next : std::min<int64_t>(timeout, until_next));
    }
  }
  epoll_event events[64];
  int n = epoll_wait(epoll_.get(), events, 64, timeout);
  std::lock_guard lock(mu_);
  std::vector<WatchEvent> due;
  for (int i = 0; i < n; ++i) {
    uint64_t token = events[i].data.u64;
    if (token == 0) {
      uint64_t count;
      (void)!read(wake_.get(), &count, sizeof count);
      continue;
    }
    auto it = by_token_.find(token);
    if (it == by_token_.end()) continue;
    std::string id = it->second;
    by_token_.erase(it);
    mains_.erase(id);
    due.push_back({WatchEvent::Kind::kMainExited, std::move(id)});
  }
  auto timers = DueTimersLocked(wall_ns_());
  due.insert(due.end(), std::make_move_iterator(timers.begin()),
             std::make_move_iterator(timers.end()));
  return due;
}

}  // namespace sbx::daemon
