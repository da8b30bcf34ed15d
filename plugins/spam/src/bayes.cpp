// bayes.cpp — tokenizer, SQLite token database and chi-square combining; see bayes.hpp.
#include "bayes.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace sluice::spam {
namespace {

// SpamAssassin's constants (Mail::SpamAssassin::Bayes): Robinson's s and x, the minimum
// distance from 0.5 for a token to count, and how many tokens count at most.
constexpr double robinson_s = 0.030;
constexpr double robinson_x = 0.538;
constexpr double min_strength = 0.346;
constexpr std::size_t significant_tokens = 150;

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// The token prefix + lower(word), hashed without building the string: FNV-1a 64 then a
// splitmix64 finalizer. Equal to hashing the concatenated token text.
std::int64_t hash_token(std::string_view prefix, std::string_view word) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : prefix) {
    h ^= c;
    h *= 1099511628211ull;
  }
  for (char c : word) {
    h ^= static_cast<unsigned char>(ascii_lower(c));
    h *= 1099511628211ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return std::bit_cast<std::int64_t>(h);
}

bool word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80 ||
         c == '$' || c == '\'' || c == '-' || c == '_';
}

// Calls emit(prefix, word) for each token (its text: prefix + the word lower-cased, ASCII)
// until emit returns false.
template <class Emit>
void for_each_token(const scan_input& in, Emit&& emit) {
  std::string prefix;
  auto words = [&](std::string_view text, std::string_view field) {
    std::size_t i = 0;
    while (i < text.size()) {
      while (i < text.size() && !word_byte(static_cast<unsigned char>(text[i])))
        ++i;
      std::size_t start = i;
      while (i < text.size() && word_byte(static_cast<unsigned char>(text[i])))
        ++i;
      std::string_view w = text.substr(start, i - start);
      while (!w.empty() && (w.front() == '\'' || w.front() == '-' || w.front() == '_'))
        w.remove_prefix(1);
      while (!w.empty() && (w.back() == '\'' || w.back() == '-' || w.back() == '_'))
        w.remove_suffix(1);
      if (w.size() < 3) continue;
      prefix.assign(field);
      if (w.size() > 15) {
        prefix += "sk:";
        w = w.substr(0, 7);
      }
      if (!emit(std::string_view(prefix), w)) return false;
    }
    return true;
  };
  // Header fields that say something about the sender and the mailer. X-Spam-* fields are
  // never tokens: a tagged message must train like the original.
  static constexpr std::string_view fields[] = {
      "subject",    "from",         "to",      "cc",          "reply-to",   "sender",    "x-mailer",
      "user-agent", "content-type", "list-id", "return-path", "precedence", "x-priority"};
  std::string field;
  for (const auto& [name, value] : in.headers) {
    field.clear();
    for (char c : name)
      field += ascii_lower(c);
    if (std::find(std::begin(fields), std::end(fields), field) == std::end(fields)) continue;
    std::string_view v = value;
    if (field == "subject" && in.have_view) v = in.view.subject;
    field = "H*" + field + ":";
    if (!words(v.substr(0, 1024), field)) return;
  }
  for (const auto& u : in.uris) {
    if (u.host.empty()) continue;
    if (!emit("U*", u.host)) return;
    if (!emit("D*", base_domain(u.host))) return;
  }
  if (!in.view.attachments.empty() && !emit("M*", "attachments")) return;
  for (const auto& a : in.view.attachments) {
    if (!emit("M*type:", a.content_type)) return;
  }
  // The body without its first line (the Subject, already tokenized with its prefix).
  std::string_view body = in.body;
  auto nl = body.find('\n');
  body = nl == std::string_view::npos ? std::string_view() : body.substr(nl + 1);
  words(body, "");
}

void check(int rc, sqlite3* db, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    throw std::runtime_error(std::string("spam bayes database: ") + what + ": " +
                             (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
  }
}

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    throw std::runtime_error("spam bayes database: " + msg);
  }
}

struct stmt {
  sqlite3_stmt* s = nullptr;
  stmt(sqlite3* db, const char* sql) {
    check(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), db, sql);
  }
  ~stmt() { sqlite3_finalize(s); }
  stmt(const stmt&) = delete;
  stmt& operator=(const stmt&) = delete;
};

std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t digest_of(const std::vector<std::int64_t>& tokens) {
  std::uint64_t h = 0x9e3779b97f4a7c15ull;
  for (std::int64_t t : tokens) {
    h ^= std::bit_cast<std::uint64_t>(t) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  }
  return std::bit_cast<std::int64_t>(h);
}

double chi2q(double x2, std::size_t v) {
  // The chi-square survival function for even degrees of freedom v.
  double m = x2 / 2.0;
  double term = std::exp(-m);
  double sum = term;
  for (std::size_t i = 1; i < v / 2; ++i) {
    term *= m / static_cast<double>(i);
    sum += term;
  }
  return std::min(sum, 1.0);
}

}  // namespace

std::vector<std::int64_t> tokenize(const scan_input& in, const tokenizer_options& opt) {
  // Collected with duplicates, then sorted and made unique; stops once max_tokens distinct
  // ones may have been seen (checked when the buffer doubles, so the bound is exact after
  // the final unique).
  std::vector<std::int64_t> out;
  out.reserve(1024);
  std::size_t next_check = std::max<std::size_t>(2 * opt.max_tokens, 256);
  for_each_token(in, [&](std::string_view prefix, std::string_view word) {
    out.push_back(hash_token(prefix, word));
    if (out.size() >= next_check) {
      std::sort(out.begin(), out.end());
      out.erase(std::unique(out.begin(), out.end()), out.end());
      if (out.size() >= opt.max_tokens) return false;
      next_check = out.size() + opt.max_tokens;
    }
    return true;
  });
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.size() > opt.max_tokens) out.resize(opt.max_tokens);
  return out;
}

std::vector<std::string> token_strings(const scan_input& in, const tokenizer_options& opt) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  for_each_token(in, [&](std::string_view prefix, std::string_view word) {
    std::string t(prefix);
    for (char c : word)
      t += ascii_lower(c);
    if (seen.insert(t).second) out.push_back(std::move(t));
    return seen.size() < opt.max_tokens;
  });
  return out;
}

double chi_combine(const std::vector<double>& probabilities) {
  if (probabilities.empty()) return 0.5;
  double ln_f = 0, ln_1f = 0;
  for (double f : probabilities) {
    ln_f += std::log(f);
    ln_1f += std::log(1.0 - f);
  }
  std::size_t dof = 2 * probabilities.size();
  double spamminess = chi2q(-2.0 * ln_f, dof);  // near 1 when the f are near 1
  double hamminess = chi2q(-2.0 * ln_1f, dof);  // near 1 when the f are near 0
  return (1.0 + spamminess - hamminess) / 2.0;
}

struct token_db::reader {
  sqlite3* db = nullptr;
  sqlite3_stmt* token = nullptr;
  sqlite3_stmt* counts = nullptr;
  sqlite3_stmt* version = nullptr;
  // Token counts read through this connection, valid while PRAGMA data_version (which
  // changes when any other connection commits) stays the same; misses are cached as {0,0}.
  // The connection is leased to one caller at a time, so the cache needs no lock.
  std::unordered_map<std::int64_t, std::pair<std::uint32_t, std::uint32_t>> cache;
  std::int64_t cached_version = -1;
  std::uint64_t nspam = 0, nham = 0;
  ~reader() {
    sqlite3_finalize(token);
    sqlite3_finalize(counts);
    sqlite3_finalize(version);
    sqlite3_close(db);
  }
};

token_db::token_db(bayes_options opt) : opt_(std::move(opt)) {
  int rc =
      sqlite3_open_v2(opt_.path.c_str(), &writer_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = writer_ ? sqlite3_errmsg(writer_) : sqlite3_errstr(rc);
    sqlite3_close(writer_);
    writer_ = nullptr;
    throw std::runtime_error("spam bayes database " + opt_.path.string() + ": " + msg);
  }
  try {
    sqlite3_busy_timeout(writer_, 10000);  // the command-line trainer may hold the lock
    exec(writer_, "PRAGMA journal_mode=WAL");
    exec(writer_, opt_.full_sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    exec(writer_,
         "CREATE TABLE IF NOT EXISTS tokens (h INTEGER PRIMARY KEY, spam INTEGER NOT NULL,"
         " ham INTEGER NOT NULL, atime INTEGER NOT NULL);"
         "CREATE TABLE IF NOT EXISTS learnt (digest INTEGER PRIMARY KEY, label INTEGER NOT NULL,"
         " at INTEGER NOT NULL);"
         "CREATE TABLE IF NOT EXISTS counts (id INTEGER PRIMARY KEY CHECK (id = 1),"
         " spam INTEGER NOT NULL, ham INTEGER NOT NULL);"
         "INSERT OR IGNORE INTO counts VALUES (1, 0, 0);");
  } catch (...) {
    sqlite3_close(writer_);
    writer_ = nullptr;
    throw;
  }
}

token_db::~token_db() {
  idle_.clear();
  sqlite3_close(writer_);
}

std::unique_ptr<token_db::reader> token_db::lease() {
  {
    std::lock_guard lock(pool_mutex_);
    if (!idle_.empty()) {
      auto r = std::move(idle_.back());
      idle_.pop_back();
      return r;
    }
  }
  auto r = std::make_unique<reader>();
  int rc = sqlite3_open_v2(opt_.path.c_str(), &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  check(rc, r->db, "open for reading");
  sqlite3_busy_timeout(r->db, 5000);
  check(
      sqlite3_prepare_v2(r->db, "SELECT spam, ham FROM tokens WHERE h = ?", -1, &r->token, nullptr),
      r->db, "prepare");
  check(sqlite3_prepare_v2(r->db, "SELECT spam, ham FROM counts WHERE id = 1", -1, &r->counts,
                           nullptr),
        r->db, "prepare");
  check(sqlite3_prepare_v2(r->db, "PRAGMA data_version", -1, &r->version, nullptr), r->db,
        "prepare");
  return r;
}

void token_db::give_back(std::unique_ptr<reader> r) {
  std::lock_guard lock(pool_mutex_);
  if (idle_.size() < opt_.read_connections) idle_.push_back(std::move(r));
}

std::optional<double> token_db::classify(const std::vector<std::int64_t>& tokens) {
  auto r = lease();
  // One read transaction, so the counts and the tokens come from the same snapshot. It is
  // ended before the connection goes back to the pool (another worker may lease it at once);
  // after an error the connection is closed, not returned.
  check(sqlite3_exec(r->db, "BEGIN", nullptr, nullptr, nullptr), r->db, "begin");
  std::optional<double> p;
  try {
    p = classify_in_transaction(*r, tokens);
  } catch (...) {
    sqlite3_exec(r->db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  sqlite3_exec(r->db, "COMMIT", nullptr, nullptr, nullptr);
  give_back(std::move(r));
  return p;
}

std::optional<double> token_db::classify_in_transaction(reader& rd,
                                                        const std::vector<std::int64_t>& tokens) {
  reader* r = &rd;
  // The first read pins the transaction's snapshot; data_version then tells whether any
  // commit happened since this connection's cache was filled.
  std::uint64_t nspam = 0, nham = 0;
  if (sqlite3_step(r->counts) == SQLITE_ROW) {
    nspam = static_cast<std::uint64_t>(sqlite3_column_int64(r->counts, 0));
    nham = static_cast<std::uint64_t>(sqlite3_column_int64(r->counts, 1));
  }
  sqlite3_reset(r->counts);
  std::int64_t version = -2;
  if (sqlite3_step(r->version) == SQLITE_ROW) version = sqlite3_column_int64(r->version, 0);
  sqlite3_reset(r->version);
  if (version != r->cached_version || nspam != r->nspam || nham != r->nham) {
    r->cache.clear();
    r->cached_version = version;
    r->nspam = nspam;
    r->nham = nham;
  }
  if (nspam < std::max<std::uint64_t>(opt_.min_spam, 1) ||
      nham < std::max<std::uint64_t>(opt_.min_ham, 1)) {
    return std::nullopt;
  }
  std::vector<double> strong;
  strong.reserve(tokens.size());
  for (std::int64_t t : tokens) {
    std::pair<std::uint32_t, std::uint32_t> c{0, 0};
    if (auto it = r->cache.find(t); it != r->cache.end()) {
      c = it->second;
    } else {
      sqlite3_bind_int64(r->token, 1, t);
      int rc = sqlite3_step(r->token);
      if (rc == SQLITE_ROW) {
        c = {static_cast<std::uint32_t>(sqlite3_column_int64(r->token, 0)),
             static_cast<std::uint32_t>(sqlite3_column_int64(r->token, 1))};
      } else if (rc != SQLITE_DONE) {
        sqlite3_reset(r->token);
        check(rc, r->db, "read token");
      }
      sqlite3_reset(r->token);
      if (r->cache.size() < opt_.cache_tokens) r->cache.emplace(t, c);
    }
    double s = c.first, h = c.second;
    double n = s + h;
    if (n > 0) {
      double ps = s / static_cast<double>(nspam), ph = h / static_cast<double>(nham);
      double p = ps / (ps + ph);
      double f = (robinson_s * robinson_x + n * p) / (robinson_s + n);
      if (std::fabs(f - 0.5) >= min_strength) strong.push_back(f);
    }
  }
  if (strong.size() > significant_tokens) {
    std::nth_element(strong.begin(), strong.begin() + significant_tokens, strong.end(),
                     [](double a, double b) { return std::fabs(a - 0.5) > std::fabs(b - 0.5); });
    strong.resize(significant_tokens);
  }
  // Keep probabilities off 0 and 1 so the logarithms stay finite.
  for (double& f : strong)
    f = std::clamp(f, 1e-6, 1.0 - 1e-6);
  return chi_combine(strong);
}

spam_train_result token_db::learn_locked(const std::vector<std::int64_t>& tokens,
                                         spam_label label) {
  const std::int64_t digest = digest_of(tokens);
  const int lab = label == spam_label::spam ? 1 : 0;
  spam_train_result out;
  out.tokens = static_cast<std::uint32_t>(tokens.size());
  int previous = -1;
  {
    stmt q(writer_, "SELECT label FROM learnt WHERE digest = ?");
    sqlite3_bind_int64(q.s, 1, digest);
    if (sqlite3_step(q.s) == SQLITE_ROW) previous = sqlite3_column_int(q.s, 0);
  }
  const std::int64_t now = now_s();
  auto adjust = [&](int which, int delta) {
    // which: 1 spam, 0 ham. Counts never go below zero (a token pruned or hand-edited).
    const char* sql =
        delta > 0
            ? (which ? "INSERT INTO tokens VALUES (?1, 1, 0, ?2) ON CONFLICT(h) DO UPDATE SET "
                       "spam = spam + 1, atime = ?2"
                     : "INSERT INTO tokens VALUES (?1, 0, 1, ?2) ON CONFLICT(h) DO UPDATE SET "
                       "ham = ham + 1, atime = ?2")
            : (which ? "UPDATE tokens SET spam = max(spam - 1, 0) WHERE h = ?1 AND ?2 = ?2"
                     : "UPDATE tokens SET ham = max(ham - 1, 0) WHERE h = ?1 AND ?2 = ?2");
    stmt up(writer_, sql);
    for (std::int64_t t : tokens) {
      sqlite3_bind_int64(up.s, 1, t);
      sqlite3_bind_int64(up.s, 2, now);
      check(sqlite3_step(up.s), writer_, "write token");
      sqlite3_reset(up.s);
    }
    stmt c(writer_, which ? "UPDATE counts SET spam = max(spam + ?1, 0) WHERE id = 1"
                          : "UPDATE counts SET ham = max(ham + ?1, 0) WHERE id = 1");
    sqlite3_bind_int(c.s, 1, delta);
    check(sqlite3_step(c.s), writer_, "write counts");
  };
  if (previous == lab) {
    out.outcome = "unchanged";
  } else {
    if (previous >= 0) {
      adjust(previous, -1);
      out.outcome = "relearned";
    } else {
      out.outcome = "learned";
    }
    adjust(lab, +1);
    stmt ins(writer_, "INSERT OR REPLACE INTO learnt VALUES (?, ?, ?)");
    sqlite3_bind_int64(ins.s, 1, digest);
    sqlite3_bind_int(ins.s, 2, lab);
    sqlite3_bind_int64(ins.s, 3, now);
    check(sqlite3_step(ins.s), writer_, "record message");
  }
  stmt c(writer_, "SELECT spam, ham FROM counts WHERE id = 1");
  if (sqlite3_step(c.s) == SQLITE_ROW) {
    out.spam_messages = static_cast<std::uint64_t>(sqlite3_column_int64(c.s, 0));
    out.ham_messages = static_cast<std::uint64_t>(sqlite3_column_int64(c.s, 1));
  }
  return out;
}

spam_train_result token_db::learn(const std::vector<std::int64_t>& tokens, spam_label label) {
  return learn_batch({{tokens, label}}).front();
}

std::vector<spam_train_result> token_db::learn_batch(
    const std::vector<std::pair<std::vector<std::int64_t>, spam_label>>& batch) {
  std::lock_guard lock(write_mutex_);
  exec(writer_, "BEGIN IMMEDIATE");
  std::vector<spam_train_result> out;
  try {
    for (const auto& [tokens, label] : batch)
      out.push_back(learn_locked(tokens, label));
    exec(writer_, "COMMIT");
  } catch (...) {
    sqlite3_exec(writer_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return out;
}

bayes_stats token_db::stats() {
  std::lock_guard lock(write_mutex_);
  bayes_stats s;
  stmt c(writer_, "SELECT spam, ham, (SELECT count(*) FROM tokens) FROM counts WHERE id = 1");
  if (sqlite3_step(c.s) == SQLITE_ROW) {
    s.spam = static_cast<std::uint64_t>(sqlite3_column_int64(c.s, 0));
    s.ham = static_cast<std::uint64_t>(sqlite3_column_int64(c.s, 1));
    s.tokens = static_cast<std::uint64_t>(sqlite3_column_int64(c.s, 2));
  }
  return s;
}

}  // namespace sluice::spam
