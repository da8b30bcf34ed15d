// query.hpp — compiling a parsed search query (sluice/search.hpp) to SQL over the store's
// schema: a WHERE clause on `messages m` plus its bound values.
//
// Text terms become FTS5 MATCH expressions over the trigram index (messages_fts, whose
// rowid is m.data_id); terms shorter than three characters, which a trigram index cannot
// answer, are checked per candidate row with sluice_contains() (see README "Search").
// Dates are turned into instants with the request's IANA time zone. header: terms use
// header_index. The filter also comes split into index sets and the other conditions, for
// search() (README "Search": how search runs a query).
//
// Threading: pure functions (add_keys and the SQL functions run on the connection's thread).
// Failure: throws sluice::search_error (safe to show) for an unknown time zone or a date that does
// not exist.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sluice/search.hpp"
#include "sqlite.hpp"

namespace sluice::store {

using sql_bind = std::variant<std::int64_t, std::string>;

// One SQL statement and its bound values (for ?, in order).
struct sql_part {
  std::string sql;
  std::vector<sql_bind> binds;
};

struct sql_filter {
  std::string where;            // a boolean SQL expression over `m` (messages)
  std::vector<sql_bind> binds;  // for ?1, ?2, … in order
  // No condition but the mailbox (a list): the matches are the mailbox's messages.
  bool unfiltered = false;
  // The same filter split for search(): sets of message_data ids from the indexes that a
  // match must be in (ANDed; each set is the union of its statements' rows, one id column),
  // and the other conditions of `where` except the mailbox, as " AND …" over `m`. Empty
  // `keys`: no term selects by an index set.
  std::vector<std::vector<sql_part>> keys;
  std::string key_rest;
  std::vector<sql_bind> key_rest_binds;
};

// A set of message_data ids (a bitmap), for sluice_keys(set, data_id) in SQL: bound with
// bind_key_set(), it lets a scan of an index test membership without a temporary table.
class key_set {
 public:
  explicit key_set(std::int64_t max_id)
      : bits_(static_cast<std::size_t>(max_id < 0 ? 0 : max_id) / 64 + 1, 0) {}
  void add(std::int64_t id) {
    if (id >= 0 && static_cast<std::uint64_t>(id) / 64 < bits_.size()) {
      bits_[static_cast<std::size_t>(id) / 64] |= std::uint64_t{1} << (id % 64);
    }
  }
  bool contains(std::int64_t id) const {
    return id >= 0 && static_cast<std::uint64_t>(id) / 64 < bits_.size() &&
           (bits_[static_cast<std::size_t>(id) / 64] >> (id % 64) & 1) != 0;
  }
  void intersect(const key_set& o);
  std::uint64_t size() const;
  std::vector<std::int64_t> ids() const;  // ascending

 private:
  std::vector<std::uint64_t> bits_;
};

// Fills a key set with the rows of each statement of `parts` (their first column).
void add_keys(database& db, const std::vector<sql_part>& parts, key_set& out);
// Binds `k` (which must outlive the statement's use) to parameter i for sluice_keys().
void bind_key_set(statement& s, int i, const key_set& k);

// The filter for `q` in `mailbox` (always restricted to it). `now` is used for "today".
sql_filter compile_filter(
    const search_query& q, const std::string& mailbox, const std::string& tz,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// Binds f.binds to s starting at parameter `first`; returns the next free index.
int bind_filter(statement& s, const sql_filter& f, int first = 1);
// Binds `values` to s starting at parameter `first`; returns the next free index.
int bind_values(statement& s, const std::vector<sql_bind>& values, int first);

// Registers sluice_contains(haystack, needle) on a connection: Unicode case-insensitive
// substring test (simple case folding of both sides), NULL-safe; sluice_field(fields, name,
// text) over a header-field blob; sluice_keys(set, id): whether a bound key_set holds id.
void register_functions(database& db);

// Unix milliseconds of a civil time in an IANA zone ("" = the server's local zone).
// Throws search_error for an unknown zone.
std::int64_t civil_to_ms(const search_term::civil_time& t, const std::string& tz);

}  // namespace sluice::store
