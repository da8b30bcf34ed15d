// spam_corpus.hpp — helpers for the spam tests: reading the corpus in tests/data/spam,
// parsing a message as the mime stage does, and a deterministic generator of ham and spam
// for the classifier experiment. Header-only; not thread-safe (tests use it from one
// thread).
#pragma once

#include <algorithm>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "parse.hpp"
#include "scan_input.hpp"
#include "sluice/message.hpp"
#include "sluice_test.hpp"

namespace sluice::test::spam {

inline std::string to_crlf(const std::string& s) {
  std::string out;
  out.reserve(s.size() + s.size() / 20);
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) out += '\r';
    out += s[i];
  }
  return out;
}

struct corpus_message {
  std::string file;
  std::string raw;  // CRLF
  bool spam = false;
  std::vector<std::string> expect;  // X-Test-Expect
  boost::json::object auth;         // from X-Test-Auth: spf=fail dkim=fail dmarc=fail
};

inline parsed_message parse_view(const std::string& raw) {
  mime::init_libraries();
  return mime::parse(message_body::from_string(raw), {}, mime::parse_limits{}).view;
}

inline sluice::spam::scan_input input_of(const std::string& raw, std::size_t recipients = 1,
                                         boost::json::object auth = {}) {
  auto body = message_body::from_string(raw);
  sluice::spam::scan_input in =
      sluice::spam::make_scan_input(body->header_block(), parse_view(raw), recipients, {});
  in.have_view = true;
  in.auth = std::move(auth);
  return in;
}

inline std::vector<corpus_message> load_corpus() {
  std::vector<corpus_message> out;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(test_data_dir() + "/spam/corpus"))
    if (e.path().extension() == ".eml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    corpus_message m;
    m.file = f.filename().string();
    m.raw = to_crlf(read_file(f));
    for (const auto& [name, value] :
         sluice::spam::split_headers(message_body::from_string(m.raw)->header_block(), 1 << 20)) {
      std::istringstream words(value);
      std::string w;
      if (name == "X-Test-Class") m.spam = value == "spam";
      if (name == "X-Test-Expect")
        while (words >> w)
          m.expect.push_back(w);
      if (name == "X-Test-Auth") {
        while (words >> w) {
          auto eq = w.find('=');
          std::string method = w.substr(0, eq), result = w.substr(eq + 1);
          if (method == "dkim") {
            m.auth["dkim"] = boost::json::array{boost::json::object{{"result", result}}};
          } else {
            m.auth[method] = boost::json::object{{"result", result}};
          }
        }
      }
    }
    std::sort(m.expect.begin(), m.expect.end());
    out.push_back(std::move(m));
  }
  return out;
}

// A generated message: realistic headers, words drawn from a class vocabulary mixed with
// common words. Spam trips a rule only now and then (as real spam that rules miss), so the
// rules alone catch part of it and the classifier has to learn the rest.
class generator {
 public:
  explicit generator(unsigned seed) : rng_(seed) {}

  std::string make(bool spam, int index) {
    static const std::vector<std::string> common = {
        "the",  "and",  "for",         "you",   "this",   "with",   "your",  "have",
        "are",  "from", "will",        "about", "more",   "please", "today", "week",
        "time", "new",  "information", "here",  "thanks", "would",  "like",  "can",
        "our",  "all",  "just",        "know",  "some",   "they"};
    static const std::vector<std::string> ham_words = {
        "meeting",    "agenda",    "review",   "branch",    "merge",    "deploy",
        "schedule",   "lunch",     "minutes",  "draft",     "report",   "budget",
        "quarterly",  "colleague", "project",  "milestone", "ticket",   "release",
        "document",   "feedback",  "calendar", "team",      "workshop", "slides",
        "conference", "travel",    "coffee",   "regards",   "attached", "comments",
        "proposal",   "deadline",  "server",   "database",  "backup",   "migration"};
    static const std::vector<std::string> spam_words = {
        "offer",      "discount",    "exclusive", "deal",        "savings",
        "casino",     "bonus",       "loan",      "credit",      "approved",
        "guaranteed", "cheap",       "pills",     "weight",      "lose",
        "income",     "opportunity", "risk-free", "unsubscribe", "congratulations",
        "claim",      "prize",       "luxury",    "replica",     "watches",
        "dating",     "singles",     "mortgage",  "rates",       "lowest",
        "investment", "wealth",      "promotion", "special",     "selected",
        "reward"};
    static const std::vector<std::string> ham_senders = {"alice@example.org", "bob@example.org",
                                                         "carol@example.net", "dave@example.com"};
    static const std::vector<std::string> spam_senders = {
        "promo@deals-mail.example", "news@offers.example.biz", "win@lucky-prize.example",
        "support@cheap-meds.example"};
    const auto& cls = spam ? spam_words : ham_words;
    const auto& senders = spam ? spam_senders : ham_senders;
    auto pick = [&](const std::vector<std::string>& v) {
      return v[std::uniform_int_distribution<std::size_t>(0, v.size() - 1)(rng_)];
    };
    std::string subject;
    for (int i = 0; i < 4; ++i)
      subject += (i ? " " : "") + (i % 2 ? pick(common) : pick(cls));
    std::string body;
    int words = std::uniform_int_distribution<int>(20, 120)(rng_);
    for (int i = 0; i < words; ++i) {
      // Class words are a minority, and a third of them come from the other class: the
      // vocabularies overlap as real mail's do.
      bool from_class = std::bernoulli_distribution(0.25)(rng_);
      bool crossed = std::bernoulli_distribution(0.33)(rng_);
      body += from_class ? pick(crossed ? (spam ? ham_words : spam_words) : cls) : pick(common);
      body += (i % 12 == 11) ? "\r\n" : " ";
    }
    // Now and then a phrase the default rules know, in both classes (false positives too).
    std::bernoulli_distribution sometimes(spam ? 0.25 : 0.03);
    if (sometimes(rng_)) body += "\r\nClick here to order now.\r\n";
    if (sometimes(rng_)) body += "\r\nYou have been selected.\r\n";
    if (spam && std::bernoulli_distribution(0.2)(rng_))
      body += "\r\nhttp://bit.ly/x" + std::to_string(index) + "\r\n";
    std::string msg = "From: " + pick(senders) + "\r\nTo: user@example.org\r\nSubject: " + subject +
                      "\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <gen-" +
                      std::to_string(index) + (spam ? "s" : "h") +
                      "@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; "
                      "charset=utf-8\r\n\r\n" +
                      body + "\r\n";
    return msg;
  }

 private:
  std::mt19937 rng_;
};

}  // namespace sluice::test::spam
