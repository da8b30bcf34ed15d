// tests/plugins/smtp/harness.cpp — see harness.hpp.
#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <boost/json.hpp>

#ifndef SLUICE_BINARY
#error "SLUICE_BINARY must be defined"
#endif

namespace smtp_test {
namespace fs = std::filesystem;

namespace {
// Every directory make_temp_dir created, removed when the test program exits.
struct temp_dirs {
  std::mutex mu;
  std::vector<fs::path> paths;
  ~temp_dirs() {
    std::error_code ec;
    for (const auto& p : paths)
      fs::remove_all(p, ec);
  }
};
temp_dirs& created_dirs() {
  static temp_dirs dirs;
  return dirs;
}
}  // namespace

fs::path make_temp_dir(std::string_view prefix) {
  std::random_device rd;
  auto& created = created_dirs();
  for (int i = 0; i < 100; ++i) {
    fs::path p =
        fs::temp_directory_path() /
        (std::string(prefix) + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::error_code ec;
    if (fs::create_directory(p, ec)) {
      std::lock_guard lock(created.mu);
      created.paths.push_back(p);
      return p;
    }
  }
  throw std::runtime_error("cannot create a temp dir");
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, std::string_view text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

int run_shell(const std::string& cmd, std::string& output) {
  output.clear();
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return -1;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0)
    output.append(buf.data(), n);
  int st = ::pclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

fs::path data_dir() {
  return fs::path(SLUICE_SOURCE_DIR) / "tests" / "data" / "smtp";
}

sluice_server::sluice_server(const std::string& listener_yaml, const std::string& extra_stages,
                             std::optional<fs::path> dir, const std::string& services_yaml) {
  dir_ = dir ? *dir : make_temp_dir("sluice-smtp");
  fs::create_directories(dir_ / "out");
  std::string yaml =
      "log: {format: text, level: debug}\n"
      "spool: {path: ./spool}\n" +
      (services_yaml.empty() ? std::string() : "services:\n" + services_yaml) +
      "listeners:\n"
      "  - name: smtp\n"
      "    plugin: smtp\n"
      "    pipeline: capture\n" +
      listener_yaml +
      "pipelines:\n"
      "  - name: capture\n"
      "    stages:\n" +
      extra_stages +
      "      - plugin: smtp_capture\n"
      "        dir: out\n";
  write_file(dir_ / "sluice.yaml", yaml);
  fs::remove(dir_ / "ready.json");
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int fd = ::open((dir_ / "sluice.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    std::string cfg = (dir_ / "sluice.yaml").string();
    std::string ready = (dir_ / "ready.json").string();
    std::string plugins = SLUICE_TEST_PLUGIN_DIR;
    std::string own_plugins = SMTP_TEST_PLUGIN_DIR;
    ::execl(SLUICE_BINARY, SLUICE_BINARY, "serve", "-c", cfg.c_str(), "--plugin-dir",
            plugins.c_str(), "--plugin-dir", own_plugins.c_str(), "--ready-file", ready.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < until) {
    if (fs::exists(dir_ / "ready.json")) {
      auto v = boost::json::parse(read_file(dir_ / "ready.json"));
      for (const auto& e : v.at("listeners").at("smtp").as_array()) {
        endpoints_.emplace_back(e.as_string().c_str());
      }
      return;
    }
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("sluice exited during start-up:\n" + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop();
  throw std::runtime_error("sluice did not become ready:\n" + log());
}

sluice_server::~sluice_server() {
  stop();
  std::error_code ec;
  if (!::getenv("SLUICE_KEEP_TEST_DIRS")) fs::remove_all(dir_, ec);
}

std::uint16_t sluice_server::port() const {
  for (const auto& e : endpoints_) {
    if (e.starts_with("unix:")) continue;
    return static_cast<std::uint16_t>(std::stoi(e.substr(e.rfind(':') + 1)));
  }
  return 0;
}

std::vector<std::string> sluice_server::messages() const {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_ / "out", ec)) {
    if (e.path().extension() == ".eml") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());  // ids sort by arrival time (strictly, in one process)
  std::vector<std::string> out;
  for (const auto& f : files)
    out.push_back(read_file(f));
  return out;
}

std::vector<std::string> sluice_server::wait_messages(std::size_t n,
                                                      std::chrono::milliseconds limit) const {
  auto until = std::chrono::steady_clock::now() + limit;
  auto m = messages();
  while (m.size() < n && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    m = messages();
  }
  return m;
}

std::string sluice_server::log() const {
  return read_file(dir_ / "sluice.log");
}

bool sluice_server::running() const {
  if (pid_ < 0) return false;
  int st = 0;
  return ::waitpid(pid_, &st, WNOHANG) == 0;
}

int sluice_server::stop(std::chrono::milliseconds limit) {
  if (pid_ < 0) return 0;
  ::kill(pid_, SIGTERM);
  auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  int st = 0;
  ::waitpid(pid_, &st, 0);
  pid_ = -1;
  return -1;
}

client::client(const std::string& endpoint, std::chrono::milliseconds timeout) {
  if (endpoint.starts_with("unix:")) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::string path = endpoint.substr(5);
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd_);
      throw std::runtime_error("cannot connect to " + endpoint);
    }
  } else {
    auto colon = endpoint.rfind(':');
    std::string host = endpoint.substr(0, colon);
    int port = std::stoi(endpoint.substr(colon + 1));
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, host.c_str(), &sa.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd_);
      throw std::runtime_error("cannot connect to " + endpoint);
    }
  }
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

client::~client() {
  if (fd_ >= 0) ::close(fd_);
}

void client::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error("send failed");
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::optional<std::string> client::read_line() {
  while (true) {
    auto nl = buf_.find("\r\n");
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 2);
      return line;
    }
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return std::nullopt;
    buf_.append(tmp, static_cast<std::size_t>(n));
  }
}

std::optional<std::string> client::read_reply() {
  std::string all;
  while (true) {
    auto l = read_line();
    if (!l) return std::nullopt;
    if (!all.empty()) all += "\n";
    all += *l;
    if (l->size() < 4 || (*l)[3] != '-') return all;
  }
}

bool client::closed_by_peer() {
  if (!buf_.empty()) return false;
  char tmp[256];
  ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
  if (n > 0) buf_.append(tmp, static_cast<std::size_t>(n));
  return n == 0;
}

namespace {
std::string unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      char c = s[++i];
      out += c == 'r' ? '\r' : c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}
}  // namespace

std::string run_transcript_text(const std::string& endpoint, std::string_view text) {
  client c(endpoint);
  std::string pending;
  int lineno = 0;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::string where = "line " + std::to_string(lineno) + ": ";
    if (line.starts_with("C: ") || line == "C:") {
      pending += line.size() > 3 ? line.substr(3) : "";
      pending += "\r\n";
    } else if (line.starts_with("R: ")) {
      pending += unescape(line.substr(3));
    } else if (line.starts_with("S: ")) {
      if (!pending.empty()) {
        c.send(pending);
        pending.clear();
      }
      std::string want = line.substr(3);
      if (want == "<closed>") {
        if (!c.closed_by_peer()) return where + "expected the server to close";
        continue;
      }
      auto got = c.read_line();
      if (!got) return where + "expected \"" + want + "\", got EOF/timeout";
      bool ok =
          want.ends_with("*") ? got->starts_with(want.substr(0, want.size() - 1)) : *got == want;
      if (!ok) return where + "expected \"" + want + "\", got \"" + *got + "\"";
    } else {
      return where + "bad transcript line \"" + line + "\"";
    }
  }
  if (!pending.empty()) c.send(pending);
  return "";
}

std::string run_transcript(const std::string& endpoint, const fs::path& file) {
  if (!fs::exists(file)) return "missing transcript " + file.string();
  return run_transcript_text(endpoint, read_file(file));
}

}  // namespace smtp_test
