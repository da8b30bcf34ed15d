// relay_test_support.hpp — helpers shared by the relay plugin's tests that drive the real
// binary against tests/plugins/relay/upstream.py (Python's aiosmtpd on loopback).
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
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

inline bool python_has(const std::string& module) {
  return run_command(std::string(kPython) + " -c 'import " + module + "'", nullptr) == 0;
}

inline bool plugin_built(const std::string& p) {
  return fs::exists(fs::path(build_dir()) / "lib/sluice/plugins" / (p + ".so"));
}

// A loopback port where nothing listens (bound once by the kernel's choice, then closed).
inline std::uint16_t unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

// Sends with Python's smtplib; prints "<code> <text>" of the DATA reply per message, one a line.
inline std::string smtplib_send(const fs::path& dir, const std::string& endpoint,
                                const std::string& from, const std::vector<std::string>& rcpts,
                                const std::vector<std::string>& messages) {
  const auto colon = endpoint.rfind(':');
  std::string py =
      "import smtplib, sys\n"
      "s = smtplib.SMTP('" +
      endpoint.substr(0, colon) + "', " + endpoint.substr(colon + 1) +
      ", timeout=30)\n"
      "s.ehlo('app.test')\n"
      "rcpts = sys.argv[2:]\n"
      "for path in open(sys.argv[1]).read().split():\n"
      "    msg = open(path, 'rb').read()\n"
      "    s.mail('" +
      from +
      "')\n"
      "    for r in rcpts:\n"
      "        code, text = s.rcpt(r)\n"
      "        assert code == 250, (code, text)\n"
      "    code, text = s.data(msg)\n"
      "    print(code, text.decode())\n"
      "s.quit()\n";
  write_file(dir / "send.py", py);
  std::string list;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const fs::path p = dir / ("msg" + std::to_string(i) + ".eml");
    write_file(p, messages[i]);
    list += p.string() + "\n";
  }
  write_file(dir / "list", list);
  std::string cmd = std::string(kPython) + " " + shell_quote((dir / "send.py").string()) + " " +
                    shell_quote((dir / "list").string());
  for (const auto& r : rcpts)
    cmd += " " + shell_quote(r);
  std::string out;
  const int rc = run_command(cmd, &out, true);
  EXPECT_EQ(rc, 0) << out;
  return out;
}

// Verifies the DKIM signature of the raw message in `message_file` with dkimpy, the key
// coming from the TXT record `sluice dkim keygen` printed for s1._domainkey.staging.example
// (its quoted strings joined); LF line ends (a Maildir copy) are read as CRLF. Exit code 0 when it
// verifies; `tamper` first changes the subject "[STAGING] Your invoice" by one letter.
inline int dkimpy_verify(const fs::path& dir, const fs::path& message_file,
                         const fs::path& keygen_out, bool tamper, std::string* out) {
  write_file(
      dir / "verify.py",
      "import dkim, re, sys\n"
      "msg = open(sys.argv[1], 'rb').read()\n"
      "msg = re.sub(rb'(?<!\\r)\\n', b'\\r\\n', msg)  # a Maildir copy: CRLF as on the wire\n"
      "if sys.argv[3] == '1':\n"
      "    msg = msg.replace(b'Subject: [STAGING] Your invoice', b'Subject: [STAGING] Your "
      "invoicf', 1)\n"
      "txt = ''.join(re.findall(r'\"([^\"]*)\"', open(sys.argv[2]).read())).encode()\n"
      "def dnsfunc(name, timeout=5):\n"
      "    n = name.decode() if isinstance(name, bytes) else name\n"
      "    return txt if n.rstrip('.') == 's1._domainkey.staging.example' else None\n"
      "ok = dkim.verify(msg, dnsfunc=dnsfunc)\n"
      "print('verified' if ok else 'not verified')\n"
      "sys.exit(0 if ok else 1)\n");
  return run_command(std::string(kPython) + " " + shell_quote((dir / "verify.py").string()) + " " +
                         shell_quote(message_file.string()) + " " +
                         shell_quote(keygen_out.string()) + " " + (tamper ? "1" : "0"),
                     out, true);
}

// The staging gateway of the relay tests: smtp → mime → rewrite (every recipient to `inbox`,
// a From override, a subject prefix, Bcc removed) → dkim_sign (d=staging.example, s=s1, the
// key at `key`) → deferred relay to `smarthost` without TLS.
inline std::string staging_gateway_config(const fs::path& key, const std::string& inbox,
                                          const std::string& smarthost) {
  return R"(log: {level: debug}
spool: {path: ./spool}
listeners:
  - {name: smtp, plugin: smtp, pipeline: gateway, listen: ["127.0.0.1:0"]}
pipelines:
  - name: gateway
    stages:
      - {plugin: mime, timeout: 30s}
      - plugin: rewrite
        on_error: tempfail
        recipients:
          - {match: "*", to: )" +
         inbox + R"(}
        original_to_header: true
        override_from: noreply@staging.example
        subject_prefix: "[STAGING] "
        headers:
          - {op: remove, name: Bcc}
      - {plugin: dkim_sign, domain: staging.example, selector: s1, key: )" +
         key.string() + R"(}
      - plugin: relay
        timeout: 60s
        retry: {initial: 1s, max: 2s, lifetime: 1h}
        smarthost: )" +
         smarthost + R"(
        security: none
        helo: gw.test
)";
}

// smtp and http listeners → mime → store (mailbox default) → deferred relay to `smarthost`
// without TLS, retried after 300 ms backing off to 1 s. `pool` is the relay's connection
// reuse; 0 makes every attempt a new SMTP session.
inline std::string store_and_relay_config(const std::string& smarthost, int pool = 4) {
  return R"(log: {level: debug}
spool: {path: ./spool}
services:
  - {name: default, plugin: store, path: ./mail.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: gateway, listen: ["127.0.0.1:0"]}
  - {name: http, plugin: http, pipeline: gateway, listen: ["127.0.0.1:0"]}
pipelines:
  - name: gateway
    stages:
      - {plugin: mime, timeout: 30s}
      - {plugin: store, mailbox: default, on_error: tempfail}
      - plugin: relay
        timeout: 30s
        retry: {initial: 300ms, max: 1s, lifetime: 1h}
        smarthost: )" +
         smarthost + R"(
        security: none
        pool: {size: )" +
         std::to_string(pool) + R"(}
)";
}

// The message the staging gateway tests send (a dot-stuffed line, trailing spaces).
inline std::string invoice_message(const std::string& message_id) {
  return "From: \"Jane Doe\" <jane@app.example>\r\n"
         "To: Customer <customer@real.example>, other@real.example\r\n"
         "Subject: Your invoice\r\n"
         "Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
         "Message-ID: <" +
         message_id +
         ">\r\n"
         "MIME-Version: 1.0\r\n"
         "Content-Type: text/plain; charset=utf-8\r\n"
         "\r\n"
         "Dear customer,\r\n"
         ".a line that starts with a dot\r\n"
         "Trailing spaces here   \r\n"
         "\r\n";
}

// `sluice dkim keygen` for s1._domainkey.staging.example: the private key to `key`, the TXT
// record it prints to `txt`. Returns the exit status; its output in *out.
inline int dkim_keygen(const fs::path& key, const fs::path& txt, std::string* out) {
  return run_command(shell_quote(sluice_binary()) +
                         " dkim keygen --selector s1 --domain staging.example --out " +
                         shell_quote(key.string()) + " > " + shell_quote(txt.string()),
                     out);
}

// A message's delivery log, GET /api/v1/message/{ID}/deliveries on the listener "http"
// (empty when it cannot be read).
inline json::array deliveries(const sluice_process& s, const std::string& id) {
  std::string out;
  json::array log;
  const std::string url =
      "http://" + s.endpoints("http").at(0) + "/api/v1/message/" + id + "/deliveries";
  if (run_command("curl -sS --max-time 10 " + shell_quote(url), &out, false) != 0) return log;
  boost::system::error_code ec;
  auto v = json::parse(out, ec);
  if (!ec && v.is_object() && v.as_object().contains("Deliveries"))
    log = v.at("Deliveries").as_array();
  return log;
}

// The IDs in "250 … queued as <ID>" replies, in order.
inline std::vector<std::string> queued_ids(const std::string& replies) {
  std::vector<std::string> ids;
  for (std::size_t pos = 0; (pos = replies.find("queued as ", pos)) != std::string::npos;) {
    pos += 10;
    ids.push_back(replies.substr(pos, replies.find_first_of(" \r\n", pos) - pos));
  }
  return ids;
}

}  // namespace sluice::test::relay
