// query.hpp — compiling a parsed search query (sluice/search.hpp) to SQL over the store's
// schema: a WHERE clause on `messages m` plus its bound values.
//
// Text terms become FTS5 MATCH expressions over the trigram index (messages_fts, whose
// rowid is m.data_id); terms shorter than three characters, which a trigram index cannot
// answer, are checked per candidate row with sluice_contains() (see README "Search").
// Dates are turned into instants with the request's IANA time zone.
//
// Threading: pure functions. Failure: throws sluice::search_error (safe to show) for an
// unknown time zone or a date that does not exist.
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

struct sql_filter {
  std::string where;  // a boolean SQL expression over `m` (messages)
  std::vector<std::variant<std::int64_t, std::string>> binds;  // for ?1, ?2, … in order
};

// The filter for `q` in `mailbox` (always restricted to it). `now` is used for "today".
sql_filter compile_filter(
    const search_query& q, const std::string& mailbox, const std::string& tz,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// Binds f.binds to s starting at parameter `first`; returns the next free index.
int bind_filter(statement& s, const sql_filter& f, int first = 1);

// Registers sluice_contains(haystack, needle) on a connection: Unicode case-insensitive
// substring test (simple case folding of both sides), NULL-safe.
void register_functions(database& db);

// Unix milliseconds of a civil time in an IANA zone ("" = the server's local zone).
// Throws search_error for an unknown zone.
std::int64_t civil_to_ms(const search_term::civil_time& t, const std::string& tz);

}  // namespace sluice::store
