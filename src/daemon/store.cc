#include "src/daemon/store.h"

#include <sqlite3.h>

#include "src/base/strings.h"

namespace sbx::daemon {

namespace {

Error SqlError(sqlite3* db, const std::string& what) {
  return Error::Internal(what + ": " + (db ? sqlite3_errmsg(db) : "sqlite error"));
}

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

Result<Stmt> Prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) {
    return SqlError(db, std::string("prepare ") + sql);
  }
  return Stmt(stmt);
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Error e = SqlError(db, "open database " + Quote(path));
    sqlite3_close(db);
    return e;
  }
  std::unique_ptr<Store> store(new Store(db));
  SBX_TRY(store->Exec("PRAGMA journal_mode=WAL"));
  SBX_TRY(store->Exec("PRAGMA synchronous=NORMAL"));
  SBX_TRY(store->Exec("PRAGMA busy_timeout=5000"));
  SBX_TRY(store->Exec(
      "CREATE TABLE IF NOT EXISTS sandboxes (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
      "state INTEGER NOT NULL, record TEXT NOT NULL)"));
  SBX_TRY(store->Exec(
      "CREATE TABLE IF NOT EXISTS logs (id TEXT PRIMARY KEY, start_offset INTEGER NOT NULL, "
      "data BLOB NOT NULL)"));
  return store;
}

Store::~Store() { sqlite3_close(db_); }

Status Store::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    return Error::Internal("sqlite: " + sql + ": " + message);
  }
  return Ok();
}

Status Store::Put(const SandboxRecord& record) {
  std::lock_guard lock(mu_);
  SBX_ASSIGN_OR_RETURN(Stmt stmt, Prepare(db_,
                                          "INSERT INTO sandboxes (id, tenant, state, record) "
                                          "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(id) DO UPDATE SET "
                                          "tenant=excluded.tenant, state=excluded.state, "
                                          "record=excluded.record"));
  std::string json = record.ToJson();
  sqlite3_bind_text(stmt.get(), 1, record.id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt.get(), 2, record.tenant.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(stmt.get(), 3, static_cast<int>(record.state));
  sqlite3_bind_text(stmt.get(), 4, json.c_str(), static_cast<int>(json.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return SqlError(db_, "save sandbox " + record.id);
  return Ok();
}

Status Store::Delete(const std::string& id) {
  std::lock_guard lock(mu_);
  for (const char* sql :
       {"DELETE FROM sandboxes WHERE id = ?1", "DELETE FROM logs WHERE id = ?1"}) {
    SBX_ASSIGN_OR_RETURN(Stmt stmt, Prepare(db_, sql));
    sqlite3_bind_text(stmt.get(), 1, id.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(stmt.get()) != SQLITE_DONE) return SqlError(db_, "delete sandbox " + id);
  }
  return Ok();
}

Result<std::vector<SandboxRecord>> Store::LoadAll() {
  std::lock_guard lock(mu_);
  SBX_ASSIGN_OR_RETURN(Stmt stmt, Prepare(db_, "SELECT record FROM sandboxes"));
  std::vector<SandboxRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    const char* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 0));
    auto record = SandboxRecord::FromJson(text ? text : "");
    if (!record) return std::move(record).error();
    out.push_back(std::move(*record));
  }
  if (rc != SQLITE_DONE) return SqlError(db_, "load sandboxes");
  return out;
}

Status Store::PutLogs(const std::string& id, const std::string& data, uint64_t start_offset) {
  std::lock_guard lock(mu_);
  SBX_ASSIGN_OR_RETURN(Stmt stmt, Prepare(db_,
                                          "INSERT OR REPLACE INTO logs (id, start_offset, data) "
                                          "VALUES (?1, ?2, ?3)"));
  sqlite3_bind_text(stmt.get(), 1, id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(stmt.get(), 2, static_cast<sqlite3_int64>(start_offset));
  sqlite3_bind_blob(stmt.get(), 3, data.data(), static_cast<int>(data.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return SqlError(db_, "save logs of " + id);
  return Ok();
}

Result<std::pair<std::string, uint64_t>> Store::GetLogs(const std::string& id) {
  std::lock_guard lock(mu_);
  SBX_ASSIGN_OR_RETURN(Stmt stmt,
                       Prepare(db_, "SELECT data, start_offset FROM logs WHERE id = ?1"));
  sqlite3_bind_text(stmt.get(), 1, id.c_str(), -1, SQLITE_TRANSIENT);
  int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) return Error::NotFound("no saved output for " + id);
  if (rc != SQLITE_ROW) return SqlError(db_, "read logs of " + id);
  const void* blob = sqlite3_column_blob(stmt.get(), 0);
  int size = sqlite3_column_bytes(stmt.get(), 0);
  std::string data(static_cast<const char*>(blob), static_cast<size_t>(size));
  uint64_t start = static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 1));
  return std::make_pair(std::move(data), start);
}

}  // namespace sbx::daemon
