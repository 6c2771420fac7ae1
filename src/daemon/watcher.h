// File: watcher.h
//
// What happens to sandboxes by itself, as events: a main process exits (its WaitMain connection
// to sbx-init becomes readable, or drops because sbx-init died), a sandbox reaches the end of its
// lifetime, the files an ended sandbox kept or its record reach the end of their retention. The
// watcher knows no records and does nothing about an event; the sandbox manager's event thread asks
// for the due events and acts on them.
//
// Thread-safe; Wait is called by one thread.

#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/base/unique_fd.h"

namespace sbx::daemon {

struct WatchEvent {
  enum class Kind {
    kMainExited,       // or sbx-init went away: ask it (or the runtime) what happened
    kLifetimeReached,  // stop the sandbox
    kFilesExpired,     // remove what is left of the ended sandbox: its kept files
    kRetentionOver,    // forget the ended sandbox's record
  };
  Kind kind;
  std::string id;
  bool operator==(const WatchEvent&) const = default;
};

class Watcher {
 public:
  // `wall_ns` reads the clock that lifetimes and retention are on (CLOCK_REALTIME nanoseconds).
  explicit Watcher(std::function<int64_t()> wall_ns);
  Status Open();

  // Reports kMainExited once `fd` becomes readable or hangs up; replaces an earlier watch.
  Status WatchMain(const std::string& id, UniqueFd fd);
  void UnwatchMain(const std::string& id);
  // Reports kLifetimeReached once the clock passes `deadline_ns` (0: never).
  void SetLifetime(const std::string& id, int64_t deadline_ns);
  // Reports kFilesExpired once the clock passes `until_ns`.
  void SetFilesDeadline(const std::string& id, int64_t until_ns);
  // Reports kRetentionOver once the clock passes `forget_at_ns`.
  void SetRetention(const std::string& id, int64_t forget_at_ns);
  // Nothing more is reported about `id`.
  void Forget(const std::string& id);

  // Waits until an event is due, Wake is called, or `max_wait_ms` passes (< 0: no limit), and
  // returns the due events; each is reported once.
  std::vector<WatchEvent> Wait(int max_wait_ms);
  void Wake();

 private:
  struct MainWatch {
    UniqueFd fd;
    uint64_t token = 0;  // epoll's key: a stale event of a closed descriptor matches nothing
  };
  std::vector<WatchEvent> DueTimersLocked(int64_t now);
  int64_t NextTimerLocked() const;

  std::function<int64_t()> wall_ns_;
  UniqueFd epoll_;
  UniqueFd wake_;
  std::mutex mu_;
  std::map<std::string, MainWatch> mains_;
  std::map<uint64_t, std::string> by_token_;
  uint64_t next_token_ = 1;  // 0 is the wake descriptor
  std::map<std::string, int64_t> lifetimes_;
  std::map<std::string, int64_t> files_;
  std::map<std::string, int64_t> retention_;
};

}  // namespace sbx::daemon
