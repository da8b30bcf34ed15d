// bayes.hpp — the Bayesian classifier: tokenizer, token database, chi-square combining.
//
// Tokens (as SpamAssassin's Bayes): words of the decoded text and of the HTML turned into
// text (3-15 bytes, ASCII lower-cased; longer words become a "skip" token of their first
// bytes), words of selected header fields prefixed with the field ("H*subject:viagra"),
// and the hosts of URIs ("U*example.com"). Only the presence of a token counts, not how
// often it occurs; a message contributes at most `max_tokens` distinct tokens. Tokens are
// stored as 64-bit hashes.
//
// Classification (Gary Robinson's method, as SpamAssassin's Bayes::Combine::Chi): each
// token's spam probability from its counts, adjusted toward 0.5 for rare tokens
// (f(w) = (s*x + n*p(w)) / (s + n)); the up to 150 tokens farthest from 0.5 (at least
// 0.346 away) are combined with Fisher's chi-square method into one probability.
//
// The database is SQLite in its own file, WAL mode: one writer connection (training,
// under a mutex) and a pool of read-only connections (classification, one per concurrent
// caller), so reads never wait for a training transaction. Every call is blocking: callers
// run it on the host's workers.
//
// Threading: token_db is thread-safe. Failure: SQLite errors throw std::runtime_error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "scan_input.hpp"
#include "sluice/spam.hpp"

struct sqlite3;

namespace sluice::spam {

struct tokenizer_options {
  std::size_t max_tokens = 1000;  // distinct tokens per message
};

// Distinct token hashes of a message, sorted.
std::vector<std::int64_t> tokenize(const scan_input& in, const tokenizer_options& opt);
// The readable tokens (for tests and debugging), in the order found, deduplicated.
std::vector<std::string> token_strings(const scan_input& in, const tokenizer_options& opt);

struct bayes_options {
  std::filesystem::path path;
  std::uint64_t min_spam = 200;  // below this many learnt spam (or ham), no verdict
  std::uint64_t min_ham = 200;
  unsigned read_connections = 4;
  // Token counts each read connection caches (dropped whenever the database changes).
  std::size_t cache_tokens = 200000;
  bool full_sync = false;  // synchronous=FULL (durability: full), else NORMAL
};

struct bayes_stats {
  std::uint64_t spam = 0, ham = 0, tokens = 0;
};

class token_db {
 public:
  // Opens (creating if needed) the database. read_only: for `check-config`-free tools that
  // only classify. Throws std::runtime_error.
  explicit token_db(bayes_options opt);
  ~token_db();
  token_db(const token_db&) = delete;
  token_db& operator=(const token_db&) = delete;

  // The spam probability of a message with these tokens, or nullopt while the database
  // has fewer than min_spam spam or min_ham ham messages.
  std::optional<double> classify(const std::vector<std::int64_t>& tokens);
  // Learns one message (idempotent; relabels a message learnt the other way).
  spam_train_result learn(const std::vector<std::int64_t>& tokens, spam_label label);
  // Many messages in one transaction (the command-line trainer).
  std::vector<spam_train_result> learn_batch(
      const std::vector<std::pair<std::vector<std::int64_t>, spam_label>>& batch);
  bayes_stats stats();

 private:
  struct reader;
  std::unique_ptr<reader> lease();
  void give_back(std::unique_ptr<reader> r);
  std::optional<double> classify_in_transaction(reader& r, const std::vector<std::int64_t>& tokens);
  spam_train_result learn_locked(const std::vector<std::int64_t>& tokens, spam_label label);

  bayes_options opt_;
  std::mutex write_mutex_;
  sqlite3* writer_ = nullptr;
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<reader>> idle_;
};

// Fisher's chi-square combination of token probabilities (exposed for tests).
double chi_combine(const std::vector<double>& probabilities);

}  // namespace sluice::spam
