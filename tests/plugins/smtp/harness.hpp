// tests/plugins/smtp/harness.hpp — what the SMTP integration tests need: start the real
// `sluice` binary with a config on 127.0.0.1 port 0 (and unix sockets), a blocking line
// client with timeouts, and a golden-transcript runner.
//
// Self-contained on purpose (POSIX sockets, fork/exec): every wait is bounded (sockets have
// SO_RCVTIMEO/SO_SNDTIMEO, the start-up wait is bounded), and the process is killed in the
// destructor if it did not stop on SIGTERM. Failures are reported as gtest failures or
// std::runtime_error with what went wrong.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace smtp_test {

std::filesystem::path make_temp_dir(std::string_view prefix);
std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, std::string_view text);

// Runs a shell command; returns its exit status and fills `output` (stdout+stderr).
int run_shell(const std::string& cmd, std::string& output);

class sluice_server {
 public:
  // listener_yaml: the plugin-owned keys of the smtp listener, indented by 4 spaces
  // (e.g. "    hostname: mx.test\n"). extra_stages: YAML items put before the test_sink
  // stage in the pipeline, indented by 6 spaces. services_yaml: items of a services:
  // section, indented by 2 spaces.
  explicit sluice_server(const std::string& listener_yaml, const std::string& extra_stages = "",
                         std::optional<std::filesystem::path> dir = std::nullopt,
                         const std::string& services_yaml = "");
  ~sluice_server();
  sluice_server(const sluice_server&) = delete;
  sluice_server& operator=(const sluice_server&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  // Endpoints of the smtp listener as reported in the ready file.
  const std::vector<std::string>& endpoints() const { return endpoints_; }
  std::uint16_t port() const;  // port of the first TCP endpoint
  // Messages the smtp_capture stage stored (full output with header edits), oldest first.
  std::vector<std::string> messages() const;
  // Waits (bounded) until at least n messages are stored.
  std::vector<std::string> wait_messages(
      std::size_t n, std::chrono::milliseconds limit = std::chrono::seconds(10)) const;
  std::string log() const;
  // SIGTERM and wait (bounded); returns the exit status, or -1 if it had to be killed.
  int stop(std::chrono::milliseconds limit = std::chrono::seconds(15));
  bool running() const;

 private:
  std::filesystem::path dir_;
  int pid_ = -1;
  std::vector<std::string> endpoints_;
};

class client {
 public:
  // "127.0.0.1:port" or "unix:/path". Throws std::runtime_error when it cannot connect.
  explicit client(const std::string& endpoint,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  void send(std::string_view bytes);
  void send_line(std::string_view line) { send(std::string(line) + "\r\n"); }
  // One reply line without CRLF; empty optional on EOF/timeout.
  std::optional<std::string> read_line();
  // A whole (possibly multi-line) reply, lines joined by "\n".
  std::optional<std::string> read_reply();
  // True when the server closed the connection (reads EOF within the timeout).
  bool closed_by_peer();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string buf_;
};

// Runs a transcript: "C: text" lines are sent with CRLF, "R: text" are sent raw with \r, \n,
// \t and \\ escapes, consecutive C:/R: lines go out in one write (pipelining); "S: text"
// lines are expected in order; an S: line ending in '*' matches by prefix; "S: <closed>"
// expects the server to close. '#' lines and blank lines are ignored. Returns "" on success
// or a description of the first mismatch.
std::string run_transcript(const std::string& endpoint, const std::filesystem::path& file);
std::string run_transcript_text(const std::string& endpoint, std::string_view text);

std::filesystem::path data_dir();  // tests/data/smtp

}  // namespace smtp_test
