// plugins/smtp/src/sendmail.cpp — the `sluice sendmail` client (see sendmail.hpp).
//
// Blocking POSIX sockets, single-threaded. The header section is read first (bounded), so
// -t can find the recipients; the body is then streamed from stdin to the server line by
// line, never held whole in memory. Every failure ends in a sysexits status with a
// "sendmail: " line on stderr.
#include "sendmail.hpp"

#include "sluice/base64.hpp"
#include "sluice/message.hpp"
#include "sluice/text.hpp"
#include "sluice/version.hpp"

#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <iostream>
#include <utility>

namespace sluice::smtp {
namespace {

constexpr std::size_t max_line = 1024 * 1024;          // one input line
constexpr std::size_t max_header_bytes = 1024 * 1024;  // the whole header section
constexpr std::size_t max_reply_line = 4096;           // one server reply line
constexpr std::size_t max_reply_lines = 200;
constexpr std::chrono::seconds bs_idle_timeout{300};

void complain(std::string_view msg) {
  std::string line = "sendmail: ";
  line.append(msg);
  line.push_back('\n');
  (void)!::write(2, line.data(), line.size());
}

bool has_8bit(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

// ---- buffered input -------------------------------------------------------------------------

class line_reader {
 public:
  explicit line_reader(int fd) : fd_(fd) {}

  enum class status { line, eof, too_long, error };

  // Next line without its LF (a CR before the LF is removed too). A last line without LF
  // is returned as a line; eof after that.
  status next(std::string& line) {
    line.clear();
    while (true) {
      const std::size_t lf = buf_.find('\n', scan_);
      if (lf != std::string::npos) {
        line.assign(buf_, 0, lf);
        buf_.erase(0, lf + 1);
        scan_ = 0;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return status::line;
      }
      scan_ = buf_.size();
      if (buf_.size() > max_line) return status::too_long;
      if (eof_) {
        if (buf_.empty()) return status::eof;
        line.swap(buf_);
        buf_.clear();
        scan_ = 0;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return status::line;
      }
      char tmp[65536];
      const ssize_t n = ::read(fd_, tmp, sizeof tmp);
      if (n < 0) {
        if (errno == EINTR) continue;
        return status::error;
      }
      if (n == 0) {
        eof_ = true;
      } else {
        buf_.append(tmp, static_cast<std::size_t>(n));
      }
    }
  }

 private:
  int fd_;
  std::string buf_;
  std::size_t scan_ = 0;
  bool eof_ = false;
};

// ---- the SMTP connection --------------------------------------------------------------------

struct reply {
  int code = 0;
  std::vector<std::string> lines;  // text after "NNN-"/"NNN "
  std::string text() const {
    std::string s = std::to_string(code);
    for (std::size_t i = 0; i < lines.size(); ++i) {
      s += i == 0 ? " " : " / ";
      s += lines[i];
    }
    return s;
  }
};

struct failure {
  int status;
  std::string message;
};

class connection {
 public:
  connection(int fd, bool verbose) : fd_(fd), verbose_(verbose) {}
  ~connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  int fd() const { return fd_; }

  void send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          throw failure{sysexits::tempfail, "timed out writing to the server"};
        }
        throw failure{sysexits::tempfail,
                      std::string("write to server failed: ") + std::strerror(errno)};
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  void command(std::string_view line) {
    if (verbose_) complain(std::string(">>> ").append(line));
    std::string s(line);
    s += "\r\n";
    send(s);
  }

  reply read_reply() {
    reply r;
    while (true) {
      std::string line = read_line();
      if (verbose_) complain(std::string("<<< ").append(line));
      if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0])) ||
          !std::isdigit(static_cast<unsigned char>(line[1])) ||
          !std::isdigit(static_cast<unsigned char>(line[2])) ||
          (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
        throw failure{sysexits::protocol, "malformed reply from server: " + line.substr(0, 80)};
      }
      const int code = std::stoi(line.substr(0, 3));
      if (r.code != 0 && code != r.code) {
        throw failure{sysexits::protocol, "inconsistent codes in a multi-line reply"};
      }
      r.code = code;
      r.lines.push_back(line.size() > 4 ? line.substr(4) : std::string());
      if (line.size() == 3 || line[3] == ' ') return r;
      if (r.lines.size() > max_reply_lines) throw failure{sysexits::protocol, "reply too long"};
    }
  }

 private:
  std::string read_line() {
    while (true) {
      const std::size_t lf = buf_.find('\n');
      if (lf != std::string::npos) {
        std::string line = buf_.substr(0, lf);
        buf_.erase(0, lf + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (buf_.size() > max_reply_line) throw failure{sysexits::protocol, "reply line too long"};
      char tmp[4096];
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          throw failure{sysexits::tempfail, "timed out waiting for the server"};
        }
        throw failure{sysexits::tempfail,
                      std::string("read from server failed: ") + std::strerror(errno)};
      }
      if (n == 0) throw failure{sysexits::tempfail, "server closed the connection"};
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

  int fd_;
  bool verbose_;
  std::string buf_;
};

void set_timeouts(int fd, std::chrono::seconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count());
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // also bounds connect() on Linux
}

// Connects to "unix:/path", "[v6]:port", "host:port" or "host" (port 1025).
int connect_server(const std::string& server, std::chrono::seconds timeout) {
  if (server.starts_with("unix:")) {
    const std::string path = server.substr(5);
    sockaddr_un sa{};
    if (path.empty() || path.size() >= sizeof(sa.sun_path)) {
      throw failure{sysexits::usage, "bad unix socket path in -S " + server};
    }
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw failure{sysexits::software, std::string("socket: ") + std::strerror(errno)};
    set_timeouts(fd, timeout);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
      const int e = errno;
      ::close(fd);
      throw failure{sysexits::tempfail, "cannot connect to " + server + ": " + std::strerror(e)};
    }
    return fd;
  }
  std::string host = server;
  std::string port = "1025";
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close == std::string::npos) throw failure{sysexits::usage, "bad server address " + server};
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':') throw failure{sysexits::usage, "bad server address " + server};
      port = host.substr(close + 2);
    }
    host = host.substr(1, close - 1);
  } else if (const std::size_t colon = host.rfind(':'); colon != std::string::npos) {
    if (host.find(':') != colon) {
      throw failure{sysexits::usage, "write IPv6 servers as [address]:port: " + server};
    }
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty() || port.empty()) throw failure{sysexits::usage, "bad server address " + server};

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) {
    throw failure{sysexits::nohost, "cannot resolve " + server + ": " + ::gai_strerror(rc)};
  }
  std::string last_error = "no address";
  int fd = -1;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    set_timeouts(fd, timeout);
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    last_error =
        (errno == EINPROGRESS || errno == EAGAIN) ? "connection timed out" : std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  if (fd < 0) throw failure{sysexits::tempfail, "cannot connect to " + server + ": " + last_error};
  return fd;
}

std::string local_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  for (const char* p = buf; *p; ++p) {
    const char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '.')) {
      return "localhost";
    }
  }
  return buf;
}

std::string default_sender() {
  std::string user;
  if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_name && *pw->pw_name) {
    user = pw->pw_name;
  } else if (const char* u = std::getenv("USER"); u && *u) {
    user = u;
  } else {
    user = "nobody";
  }
  return user + "@" + local_hostname();
}

// A display name as a phrase: as is when plain, quoted when it has specials, RFC 2047
// encoded when it has 8-bit bytes.
std::string display_name(std::string_view name) {
  if (has_8bit(name)) return "=?UTF-8?B?" + sluice::base64_encode(name) + "?=";
  bool special = false;
  for (char c : name) {
    if (std::strchr("()<>[]:;@\\,.\"", c) || static_cast<unsigned char>(c) < 0x20) special = true;
  }
  if (!special) return std::string(name);
  std::string q = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') q.push_back('\\');
    if (static_cast<unsigned char>(c) >= 0x20) q.push_back(c);
  }
  q.push_back('"');
  return q;
}

// "<a@b>", "a@b" or "Name <a@b>" → "a@b"; "<>" → "". Only the first address counts, as
// Postfix takes it.
std::string strip_angles(std::string_view s) {
  s = trim(s);
  if (auto lt = s.find('<'); lt != std::string_view::npos) {
    if (auto gt = s.find('>', lt); gt != std::string_view::npos) s = s.substr(lt + 1, gt - lt - 1);
  }
  return std::string(trim(s));
}

// No control characters (CR or LF would end an SMTP command and start another).
bool safe_envelope_text(std::string_view a) {
  return std::none_of(a.begin(), a.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// An envelope address goes between "<" and ">" on a command line: no control characters,
// no angle brackets.
bool safe_envelope_address(std::string_view a) {
  return safe_envelope_text(a) && a.find_first_of("<>") == std::string_view::npos;
}

// For messages: the address with control characters shown as '?'.
std::string shown_address(std::string_view a) {
  std::string out;
  for (char c : a.substr(0, 200)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
  }
  return out;
}

}  // namespace

// ---- arguments ----------------------------------------------------------------------------

bool parse_sendmail_args(std::span<const std::string> args, std::string_view default_server,
                         sendmail_options& out, std::string& error) {
  sendmail_options o;
  o.server = std::string(default_server);
  // Options that take a value (attached, or as the next argument), as sendmail/Postfix.
  static constexpr std::string_view with_value = "bfrFSOoBNRVXChLpq";
  std::size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "--help" || a == "-help") {
      o.help = true;
      continue;
    }
    if (a == "--version") {
      o.version = true;
      continue;
    }
    if (a.starts_with("--")) {  // sendmail has no other long options
      error = "unknown option " + a;
      return false;
    }
    if (a.size() < 2 || a[0] != '-') break;  // first recipient
    for (std::size_t j = 1; j < a.size(); ++j) {
      const char c = a[j];
      if (with_value.find(c) != std::string_view::npos) {
        std::string value;
        if (j + 1 < a.size()) {
          value = a.substr(j + 1);
        } else if (c == 'o' || c == 'q' || c == 'p') {
          value.clear();  // -o, -q, -p without attached text: nothing more to read
        } else if (i + 1 < args.size()) {
          value = args[++i];
        } else {
          error = std::string("option -") + c + " needs a value";
          return false;
        }
        switch (c) {
          case 'b':
            if (value == "m") {
              o.smtp_mode = false;
            } else if (value == "s") {
              o.smtp_mode = true;
            } else {
              error = "mode -b" + value + " is not supported (only -bm and -bs)";
              return false;
            }
            break;
          case 'f':
          case 'r':
            o.sender = strip_angles(value);
            break;
          case 'F':
            o.full_name = value;
            break;
          case 'S':
            if (value.empty()) {
              error = "option -S needs host:port or unix:/path";
              return false;
            }
            o.server = value;
            break;
          case 'o':
            // -oi is the one option that changes behaviour; -oem, -odi, -oQ... are about
            // error reporting and queueing, which have no meaning without a local queue.
            if (value == "i") o.ignore_dots = true;
            break;
          case 'q':
            error = "queue operations (-q) are not supported: Sluice sendmail has no local queue";
            return false;
          default:  // O B N R V X C h L p: accepted and ignored
            break;
        }
        break;  // the value consumed the rest of this argument
      }
      switch (c) {
        case 't':
          o.recipients_from_headers = true;
          break;
        case 'i':
          o.ignore_dots = true;
          break;
        case 'v':
          o.verbose = true;
          break;
        case 'n':
        case 'm':
        case 'G':
        case 'U':
        case 'A':  // -Ac / -Am: the letter after A is consumed below
          if (c == 'A' && j + 1 < a.size()) j = a.size();
          break;
        default:
          error = std::string("unknown option -") + c;
          return false;
      }
    }
  }
  for (; i < args.size(); ++i) {
    // A CR or LF in an argument is a header or command injection attempt (PHP's mail() $to),
    // never an address: refused before it is parsed.
    if (!safe_envelope_text(args[i])) {
      error = "recipient argument with a control character: " + shown_address(args[i]);
      return false;
    }
    for (auto& r : parse_address_list(args[i]))
      o.recipients.push_back(std::move(r));
  }
  if (o.sender && !safe_envelope_address(*o.sender)) {
    error = "sender address with a control character or angle bracket: " + shown_address(*o.sender);
    return false;
  }
  // -bs takes its envelope from the SMTP session on stdin (Postfix refuses both too).
  if (o.smtp_mode && !o.recipients.empty()) {
    error = "-bs takes no recipient arguments: the SMTP session names them";
    return false;
  }
  if (o.smtp_mode && o.recipients_from_headers) {
    error = "-t can be used only in delivery mode (not with -bs)";
    return false;
  }
  out = std::move(o);
  return true;
}

// ---- addresses ----------------------------------------------------------------------------

std::vector<std::string> parse_address_list(std::string_view value) {
  // Split on commas outside quotes, comments, angle brackets and domain literals; drop
  // comments on the way.
  std::vector<std::string> items;
  std::string cur;
  int comment = 0;
  bool quoted = false;
  bool angle = false;
  bool literal = false;
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (quoted) {
      cur.push_back(c);
      if (c == '\\' && i + 1 < value.size()) {
        cur.push_back(value[++i]);
      } else if (c == '"') {
        quoted = false;
      }
      continue;
    }
    if (comment > 0) {
      if (c == '\\') {
        ++i;
      } else if (c == '(') {
        ++comment;
      } else if (c == ')') {
        --comment;
      }
      continue;
    }
    switch (c) {
      case '"':
        quoted = true;
        cur.push_back(c);
        break;
      case '(':
        comment = 1;
        cur.push_back(' ');
        break;
      case '<':
        angle = true;
        cur.push_back(c);
        break;
      case '>':
        angle = false;
        cur.push_back(c);
        break;
      case '[':
        literal = true;
        cur.push_back(c);
        break;
      case ']':
        literal = false;
        cur.push_back(c);
        break;
      case ',':
      case ';':
        if (!angle && !literal) {
          items.push_back(std::move(cur));
          cur.clear();
        } else {
          cur.push_back(c);
        }
        break;
      default:
        cur.push_back(c);
    }
  }
  items.push_back(std::move(cur));

  std::vector<std::string> out;
  for (const auto& item : items) {
    std::string_view s = trim(item);
    // "group-name: first@x" → "first@x" (the ':' must be outside quotes and brackets).
    {
      bool q = false, a = false, l = false;
      for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (q) {
          if (c == '\\')
            ++i;
          else if (c == '"')
            q = false;
          continue;
        }
        if (c == '"')
          q = true;
        else if (c == '<')
          a = true;
        else if (c == '>')
          a = false;
        else if (c == '[')
          l = true;
        else if (c == ']')
          l = false;
        else if (c == ':' && !a && !l) {
          s = trim(s.substr(i + 1));
          i = static_cast<std::size_t>(-1);  // restart: "a: b: c@x" is not valid, but be safe
          q = a = l = false;
        }
      }
    }
    if (s.empty()) continue;
    const std::size_t lt = s.rfind('<');
    if (lt != std::string_view::npos) {
      const std::size_t gt = s.find('>', lt);
      std::string_view addr = s.substr(lt + 1, gt == std::string_view::npos ? gt : gt - lt - 1);
      addr = trim(addr);
      // Obsolete source route "<@a,@b:user@x>": keep the mailbox.
      if (!addr.empty() && addr.front() == '@') {
        if (auto colon = addr.find(':'); colon != std::string_view::npos)
          addr = addr.substr(colon + 1);
      }
      if (!addr.empty()) out.emplace_back(addr);
      continue;
    }
    // A bare addr-spec; remove folding white space around it.
    std::string bare;
    for (char c : s) {
      if (c != '\r' && c != '\n') bare.push_back(c);
    }
    std::string_view t = trim(bare);
    if (!t.empty()) out.emplace_back(t);
  }
  return out;
}

// ---- headers ------------------------------------------------------------------------------

prepared_headers prepare_headers(const std::vector<std::string>& lines, bool extract_recipients,
                                 std::string_view envelope_sender,
                                 const std::optional<std::string>& full_name,
                                 std::string_view date_value, std::string_view message_id_value) {
  // Group physical lines into fields (a line starting with space/tab continues the field).
  std::vector<std::vector<std::string>> fields;
  for (const auto& l : lines) {
    if (!fields.empty() && !l.empty() && (l[0] == ' ' || l[0] == '\t')) {
      fields.back().push_back(l);
    } else {
      fields.push_back({l});
    }
  }
  auto name_of = [](const std::string& first) {
    const std::size_t colon = first.find(':');
    return trim(std::string_view(first).substr(0, colon == std::string::npos ? 0 : colon));
  };
  // A resent message (RFC 5322 §3.6.6) goes to its Resent- recipients only, as Postfix's -t.
  bool resent = false;
  for (const auto& f : fields) {
    const std::string_view n = name_of(f.front());
    resent =
        resent || iequals(n, "Resent-To") || iequals(n, "Resent-Cc") || iequals(n, "Resent-Bcc");
  }
  const std::string_view prefix = resent ? "Resent-" : "";
  auto is = [&](std::string_view name, std::string_view field) {
    return name.size() == prefix.size() + field.size() &&
           iequals(name.substr(0, prefix.size()), prefix) &&
           iequals(name.substr(prefix.size()), field);
  };
  prepared_headers out;
  bool have_from = false, have_date = false, have_message_id = false;
  for (const auto& f : fields) {
    const std::string& first = f.front();
    const std::size_t colon = first.find(':');
    const std::string_view name = name_of(first);
    if (iequals(name, "From")) have_from = true;
    if (iequals(name, "Date")) have_date = true;
    if (iequals(name, "Message-ID")) have_message_id = true;
    // Bcc and Resent-Bcc never go out (Postfix drops them too).
    const bool is_bcc = iequals(name, "Bcc") || iequals(name, "Resent-Bcc");
    if (extract_recipients && (is(name, "To") || is(name, "Cc") || is(name, "Bcc"))) {
      std::string value = first.substr(colon + 1);
      for (std::size_t i = 1; i < f.size(); ++i)
        value += " " + f[i];
      for (auto& r : parse_address_list(value))
        out.recipients.push_back(std::move(r));
    }
    // With -t their addresses are recipients; without -t a server other than Sluice would
    // show them to every recipient.
    if (is_bcc) continue;
    for (const auto& l : f) {
      out.text += l;
      out.text += "\r\n";
    }
  }
  std::string added;
  if (!have_from) {
    added += "From: ";
    // A null sender has no address to put the name on (Postfix: MAILER-DAEMON).
    if (full_name && !full_name->empty() && !envelope_sender.empty()) {
      added += display_name(*full_name) + " <" + std::string(envelope_sender) + ">";
    } else {
      added +=
          envelope_sender.empty() ? std::string("MAILER-DAEMON") : std::string(envelope_sender);
    }
    added += "\r\n";
  }
  if (!have_date) {
    added += "Date: ";
    added += date_value;
    added += "\r\n";
  }
  if (!have_message_id && !message_id_value.empty()) {
    added += "Message-ID: ";
    added += message_id_value;
    added += "\r\n";
  }
  out.text = added + out.text;
  return out;
}

// ---- the submission -----------------------------------------------------------------------

namespace {

// A field name (printable ASCII but ':'), optional WSP (RFC 5322 §4.5 obsolete syntax,
// which Postfix accepts too), then ':'; or a continuation line.
bool is_header_line(const std::string& l, bool first) {
  if (!first && !l.empty() && (l[0] == ' ' || l[0] == '\t')) return true;  // continuation
  std::size_t i = 0;
  while (i < l.size() && l[i] > ' ' && static_cast<unsigned char>(l[i]) < 127 && l[i] != ':')
    ++i;
  if (i == 0) return false;
  while (i < l.size() && (l[i] == ' ' || l[i] == '\t'))
    ++i;
  return i < l.size() && l[i] == ':';
}

// Exit status for a failed reply at a given step.
int status_for(const reply& r, bool rcpt) {
  if (r.code >= 400 && r.code < 500) return sysexits::tempfail;
  if (rcpt && r.code >= 500) return sysexits::nouser;
  return sysexits::unavailable;
}

int submit(const sendmail_options& opts, int in_fd) {
  line_reader in(in_fd);
  std::string line;
  std::vector<std::string> header_lines;
  std::size_t header_bytes = 0;
  std::optional<std::string> first_body_line;  // a line that ended the header section
  bool input_done = false;
  bool blank_seen = false;
  bool first_line_checked = false;

  auto is_end_dot = [&](const std::string& l) { return !opts.ignore_dots && l == "."; };

  while (true) {
    const auto st = in.next(line);
    if (st == line_reader::status::eof) {
      input_done = true;
      break;
    }
    if (st == line_reader::status::too_long)
      throw failure{sysexits::dataerr, "input line longer than 1 MiB"};
    if (st == line_reader::status::error) {
      throw failure{sysexits::ioerr,
                    std::string("reading the message failed: ") + std::strerror(errno)};
    }
    if (is_end_dot(line)) {
      input_done = true;
      break;
    }
    if (line.empty()) {
      blank_seen = true;
      break;
    }
    if (header_lines.empty() && !first_line_checked && line.starts_with("From ")) {
      first_line_checked = true;
      continue;  // an mbox "From " separator, as sendmail -t callers sometimes send: drop it
    }
    first_line_checked = true;
    if (!is_header_line(line, header_lines.empty())) {
      first_body_line = line;  // no blank line: the message starts its body here
      break;
    }
    header_bytes += line.size() + 2;
    if (header_bytes > max_header_bytes)
      throw failure{sysexits::dataerr, "header section larger than 1 MiB"};
    header_lines.push_back(line);
  }

  const std::string sender = opts.sender ? *opts.sender : default_sender();
  if (!safe_envelope_address(sender))
    throw failure{sysexits::usage, "bad sender address <" + shown_address(sender) + ">"};
  auto headers =
      prepare_headers(header_lines, opts.recipients_from_headers, sender, opts.full_name,
                      rfc5322_date(std::chrono::system_clock::now(), /*local_zone=*/true),
                      "<" + make_message_id() + "@" + local_hostname() + ">");
  std::vector<std::string> rcpts = opts.recipients;
  for (auto& r : headers.recipients)
    rcpts.push_back(std::move(r));
  if (rcpts.empty()) {
    throw failure{sysexits::usage, opts.recipients_from_headers
                                       ? "no recipient addresses found in the message header"
                                       : "no recipients given (use -t or name them as arguments)"};
  }
  for (const auto& a : rcpts) {  // arguments were checked; this is for header addresses
    if (!safe_envelope_address(a))
      throw failure{sysexits::dataerr, "bad recipient address <" + shown_address(a) + ">"};
  }

  connection conn(connect_server(opts.server, opts.timeout), opts.verbose);
  reply r = conn.read_reply();
  if (r.code != 220)
    throw failure{status_for(r, false), "server refused the connection: " + r.text()};

  conn.command("EHLO " + local_hostname());
  r = conn.read_reply();
  bool eightbit = false, smtputf8 = false;
  if (r.code == 250) {
    for (std::size_t i = 1; i < r.lines.size(); ++i) {
      std::string_view kw = r.lines[i];
      kw = kw.substr(0, kw.find(' '));
      if (iequals(kw, "8BITMIME")) eightbit = true;
      if (iequals(kw, "SMTPUTF8")) smtputf8 = true;
    }
  } else {
    conn.command("HELO " + local_hostname());
    r = conn.read_reply();
    if (r.code != 250) throw failure{status_for(r, false), "HELO refused: " + r.text()};
  }

  bool utf8_addresses = has_8bit(sender);
  for (const auto& a : rcpts)
    utf8_addresses = utf8_addresses || has_8bit(a);
  if (utf8_addresses && !smtputf8) {
    throw failure{sysexits::unavailable,
                  "server does not offer SMTPUTF8, needed for these addresses"};
  }
  std::string mail = "MAIL FROM:<" + sender + ">";
  if (eightbit) mail += " BODY=8BITMIME";
  if (utf8_addresses) mail += " SMTPUTF8";
  conn.command(mail);
  r = conn.read_reply();
  if (r.code != 250)
    throw failure{status_for(r, false), "sender <" + sender + "> refused: " + r.text()};

  int worst = sysexits::ok;
  std::size_t accepted = 0;
  for (const auto& a : rcpts) {
    conn.command("RCPT TO:<" + a + ">");
    r = conn.read_reply();
    if (r.code == 250 || r.code == 251) {
      ++accepted;
    } else {
      complain("recipient <" + shown_address(a) + "> refused: " + r.text());
      const int st = status_for(r, true);
      if (worst == sysexits::ok || st == sysexits::tempfail) worst = st;
    }
  }
  if (accepted == 0) {
    conn.command("QUIT");
    throw failure{worst, "no recipient was accepted; message not sent"};
  }

  conn.command("DATA");
  r = conn.read_reply();
  if (r.code != 354) throw failure{status_for(r, false), "DATA refused: " + r.text()};

  // Stream the message: headers, blank line, body; CRLF line ends, dot-stuffed.
  std::string out = headers.text;
  out += "\r\n";
  auto add_line = [&](const std::string& l) {
    if (!l.empty() && l[0] == '.') out.push_back('.');
    out += l;
    out += "\r\n";
    if (out.size() >= 64 * 1024) {
      conn.send(out);
      out.clear();
    }
  };
  if (first_body_line) add_line(*first_body_line);
  (void)blank_seen;
  while (!input_done) {
    const auto st = in.next(line);
    if (st == line_reader::status::eof) break;
    if (st == line_reader::status::too_long)
      throw failure{sysexits::dataerr, "input line longer than 1 MiB"};
    if (st == line_reader::status::error) {
      throw failure{sysexits::ioerr,
                    std::string("reading the message failed: ") + std::strerror(errno)};
    }
    if (is_end_dot(line)) break;
    add_line(line);
  }
  out += ".\r\n";
  conn.send(out);
  if (opts.verbose) complain(">>> (message) .");
  r = conn.read_reply();
  if (r.code != 250) throw failure{status_for(r, false), "message refused: " + r.text()};
  conn.command("QUIT");
  try {
    (void)conn.read_reply();
  } catch (const failure&) {
    // The message is accepted; a server that hangs up without answering QUIT is harmless.
  }
  // Sent to the accepted recipients: success, as Postfix's sendmail exits 0 once the message
  // is queued. The refusals were reported on stderr; a non-zero status would make callers
  // (PHP's mail()) report a failure and retry, sending it twice.
  return sysexits::ok;
}

bool write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// -bs: the caller speaks SMTP on our stdin/stdout; relay bytes both ways until the server
// closes (after QUIT) or the caller closes stdin and the server finishes answering.
int relay(const sendmail_options& opts, int in_fd, int out_fd) {
  connection conn(connect_server(opts.server, opts.timeout), false);
  bool in_open = true;
  char buf[65536];
  while (true) {
    pollfd fds[2] = {{conn.fd(), POLLIN, 0}, {in_fd, POLLIN, 0}};
    const int nfds = in_open ? 2 : 1;
    const int pr = ::poll(fds, static_cast<nfds_t>(nfds),
                          static_cast<int>(std::chrono::milliseconds(bs_idle_timeout).count()));
    if (pr < 0) {
      if (errno == EINTR) continue;
      throw failure{sysexits::software, std::string("poll: ") + std::strerror(errno)};
    }
    if (pr == 0) throw failure{sysexits::tempfail, "SMTP session idle for 300 s"};
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(conn.fd(), buf, sizeof buf, 0);
      if (n < 0 && errno != EINTR) {
        throw failure{sysexits::tempfail,
                      std::string("read from server failed: ") + std::strerror(errno)};
      }
      if (n == 0) return sysexits::ok;  // the server ended the session
      if (n > 0) {
        if (opts.verbose) complain(std::string("<<< ").append(buf, static_cast<std::size_t>(n)));
        if (!write_all(out_fd, buf, static_cast<std::size_t>(n))) {
          throw failure{sysexits::ioerr,
                        std::string("write to stdout failed: ") + std::strerror(errno)};
        }
      }
    }
    if (in_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      const ssize_t n = ::read(in_fd, buf, sizeof buf);
      if (n < 0 && errno != EINTR) {
        throw failure{sysexits::ioerr,
                      std::string("reading stdin failed: ") + std::strerror(errno)};
      }
      if (n == 0) {
        in_open = false;
        ::shutdown(conn.fd(), SHUT_WR);  // the server sees EOF and closes after answering
      } else if (n > 0) {
        if (opts.verbose) complain(std::string(">>> ").append(buf, static_cast<std::size_t>(n)));
        conn.send(std::string_view(buf, static_cast<std::size_t>(n)));
      }
    }
  }
}

constexpr std::string_view usage_text =
    "usage: sendmail [-t] [-i] [-f sender] [-F full-name] [-S host:port|unix:/path] [-bs|-bm] "
    "[-v]\n"
    "                [--] [recipient ...]\n"
    "Reads a message on stdin and submits it over SMTP (default server: $SLUICE_SENDMAIL_SERVER,\n"
    "else 127.0.0.1:1025). Other sendmail options are accepted and ignored.\n";

}  // namespace

int run_sendmail(const sendmail_options& opts, int in_fd, int out_fd) {
  try {
    return opts.smtp_mode ? relay(opts, in_fd, out_fd) : submit(opts, in_fd);
  } catch (const failure& f) {
    complain(f.message);
    return f.status;
  } catch (const std::exception& e) {
    complain(std::string("internal error: ") + e.what());
    return sysexits::software;
  }
}

int sendmail_main(std::span<const std::string> args) {
  std::signal(SIGPIPE, SIG_IGN);  // broken pipes become EPIPE errors with an exit status
  const char* env = std::getenv("SLUICE_SENDMAIL_SERVER");
  const std::string_view def =
      (env && *env) ? std::string_view(env) : std::string_view("127.0.0.1:1025");
  sendmail_options opts;
  std::string error;
  if (!parse_sendmail_args(args, def, opts, error)) {
    complain(error);
    (void)!::write(2, usage_text.data(), usage_text.size());
    return sysexits::usage;
  }
  if (opts.help) {
    (void)!::write(1, usage_text.data(), usage_text.size());
    return sysexits::ok;
  }
  if (opts.version) {
    const std::string v = "sluice sendmail " SLUICE_SDK_VERSION_STRING "\n";
    (void)!::write(1, v.data(), v.size());
    return sysexits::ok;
  }
  return run_sendmail(opts, 0, 1);
}

}  // namespace sluice::smtp
