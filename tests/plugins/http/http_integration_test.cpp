// http_integration_test.cpp — the real sluice binary with an smtp -> store pipeline and the
// http listener, driven by independent clients: curl (auth, CORS, gzip, web root, mailbox
// routing, unix socket, TLS, redirects, limits, static UI), openssl (a test certificate),
// and a Python WebSocket client (events after SMTP mail, Origin refusal, drain).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <thread>

#include "sluice_test.hpp"

namespace fs = std::filesystem;
using sluice::test::run_command;
using sluice::test::shell_quote;
using sluice::test::sluice_process;
using sluice::test::temp_dir;
using sluice::test::write_file;

namespace {

const std::string python = "/usr/bin/python3";
const std::string ws_script = std::string(HTTP_TEST_SCRIPTS) + "/ws_client.py";

struct reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string raw;
};

// Runs curl -i with `args`; parses the last response (1xx blocks are skipped).
reply curl(const std::string& args) {
  std::string out;
  run_command("curl -sS -i --max-time 20 " + args, &out, false, std::chrono::seconds(30));
  reply r;
  r.raw = out;
  std::size_t pos = 0;
  while (true) {
    auto end = out.find("\r\n\r\n", pos);
    if (end == std::string::npos) return r;
    std::string head = out.substr(pos, end - pos);
    pos = end + 4;
    if (head.rfind("HTTP/", 0) != 0) return r;
    r.status = std::stoi(head.substr(head.find(' ') + 1, 3));
    if (r.status >= 100 && r.status < 200) continue;
    r.headers.clear();
    std::size_t line = head.find("\r\n");
    while (line != std::string::npos) {
      auto next = head.find("\r\n", line + 2);
      std::string h = head.substr(line + 2, next == std::string::npos ? next : next - line - 2);
      auto colon = h.find(':');
      if (colon != std::string::npos) {
        std::string name = h.substr(0, colon);
        for (auto& c : name)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = h.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        if (r.headers.count(name)) {
          r.headers[name] += ", " + value;
        } else {
          r.headers[name] = value;
        }
      }
      line = next;
    }
    r.body = out.substr(pos);
    return r;
  }
}

std::string base_config(const std::string& http_extra, const std::string& listen_extra = "") {
  return R"(log: {format: text, level: debug}
spool: {path: ./spool}
services:
  - {name: default, plugin: store, path: ./mail.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:0"]}
  - {name: smtp_team, plugin: smtp, pipeline: team, listen: ["127.0.0.1:0"]}
  - name: http
    plugin: http
    pipeline: capture
    listen: ["127.0.0.1:0")" +
         listen_extra + R"(]
    ui_dir: ./ui
)" + http_extra +
         R"(
pipelines:
  - name: capture
    stages: [{plugin: store, mailbox: default}]
  - name: team
    stages: [{plugin: store, mailbox: team}]
)";
}

void make_ui(const fs::path& dir) {
  fs::create_directories(dir / "ui/dist");
  write_file(dir / "ui/index.html",
             "<!doctype html><html><head><base href=\"{{base}}\"></head>"
             "<body data-webroot=\"{{webroot}}\" data-mailbox=\"{{mailbox}}\">"
             "<script src=\"{{base}}dist/app.js\"></script></body></html>\n");
  std::string js;
  for (int i = 0; i < 300; ++i)
    js += "console.log('line " + std::to_string(i) + "');\n";
  write_file(dir / "ui/dist/app.js", js);
  write_file(dir / "ui/dist/logo.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
  write_file(dir / "ui/api-docs.html", "<base href=\"{{base}}\"><p>docs</p>");
  write_file(dir / "ui/favicon.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"icon\"/>");
  write_file(dir / "ui/.hidden", "hidden");
  write_file(dir / "outside.txt", "outside the ui dir");
  fs::create_symlink(dir / "outside.txt", dir / "ui/leak.txt");
}

std::string url(const sluice_process& p, const std::string& path) {
  return shell_quote("http://" + p.host("http") + ":" + std::to_string(p.port("http")) + path);
}

struct fixture {
  temp_dir dir;
  std::optional<sluice_process> proc;
  void start(const std::string& http_extra, const std::string& listen_extra = "") {
    make_ui(dir.path());
    proc.emplace(dir.path(), base_config(http_extra, listen_extra));
    ASSERT_TRUE(proc->running());
  }
  std::string u(const std::string& path) const { return url(*proc, path); }
  std::string smtp(const std::string& listener = "smtp") const {
    return proc->host(listener) + ":" + std::to_string(proc->port(listener));
  }
};

std::string send_mail(const std::string& endpoint, const std::string& subject) {
  return sluice::test::smtp_send(
      endpoint, "a@example.org", {"b@example.org"},
      "From: a@example.org\r\nTo: b@example.org\r\nSubject: " + subject + "\r\n\r\nhello\r\n");
}

}  // namespace

TEST(http_core, probes_routing_and_headers) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(f.start(""));
  auto r = curl(f.u("/livez"));
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, "ok");
  EXPECT_EQ(r.headers["referrer-policy"], "no-referrer");
  EXPECT_EQ(r.headers["x-content-type-options"], "nosniff");
  EXPECT_NE(r.headers["content-security-policy"].find("default-src 'none'; script-src 'self'"),
            std::string::npos);
  EXPECT_NE(r.headers["content-security-policy"].find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_FALSE(r.headers["date"].empty());
  r = curl(f.u("/readyz"));
  EXPECT_EQ(r.status, 200) << r.raw;

  // 404 with Go's text; 405 with Allow when the path exists with another method.
  r = curl(f.u("/no/such/thing"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "404 page not found\n");
  r = curl("-X POST " + f.u("/livez"));
  EXPECT_EQ(r.status, 405) << r.raw;
  EXPECT_EQ(r.headers["allow"], "GET, HEAD");
  // HEAD of a GET route: same headers, no body.
  r = curl("-I " + f.u("/livez"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-length"], "2");
  EXPECT_EQ(r.body, "");
  // Go's ServeMux redirects unclean paths (cypress-mailpit asks for //view/…).
  r = curl(f.u("//view/abc?x=1"));
  EXPECT_EQ(r.status, 301);
  EXPECT_EQ(r.headers["location"], "/view/abc?x=1");
  r = curl("--path-as-is " + f.u("/dist/../livez"));
  EXPECT_EQ(r.status, 301);
  EXPECT_EQ(r.headers["location"], "/livez");
  // A plain GET of the event stream is a client error.
  r = curl(f.u("/api/events"));
  EXPECT_EQ(r.status, 400);
  // Malformed requests get 400 and the connection is closed.
  {
    sluice::test::line_client bad(f.proc->host("http") + ":" +
                                  std::to_string(f.proc->port("http")));
    bad.send("NOT A REQUEST\r\n\r\n");
    auto line = bad.read_line();
    ASSERT_TRUE(line);
    EXPECT_EQ(*line, "HTTP/1.1 400 Bad Request");
    EXPECT_NE(bad.read_all().find("400 Bad Request"), std::string::npos);
  }
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
}

TEST(http_core, static_ui_spa_etag_gzip_and_traversal) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(f.start(""));
  auto r = curl(f.u("/"));
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("<base href=\"/\">"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("data-mailbox=\"default\""), std::string::npos);
  for (const char* spa : {"/search", "/view/abc123"}) {
    auto s = curl(f.u(spa));
    EXPECT_EQ(s.status, 200) << spa;
    EXPECT_EQ(s.body, r.body) << spa;
  }
  r = curl(f.u("/dist/app.js"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/javascript; charset=utf-8");
  std::string etag = r.headers["etag"];
  ASSERT_FALSE(etag.empty());
  EXPECT_FALSE(r.headers["last-modified"].empty());
  auto c = curl("-H " + shell_quote("If-None-Match: " + etag) + " " + f.u("/dist/app.js"));
  EXPECT_EQ(c.status, 304) << c.raw;
  EXPECT_EQ(c.body, "");
  c = curl("-H " + shell_quote("If-Modified-Since: " + r.headers["last-modified"]) + " " +
           f.u("/dist/app.js"));
  EXPECT_EQ(c.status, 304);
  // gzip when accepted; curl --compressed decodes it back to the same bytes.
  auto gz = curl("-H 'Accept-Encoding: gzip' " + f.u("/dist/app.js"));
  EXPECT_EQ(gz.headers["content-encoding"], "gzip");
  EXPECT_EQ(gz.headers["vary"], "Accept-Encoding");
  EXPECT_LT(gz.body.size(), r.body.size());
  auto dec = curl("--compressed " + f.u("/dist/app.js"));
  EXPECT_EQ(dec.body, r.body);
  // Nothing outside the directory, no dot-files, no directory listing.
  EXPECT_EQ(curl(f.u("/leak.txt")).status, 404);
  EXPECT_EQ(curl(f.u("/.hidden")).status, 404);
  EXPECT_EQ(curl(f.u("/dist")).status, 404);
  EXPECT_EQ(curl(f.u("/%2e%2e/outside.txt")).status, 404);
  EXPECT_EQ(curl(f.u("/dist%2f..%2f..%2foutside.txt")).status, 404);
  EXPECT_EQ(curl(f.u("/dist/logo.svg")).headers["content-type"], "image/svg+xml");
  // The API reference at /api/v1/ is a template like index.html, not a file of its own.
  r = curl(f.u("/api/v1/"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "<base href=\"/\"><p>docs</p>");
  EXPECT_EQ(r.headers["content-type"], "text/html; charset=utf-8");
  EXPECT_EQ(curl(f.u("/mailbox/team/api/v1/")).body, "<base href=\"/mailbox/team/\"><p>docs</p>");
  EXPECT_EQ(curl(f.u("/api-docs.html")).status, 404);
  // /favicon.ico is the UI's SVG icon when the UI has no .ico.
  r = curl(f.u("/favicon.ico"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "image/svg+xml");
  EXPECT_NE(r.body.find("id=\"icon\""), std::string::npos) << r.body;
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
}

TEST(http_core, basic_auth_file_env_pairs_and_send_rules) {
  fixture f;
  std::string out;
  ASSERT_EQ(run_command("htpasswd -nbB alice 'wonder land' > " +
                            shell_quote((f.dir.path() / "users").string()),
                        &out),
            0)
      << out;
  ::setenv("SLUICE_TEST_HTTP_AUTH", "carol:c4rol", 1);
  ASSERT_NO_FATAL_FAILURE(f.start(
      "    auth_file: ./users\n    auth: ${SLUICE_TEST_HTTP_AUTH}\n    send_auth_accept_any: "
      "true\n"));
  auto r = curl(f.u("/metrics"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.headers["www-authenticate"], "Basic realm=\"Login\"");
  EXPECT_EQ(r.body, "Unauthorized.\n");
  EXPECT_EQ(curl("-u 'alice:wrong' " + f.u("/metrics")).status, 401);
  EXPECT_EQ(curl("-u 'mallory:wonder land' " + f.u("/metrics")).status, 401);
  EXPECT_EQ(curl("-u 'alice:wonder land' " + f.u("/metrics")).status, 200);
  EXPECT_EQ(curl("-u 'alice:wonder land' " + f.u("/metrics")).status, 200);  // cached
  EXPECT_EQ(curl("-u carol:c4rol " + f.u("/")).status, 200);
  EXPECT_EQ(curl("-H 'Authorization: Bearer abc' " + f.u("/")).status, 401);
  // Probes never ask for credentials (Kubernetes).
  EXPECT_EQ(curl(f.u("/livez")).status, 200);
  EXPECT_EQ(curl(f.u("/readyz")).status, 200);
  // send_auth_accept_any: the send API skips the UI credentials.
  r = curl("-X POST -H 'Content-Type: application/json' --data '{}' " + f.u("/api/v1/send"));
  EXPECT_NE(r.status, 401) << r.raw;
  // …but nothing else does.
  EXPECT_EQ(curl("-X POST --data '{}' " + f.u("/api/v1/messages")).status, 401);
  // The WebSocket needs them too.
  r = curl(
      "-H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' "
      "-H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' " +
      f.u("/api/events"));
  EXPECT_EQ(r.status, 401);
  r = curl("-u 'alice:wonder land' " + f.u("/metrics"));
  EXPECT_NE(r.body.find("sluice_http_auth_failures_total{listener=\"http\"} "), std::string::npos);
  // Neither the password nor the Authorization header reaches the log.
  std::string log = f.proc->log();
  EXPECT_EQ(log.find("wonder land"), std::string::npos);
  EXPECT_EQ(log.find("c4rol"), std::string::npos);
  EXPECT_EQ(log.find("Basic "), std::string::npos);
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
}

TEST(http_core, send_api_separate_credentials) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(f.start("    auth: 'ui:uipass'\n    send_auth: 'sender:sendpass'\n"));
  auto send = [&](const std::string& cred) {
    return curl((cred.empty() ? "" : "-u " + cred + " ") +
                "-X POST -H 'Content-Type: application/json' --data '{}' " + f.u("/api/v1/send"))
        .status;
  };
  EXPECT_EQ(send(""), 401);
  EXPECT_EQ(send("ui:uipass"), 401);  // the send API has its own credentials
  EXPECT_NE(send("sender:sendpass"), 401);
  EXPECT_EQ(curl("-u sender:sendpass " + f.u("/metrics")).status, 401);
  EXPECT_EQ(curl("-u ui:uipass " + f.u("/metrics")).status, 200);
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
}

TEST(http_core, cors_like_mailpit) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(f.start("    api_cors: 'allowed.example, other.example:8080'\n"));
  std::string host = f.proc->host("http") + ":" + std::to_string(f.proc->port("http"));
  auto r = curl("-H 'Origin: https://evil.example' " + f.u("/api/v1/info"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "Blocked due to CORS violation\n");
  EXPECT_EQ(curl("-H 'Origin: https://evil.example' " + f.u("/")).status, 403);
  r = curl("-H 'Origin: https://allowed.example' " + f.u("/api/v1/nothing"));
  EXPECT_EQ(r.status, 404);  // allowed through to routing
  EXPECT_EQ(r.headers["access-control-allow-origin"], "https://allowed.example");
  EXPECT_EQ(r.headers["access-control-allow-methods"], "GET, POST, DELETE, PUT, OPTIONS");
  EXPECT_EQ(curl("-H 'Origin: http://other.example:8081' " + f.u("/livez")).status, 200)
      << "probes are not checked";
  EXPECT_EQ(curl("-H 'Origin: http://other.example:8081' " + f.u("/metrics")).status, 403);
  EXPECT_EQ(curl("-H 'Origin: http://other.example:8080' " + f.u("/metrics")).status, 200);
  // The same host is always allowed.
  EXPECT_EQ(curl("-H " + shell_quote("Origin: http://" + host) + " " + f.u("/metrics")).status,
            200);
  // The sandboxed message view (opaque origin, "Origin: null") may load the message's
  // parts, without CORS headers, and nothing else (unknown message: routed, so 404).
  r = curl("-H 'Origin: null' " + f.u("/api/v1/message/nope/part/1"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.headers.count("access-control-allow-origin"), 0u);
  EXPECT_EQ(curl("-H 'Origin: null' " + f.u("/api/v1/messages")).status, 403);
  EXPECT_EQ(curl("-X DELETE -H 'Origin: null' " + f.u("/api/v1/message/nope/part/1")).status, 403);
  // A preflight: empty 200 with the CORS headers.
  r = curl(
      "-X OPTIONS -H 'Origin: https://allowed.example' "
      "-H 'Access-Control-Request-Method: DELETE' " +
      f.u("/api/v1/messages"));
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.headers["access-control-allow-headers"], "*");
  // Cross-site WebSocket hijacking (CVE-2026-22689): the upgrade is refused too, also
  // through an encoded path.
  std::string out;
  std::string ws = "ws://" + host;
  run_command(python + " " + ws_script + " origin " + shell_quote(ws + "/api/events") +
                  " https://evil.example",
              &out);
  EXPECT_NE(out.find("\"status\": 403"), std::string::npos) << out;
  out.clear();
  run_command(python + " " + ws_script + " origin " + shell_quote(ws + "/%61pi/events") +
                  " https://evil.example",
              &out);
  EXPECT_EQ(out.find("\"status\": 101"), std::string::npos) << out;
  out.clear();
  run_command(python + " " + ws_script + " origin " + shell_quote(ws + "/api/events") +
                  " https://allowed.example",
              &out);
  EXPECT_NE(out.find("\"status\": 101"), std::string::npos) << out;
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
}

TEST(http_core, webroot_and_mailboxes) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(f.start("    webroot: /mail\n"));
  EXPECT_EQ(curl(f.u("/livez")).status, 404);
  EXPECT_EQ(curl(f.u("/mail/livez")).status, 200);
  auto r = curl(f.u("/mail"));
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.headers["location"], "/mail/");
  r = curl(f.u("/mail/"));
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("<base href=\"/mail/\">"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("data-webroot=\"/mail/\""), std::string::npos);

  ASSERT_EQ(send_mail(f.smtp("smtp_team"), "for the team").substr(0, 3), "250");
  ASSERT_EQ(send_mail(f.smtp("smtp_team"), "for the team too").substr(0, 3), "250");
  ASSERT_EQ(send_mail(f.smtp("smtp"), "for default").substr(0, 3), "250");
  r = curl(f.u("/mail/mailbox/team/metrics"));
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_NE(r.body.find("\nmailpit_messages 2\n"), std::string::npos) << r.body;
  r = curl(f.u("/mail/metrics"));
  EXPECT_NE(r.body.find("\nmailpit_messages 1\n"), std::string::npos);
  EXPECT_NE(r.body.find("\nmailpit_smtp_accepted_total 3\n"), std::string::npos);
  r = curl(f.u("/mail/mailbox/team/"));
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("<base href=\"/mail/mailbox/team/\">"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("data-mailbox=\"team\""), std::string::npos);
  r = curl(f.u("/mail/mailbox/team"));
  EXPECT_EQ(r.status, 302);
  EXPECT_EQ(r.headers["location"], "/mail/mailbox/team/");
  EXPECT_EQ(curl(f.u("/mail/mailbox/nobody/livez")).status, 404);
  EXPECT_EQ(curl(f.u("/mail/mailbox/%74eam/livez")).status, 200);  // names are decoded
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
}

TEST(http_core, unix_socket_mode_stale_and_live) {
  fixture f;
  fs::path sock = f.dir.path() / "http.sock";
  {
    // A stale socket file (nobody listening) is replaced.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ::close(fd);
    ASSERT_TRUE(fs::exists(sock));
  }
  ASSERT_NO_FATAL_FAILURE(f.start("", ", \"unix:./http.sock:600\""));
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto r = curl("--unix-socket " + shell_quote(sock.string()) + " http://localhost/livez");
  EXPECT_EQ(r.status, 200) << r.raw;
  // A live socket is refused: a second server does not start.
  {
    temp_dir other;
    std::string cfg = base_config("", ", " + shell_quote("unix:" + sock.string()));
    std::string out;
    write_file(other.path() / "sluice.yaml", cfg);
    make_ui(other.path());
    int rc = run_command(sluice::test::sluice_binary() + " serve -c " +
                             shell_quote((other.path() / "sluice.yaml").string()),
                         &out, true, std::chrono::seconds(20));
    EXPECT_NE(rc, 0);
    EXPECT_NE(out.find("another server is listening"), std::string::npos) << out;
  }
  EXPECT_EQ(curl("--unix-socket " + shell_quote(sock.string()) + " http://localhost/livez").status,
            200);
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
  EXPECT_FALSE(fs::exists(sock)) << "removed at stop";
}

TEST(http_core, tls) {
  fixture f;
  std::string out;
  ASSERT_EQ(run_command("cd " + shell_quote(f.dir.path().string()) +
                            " && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out "
                            "cert.pem -days 1 -subj /CN=localhost -addext "
                            "subjectAltName=IP:127.0.0.1 2>&1",
                        &out),
            0)
      << out;
  ASSERT_NO_FATAL_FAILURE(f.start("    tls: {cert: ./cert.pem, key: ./key.pem}\n"));
  std::string base = "https://127.0.0.1:" + std::to_string(f.proc->port("http"));
  std::string ca = " --cacert " + shell_quote((f.dir.path() / "cert.pem").string()) + " ";
  auto r = curl(ca + base + "/livez");
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, "ok");
  // Keep-alive over TLS: two requests on one connection.
  r = curl(ca + base + "/livez " + base + "/readyz");
  EXPECT_EQ(r.status, 200) << r.raw;
  // TLS 1.1 and older are refused.
  int rc = run_command(
      "curl -sS --max-time 10 -o /dev/null" + ca + "--tlsv1.0 --tls-max 1.1 " + base + "/livez",
      &out);
  EXPECT_NE(rc, 0);
  // Plain HTTP on the TLS port does not get an answer.
  rc = run_command("curl -sS --max-time 5 -o /dev/null http://127.0.0.1:" +
                       std::to_string(f.proc->port("http")) + "/livez",
                   &out);
  EXPECT_NE(rc, 0);
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
}

TEST(http_core, body_header_and_connection_limits) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(
      f.start("    max_send_size: 2KB\n    limits: {max_body_size: 1KB, max_header_size: 4KB, "
              "max_connections: 3}\n"));
  write_file(f.dir.path() / "big.json", "{\"x\":\"" + std::string(3000, 'a') + "\"}");
  write_file(f.dir.path() / "mid.json", "{\"x\":\"" + std::string(1500, 'a') + "\"}");
  std::string big = " --data-binary @" + shell_quote((f.dir.path() / "big.json").string()) + " ";
  std::string mid = " --data-binary @" + shell_quote((f.dir.path() / "mid.json").string()) + " ";
  auto r = curl("-X PUT -H 'Content-Type: application/json'" + big + f.u("/api/v1/messages"));
  EXPECT_EQ(r.status, 413) << r.raw;
  EXPECT_EQ(r.headers["content-type"], "text/plain; charset=utf-8");
  r = curl("-X POST -H 'Content-Type: application/json'" + big + f.u("/api/v1/send"));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.headers["content-type"], "application/json");
  auto j = boost::json::parse(r.body);
  EXPECT_TRUE(j.as_object().contains("Error")) << r.body;
  // The send API's own limit is larger than the JSON one.
  r = curl("-X POST -H 'Content-Type: application/json'" + mid + f.u("/api/v1/send"));
  EXPECT_NE(r.status, 413) << r.raw;
  // Chunked bodies are limited while they are read.
  r = curl("-X PUT -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json'" + big +
           f.u("/api/v1/messages"));
  EXPECT_EQ(r.status, 413) << r.raw;
  // Expect: 100-continue gets a 100 before the body is read.
  r = curl("-X POST -H 'Expect: 100-continue' -H 'Content-Type: application/json'" + mid +
           f.u("/api/v1/send"));
  EXPECT_NE(r.raw.find("HTTP/1.1 100 Continue"), std::string::npos) << r.raw;
  r = curl("-H " + shell_quote("X-Big: " + std::string(5000, 'h')) + " " + f.u("/livez"));
  EXPECT_EQ(r.status, 431) << r.raw;
  // Over max_connections: 503 and close.
  std::vector<std::unique_ptr<sluice::test::line_client>> held;
  std::string ep = f.proc->host("http") + ":" + std::to_string(f.proc->port("http"));
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<sluice::test::line_client>(ep));
    held.back()->send("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n");
    auto line = held.back()->read_line();
    ASSERT_TRUE(line);
    EXPECT_EQ(*line, "HTTP/1.1 200 OK");
  }
  sluice::test::line_client extra(ep);
  auto line = extra.read_line();
  ASSERT_TRUE(line);
  EXPECT_EQ(*line, "HTTP/1.1 503 Service Unavailable");
  held.clear();
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
}

// Limits above Beast's default body limit (1 MiB) hold as configured: a Content-Length
// under them is read, one over them gets the 413 (both were a bare 400 and a close).
TEST(http_core, body_limits_above_one_mebibyte) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(f.start("    max_send_size: 3MB\n    limits: {max_body_size: 2MB}\n"));
  const std::string attachment(1500 * 1024, 'A');  // valid base64, 1.1 MB decoded
  write_file(f.dir.path() / "send.json",
             "{\"From\":{\"Email\":\"a@example.org\"},\"To\":[{\"Email\":\"b@example.org\"}],"
             "\"Subject\":\"big\",\"Text\":\"t\",\"Attachments\":[{\"Content\":\"" +
                 attachment + "\",\"Filename\":\"a.bin\"}]}");
  write_file(f.dir.path() / "over.json", "{\"x\":\"" + std::string(3200 * 1024, 'a') + "\"}");
  write_file(f.dir.path() / "tags.json",
             "{\"Tags\":[\"t\"],\"IDs\":[\"" + std::string(1200 * 1024, 'x') + "\"]}");
  auto data = [&](const char* name) {
    return " --data-binary @" + shell_quote((f.dir.path() / name).string()) + " ";
  };
  auto r =
      curl("-X POST -H 'Content-Type: application/json'" + data("send.json") + f.u("/api/v1/send"));
  EXPECT_EQ(r.status, 200) << r.raw.substr(0, 2000);
  EXPECT_NE(r.body.find("\"ID\""), std::string::npos) << r.body;
  r = curl("-X POST -H 'Content-Type: application/json'" + data("over.json") + f.u("/api/v1/send"));
  EXPECT_EQ(r.status, 413) << r.raw.substr(0, 2000);
  EXPECT_EQ(r.headers["content-type"], "application/json");
  // 1.2 MB of JSON under the 2 MB API limit is read and answered on its merits.
  r = curl("-X PUT -H 'Content-Type: application/json'" + data("tags.json") + f.u("/api/v1/tags"));
  EXPECT_NE(r.status, 413) << r.raw.substr(0, 2000);
  EXPECT_NE(r.body, "400 Bad Request\n") << r.raw.substr(0, 2000);
  r = curl("-X PUT -H 'Content-Type: application/json'" + data("over.json") + f.u("/api/v1/tags"));
  EXPECT_EQ(r.status, 413) << r.raw.substr(0, 2000);
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
}

TEST(http_core, websocket_events_after_smtp_mail) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(f.start(""));
  std::string host = f.proc->host("http") + ":" + std::to_string(f.proc->port("http"));
  std::string out;
  int rc = run_command(python + " " + ws_script + " events " +
                           shell_quote("ws://" + host + "/api/events") + " " +
                           f.proc->host("smtp") + " " + std::to_string(f.proc->port("smtp")) + " " +
                           shell_quote("ws://" + host + "/mailbox/team/api/events"),
                       &out, true, std::chrono::seconds(40));
  ASSERT_EQ(rc, 0) << out << f.proc->log();
  auto v = boost::json::parse(out).as_object();
  const auto& first = v["first"].as_object();
  EXPECT_EQ(first.at("Type"), "stats");
  EXPECT_EQ(first.at("Data").at("Total"), 0);
  EXPECT_EQ(first.at("Data").at("Unread"), 0);
  EXPECT_TRUE(first.at("Data").at("Version").is_string());
  bool saw_new = false, saw_stats = false;
  for (const auto& fr : v["frames"].as_array()) {
    const auto& o = fr.as_object();
    if (o.at("Type") == "new") {
      saw_new = true;
      EXPECT_EQ(o.at("Data").at("Subject"), "websocket hello");
      EXPECT_TRUE(o.at("Data").at("Cc").is_array()) << "arrays normalised to []";
      EXPECT_EQ(o.at("Data").at("ID").as_string().size(), 22u);
    } else if (o.at("Type") == "stats" && saw_new) {
      saw_stats = true;
      EXPECT_EQ(o.at("Data").at("Total"), 1);
      EXPECT_EQ(o.at("Data").at("Unread"), 1);
    }
  }
  EXPECT_TRUE(saw_new) << out;
  EXPECT_TRUE(saw_stats) << out;
  // The other mailbox's stream saw nothing of it.
  EXPECT_TRUE(v["other"].as_array().empty()) << out;
  auto m = curl(f.u("/metrics"));
  EXPECT_NE(m.body.find("sluice_http_websocket_frames_total{listener=\"http\"}"),
            std::string::npos);
  EXPECT_NE(m.body.find("sluice_stage_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(m.body.find("\nmailpit_messages 1\n"), std::string::npos) << m.body;
  EXPECT_NE(m.body.find("\nmailpit_messages_unread 1\n"), std::string::npos);
  EXPECT_NE(m.body.find("\nmailpit_smtp_accepted_total 1\n"), std::string::npos);
  EXPECT_NE(m.body.find("sluice_http_request_duration_seconds_bucket{listener=\"http\""),
            std::string::npos);
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
}

TEST(http_core, drain_closes_idle_connections_and_websockets) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(f.start(""));
  std::string host = f.proc->host("http");
  std::string port = std::to_string(f.proc->port("http"));
  std::string out;
  auto t0 = std::chrono::steady_clock::now();
  int rc = run_command(python + " " + ws_script + " drain " +
                           shell_quote("ws://" + host + ":" + port + "/api/events") + " " + host +
                           " " + port + " " + std::to_string(f.proc->pid()),
                       &out, true, std::chrono::seconds(30));
  ASSERT_EQ(rc, 0) << out;
  auto v = boost::json::parse(out).as_object();
  EXPECT_EQ(v["first"], "HTTP/1.1 200 OK");
  EXPECT_EQ(v["close_code"], 1001) << out;
  EXPECT_EQ(v["idle_closed"], true) << out;
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
  // Well before the kernel's shutdown timeout: nothing held the gate.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST(http_core, websocket_update_delete_truncate_through_the_api) {
  fixture f;
  ASSERT_NO_FATAL_FAILURE(f.start(""));
  std::string host = f.proc->host("http") + ":" + std::to_string(f.proc->port("http"));
  std::string out;
  int rc = run_command(python + " " + ws_script + " changes " +
                           shell_quote("ws://" + host + "/api/events") + " " +
                           shell_quote("http://" + host + "/") + " " + f.proc->host("smtp") + " " +
                           std::to_string(f.proc->port("smtp")),
                       &out, true, std::chrono::seconds(90));
  ASSERT_EQ(rc, 0) << out << f.proc->log();
  auto v = boost::json::parse(out).as_object();
  std::string id(v["id"].as_string());
  EXPECT_EQ(v["put"].at(0), 200);
  ASSERT_EQ(v["update"].as_array().size(), 1u) << out;
  EXPECT_EQ(v["update"].at(0).at("Data"), (boost::json::object{{"ID", id}, {"Read", true}}));
  ASSERT_EQ(v["delete"].as_array().size(), 1u) << out;
  EXPECT_EQ(v["delete"].at(0).at("Data"), (boost::json::object{{"ID", id}}));
  ASSERT_EQ(v["truncate"].as_array().size(), 1u) << out;
  EXPECT_TRUE(v["truncate"].at(0).at("Data").is_null());
  ASSERT_FALSE(v["last_stats"].as_array().empty()) << out;
  EXPECT_EQ(v["last_stats"].as_array().back().at("Data").at("Total"), 0);
  // Marking 300 messages read: one "changed" frame, stats, no disconnect.
  EXPECT_EQ(v["read_all_call"].at(0), 200);
  ASSERT_EQ(v["changed"].as_array().size(), 1u) << out;
  EXPECT_EQ(v["changed"].at(0).at("Data"), (boost::json::object{{"Count", 300}, {"Read", true}}));
  EXPECT_EQ(v["bulk_updates"], 0) << out;
  ASSERT_FALSE(v["bulk_stats"].as_array().empty()) << out;
  EXPECT_EQ(v["bulk_stats"].as_array().back().at("Data").at("Unread"), 0);
  EXPECT_EQ(v["after_bulk"], (boost::json::array{"after bulk"})) << out;
  EXPECT_EQ(f.proc->stop(), 0) << f.proc->log();
}

// The delivery log: the kernel publishes every attempt of a deferred stage, the store keeps
// them with the message, the API serves them; they go with the message.
TEST(http_core, delivery_log_of_a_deferred_stage) {
  temp_dir dir;
  const std::string cfg = R"(log: {level: info}
spool: {path: ./spool}
services:
  - {name: default, plugin: store, path: ./mail.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: p, listen: ["127.0.0.1:0"]}
  - {name: http, plugin: http, pipeline: p, listen: ["127.0.0.1:0"]}
pipelines:
  - name: p
    stages:
      - {plugin: store, mailbox: default}
      - plugin: test_deferred
        name: upstream
        log: attempts.log
        fail_times: 1
        retry: {initial: 200ms, max: 1s, lifetime: 1h}
)";
  sluice_process proc(dir.path(), cfg);
  ASSERT_TRUE(proc.running());
  const std::string smtp = proc.host("smtp") + ":" + std::to_string(proc.port("smtp"));
  const std::string sent = send_mail(smtp, "deferred");
  ASSERT_TRUE(sent.starts_with("250")) << sent;
  const std::string id = sent.substr(sent.find("queued as ") + 10);
  const std::string path = "/api/v1/message/" + id + "/deliveries";
  boost::json::array log;
  for (int i = 0; i < 200 && log.size() < 2; ++i) {
    auto r = curl(url(proc, path));
    ASSERT_EQ(r.status, 200) << r.raw;
    log = boost::json::parse(r.body).at("Deliveries").as_array();
    if (log.size() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(log.size(), 2u) << proc.log();
  EXPECT_EQ(log[0].at("Stage"), "upstream");
  EXPECT_EQ(log[0].at("Pipeline"), "p");
  EXPECT_EQ(log[0].at("Attempt"), 1);
  EXPECT_EQ(log[0].at("Status"), "retry");
  EXPECT_EQ(log[0].at("Reply"), "451 4.4.1 test upstream unavailable");
  EXPECT_TRUE(log[0].at("NextAttempt").is_string());
  EXPECT_EQ(log[0].at("Details").at("attempt"), 1);
  EXPECT_EQ(log[1].at("Attempt"), 2);
  EXPECT_EQ(log[1].at("Status"), "done");
  EXPECT_TRUE(log[1].at("NextAttempt").is_null());
  EXPECT_EQ(log[1].at("Details").at("attempt"), 2);
  EXPECT_EQ(curl(url(proc, "/api/v1/message/nope/deliveries")).status, 404);
  // Deleting the message deletes its log.
  EXPECT_EQ(curl("-X DELETE -d " + shell_quote("{\"IDs\":[\"" + id + "\"]}") + " " +
                 url(proc, "/api/v1/messages"))
                .status,
            200);
  EXPECT_EQ(curl(url(proc, path)).status, 404);
  EXPECT_EQ(proc.stop(), 0) << proc.log();
}
