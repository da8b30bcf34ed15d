// query.cpp — search query → SQL (see query.hpp and README "Search").
//
// Every positive field term of three or more characters goes into one FTS5 MATCH over the
// trigram index of the short fields (terms ANDed), every negated one into one NOT IN MATCH
// (terms ORed). A bare word also matches body words by prefix (body_fts). Shorter terms
// run per candidate row; a header: term scans its name's header_index entries (and checks
// the blob of values too long for the index). The positive indexed terms are also kept
// apart as index sets (sql_filter::keys) for search(), which counts through them.
#include "query.hpp"

#include <glib.h>

#include <algorithm>
#include <cctype>
#include <memory>

#include "index.hpp"
#include "sluice/text.hpp"

namespace sluice::store {
namespace {

using field = search_term::field;

// The FTS5 columns a text term searches.
const char* fts_columns(field f) {
  switch (f) {
    case field::text:
      return "{subject from_t to_t cc_t bcc_t reply_to_t return_path files}";
    case field::from:
      return "from_t";
    case field::to:
      return "to_t";
    case field::cc:
      return "cc_t";
    case field::bcc:
      return "bcc_t";
    case field::reply_to:
      return "reply_to_t";
    case field::addressed:
      return "{from_t to_t cc_t bcc_t reply_to_t}";
    case field::subject:
      return "subject";
    case field::message_id:
      return "message_id";
    default:
      return nullptr;
  }
}

// The same columns as one SQL text for the per-row check of short terms.
const char* row_columns(field f) {
  switch (f) {
    case field::text:
      return "f.subject || char(10) || f.from_t || char(10) || f.to_t || char(10) || f.cc_t ||"
             " char(10) || f.bcc_t || char(10) || f.reply_to_t || char(10) || f.return_path ||"
             " char(10) || f.files";
    case field::from:
      return "f.from_t";
    case field::to:
      return "f.to_t";
    case field::cc:
      return "f.cc_t";
    case field::bcc:
      return "f.bcc_t";
    case field::reply_to:
      return "f.reply_to_t";
    case field::addressed:
      return "f.from_t || char(10) || f.to_t || char(10) || f.cc_t || char(10) || f.bcc_t ||"
             " char(10) || f.reply_to_t";
    case field::subject:
      return "f.subject";
    case field::message_id:
      return "f.message_id";
    default:
      return nullptr;
  }
}

std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

// An FTS5 string: "…" with inner quotes doubled; a trigram index then matches it as a
// substring anywhere in the column.
std::string fts_string(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

// The body_fts query for a bare word or phrase: its words as a phrase, the last one a
// prefix ("weekly rep" finds "weekly report"). Empty when the text has no word characters,
// which unicode61 would turn into an empty (invalid) phrase.
std::string body_query(std::string_view v) {
  bool word = false;
  for (unsigned char c : v) {
    if (c >= 0x80 || std::isalnum(c)) {
      word = true;
      break;
    }
  }
  if (!word) return {};
  return fts_string(body_tokens(v)) + " *";
}

struct gtz_deleter {
  void operator()(GTimeZone* z) const { g_time_zone_unref(z); }
};
struct gdt_deleter {
  void operator()(GDateTime* d) const { g_date_time_unref(d); }
};

// IANA names only: GLib also takes file paths, which a query must never reach.
bool valid_zone_name(std::string_view tz) {
  if (tz.size() > 64 || tz.front() == '/' || tz.find("..") != std::string_view::npos) {
    return false;
  }
  for (char c : tz) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' ||
          c == '_' || c == '-' || c == '+')) {
      return false;
    }
  }
  return true;
}

std::unique_ptr<GTimeZone, gtz_deleter> open_zone(const std::string& tz) {
  if (tz.empty()) return std::unique_ptr<GTimeZone, gtz_deleter>(g_time_zone_new_local());
  if (!valid_zone_name(tz) || iequals(tz, "local")) {
    throw search_error("unknown time zone \"" + tz.substr(0, 64) + "\"");
  }
  if (iequals(tz, "UTC") || iequals(tz, "Z")) {
    return std::unique_ptr<GTimeZone, gtz_deleter>(g_time_zone_new_utc());
  }
  GTimeZone* z = g_time_zone_new_identifier(tz.c_str());
  if (!z) throw search_error("unknown time zone \"" + tz + "\"");
  return std::unique_ptr<GTimeZone, gtz_deleter>(z);
}

std::int64_t days_from_civil(int y, unsigned m, unsigned d) {
  // Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<std::int64_t>(era) * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// The civil date `days` after t's date (t.days_ago resolved by the caller).
search_term::civil_time add_days(search_term::civil_time t, int days) {
  std::unique_ptr<GDateTime, gdt_deleter> d(g_date_time_new_utc(t.year, t.month, t.day, 0, 0, 0));
  if (!d) throw search_error("invalid date");
  std::unique_ptr<GDateTime, gdt_deleter> n(g_date_time_add_days(d.get(), days));
  if (!n) throw search_error("date out of range");
  g_date_time_get_ymd(n.get(), &t.year, &t.month, &t.day);
  return t;
}

void contains_fn(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  if (argc != 2 || sqlite3_value_type(argv[0]) == SQLITE_NULL ||
      sqlite3_value_type(argv[1]) == SQLITE_NULL) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  auto text = [](sqlite3_value* v) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_value_text(v));
    return std::string_view(p ? p : "", static_cast<std::size_t>(sqlite3_value_bytes(v)));
  };
  try {
    // The needle is the same for every row of a statement: fold it once.
    auto* needle = static_cast<std::string*>(sqlite3_get_auxdata(ctx, 1));
    if (!needle) {
      needle = new std::string(fold_case(text(argv[1])));
      sqlite3_set_auxdata(ctx, 1, needle, [](void* p) { delete static_cast<std::string*>(p); });
      needle = static_cast<std::string*>(sqlite3_get_auxdata(ctx, 1));
      if (!needle) {  // SQLite could not keep it (out of memory): fold per call
        const std::string n = fold_case(text(argv[1]));
        sqlite3_result_int(ctx, fold_case(text(argv[0])).find(n) != std::string::npos);
        return;
      }
    }
    sqlite3_result_int(ctx, fold_case(text(argv[0])).find(*needle) != std::string::npos);
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(ctx);
  }
}

// sluice_field(fields, name, text): whether the header-field blob (index.hpp
// encode_fields) has a field named `name` (ASCII case-insensitively) whose value contains
// `text` (as sluice_contains does; an empty text matches any value).
void field_fn(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  if (argc != 3 || sqlite3_value_type(argv[0]) == SQLITE_NULL) {
    sqlite3_result_int(ctx, 0);
    return;
  }
  auto bytes = [](sqlite3_value* v, bool blob) {
    const auto* p = blob ? static_cast<const char*>(sqlite3_value_blob(v))
                         : reinterpret_cast<const char*>(sqlite3_value_text(v));
    return std::string_view(p ? p : "", static_cast<std::size_t>(sqlite3_value_bytes(v)));
  };
  try {
    const std::string_view blob = bytes(argv[0], true);
    const std::string_view name = bytes(argv[1], false);
    const std::string_view text = bytes(argv[2], false);
    const std::string needle = text.empty() ? std::string() : fold_case(text);
    bool found = false;
    for_each_field(blob, [&](std::string_view n, std::string_view v) {
      if (n.size() == name.size() &&
          std::equal(n.begin(), n.end(), name.begin(), [](unsigned char a, unsigned char b) {
            return std::tolower(a) == std::tolower(b);
          })) {
        found = needle.empty() || fold_case(v).find(needle) != std::string::npos;
      }
      return !found;
    });
    sqlite3_result_int(ctx, found ? 1 : 0);
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(ctx);
  }
}

// sluice_unindex_fields(data_id, fields): deletes the header_index rows of a data row
// (messages_last_copy); the connection's `database` is the function's user data.
void unindex_fn(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  if (argc != 2 || sqlite3_value_type(argv[1]) == SQLITE_NULL) return;
  auto* db = static_cast<database*>(sqlite3_user_data(ctx));
  const auto* p = static_cast<const char*>(sqlite3_value_blob(argv[1]));
  try {
    unindex_fields(
        *db, sqlite3_value_int64(argv[0]),
        std::string_view(p ? p : "", static_cast<std::size_t>(sqlite3_value_bytes(argv[1]))));
  } catch (const sqlite_error& e) {
    sqlite3_result_error(ctx, e.what(), -1);
    sqlite3_result_error_code(ctx, e.code());
  } catch (const std::bad_alloc&) {
    sqlite3_result_error_nomem(ctx);
  }
}

constexpr const char* kKeySetType = "sluice_key_set";

// sluice_keys(set, id): whether the key_set bound as `set` holds id (0 without a set).
void keys_fn(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  const auto* k = argc == 2
                      ? static_cast<const key_set*>(sqlite3_value_pointer(argv[0], kKeySetType))
                      : nullptr;
  sqlite3_result_int(ctx, k && k->contains(sqlite3_value_int64(argv[1])) ? 1 : 0);
}

}  // namespace

void key_set::intersect(const key_set& o) {
  for (std::size_t i = 0; i < bits_.size(); ++i)
    bits_[i] &= i < o.bits_.size() ? o.bits_[i] : 0;
}

std::uint64_t key_set::size() const {
  std::uint64_t n = 0;
  for (std::uint64_t w : bits_)
    n += static_cast<std::uint64_t>(__builtin_popcountll(w));
  return n;
}

std::vector<std::int64_t> key_set::ids() const {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < bits_.size(); ++i) {
    for (std::uint64_t w = bits_[i]; w != 0; w &= w - 1)
      out.push_back(static_cast<std::int64_t>(i * 64 + __builtin_ctzll(w)));
  }
  return out;
}

void add_keys(database& db, const std::vector<sql_part>& parts, key_set& out) {
  for (const auto& part : parts) {
    statement s(db.get(), part.sql);
    bind_values(s, part.binds, 1);
    while (s.step())
      out.add(s.column_int(0));
  }
}

void bind_key_set(statement& s, int i, const key_set& k) {
  const int rc = sqlite3_bind_pointer(s.get(), i, const_cast<key_set*>(&k), kKeySetType, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(nullptr, rc, "bind key set");
}

std::int64_t civil_to_ms(const search_term::civil_time& t, const std::string& tz) {
  if (t.has_offset) {
    const std::int64_t days =
        days_from_civil(t.year, static_cast<unsigned>(t.month), static_cast<unsigned>(t.day));
    const std::int64_t secs = days * 86400 + t.hour * 3600 + t.minute * 60 + t.second -
                              static_cast<std::int64_t>(t.offset_minutes) * 60;
    return secs * 1000 + t.millisecond;
  }
  auto zone = open_zone(tz);
  std::unique_ptr<GDateTime, gdt_deleter> d(
      g_date_time_new(zone.get(), t.year, t.month, t.day, t.hour, t.minute, t.second));
  if (!d) throw search_error("date out of range");
  return static_cast<std::int64_t>(g_date_time_to_unix(d.get())) * 1000 + t.millisecond;
}

sql_filter compile_filter(const search_query& q, const std::string& mailbox, const std::string& tz,
                          std::chrono::system_clock::time_point now) {
  sql_filter f;
  f.where = "m.mailbox = ?";
  f.binds.emplace_back(mailbox);
  f.unfiltered = q.terms.empty();
  std::vector<std::string> match_all, match_none;  // FTS5 expressions
  std::string rest;  // further " AND …" conditions, bound after the FTS ones
  std::vector<sql_bind> rest_binds;
  std::vector<sql_part> key_parts;  // the current term's index set, if it has one
  auto cond = [&](const search_term& t, const std::string& sql) {
    rest += t.negated ? " AND NOT (" + sql + ")" : " AND (" + sql + ")";
  };
  // Today's date in the request's zone, for "today"/"yesterday".
  auto today = [&]() {
    auto zone = open_zone(tz);
    std::unique_ptr<GDateTime, gdt_deleter> d(g_date_time_new_from_unix_utc(
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count()));
    std::unique_ptr<GDateTime, gdt_deleter> local(g_date_time_to_timezone(d.get(), zone.get()));
    search_term::civil_time c;
    g_date_time_get_ymd(local.get(), &c.year, &c.month, &c.day);
    return c;
  };
  for (const search_term& t : q.terms) {
    const std::size_t rest_at = rest.size();
    const std::size_t binds_at = rest_binds.size();
    key_parts.clear();
    switch (t.kind) {
      case field::text: {
        // The short fields by substring (as below), or the body by word prefix.
        std::string fields;
        if (code_points(t.value) >= 3) {
          fields = "m.data_id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)";
          rest_binds.emplace_back(std::string(fts_columns(t.kind)) + " : " + fts_string(t.value));
        } else {
          fields = std::string(
                       "EXISTS (SELECT 1 FROM messages_fts f WHERE f.rowid = m.data_id"
                       " AND sluice_contains(") +
                   row_columns(t.kind) + ", ?))";
          rest_binds.emplace_back(t.value);
        }
        // A literal term (an unknown is:/has: value, a size that is none) is text only for
        // Mailpit's substring match; the body's word index would read "is:spam" as the
        // words "is spam", so it looks at the short fields only.
        const std::string body = t.literal ? std::string() : body_query(t.value);
        if (body.empty()) {
          cond(t, fields);
        } else {
          cond(t, fields + " OR m.data_id IN (SELECT rowid FROM body_fts WHERE body_fts MATCH ?)");
          rest_binds.emplace_back(body);
        }
        if (code_points(t.value) >= 3 && !t.negated) {  // both halves from an index
          key_parts.push_back({"SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?",
                               {std::string(fts_columns(t.kind)) + " : " + fts_string(t.value)}});
          if (!body.empty()) {
            key_parts.push_back({"SELECT rowid FROM body_fts WHERE body_fts MATCH ?", {body}});
          }
        }
        break;
      }
      case field::from:
      case field::to:
      case field::cc:
      case field::bcc:
      case field::reply_to:
      case field::addressed:
      case field::subject:
      case field::message_id: {
        if (code_points(t.value) >= 3) {
          const std::string e = std::string(fts_columns(t.kind)) + " : " + fts_string(t.value);
          (t.negated ? match_none : match_all).push_back(e);
        } else {
          // A trigram index cannot find fewer than three characters: check each candidate.
          cond(t, std::string("EXISTS (SELECT 1 FROM messages_fts f WHERE f.rowid = m.data_id"
                              " AND sluice_contains(") +
                      row_columns(t.kind) + ", ?))");
          rest_binds.emplace_back(t.value);
        }
        break;
      }
      case field::header: {
        // header_index: the name's rows whose folded value contains the folded text (a
        // byte search, as sluice_field does), plus the blob check of the name's values
        // too long for the index; without a text, any field of that name.
        const std::string name = ascii_lower(t.header_name);
        if (t.value.empty()) {
          key_parts.push_back({"SELECT data_id FROM header_index WHERE name = ?", {name}});
        } else {
          key_parts.push_back(
              {"SELECT data_id FROM header_index WHERE name = ? AND long = 0"
               " AND instr(value, CAST(? AS BLOB)) > 0",
               {name, fold_case(t.value)}});
          key_parts.push_back(
              {"SELECT h.data_id FROM header_index h"
               " JOIN message_fields hf ON hf.data_id = h.data_id"
               " WHERE h.name = ? AND h.long = 1 AND sluice_field(hf.fields, ?, ?)",
               {name, t.header_name, t.value}});
        }
        std::string sql = "m.data_id IN (";
        for (const auto& part : key_parts) {
          if (&part != &key_parts.front()) sql += " UNION ";
          sql += part.sql;
          rest_binds.insert(rest_binds.end(), part.binds.begin(), part.binds.end());
        }
        cond(t, sql + ")");
        if (t.negated) key_parts.clear();
        break;
      }
      case field::tag:
        cond(t,
             "m.seq IN (SELECT mt.seq FROM tags t JOIN message_tags mt ON mt.tag_id = t.id"
             " WHERE t.mailbox = ? AND t.name = ?)");
        rest_binds.emplace_back(mailbox);
        rest_binds.emplace_back(t.value);
        break;
      case field::is_read:
        cond(t, "m.read = 1");
        break;
      case field::is_unread:
        cond(t, "m.read = 0");
        break;
      case field::is_tagged:
        cond(t, "EXISTS (SELECT 1 FROM message_tags mt WHERE mt.seq = m.seq)");
        break;
      case field::has_attachment:
        cond(t, "m.attachments > 0");
        break;
      case field::has_inline:
        cond(t, "m.inline_parts > 0");
        break;
      case field::larger:
        cond(t, "m.size > ?");
        rest_binds.emplace_back(static_cast<std::int64_t>(t.size));
        break;
      case field::smaller:
        cond(t, "m.size < ?");
        rest_binds.emplace_back(static_cast<std::int64_t>(t.size));
        break;
      case field::before:
      case field::after: {
        search_term::civil_time c = t.time;
        if (c.days_ago >= 0) c = add_days(today(), -c.days_ago);
        // Mailpit's bounds: a date alone is its midnight, and both ends are inclusive.
        cond(t, t.kind == field::before ? "m.created <= ?" : "m.created >= ?");
        rest_binds.emplace_back(civil_to_ms(c, tz));
        break;
      }
    }
    if (!key_parts.empty()) {
      f.keys.push_back(key_parts);  // its condition stays in `where` only
    } else {
      f.key_rest += rest.substr(rest_at);
      f.key_rest_binds.insert(f.key_rest_binds.end(), rest_binds.begin() + binds_at,
                              rest_binds.end());
    }
  }
  auto join = [](const std::vector<std::string>& v, const char* op) {
    std::string out;
    for (const auto& e : v) {
      if (!out.empty()) out += op;
      out += "(" + e + ")";
    }
    return out;
  };
  if (!match_all.empty()) {
    f.where += " AND m.data_id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)";
    f.binds.emplace_back(join(match_all, " AND "));
    f.keys.push_back(
        {{"SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?", {f.binds.back()}}});
  }
  if (!match_none.empty()) {
    const char* sql =
        " AND m.data_id NOT IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)";
    f.where += sql;
    f.binds.emplace_back(join(match_none, " OR "));
    f.key_rest = sql + f.key_rest;
    f.key_rest_binds.insert(f.key_rest_binds.begin(), f.binds.back());
  }
  f.where += rest;
  for (auto& b : rest_binds)
    f.binds.push_back(std::move(b));
  return f;
}

int bind_filter(statement& s, const sql_filter& f, int first) {
  return bind_values(s, f.binds, first);
}

int bind_values(statement& s, const std::vector<sql_bind>& values, int first) {
  int i = first;
  for (const auto& b : values) {
    if (const auto* n = std::get_if<std::int64_t>(&b)) {
      s.bind(i++, *n);
    } else {
      s.bind(i++, std::get<std::string>(b));
    }
  }
  return i;
}

void register_functions(database& db) {
  const int rc =
      sqlite3_create_function_v2(db.get(), "sluice_contains", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                 nullptr, contains_fn, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) throw_sqlite(db.get(), rc, "register sluice_contains");
  const int rc2 =
      sqlite3_create_function_v2(db.get(), "sluice_field", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                 nullptr, field_fn, nullptr, nullptr, nullptr);
  if (rc2 != SQLITE_OK) throw_sqlite(db.get(), rc2, "register sluice_field");
  // Not deterministic: its answer depends on the bound set, not only on the arguments' values.
  const int rc3 = sqlite3_create_function_v2(db.get(), "sluice_keys", 2, SQLITE_UTF8, nullptr,
                                             keys_fn, nullptr, nullptr, nullptr);
  if (rc3 != SQLITE_OK) throw_sqlite(db.get(), rc3, "register sluice_keys");
  const int rc4 = sqlite3_create_function_v2(db.get(), "sluice_unindex_fields", 2, SQLITE_UTF8, &db,
                                             unindex_fn, nullptr, nullptr, nullptr);
  if (rc4 != SQLITE_OK) throw_sqlite(db.get(), rc4, "register sluice_unindex_fields");
}

}  // namespace sluice::store
