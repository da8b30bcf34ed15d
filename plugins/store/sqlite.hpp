// sqlite.hpp — a thin RAII layer over the SQLite C API for the store plugin.
//
// Ownership: a database owns its sqlite3* and a cache of prepared statements; a
// statement_lease borrows a cached statement and resets it (and clears its bindings) when
// it goes away, so a read transaction is never left open by a forgotten statement (an open
// read transaction would stop WAL checkpoints).
//
// Threading: a database is used by one thread at a time (the writer thread, or the reader
// thread that has leased it); connections are opened with SQLITE_OPEN_NOMUTEX.
//
// Failure: every call that fails throws sqlite_error carrying the primary result code
// (SQLITE_FULL, SQLITE_IOERR, …) so callers can map it to a verdict.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::store {

class sqlite_error : public std::runtime_error {
 public:
  sqlite_error(int rc, const std::string& what) : std::runtime_error(what), rc_(rc) {}
  // The extended result code; (code() & 0xff) is the primary code.
  int code() const noexcept { return rc_; }
  int primary() const noexcept { return rc_ & 0xff; }
  // The file or the system failed (I/O, space, permissions, a damaged or locked file), not
  // the statement or the settings: at start the store exits 74, a read answers storage_error.
  bool storage_failure() const noexcept;

 private:
  int rc_;
};

class statement {
 public:
  statement(sqlite3* db, std::string_view sql);
  ~statement();
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  // Parameters are 1-based, as in SQLite.
  void bind(int i, std::int64_t v);
  void bind(int i, std::string_view text);  // copied by SQLite (SQLITE_TRANSIENT)
  // The bytes must stay alive and unchanged until the statement is reset.
  void bind_blob_static(int i, std::string_view bytes);
  // Text, not copied: the same lifetime rule as bind_blob_static.
  void bind_text_static(int i, std::string_view text);
  void bind_zeroblob(int i, std::uint64_t n);
  void bind_null(int i);

  // Runs one step: true when a row is available, false when done.
  bool step();
  // Steps to completion, ignoring rows.
  void run();
  void reset() noexcept;

  std::int64_t column_int(int i) const;
  std::string_view column_text(int i) const;
  std::string_view column_blob(int i) const;
  bool column_is_null(int i) const;

  sqlite3_stmt* get() const noexcept { return stmt_; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// A cached statement, reset and cleared when the lease ends.
class statement_lease {
 public:
  explicit statement_lease(statement& s) : s_(&s) {}
  ~statement_lease() { s_->reset(); }
  statement_lease(const statement_lease&) = delete;
  statement_lease& operator=(const statement_lease&) = delete;
  statement* operator->() const noexcept { return s_; }
  statement& operator*() const noexcept { return *s_; }

 private:
  statement* s_;
};

class database {
 public:
  // flags: SQLITE_OPEN_* (NOMUTEX is always added). Throws sqlite_error.
  database(const std::filesystem::path& path, int flags);
  ~database();
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  // Runs one or more statements without results. Throws sqlite_error.
  void exec(std::string_view sql);
  // Runs a statement returning one integer (PRAGMA user_version, count(*)…).
  std::int64_t query_int(std::string_view sql);
  // A prepared statement from the connection's cache (keyed by the SQL text).
  statement_lease cached(std::string_view sql);

  std::int64_t last_insert_rowid() const noexcept;
  std::int64_t changes() const noexcept;
  bool in_transaction() const noexcept;
  sqlite3* get() const noexcept { return db_; }

 private:
  sqlite3* db_ = nullptr;
  // Looked up by string_view (transparent hash): no string is built per lookup.
  struct sql_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::unordered_map<std::string, std::unique_ptr<statement>, sql_hash, std::equal_to<>> cache_;
};

// Throws sqlite_error for rc (with the connection's message when db is given).
[[noreturn]] void throw_sqlite(sqlite3* db, int rc, std::string_view context);

}  // namespace sluice::store
