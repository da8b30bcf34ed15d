// receiver.hpp — receiver.py (a Python http.server webhook receiver) as a test fixture:
// started on 127.0.0.1, its requests read back from its JSON-lines log. Bounded waits.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "sluice_test.hpp"

extern char** environ;

namespace webhook_test {

namespace json = boost::json;

inline std::string receiver_script() {
  return sluice::test::source_dir() + "/tests/plugins/webhook/receiver.py";
}

class receiver {
 public:
  // `args` are extra receiver.py arguments (--statuses 500,200, --secret s, --cert …).
  explicit receiver(std::vector<std::string> args = {}, int port = 0,
                    std::filesystem::path log = {}) {
    port_file_ = dir_.path() / "port";
    log_ = log.empty() ? dir_.path() / "requests.jsonl" : log;
    std::vector<std::string> argv_s = {
        "/usr/bin/python3", receiver_script(),   "--port", std::to_string(port),
        "--port-file",      port_file_.string(), "--log",  log_.string()};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
      throw std::runtime_error("cannot start receiver.py");
    }
    for (int i = 0; i < 200 && !std::filesystem::exists(port_file_); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!std::filesystem::exists(port_file_)) throw std::runtime_error("receiver.py did not start");
    port_ = std::stoi(sluice::test::read_file(port_file_));
  }
  ~receiver() { stop(); }
  receiver(const receiver&) = delete;
  receiver& operator=(const receiver&) = delete;

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  int port() const { return port_; }
  std::string url(const std::string& path = "/hook") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  const std::filesystem::path& log_path() const { return log_; }

  std::vector<json::object> requests() const {
    std::vector<json::object> out;
    std::ifstream in(log_);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      boost::system::error_code ec;
      auto v = json::parse(line, ec);
      if (!ec && v.is_object()) out.push_back(v.as_object());
    }
    return out;
  }

  // Waits until at least n requests were received; returns them.
  std::vector<json::object> wait_for(
      std::size_t n, std::chrono::milliseconds limit = std::chrono::seconds(20)) const {
    const auto end = std::chrono::steady_clock::now() + limit;
    auto r = requests();
    while (r.size() < n && std::chrono::steady_clock::now() < end) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      r = requests();
    }
    return r;
  }

 private:
  sluice::test::temp_dir dir_;
  std::filesystem::path port_file_;
  std::filesystem::path log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// The message IDs (X-Sluice-Message-Id) among requests.
inline std::set<std::string> message_ids(const std::vector<json::object>& reqs) {
  std::set<std::string> ids;
  for (const auto& r : reqs) {
    const auto& h = r.at("headers").as_object();
    if (auto* id = h.if_contains("x-sluice-message-id")) ids.insert(std::string(id->as_string()));
  }
  return ids;
}

inline std::string header(const json::object& req, const std::string& lower_name) {
  const auto& h = req.at("headers").as_object();
  auto* v = h.if_contains(lower_name);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// Makes ca.pem (a test CA) and server.pem/server.key (for DNS name "localhost" only, no
// IP address) in `dir` with the openssl command. Returns false (output in *out) on failure.
inline bool make_test_pki(const std::filesystem::path& dir, std::string* out) {
  const std::string cmd =
      "cd " + sluice::test::shell_quote(dir.string()) +
      " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      " -keyout ca.key -out ca.pem -days 2 -subj '/CN=Sluice Test CA'"
      " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
      " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      " -keyout server.key -out server.csr -subj '/CN=localhost'"
      " && printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\n"
      "extendedKeyUsage=serverAuth\\n' > ext.cnf"
      " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
      " -out server.pem -days 2 -extfile ext.cnf";
  return sluice::test::run_command(cmd, out) == 0;
}

// A port on 127.0.0.1 that was free a moment ago (for a receiver started later).
inline int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace webhook_test
