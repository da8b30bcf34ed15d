// relay_test_support.hpp — helpers shared by the relay plugin's tests that drive the real
// binary against tests/plugins/relay/upstream.py (Python's aiosmtpd on loopback).
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "sluice_test.hpp"

namespace sluice::test::relay {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

inline const char* const kPython = "/usr/bin/python3";

// A background process in its own process group, killed on destruction.
class background {
 public:
  explicit background(const std::string& cmd) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~background() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGTERM);
      ::kill(pid_, SIGTERM);
      int st = 0;
      for (int i = 0; i < 50; ++i) {
        if (::waitpid(pid_, &st, WNOHANG) == pid_) return;
        std::this_thread::sleep_for(100ms);
      }
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
    }
  }
  background(const background&) = delete;
  background& operator=(const background&) = delete;

 private:
  pid_t pid_ = -1;
};

template <class F>
inline bool eventually(F f, std::chrono::milliseconds limit = 20s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return f();
}

// upstream.py on 127.0.0.1 (port 0, or the given one); what it accepted is read back from
// its outdir as <n>.json.
class upstream {
 public:
  upstream(const fs::path& dir, const std::string& args, std::uint16_t port = 0) : dir_(dir) {
    fs::create_directories(dir_ / "out");
    proc_.emplace(std::string(kPython) + " " +
                  shell_quote(std::string(RELAY_TEST_DIR) + "/upstream.py") + " --port-file " +
                  shell_quote((dir_ / "port").string()) + " --outdir " +
                  shell_quote((dir_ / "out").string()) + " --port " + std::to_string(port) + " " +
                  args + " > " + shell_quote((dir_ / "upstream.log").string()) + " 2>&1");
    eventually([&] { return fs::exists(dir_ / "port"); }, 15s);
    if (fs::exists(dir_ / "port"))
      port_ = static_cast<std::uint16_t>(std::stoi(read_file(dir_ / "port")));
  }
  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  fs::path message_file(int n) const { return dir_ / "out" / (std::to_string(n) + ".json"); }
  std::vector<json::object> messages() const {
    std::vector<json::object> out;
    for (int i = 1; fs::exists(message_file(i)); ++i)
      out.push_back(json::parse(read_file(message_file(i))).as_object());
    return out;
  }
  bool wait_for(std::size_t n, std::chrono::milliseconds limit = 20s) const {
    return eventually([&] { return messages().size() >= n; }, limit);
  }
  std::string log() const { return read_file(dir_ / "upstream.log"); }

 private:
  fs::path dir_;
  std::optional<background> proc_;
  std::uint16_t port_ = 0;
};

}  // namespace sluice::test::relay
