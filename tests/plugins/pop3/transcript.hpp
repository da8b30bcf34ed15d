// tests/plugins/pop3/transcript.hpp — a golden-transcript runner for line protocols, and
// the blocking client it uses (TCP or unix socket, every wait bounded).
//
// Transcript format, one directive per line:
//   C: text     sent with CRLF; consecutive C:/R: lines go out in one write (pipelining)
//   R: text     sent raw, with the escapes \r \n \t \\ (no CRLF added)
//   S: text     one expected server line; '*' matches any run of characters
//   S: <closed> the server closes the connection (EOF, not a timeout)
//   W: text     skips server lines (at most 100) up to one matching text, which is consumed
//               (for trace headers whose folding depends on host names and dates)
//   # ...       comment; blank lines are ignored
// Not thread-safe; throws std::runtime_error when it cannot connect.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace pop3_test {

class client {
 public:
  explicit client(const std::string& endpoint,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  void send(std::string_view bytes);
  // One line without its CRLF; nullopt on EOF or timeout (eof() tells which).
  std::optional<std::string> read_line();
  // A multi-line response body up to its "." line, dot-stuffing undone, lines joined with
  // CRLF (each line ends with CRLF); nullopt on EOF or timeout.
  std::optional<std::string> read_multiline();
  bool eof() const { return eof_; }

 private:
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
  std::chrono::milliseconds timeout_;
};

// True when `text` matches `pattern`, where '*' matches any run of characters.
bool glob_match(std::string_view pattern, std::string_view text);

// Runs a transcript; "" on success, else what went wrong first (with the line number).
std::string run_transcript_text(const std::string& endpoint, std::string_view text);
std::string run_transcript(const std::string& endpoint, const std::filesystem::path& file);

}  // namespace pop3_test
