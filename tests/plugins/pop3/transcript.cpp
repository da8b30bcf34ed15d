// tests/plugins/pop3/transcript.cpp — see transcript.hpp.
#include "transcript.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace pop3_test {

client::client(const std::string& endpoint, std::chrono::milliseconds timeout) : timeout_(timeout) {
  if (endpoint.starts_with("unix:")) {
    std::string path = endpoint.substr(5);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      if (fd_ >= 0) ::close(fd_);
      throw std::runtime_error("cannot connect to " + endpoint + ": " + std::strerror(errno));
    }
    return;
  }
  auto colon = endpoint.rfind(':');
  std::string host = endpoint.substr(0, colon);
  int port = std::stoi(endpoint.substr(colon + 1));
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd_ >= 0) ::close(fd_);
    throw std::runtime_error("cannot connect to " + endpoint + ": " + std::strerror(errno));
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

client::~client() {
  if (fd_ >= 0) ::close(fd_);
}

void client::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n <= 0) return;  // the peer closed; the next read tells
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::optional<std::string> client::read_line() {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (eof_) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
    char tmp[16384];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) {
      eof_ = true;  // orderly close or reset: either way the server is gone
      continue;
    }
    buf_.append(tmp, static_cast<std::size_t>(n));
  }
}

std::optional<std::string> client::read_multiline() {
  std::string out;
  for (int guard = 0; guard < 10'000'000; ++guard) {
    auto l = read_line();
    if (!l) return std::nullopt;
    if (*l == ".") return out;
    std::string_view v = *l;
    if (v.starts_with(".")) v.remove_prefix(1);
    out += v;
    out += "\r\n";
  }
  return std::nullopt;
}

bool glob_match(std::string_view p, std::string_view t) {
  // Iterative wildcard match with backtracking to the last '*'.
  std::size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && p[pi] != '*' && p[pi] == t[ti]) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*')
    ++pi;
  return pi == p.size();
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
  std::istringstream in{std::string(text)};
  std::string line;
  int no = 0;
  while (std::getline(in, line)) {
    ++no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line.size() < 2 || line[1] != ':') return "line " + std::to_string(no) + ": bad directive";
    std::string arg = line.size() > 3 ? line.substr(3) : "";
    if (line[0] == 'C') {
      pending += arg + "\r\n";
      continue;
    }
    if (line[0] == 'R') {
      pending += unescape(arg);
      continue;
    }
    if (line[0] != 'S' && line[0] != 'W') return "line " + std::to_string(no) + ": bad directive";
    if (!pending.empty()) {
      c.send(pending);
      pending.clear();
    }
    auto got = c.read_line();
    if (line[0] == 'W') {
      // Skip lines the server may fold differently (trace headers) up to a known one.
      for (int skipped = 0; got && !glob_match(arg, *got) && skipped < 100; ++skipped)
        got = c.read_line();
    }
    if (arg == "<closed>") {
      if (got) return "line " + std::to_string(no) + ": expected close, got \"" + *got + "\"";
      if (!c.eof()) return "line " + std::to_string(no) + ": expected close, timed out";
      continue;
    }
    if (!got) {
      return "line " + std::to_string(no) + ": expected \"" + arg + "\", got " +
             (c.eof() ? "EOF" : "a timeout");
    }
    if (!glob_match(arg, *got)) {
      return "line " + std::to_string(no) + ": expected \"" + arg + "\", got \"" + *got + "\"";
    }
  }
  if (!pending.empty()) return "transcript ends with unsent input";
  return "";
}

std::string run_transcript(const std::string& endpoint, const std::filesystem::path& file) {
  std::ifstream f(file, std::ios::binary);
  if (!f) return "cannot read " + file.string();
  std::ostringstream ss;
  ss << f.rdbuf();
  return run_transcript_text(endpoint, ss.str());
}

}  // namespace pop3_test
