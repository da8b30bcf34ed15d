// spam_bench.cpp — the spam stage's native engine, messages per second on one core.
//
// Builds N distinct 10 KB messages shaped like bench/smtp_load's "10k" (multipart/mixed:
// text + HTML alternative with links, a base64 PDF), parses each once with the mime
// stage's parser and attaches the view as the "mime" attribute (as the pipeline does),
// then times, on this one thread:
//   mime        the mime stage's parse (for scale: the capture pipeline runs it too)
//   rules       the spam stage's native work without Bayes: scan input + default rules
//   rules+bayes the same with the classifier (SQLite token database trained on N messages)
// Each figure is the best of `rounds` timed passes over all messages (the machine is shared;
// interference only slows a pass). Prints one JSON object.
//
// Usage: spam_bench [--messages N] [--rounds R] [--rules FILE] [--db DIR]
// Built with the tree (target spam_bench, not part of `all`):
//   ninja -C build-release spam_bench && taskset -c 0 build-release/bin/spam_bench
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "bayes.hpp"
#include "parse.hpp"
#include "rules.hpp"
#include "stage.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

std::string words(std::mt19937& rng, std::size_t bytes, const char* open = "",
                  const char* close = "") {
  static const char* vocab[] = {
      "the",      "report",   "meeting", "quarterly", "numbers",  "please",   "review", "attached",
      "project",  "schedule", "invoice", "payment",   "customer", "delivery", "update", "team",
      "release",  "notes",    "server",  "migration", "budget",   "approved", "offer",  "special",
      "discount", "account",  "details", "thanks",    "regards",  "tomorrow", "office", "travel"};
  std::string out;
  std::uniform_int_distribution<std::size_t> pick(0, std::size(vocab) - 1);
  while (out.size() < bytes) {
    std::string line = open;
    while (line.size() < 70)
      line += std::string(vocab[pick(rng)]) + " ";
    out += line + close + "\r\n";
  }
  return out;
}

std::string make_message(int i, std::mt19937& rng) {
  std::string b1 = "=_mixed_4f2a", b2 = "=_alt_9c1e";
  std::string m =
      "Received: from client.example (client.example [192.0.2.10]) by mx.example\r\n"
      "From: Sender " +
      std::to_string(i) + " <sender" + std::to_string(i % 50) +
      "@example.com>\r\nTo: Receiver <rcpt@example.org>\r\nSubject: Bench message " +
      std::to_string(i) +
      " quarterly report\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
      "Message-ID: <bench-" +
      std::to_string(i) +
      "@example.com>\r\nMIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=\"" +
      b1 + "\"\r\n\r\n--" + b1 + "\r\nContent-Type: multipart/alternative; boundary=\"" + b2 +
      "\"\r\n\r\n--" + b2 + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
      words(rng, 2400) + "https://www.example.com/report/" + std::to_string(i) + "\r\n\r\n--" + b2 +
      "\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<!DOCTYPE html>\r\n<html><body>\r\n" +
      words(rng, 3200, "<p>", "</p>") + "<p><a href=\"https://www.example.com/report/" +
      std::to_string(i) +
      "\">www.example.com</a> <a href=\"https://docs.example.org/\">docs</a></p>\r\n"
      "</body></html>\r\n\r\n--" +
      b2 + "--\r\n\r\n--" + b1 +
      "\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\n"
      "Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n"
      "Content-Transfer-Encoding: base64\r\n\r\n";
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::uniform_int_distribution<int> b64(0, 63);
  while (m.size() < 10 * 1024 - 40) {
    std::string line;
    for (int k = 0; k < 76; ++k)
      line += tbl[b64(rng)];
    m += line + "\r\n";
  }
  return m + "\r\n--" + b1 + "--\r\n";
}

template <class F>
double best_rate(int rounds, std::size_t n, F&& pass) {
  double best = 0;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = clock_type::now();
    pass();
    double s = std::chrono::duration<double>(clock_type::now() - t0).count();
    best = std::max(best, static_cast<double>(n) / s);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 2000, rounds = 5;
  std::string rules_file = SLUICE_SPAM_DEFAULT_RULES;
  std::filesystem::path dir = std::filesystem::temp_directory_path() / "sluice-spam-bench";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--messages")
      n = std::max(10, std::atoi(argv[i + 1]));
    else if (a == "--rounds")
      rounds = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--rules")
      rules_file = argv[i + 1];
    else if (a == "--db")
      dir = argv[i + 1];
    else {
      std::fprintf(stderr,
                   "usage: spam_bench [--messages N] [--rounds R] [--rules FILE] [--db DIR]\n");
      return 64;
    }
  }
  std::mt19937 rng(42);
  sluice::mime::init_libraries();
  std::vector<std::shared_ptr<sluice::message>> msgs;
  std::uint64_t bytes = 0;
  for (int i = 0; i < n; ++i) {
    auto m = std::make_shared<sluice::message>();
    m->raw = sluice::message_body::from_string(make_message(i, rng));
    m->envelope.recipients.push_back({"rcpt@example.org", {}});
    bytes += m->raw->size();
    msgs.push_back(std::move(m));
  }
  sluice::mime::parse_limits limits;
  double mime_rate = best_rate(rounds, msgs.size(), [&] {
    for (auto& m : msgs)
      m->attributes["mime"] = sluice::to_json(sluice::mime::parse(m->raw, m->edits, limits).view);
  });

  sluice::spam::native_engine engine;
  auto rules = std::make_shared<sluice::spam::rule_set>();
  rules->load_file(rules_file);
  engine.rules = rules;
  std::size_t spam_count = 0;
  double input_rate = best_rate(rounds, msgs.size(), [&] {
    for (auto& m : msgs)
      spam_count += sluice::spam::make_scan_input(*m, engine.limits).uris.size() > 1000;
  });
  double rules_rate = best_rate(rounds, msgs.size(), [&] {
    for (auto& m : msgs)
      spam_count += engine.scan(sluice::spam::make_scan_input(*m, engine.limits)).is_spam;
  });

  if (std::getenv("SPAM_BENCH_PER_RULE")) {
    // The cost of each rule alone over the same inputs, slowest first, on stderr.
    std::vector<sluice::spam::scan_input> inputs;
    for (auto& m : msgs)
      inputs.push_back(sluice::spam::make_scan_input(*m, engine.limits));
    std::vector<std::pair<double, std::string>> costs;
    for (std::size_t i = 0; i < rules->rules().size(); ++i) {
      auto one = rules->only(i);
      auto t0 = clock_type::now();
      for (const auto& in : inputs)
        spam_count += one.evaluate(in, 0.5).size();
      costs.emplace_back(
          std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() / inputs.size(),
          rules->rules()[i].name);
    }
    std::sort(costs.rbegin(), costs.rend());
    for (const auto& [us, name] : costs)
      std::fprintf(stderr, "%8.2f us  %s\n", us, name.c_str());
  }

  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  sluice::spam::bayes_options bo;
  bo.path = dir / "bayes.db";
  bo.min_spam = bo.min_ham = 1;
  auto db = std::make_shared<sluice::spam::token_db>(bo);
  std::vector<std::pair<std::vector<std::int64_t>, sluice::spam_label>> batch;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    auto in = sluice::spam::make_scan_input(*msgs[i], engine.limits);
    batch.emplace_back(sluice::spam::tokenize(in, engine.tok),
                       i % 2 ? sluice::spam_label::spam : sluice::spam_label::ham);
  }
  db->learn_batch(batch);
  engine.bayes = db;
  double bayes_rate = best_rate(rounds, msgs.size(), [&] {
    for (auto& m : msgs)
      spam_count += engine.scan(sluice::spam::make_scan_input(*m, engine.limits)).is_spam;
  });
  auto st = db->stats();
  std::printf(
      "{\"messages\": %d, \"avg_bytes\": %llu, \"rounds\": %d, \"rules\": %zu,\n"
      " \"mime_parse_msgs_per_s\": %.0f, \"spam_rules_msgs_per_s\": %.0f, "
      "\"spam_rules_bayes_msgs_per_s\": %.0f,\n"
      " \"scan_input_us_per_msg\": %.1f, \"mime_us_per_msg\": %.1f, \"spam_rules_us_per_msg\": "
      "%.1f, \"spam_rules_bayes_us_per_msg\": %.1f,\n"
      " \"bayes_db_tokens\": %llu, \"flagged\": %zu}\n",
      n, static_cast<unsigned long long>(bytes / msgs.size()), rounds, rules->rules().size(),
      mime_rate, rules_rate, bayes_rate, 1e6 / input_rate, 1e6 / mime_rate, 1e6 / rules_rate,
      1e6 / bayes_rate, static_cast<unsigned long long>(st.tokens), spam_count);
  std::filesystem::remove_all(dir);
  return 0;
}
