// sluice_test.cpp — see sluice_test.hpp.
#include "sluice_test.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

extern char** environ;

namespace sluice::test {

temp_dir::temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/sluice-test-XXXXXX";
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  if (!std::getenv("SLUICE_KEEP_TEST_DIRS")) std::filesystem::remove_all(path_, ec);
}

ready_server::ready_server(std::vector<std::string> args, const std::string& what,
                           const std::string& hint) {
  const auto ready = dir_.path() / "ready";
  args.push_back("--ready");
  args.push_back(ready.string());
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
    pid_ = -1;
    throw std::runtime_error("cannot start " + what);
  }
  for (int i = 0; i < 200 && !std::filesystem::exists(ready); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (!std::filesystem::exists(ready)) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    throw std::runtime_error(what + " did not start" + (hint.empty() ? "" : " (" + hint + ")"));
  }
  port_ = std::stoi(read_file(ready));
}

ready_server::~ready_server() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  ::waitpid(pid_, nullptr, 0);
}

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::filesystem::path& p, std::string_view text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string sluice_binary() {
  return SLUICE_BINARY;
}
std::string test_plugin_dir() {
  return SLUICE_TEST_PLUGIN_DIR;
}
std::string source_dir() {
  return SLUICE_SOURCE_DIR;
}
std::string build_dir() {
  return SLUICE_BUILD_DIR;
}
std::string test_data_dir() {
  return SLUICE_TEST_DATA_DIR;
}

std::string log_file_tail(const std::filesystem::path& p);

sluice_process::sluice_process(std::string config_yaml, std::vector<std::string> extra_args,
                               std::chrono::milliseconds ready_timeout) {
  owned_dir_.emplace();
  dir_ = owned_dir_->path();
  start(std::move(config_yaml), std::move(extra_args), ready_timeout);
}

sluice_process::sluice_process(const std::filesystem::path& dir, std::string config_yaml,
                               std::vector<std::string> extra_args,
                               std::chrono::milliseconds ready_timeout)
    : dir_(dir) {
  start(std::move(config_yaml), std::move(extra_args), ready_timeout);
}

sluice_process::sluice_process(const std::filesystem::path& dir, no_config how,
                               std::chrono::milliseconds ready_timeout)
    : dir_(dir) {
  std::vector<std::string> args = {sluice_binary(), "serve"};
  args.insert(args.end(), how.args.begin(), how.args.end());
  args.push_back("--ready-file");
  args.push_back((dir_ / "ready.json").string());
  spawn(std::move(args), &how.env, ready_timeout);
}

void sluice_process::start(std::string config_yaml, std::vector<std::string> extra_args,
                           std::chrono::milliseconds ready_timeout) {
  auto cfg = dir_ / "sluice.yaml";
  write_file(cfg, config_yaml);
  std::vector<std::string> args = {
      sluice_binary(), "serve",          "-c",
      cfg.string(),    "--ready-file",   (dir_ / "ready.json").string(),
      "--plugin-dir",  test_plugin_dir()};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  spawn(std::move(args), nullptr, ready_timeout);
}

void sluice_process::spawn(std::vector<std::string> args,
                           const std::vector<std::pair<std::string, std::string>>* env,
                           std::chrono::milliseconds ready_timeout) {
  auto ready = dir_ / "ready.json";
  std::filesystem::remove(ready);
  auto log = dir_ / "sluice.log";
  // The child's environment, built before fork (the child only execs).
  std::vector<std::string> env_strings;
  std::vector<char*> envp;
  if (env) {
    for (char** e = environ; e && *e; ++e) {
      std::string_view kv(*e);
      if (kv.starts_with("MP_") || kv.starts_with("SLUICE_CONFIG=")) continue;
      env_strings.emplace_back(kv);
    }
    for (const auto& [k, v] : *env)
      env_strings.push_back(k + "=" + v);
    for (auto& s : env_strings)
      envp.push_back(s.data());
    envp.push_back(nullptr);
  }
  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    if (env)
      ::execve(argv[0], argv.data(), envp.data());
    else
      ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + ready_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::filesystem::exists(ready)) {
      ready_json_ = read_file(ready);
      if (!ready_json_.empty()) return;
    }
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = st;
      pid_ = -1;
      ADD_FAILURE() << "sluice exited during startup:\n" << log_file_tail(log);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "sluice did not become ready:\n" << read_file(log);
}

sluice_process::~sluice_process() {
  if (pid_ > 0) stop();
}

bool sluice_process::running() const {
  return pid_ > 0;
}

std::vector<std::string> sluice_process::endpoints(const std::string& listener) const {
  std::vector<std::string> out;
  boost::system::error_code ec;
  auto v = boost::json::parse(ready_json_, ec);
  if (ec || !v.is_object()) return out;
  auto* ls = v.as_object().if_contains("listeners");
  if (!ls || !ls->is_object()) return out;
  auto* l = ls->as_object().if_contains(listener);
  if (!l || !l->is_array()) return out;
  for (auto& e : l->as_array()) {
    if (e.is_string()) out.emplace_back(e.as_string());
  }
  return out;
}

std::string sluice_process::host(const std::string& listener) const {
  for (auto& e : endpoints(listener)) {
    if (e.starts_with("unix:")) continue;
    auto colon = e.rfind(':');
    auto h = e.substr(0, colon);
    if (h.size() > 1 && h.front() == '[') h = h.substr(1, h.size() - 2);
    return h;
  }
  return {};
}

std::uint16_t sluice_process::port(const std::string& listener) const {
  for (auto& e : endpoints(listener)) {
    if (e.starts_with("unix:")) continue;
    return static_cast<std::uint16_t>(std::stoi(e.substr(e.rfind(':') + 1)));
  }
  return 0;
}

std::string sluice_process::log() const {
  return read_file(dir_ / "sluice.log");
}

void sluice_process::signal(int sig) const {
  if (pid_ <= 0) return;
  if (sig == SIGTERM || sig == SIGINT) terminating_ = true;
  ::kill(pid_, sig);
}

int sluice_process::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return status_;
  // A drain the test already started is waited for, not signalled again: a second signal
  // means "stop now" to the kernel, which is not what a clean stop() asks for.
  if (!terminating_) ::kill(pid_, SIGTERM);
  return wait_exit([] {}, timeout, std::chrono::milliseconds(20));
}

int sluice_process::wait_exit(const std::function<void()>& between,
                              std::chrono::milliseconds timeout, std::chrono::microseconds poll) {
  if (pid_ <= 0) return status_;
  terminating_ = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    between();
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      status_ = st;
      return st;
    }
    std::this_thread::sleep_for(poll);
  }
  ADD_FAILURE() << "sluice did not exit within the timeout; killing it";
  kill();
  return status_;
}

void sluice_process::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int st = 0;
  ::waitpid(pid_, &st, 0);
  status_ = st;
  pid_ = -1;
}

std::string log_file_tail(const std::filesystem::path& p) {
  auto s = read_file(p);
  return s.size() > 8000 ? s.substr(s.size() - 8000) : s;
}

line_client::line_client(const std::string& endpoint, std::chrono::milliseconds timeout)
    : timeout_(timeout) {
  if (endpoint.starts_with("unix:")) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    auto path = endpoint.substr(5);
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd_);
      throw std::runtime_error("cannot connect to " + endpoint);
    }
    return;
  }
  auto colon = endpoint.rfind(':');
  auto host = endpoint.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  auto port = static_cast<std::uint16_t>(std::stoi(endpoint.substr(colon + 1)));
  if (host.find(':') != std::string::npos) {
    fd_ = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(port);
    ::inet_pton(AF_INET6, host.c_str(), &sa.sin6_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd_);
      throw std::runtime_error("cannot connect to " + endpoint);
    }
  } else {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    ::inet_pton(AF_INET, host.c_str(), &sa.sin_addr);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd_);
      throw std::runtime_error("cannot connect to " + endpoint);
    }
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

line_client::~line_client() {
  if (fd_ >= 0) ::close(fd_);
}

void line_client::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::optional<std::string> line_client::read_line() {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return std::nullopt;
    buf_.append(tmp, static_cast<std::size_t>(n));
  }
}

std::string line_client::read_reply() {
  std::string out;
  for (;;) {
    auto line = read_line();
    if (!line) return out;
    if (!out.empty()) out += "\n";
    out += *line;
    if (line->size() < 4 || (*line)[3] != '-') return out;
  }
}

std::string line_client::read_all() {
  std::string out = std::exchange(buf_, {});
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return out;
    char tmp[4096];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return out;
    out.append(tmp, static_cast<std::size_t>(n));
  }
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

std::vector<std::string> read_eml_files(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".eml") out.push_back(read_file(e.path()));
  }
  return out;
}

int run_command(const std::string& cmd, std::string* out, bool merge_stderr,
                std::chrono::milliseconds timeout) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(pipefd[1], 1);
    if (merge_stderr) ::dup2(pipefd[1], 2);
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(pipefd[1]);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string collected;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(-pid, SIGKILL);
      break;
    }
    pollfd p{pipefd[0], POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r <= 0) continue;
    char tmp[4096];
    ssize_t n = ::read(pipefd[0], tmp, sizeof tmp);
    if (n <= 0) break;
    collected.append(tmp, static_cast<std::size_t>(n));
  }
  ::close(pipefd[0]);
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (out) *out += collected;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string smtp_send(const std::string& endpoint, const std::string& from,
                      const std::vector<std::string>& rcpts, const std::string& data) {
  line_client c(endpoint);
  auto expect = [&](const char* code) -> std::optional<std::string> {
    auto r = c.read_reply();
    if (!r.starts_with(code)) return r.empty() ? std::string("(no reply)") : r;
    return std::nullopt;
  };
  if (auto e = expect("220")) return *e;
  c.send("EHLO test.example\r\n");
  if (auto e = expect("250")) return *e;
  c.send("MAIL FROM:<" + from + ">\r\n");
  if (auto e = expect("250")) return *e;
  for (auto& r : rcpts) {
    c.send("RCPT TO:<" + r + ">\r\n");
    if (auto e = expect("250")) return *e;
  }
  c.send("DATA\r\n");
  if (auto e = expect("354")) return *e;
  std::string stuffed;
  std::size_t pos = 0;
  while (pos < data.size()) {
    auto nl = data.find('\n', pos);
    auto line = data.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.starts_with(".")) stuffed += ".";
    stuffed += line + "\r\n";
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  c.send(stuffed + ".\r\n");
  auto reply = c.read_reply();
  c.send("QUIT\r\n");
  c.read_reply();
  return reply;
}

}  // namespace sluice::test
