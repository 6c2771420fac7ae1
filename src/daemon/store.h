// File: store.h
//
// Durable state of sbxd in SQLite (WAL): one row per sandbox record, plus the saved output of
// sandboxes whose main process ended (their sbx-init, which held it, is gone). Writes are
// synchronous with the state change they record, so a daemon killed at any point restarts from
// what the API last reported. Thread-safe.

#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/base/result.h"
#include "src/daemon/sandbox_record.h"

struct sqlite3;

namespace sbx::daemon {

class Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  Status Put(const SandboxRecord& record);
  Status Delete(const std::string& id);
  Result<std::vector<SandboxRecord>> LoadAll();

  Status PutLogs(const std::string& id, const std::string& data, uint64_t start_offset);
  // The saved output and the offset of its first byte; NOT_FOUND when none was saved.
  Result<std::pair<std::string, uint64_t>> GetLogs(const std::string& id);

 private:
  explicit Store(sqlite3* db) : db_(db) {}
  Status Exec(const std::string& sql);
  std::mutex mu_;
  sqlite3* db_;
};

}  // namespace sbx::daemon
