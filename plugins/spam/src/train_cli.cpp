// train_cli.cpp — `sluice spam train|stats`: the command-line trainer.
//
//   sluice spam train [--spam PATH]... [--ham PATH]... [--db FILE] [--max-tokens N]
//   sluice spam stats [--db FILE]
//
// PATH is a file or a directory (searched recursively, e.g. a Maildir): a file whose first
// line starts with "From " is an mbox (mboxrd: ">From " lines are unescaped), any other
// file is one message. Messages are parsed with the mime stage's own parser (the static
// sluice_mime_core library), so the trainer sees exactly the tokens the stage sees. The
// database is the spam service's file (default $SLUICE_DATA/spam-bayes.db, SLUICE_DATA
// defaulting to /var/tmp/sluice); it may be in use by a running server (WAL: the server
// keeps classifying while this writes).
//
// Single-threaded, for a process of its own. Bounded: a message over 64 MB is skipped.
// Exit status: 0 done, 64 usage, 66 a path cannot be read, 70 database error.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "bayes.hpp"
#include "parse.hpp"
#include "scan_input.hpp"

namespace sluice::spam {
namespace {

constexpr std::size_t max_message = 64u << 20;

int usage() {
  std::cerr << "usage: sluice spam train [--spam PATH]... [--ham PATH]... [--db FILE] "
               "[--max-tokens N]\n"
               "       sluice spam stats [--db FILE]\n"
               "PATH: a message file, an mbox, or a directory of them (recursive)\n";
  return 64;
}

std::string default_db() {
  const char* data = std::getenv("SLUICE_DATA");
  return std::string(data && *data ? data : "/var/tmp/sluice") + "/spam-bayes.db";
}

// Splits an mbox into messages (mboxrd unescaping of >From lines).
std::vector<std::string> split_mbox(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  bool in_msg = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto eol = text.find('\n', pos);
    std::string_view line(text.data() + pos,
                          (eol == std::string::npos ? text.size() : eol + 1) - pos);
    pos = eol == std::string::npos ? text.size() : eol + 1;
    if (line.starts_with("From ")) {
      if (in_msg) out.push_back(std::move(cur));
      cur.clear();
      in_msg = true;
      continue;
    }
    if (!in_msg) continue;
    std::size_t gt = 0;
    while (gt < line.size() && line[gt] == '>')
      ++gt;
    if (gt > 0 && line.substr(gt).starts_with("From ")) line.remove_prefix(1);
    if (cur.size() + line.size() <= max_message) cur.append(line);
  }
  if (in_msg) out.push_back(std::move(cur));
  return out;
}

bool read_whole(const std::filesystem::path& p, std::string& out) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return false;
  out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return !f.bad();
}

// Appends the messages found at `path`; false (with a message on stderr) on a read error.
bool collect(const std::filesystem::path& path, std::vector<std::string>& out) {
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_directory(path, ec)) {
    for (auto it = std::filesystem::recursive_directory_iterator(path, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec)) files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
  } else if (std::filesystem::is_regular_file(path, ec)) {
    files.push_back(path);
  } else {
    std::cerr << "sluice spam: " << path.string() << ": no such file or directory\n";
    return false;
  }
  if (ec) {
    std::cerr << "sluice spam: " << path.string() << ": " << ec.message() << "\n";
    return false;
  }
  for (const auto& f : files) {
    std::string text;
    if (std::filesystem::file_size(f, ec) > 16 * max_message && !ec) {
      std::cerr << "sluice spam: " << f.string() << ": too large, skipped\n";
      continue;
    }
    if (!read_whole(f, text)) {
      std::cerr << "sluice spam: " << f.string() << ": cannot read\n";
      return false;
    }
    if (text.starts_with("From ")) {
      for (auto& m : split_mbox(text))
        out.push_back(std::move(m));
    } else if (text.size() <= max_message) {
      out.push_back(std::move(text));
    } else {
      std::cerr << "sluice spam: " << f.string() << ": larger than 64 MB, skipped\n";
    }
  }
  return true;
}

std::vector<std::int64_t> message_tokens(const std::string& raw, const tokenizer_options& tok) {
  auto body = message_body::from_string(raw);
  mime::init_libraries();
  mime::parse_limits limits;
  parsed_message view = mime::parse(body, {}, limits).view;
  scan_limits sl;
  scan_input in = make_scan_input(body->header_block(), std::move(view), 0, sl);
  in.have_view = true;
  return tokenize(in, tok);
}

int train(std::span<const std::string> args) {
  std::vector<std::pair<std::string, spam_label>> paths;
  std::string db = default_db();
  tokenizer_options tok;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string* { return i + 1 < args.size() ? &args[++i] : nullptr; };
    if (a == "--spam" || a == "--ham") {
      const std::string* v = value();
      if (!v) return usage();
      paths.emplace_back(*v, a == "--spam" ? spam_label::spam : spam_label::ham);
    } else if (a == "--db") {
      const std::string* v = value();
      if (!v) return usage();
      db = *v;
    } else if (a == "--max-tokens") {
      const std::string* v = value();
      if (!v) return usage();
      long n = std::strtol(v->c_str(), nullptr, 10);
      if (n < 10 || n > 100000) return usage();
      tok.max_tokens = static_cast<std::size_t>(n);
    } else {
      return usage();
    }
  }
  if (paths.empty()) return usage();
  try {
    bayes_options o;
    o.path = db;
    token_db tdb(o);
    std::size_t learned = 0, relearned = 0, unchanged = 0;
    for (const auto& [path, label] : paths) {
      std::vector<std::string> messages;
      if (!collect(path, messages)) return 66;
      std::vector<std::pair<std::vector<std::int64_t>, spam_label>> batch;
      auto flush = [&] {
        for (const auto& r : tdb.learn_batch(batch)) {
          if (r.outcome == "learned")
            ++learned;
          else if (r.outcome == "relearned")
            ++relearned;
          else
            ++unchanged;
        }
        batch.clear();
      };
      for (const auto& m : messages) {
        batch.emplace_back(message_tokens(m, tok), label);
        if (batch.size() >= 500) flush();
      }
      if (!batch.empty()) flush();
    }
    bayes_stats s = tdb.stats();
    std::cout << "learned " << learned << ", relearned " << relearned << ", unchanged " << unchanged
              << "; database " << db << ": " << s.spam << " spam, " << s.ham << " ham, " << s.tokens
              << " tokens\n";
  } catch (const std::exception& e) {
    std::cerr << "sluice spam: " << e.what() << "\n";
    return 70;
  }
  return 0;
}

int stats(std::span<const std::string> args) {
  std::string db = default_db();
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--db" && i + 1 < args.size())
      db = args[++i];
    else
      return usage();
  }
  if (!std::filesystem::exists(db)) {
    std::cerr << "sluice spam: " << db << ": no such database\n";
    return 66;
  }
  try {
    bayes_options o;
    o.path = db;
    token_db tdb(o);
    bayes_stats s = tdb.stats();
    std::cout << "spam " << s.spam << "\nham " << s.ham << "\ntokens " << s.tokens << "\n";
  } catch (const std::exception& e) {
    std::cerr << "sluice spam: " << e.what() << "\n";
    return 70;
  }
  return 0;
}

}  // namespace

int spam_command(std::span<const std::string> args) {
  if (args.empty()) return usage();
  if (args[0] == "train") return train(args.subspan(1));
  if (args[0] == "stats") return stats(args.subspan(1));
  if (args[0] == "--help" || args[0] == "-h") {
    usage();
    return 0;
  }
  return usage();
}

}  // namespace sluice::spam
