// index.cpp — derived rows and address JSON (see index.hpp).
#include "index.hpp"

#include <glib.h>

#include <algorithm>

#include <boost/json.hpp>

#include "sluice/message_json.hpp"

namespace sluice::store {
namespace json = boost::json;
namespace {

json::object to_obj(const mail_address& a) {
  return json::object{{"name", a.name}, {"address", a.address}};
}

mail_address from_obj(const json::value& v) {
  mail_address a;
  if (!v.is_object()) return a;
  const auto& o = v.get_object();
  if (auto* n = o.if_contains("name"); n && n->is_string()) a.name = n->get_string();
  if (auto* n = o.if_contains("address"); n && n->is_string()) a.address = n->get_string();
  return a;
}

}  // namespace

std::string address_json_text(const std::optional<mail_address>& a) {
  return a ? json::serialize(to_obj(*a)) : std::string("null");
}

std::string address_list_json_text(const std::vector<mail_address>& v) {
  json::array arr;
  arr.reserve(v.size());
  for (const auto& a : v)
    arr.push_back(to_obj(a));
  return json::serialize(arr);
}

std::optional<mail_address> address_from_json_text(std::string_view text) {
  boost::system::error_code ec;
  json::value v = sluice::parse_stored_json(text, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return from_obj(v);
}

std::vector<mail_address> address_list_from_json_text(std::string_view text) {
  std::vector<mail_address> out;
  boost::system::error_code ec;
  json::value v = sluice::parse_stored_json(text, ec);
  if (ec || !v.is_array()) return out;
  for (const auto& x : v.get_array())
    out.push_back(from_obj(x));
  return out;
}

std::string encode_fields(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::size_t n = 0;
  for (const auto& [name, value] : fields)
    n += name.size() + value.size() + 10;
  std::string out;
  out.reserve(n);
  auto put = [&out](std::string_view s) {
    std::uint64_t len = s.size();
    do {  // LEB128: 7 bits a byte, high bit set while more follow
      const auto b = static_cast<unsigned char>(len & 0x7F);
      len >>= 7;
      out += static_cast<char>(len ? (b | 0x80) : b);
    } while (len);
    out.append(s);
  };
  for (const auto& [name, value] : fields) {
    put(name);
    put(value);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> decode_fields(std::string_view blob) {
  std::vector<std::pair<std::string, std::string>> out;
  for_each_field(blob, [&](std::string_view name, std::string_view value) {
    out.emplace_back(name, value);
    return true;
  });
  return out;
}

bool for_each_field(std::string_view blob,
                    const std::function<bool(std::string_view, std::string_view)>& fn) {
  std::size_t i = 0;
  auto get = [&](std::string_view& s) {
    std::uint64_t len = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i >= blob.size()) return false;
      const auto b = static_cast<unsigned char>(blob[i++]);
      len |= static_cast<std::uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) {
        if (len > blob.size() - i) return false;
        s = blob.substr(i, len);
        i += len;
        return true;
      }
    }
    return false;
  };
  while (i < blob.size()) {
    std::string_view name, value;
    if (!get(name) || !get(value)) return false;
    if (!fn(name, value)) return true;
  }
  return true;
}

std::string fold_case(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const char* p = s.data();
  const char* end = s.data() + s.size();
  while (p < end) {
    auto c = static_cast<unsigned char>(*p);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
      ++p;
      continue;
    }
    gunichar u = g_utf8_get_char_validated(p, end - p);
    if (u == static_cast<gunichar>(-1) || u == static_cast<gunichar>(-2)) {
      out.push_back(static_cast<char>(c));  // not UTF-8: compare the byte as it is
      ++p;
      continue;
    }
    char buf[6];
    const int n = g_unichar_to_utf8(g_unichar_tolower(u), buf);
    out.append(buf, static_cast<std::size_t>(n));
    p = g_utf8_next_char(p);
  }
  return out;
}

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

void write_fields(database& db, std::int64_t data_id,
                  const std::vector<std::pair<std::string, std::string>>& fields) {
  const std::string blob = encode_fields(fields);
  {
    auto s = db.cached("INSERT OR REPLACE INTO message_fields(data_id, fields) VALUES(?1, ?2)");
    s->bind(1, data_id);
    s->bind_blob_static(2, blob);
    s->run();
  }
  // (name, value) keys: a repeated field (Received) with the same value is one row.
  struct key {
    std::string name;
    int long_value;
    std::string value;
  };
  std::vector<key> keys;
  keys.reserve(fields.size());
  for (const auto& [name, value] : fields) {
    header_key(name, value, [&](const std::string& n, int long_value, const std::string& v) {
      keys.push_back({n, long_value, v});
    });
  }
  // Up to kRowsPerInsert rows per statement execution (one prepared statement per row
  // count, cached): a message's ~10 fields cost one step instead of ten. The bound strings
  // live in `keys` until the lease resets the statement.
  constexpr std::size_t kRowsPerInsert = 16;
  for (std::size_t at = 0; at < keys.size(); at += kRowsPerInsert) {
    const std::size_t n = std::min(kRowsPerInsert, keys.size() - at);
    thread_local std::vector<std::string> sql_by_rows(kRowsPerInsert + 1);
    std::string& sql = sql_by_rows[n];
    if (sql.empty()) {
      sql = "INSERT OR IGNORE INTO header_index(name, long, value, data_id) VALUES";
      for (std::size_t r = 0; r < n; ++r)
        sql += r == 0 ? "(?,?,?,?)" : ",(?,?,?,?)";
    }
    auto s = db.cached(sql);
    for (std::size_t r = 0; r < n; ++r) {
      const key& k = keys[at + r];
      const int p = static_cast<int>(r * 4);
      s->bind_text_static(p + 1, k.name);
      s->bind(p + 2, k.long_value);
      s->bind_blob_static(p + 3, k.value);
      s->bind(p + 4, data_id);
    }
    s->run();
  }
}

void header_key(std::string_view name, std::string_view value,
                const std::function<void(const std::string&, int, const std::string&)>& fn) {
  std::string folded;
  const bool long_value =
      value.size() > kIndexedValueBytes ||
      !g_utf8_validate(value.data(), static_cast<gssize>(value.size()), nullptr);
  if (!long_value) folded = fold_case(value);
  if (folded.size() > kIndexedValueBytes) {
    fn(ascii_lower(name), 1, std::string());
  } else {
    fn(ascii_lower(name), long_value ? 1 : 0, folded);
  }
}

void unindex_fields(database& db, std::int64_t data_id, std::string_view fields) {
  auto s = db.cached(
      "DELETE FROM header_index WHERE name = ?1 AND long = ?2 AND value = ?3 AND data_id = ?4");
  for_each_field(fields, [&](std::string_view name, std::string_view value) {
    header_key(name, value, [&](const std::string& n, int long_value, const std::string& v) {
      s->bind(1, n);
      s->bind(2, long_value);
      s->bind_blob_static(3, v);
      s->bind(4, data_id);
      s->run();
      s->reset();
    });
    return true;
  });
}

void write_index(database& db, std::int64_t data_id, const index_text& ix, bool fresh) {
  for (const char* sql :
       {"DELETE FROM messages_fts WHERE rowid = ?1", "DELETE FROM body_fts WHERE rowid = ?1"}) {
    if (fresh) break;
    auto s = db.cached(sql);
    s->bind(1, data_id);
    s->run();
  }
  {
    auto s = db.cached(
        "INSERT INTO messages_fts(rowid, subject, from_t, to_t, cc_t, bcc_t, reply_to_t,"
        " return_path, message_id, files)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    s->bind(1, data_id);
    s->bind(2, ix.subject);
    s->bind(3, ix.from);
    s->bind(4, ix.to);
    s->bind(5, ix.cc);
    s->bind(6, ix.bcc);
    s->bind(7, ix.reply_to);
    // A Return-Path that is a byte substring of the From text (the usual case: the
    // envelope sender is the From address) is not indexed again: return_path is only ever
    // searched together with from_t (a bare word), and every substring of it is then a
    // substring of from_t, so the results are the same with ~10% fewer trigrams to write.
    const bool in_from = ix.from.find(ix.return_path) != std::string::npos;
    // "" and not a null view, which would bind NULL and make the concatenated per-row
    // check of short terms (query.cpp row_columns) NULL.
    s->bind(8, in_from ? std::string_view("") : std::string_view(ix.return_path));
    s->bind(9, ix.message_id);
    s->bind(10, ix.files);
    s->run();
  }
  // body_fts's `names` column (schema v3) is no longer written: header_index answers header:.
  if (!ix.body.empty()) {
    auto s = db.cached("INSERT INTO body_fts(rowid, body) VALUES(?1, ?2)");
    s->bind(1, data_id);
    s->bind(2, body_tokens(ix.body));
    s->run();
  }
}

namespace {

bool cjk(char32_t c) {
  return (c >= 0x3040 && c <= 0x30FF) ||  // Hiragana, Katakana
         (c >= 0x31F0 && c <= 0x31FF) ||  // Katakana phonetic extensions
         (c >= 0x3400 && c <= 0x4DBF) ||  // CJK extension A
         (c >= 0x4E00 && c <= 0x9FFF) ||  // CJK unified ideographs
         (c >= 0xAC00 && c <= 0xD7AF) ||  // Hangul syllables
         (c >= 0xF900 && c <= 0xFAFF) ||  // CJK compatibility ideographs
         (c >= 0xFF66 && c <= 0xFF9F) ||  // halfwidth Katakana
         (c >= 0x20000 && c <= 0x3134F);  // CJK extensions B..G
}

}  // namespace

std::string body_tokens(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  std::size_t i = 0;
  while (i < text.size()) {
    const unsigned char b = static_cast<unsigned char>(text[i]);
    std::size_t len = b < 0x80           ? 1
                      : (b >> 5) == 0x6  ? 2
                      : (b >> 4) == 0xE  ? 3
                      : (b >> 3) == 0x1E ? 4
                                         : 1;
    if (i + len > text.size()) len = 1;
    char32_t c = b;
    if (len > 1) {
      c = b & (0x7F >> len);
      for (std::size_t k = 1; k < len; ++k)
        c = (c << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    }
    if (cjk(c)) {
      out += ' ';
      out.append(text.substr(i, len));
      out += ' ';
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

}  // namespace sluice::store
