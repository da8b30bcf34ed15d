// sluice_test.hpp — helpers for tests that drive the real sluice binary.
//
// sluice_process writes a config into a fresh temporary directory, starts
// `<build>/bin/sluice serve -c <dir>/sluice.yaml --ready-file <dir>/ready.json
// --plugin-dir <build>/lib/sluice/test-plugins`, waits (bounded) until it is listening,
// and stops it on destruction (SIGTERM, then SIGKILL after 10 s). Relative paths in the
// config resolve against that directory. stderr goes to <dir>/sluice.log.
//
// line_client is a blocking TCP or unix-socket client with timeouts, for protocol
// transcripts. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sluice::test {

// A fresh directory under $TMPDIR, removed on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string read_file(const std::filesystem::path& p);
void write_file(const std::filesystem::path& p, std::string_view text);

// The sluice binary and directories of this build.
std::string sluice_binary();
std::string test_plugin_dir();
std::string source_dir();
std::string build_dir();
std::string test_data_dir();

// A helper server the tests run beside sluice (a Python DNS server, say): started as
// `args` + "--ready FILE", it writes its port to FILE once it listens. The constructor
// waits up to 10 s for that and throws runtime_error naming `what` (and `hint`, e.g. the
// Debian packages it needs) if it never comes. Stopped with SIGTERM and reaped on
// destruction.
class ready_server {
 public:
  ready_server(std::vector<std::string> args, const std::string& what,
               const std::string& hint = "");
  ~ready_server();
  ready_server(const ready_server&) = delete;
  ready_server& operator=(const ready_server&) = delete;
  int port() const { return port_; }

 private:
  temp_dir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

class sluice_process {
 public:
  // Starts sluice with `config_yaml` (written to <dir>/sluice.yaml). Fails the current test
  // (and leaves running() false) if it does not become ready within `ready_timeout`.
  explicit sluice_process(std::string config_yaml, std::vector<std::string> extra_args = {},
                          std::chrono::milliseconds ready_timeout = std::chrono::seconds(20));
  // Uses an existing directory (restarts over the same data).
  sluice_process(const std::filesystem::path& dir, std::string config_yaml,
                 std::vector<std::string> extra_args = {},
                 std::chrono::milliseconds ready_timeout = std::chrono::seconds(20));
  // Starts `sluice serve ARGS... --ready-file <dir>/ready.json` without -c (the Mailpit
  // facade), with SLUICE_CONFIG and every MP_* variable removed from the environment and
  // `env` added to it.
  struct no_config {
    std::vector<std::string> args;
    std::vector<std::pair<std::string, std::string>> env;
  };
  sluice_process(const std::filesystem::path& dir, no_config how,
                 std::chrono::milliseconds ready_timeout = std::chrono::seconds(20));
  ~sluice_process();
  sluice_process(const sluice_process&) = delete;
  sluice_process& operator=(const sluice_process&) = delete;

  bool running() const;
  int pid() const { return pid_; }
  const std::filesystem::path& dir() const { return dir_; }
  // Bound endpoints of a listener, from the ready file ("127.0.0.1:41234", "unix:/p").
  std::vector<std::string> endpoints(const std::string& listener) const;
  // Host and port of the listener's first TCP endpoint.
  std::string host(const std::string& listener) const;
  std::uint16_t port(const std::string& listener) const;
  std::string log() const;
  // Sends a signal; stop() sends SIGTERM and waits (bounded) for the exit status.
  void signal(int sig) const;
  int stop(std::chrono::milliseconds timeout = std::chrono::seconds(15));
  // Waits (bounded) for the process to exit without signalling it, calling `between`
  // before every poll; returns the exit status (on timeout it kills the process and returns
  // the status of that SIGKILL). stop() is this after a SIGTERM. `between`
  // runs on this thread and never after the process is reaped, so it may signal pid().
  int wait_exit(const std::function<void()>& between, std::chrono::milliseconds timeout,
                std::chrono::microseconds poll = std::chrono::microseconds(200));
  // SIGKILL and reap.
  void kill();

 private:
  void start(std::string config_yaml, std::vector<std::string> extra_args,
             std::chrono::milliseconds ready_timeout);
  void spawn(std::vector<std::string> args,
             const std::vector<std::pair<std::string, std::string>>* env,
             std::chrono::milliseconds ready_timeout);
  std::optional<temp_dir> owned_dir_;
  std::filesystem::path dir_;
  int pid_ = -1;
  int status_ = -1;
  mutable bool terminating_ = false;  // a SIGTERM/SIGINT was sent: stop() only waits
  std::string ready_json_;
};

class line_client {
 public:
  // "host:port" or "unix:/path". Throws std::runtime_error when it cannot connect.
  explicit line_client(const std::string& endpoint,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10));
  ~line_client();
  line_client(const line_client&) = delete;
  line_client& operator=(const line_client&) = delete;

  void send(std::string_view bytes);
  // One line without its CRLF; std::nullopt on EOF or timeout.
  std::optional<std::string> read_line();
  // A whole SMTP-style reply (continuation lines "250-…" up to "250 …"), lines joined
  // with "\n"; empty on EOF or timeout.
  std::string read_reply();
  // Reads until EOF (or timeout), returns what came.
  std::string read_all();
  // The code of the last complete reply read, 0 if none.
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string buf_;
  std::chrono::milliseconds timeout_;
};

// The string as one single-quoted shell word.
std::string shell_quote(const std::string& s);
// The contents of the *.eml files in `dir` (as the testkit's test_sink writes them), in no
// particular order.
std::vector<std::string> read_eml_files(const std::filesystem::path& dir);

// Runs a shell command (sh -c), returns the exit status; stdout (and stderr, if
// merge_stderr) appended to *out. Bounded by timeout (the process group is killed).
int run_command(const std::string& cmd, std::string* out = nullptr, bool merge_stderr = true,
                std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Sends one message with a minimal SMTP client; returns the final reply line of DATA (or
// the first failing reply).
std::string smtp_send(const std::string& endpoint, const std::string& from,
                      const std::vector<std::string>& rcpts, const std::string& data);

}  // namespace sluice::test
