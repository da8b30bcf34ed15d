// sqlite.cpp — implementation of the RAII SQLite layer (see sqlite.hpp).
//
// Every failing SQLite call becomes a sqlite_error with the result code and a message
// naming what was attempted; nothing here logs or swallows errors.
#include "sqlite.hpp"

#include <climits>

namespace sluice::store {

bool sqlite_error::storage_failure() const noexcept {
  switch (primary()) {
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_FULL:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOLFS:
    case SQLITE_PROTOCOL:
      return true;
    default:
      return false;
  }
}

void throw_sqlite(sqlite3* db, int rc, std::string_view context) {
  std::string what(context);
  what += ": ";
  what += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const int ext = db ? sqlite3_extended_errcode(db) : rc;
  // sqlite3_extended_errcode reports the most recent error of the connection, which is
  // the one we are handling only when its primary code agrees.
  throw sqlite_error((ext & 0xff) == (rc & 0xff) ? ext : rc, what);
}

statement::statement(sqlite3* db, std::string_view sql) : db_(db) {
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(db, rc, "prepare");
}

statement::~statement() {
  sqlite3_finalize(stmt_);
}

void statement::bind(int i, std::int64_t v) {
  int rc = sqlite3_bind_int64(stmt_, i, v);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
}

void statement::bind(int i, std::string_view text) {
  int rc = sqlite3_bind_text64(stmt_, i, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
}

void statement::bind_blob_static(int i, std::string_view bytes) {
  // SQLITE_STATIC: no copy of a possibly large body; the caller keeps it alive.
  int rc = sqlite3_bind_blob64(stmt_, i, bytes.data(), bytes.size(), SQLITE_STATIC);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
}

void statement::bind_text_static(int i, std::string_view text) {
  int rc = sqlite3_bind_text64(stmt_, i, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
}

void statement::bind_zeroblob(int i, std::uint64_t n) {
  int rc = sqlite3_bind_zeroblob64(stmt_, i, n);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
}

void statement::bind_null(int i) {
  int rc = sqlite3_bind_null(stmt_, i);
  if (rc != SQLITE_OK) throw_sqlite(db_, rc, "bind");
}

bool statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw_sqlite(db_, rc, "step");
}

void statement::run() {
  while (step()) {
  }
}

void statement::reset() noexcept {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::int64_t statement::column_int(int i) const {
  return sqlite3_column_int64(stmt_, i);
}

std::string_view statement::column_text(int i) const {
  auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
  int n = sqlite3_column_bytes(stmt_, i);
  return p ? std::string_view(p, static_cast<std::size_t>(n)) : std::string_view();
}

std::string_view statement::column_blob(int i) const {
  auto p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
  int n = sqlite3_column_bytes(stmt_, i);
  return p ? std::string_view(p, static_cast<std::size_t>(n)) : std::string_view();
}

bool statement::column_is_null(int i) const {
  return sqlite3_column_type(stmt_, i) == SQLITE_NULL;
}

namespace {

// Process-wide SQLite settings, applied once before the first connection opens. Memory
// statistics are off: with them, every sqlite3_malloc/free takes a global mutex to keep
// counts nobody here reads (about 4% of the instructions of a captured message). This
// only works before SQLite initializes; if another plugin opened a database first, the
// call fails harmlessly and the defaults stay.
void configure_sqlite_once() {
  static const int rc = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  (void)rc;
}

}  // namespace

database::database(const std::filesystem::path& path, int flags) {
  configure_sqlite_once();
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string what =
        "open " + path.string() + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw sqlite_error(rc, what);
  }
  sqlite3_extended_result_codes(db_, 1);
}

database::~database() {
  cache_.clear();  // statements must be finalized before the connection closes
  if (db_) sqlite3_close_v2(db_);
}

void database::exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string what = "exec: ";
    what += err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw sqlite_error(sqlite3_extended_errcode(db_), what);
  }
}

std::int64_t database::query_int(std::string_view sql) {
  statement s(db_, sql);
  return s.step() ? s.column_int(0) : 0;
}

statement_lease database::cached(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    it = cache_.emplace(std::string(sql), std::make_unique<statement>(db_, sql)).first;
  }
  return statement_lease(*it->second);
}

std::int64_t database::last_insert_rowid() const noexcept {
  return sqlite3_last_insert_rowid(db_);
}
std::int64_t database::changes() const noexcept {
  return sqlite3_changes64(db_);
}
bool database::in_transaction() const noexcept {
  return sqlite3_get_autocommit(db_) == 0;
}

}  // namespace sluice::store
