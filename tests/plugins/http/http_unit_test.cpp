// http_unit_test.cpp — the http core's pure parts: URL handling, the Origin check, gzip
// negotiation, Basic credentials and their cache, static-file path safety and validators,
// the router, the settings reader, and the link check's link extraction and cache.
#include <gtest/gtest.h>
#include <zlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <thread>

#include "auth.hpp"
#include "compress.hpp"
#include "cors.hpp"
#include "link_check.hpp"
#include "routing.hpp"
#include "settings.hpp"
#include "sluice_test.hpp"
#include "static_files.hpp"
#include "url.hpp"

namespace fs = std::filesystem;
using namespace sluice::http;

namespace {

std::string gunzip(const std::string& in) {
  z_stream zs{};
  inflateInit2(&zs, 15 + 16);
  std::string out(4u << 20, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  return rc == Z_STREAM_END ? out : std::string("<inflate failed>");
}

}  // namespace

TEST(http_url, percent_decode) {
  EXPECT_EQ(percent_decode("a%20b%2Fc", false), "a b/c");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_EQ(percent_decode("a+b", false), "a+b");
  EXPECT_FALSE(percent_decode("%zz", false));
  EXPECT_FALSE(percent_decode("%2", false));
  EXPECT_FALSE(percent_decode("abc%", false));
}

TEST(http_url, query) {
  auto q = parse_query("query=subject%3Ahello+world&limit=5&limit=7&bad=%zz&&flag");
  EXPECT_EQ(q["query"], "subject:hello world");
  EXPECT_EQ(q["limit"], "7");  // the last value of a repeated key
  EXPECT_EQ(q.count("bad"), 0u);
  EXPECT_EQ(q["flag"], "");
  std::string many;
  for (int i = 0; i < 5000; ++i)
    many += "k" + std::to_string(i) + "=v&";
  EXPECT_EQ(parse_query(many).size(), 1000u);  // bounded
}

TEST(http_url, clean_path_like_go) {
  EXPECT_EQ(clean_path("/"), "/");
  EXPECT_EQ(clean_path("//view/abc"), "/view/abc");
  EXPECT_EQ(clean_path("/a//b/"), "/a/b/");
  EXPECT_EQ(clean_path("/a/./b/../c"), "/a/c");
  EXPECT_EQ(clean_path("/../../etc/passwd"), "/etc/passwd");
  EXPECT_EQ(clean_path("/api/v1/messages"), "/api/v1/messages");
  EXPECT_EQ(clean_path("/a/b/.."), "/a");
}

TEST(http_url, encode_segment) {
  EXPECT_EQ(encode_segment("team a/b"), "team%20a%2Fb");
  EXPECT_EQ(encode_segment("ops@example.com"), "ops@example.com");
}

TEST(http_cors, origin_host) {
  EXPECT_EQ(origin_host("https://App.Example:8443"), "app.example:8443");
  EXPECT_EQ(origin_host("http://a.example/path"), "a.example");
  EXPECT_EQ(origin_host("null"), "");
  EXPECT_EQ(origin_host("garbage"), "");
}

TEST(http_cors, mailpit_rules) {
  std::vector<std::string> none;
  std::vector<std::string> list = {"allowed.example", "other.example:8080"};
  std::vector<std::string> any = {"*"};
  // Same host is always allowed, case-insensitively.
  EXPECT_TRUE(origin_allowed("http://LOCALHOST:8025", "localhost:8025", none));
  EXPECT_FALSE(origin_allowed("http://localhost:9999", "localhost:8025", none));
  EXPECT_FALSE(origin_allowed("https://evil.example", "localhost:8025", none));
  EXPECT_TRUE(origin_allowed("https://allowed.example", "localhost:8025", list));
  // Ports must match: an entry without a port does not admit another port.
  EXPECT_FALSE(origin_allowed("https://allowed.example:8080", "localhost:8025", list));
  EXPECT_TRUE(origin_allowed("http://other.example:8080", "localhost:8025", list));
  EXPECT_FALSE(origin_allowed("null", "localhost:8025", list));
  EXPECT_TRUE(origin_allowed("https://evil.example", "localhost:8025", any));
  EXPECT_TRUE(origin_allowed("null", "localhost:8025", any));
}

TEST(http_compress, accept_encoding) {
  EXPECT_TRUE(accepts_gzip("gzip"));
  EXPECT_TRUE(accepts_gzip("deflate, GZIP;q=0.5, br"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_FALSE(accepts_gzip(""));
  EXPECT_FALSE(accepts_gzip("br, deflate"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0, *"));
  EXPECT_FALSE(accepts_gzip("*;q=0"));
  EXPECT_TRUE(accepts_gzip("x-gzip"));
}

TEST(http_compress, roundtrip_and_types) {
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += "line " + std::to_string(i) + " of some compressible JSON-ish text\n";
  auto gz = gzip_compress(text);
  ASSERT_TRUE(gz);
  EXPECT_LT(gz->size(), text.size() / 4);
  EXPECT_EQ(gunzip(*gz), text);
  EXPECT_TRUE(compressible_type("application/json"));
  EXPECT_TRUE(compressible_type("text/html; charset=utf-8"));
  EXPECT_TRUE(compressible_type("image/svg+xml"));
  EXPECT_FALSE(compressible_type("image/png"));
  EXPECT_FALSE(compressible_type("application/zip"));
}

TEST(http_auth, parse_basic) {
  auto c = parse_basic_authorization("Basic dXNlcjpwYTpzcw==");  // user:pa:ss
  ASSERT_TRUE(c);
  EXPECT_EQ(c->user, "user");
  EXPECT_EQ(c->password, "pa:ss");
  EXPECT_TRUE(parse_basic_authorization("basic   dXNlcjpwYXNz"));
  EXPECT_FALSE(parse_basic_authorization("Bearer dXNlcjpwYXNz"));
  EXPECT_FALSE(parse_basic_authorization("Basic !!!"));
  EXPECT_FALSE(parse_basic_authorization("Basic dXNlcnBhc3M="));  // no colon
  EXPECT_FALSE(parse_basic_authorization(""));
  EXPECT_FALSE(parse_basic_authorization("Basic " + std::string(5000, 'A')));
}

TEST(http_auth, file_pairs_and_cache) {
  sluice::test::temp_dir dir;
  // {SHA} of "secret" and a plain entry.
  sluice::test::write_file(dir.path() / "users",
                           "# comment\nalice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\nbob:builder\n");
  auto creds =
      credential_set::load(dir.path() / "users", "carol:c4rol dave:d", std::chrono::seconds(60));
  ASSERT_TRUE(creds);
  EXPECT_TRUE(creds->verify("alice", "secret"));
  EXPECT_FALSE(creds->verify("alice", "Secret"));
  EXPECT_TRUE(creds->verify("bob", "builder"));
  EXPECT_TRUE(creds->verify("carol", "c4rol"));
  EXPECT_FALSE(creds->verify("mallory", "x"));
  EXPECT_FALSE(credential_set::load({}, "  ", std::chrono::seconds(1)));

  // check() runs the hash on a worker pool and caches successes only.
  struct test_host final : sluice::host {
    boost::asio::io_context io_;
    boost::asio::thread_pool pool_{1};
    fs::path p_;
    boost::asio::io_context& io() override { return io_; }
    boost::asio::thread_pool& workers() override { return pool_; }
    sluice::service_registry& services() override { std::abort(); }
    const fs::path& spool_dir() const override { return p_; }
    const fs::path& config_dir() const override { return p_; }
    std::size_t spill_threshold() const override { return 0; }
    bool durability_full() const override { return false; }
  } h;
  auto run = [&](std::string header) {
    auto fut = boost::asio::co_spawn(h.io_, creds->check(h, header), boost::asio::use_future);
    h.io_.restart();
    h.io_.run();
    return fut.get();
  };
  EXPECT_EQ(run("Basic YWxpY2U6c2VjcmV0"), "alice");  // alice:secret
  EXPECT_EQ(creds->cached(), 1u);
  EXPECT_EQ(run("Basic YWxpY2U6c2VjcmV0"), "alice");  // from the cache
  EXPECT_FALSE(run("Basic YWxpY2U6d3Jvbmc="));        // alice:wrong, even with alice cached
  EXPECT_FALSE(run(""));
  EXPECT_EQ(creds->cached(), 1u);
  h.pool_.join();
}

TEST(http_static, path_safety) {
  EXPECT_TRUE(safe_relative_path("index.html"));
  EXPECT_TRUE(safe_relative_path("dist/app.js"));
  EXPECT_FALSE(safe_relative_path("../etc/passwd"));
  EXPECT_FALSE(safe_relative_path("dist/../../x"));
  EXPECT_FALSE(safe_relative_path("./a"));
  EXPECT_FALSE(safe_relative_path(".git/config"));
  EXPECT_FALSE(safe_relative_path("a//b"));
  EXPECT_FALSE(safe_relative_path("/abs"));
  EXPECT_FALSE(safe_relative_path("a\\b"));
  EXPECT_FALSE(safe_relative_path(std::string("a\0b", 3)));
  EXPECT_FALSE(safe_relative_path(""));
}

TEST(http_static, lookup_types_and_symlinks) {
  sluice::test::temp_dir dir;
  fs::create_directories(dir.path() / "ui/dist");
  sluice::test::write_file(dir.path() / "ui/dist/app.js", std::string(4000, 'x'));
  sluice::test::write_file(dir.path() / "ui/logo.png", "\x89PNG....");
  sluice::test::write_file(dir.path() / "secret.txt", "outside");
  fs::create_symlink(dir.path() / "secret.txt", dir.path() / "ui/leak.txt");
  fs::create_symlink(dir.path() / "ui/dist/app.js", dir.path() / "ui/alias.js");
  static_files ui(dir.path() / "ui");
  ASSERT_TRUE(ui.available());
  auto js = ui.lookup("dist/app.js");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->content_type, "text/javascript; charset=utf-8");
  ASSERT_TRUE(js->gzip);
  EXPECT_TRUE(gunzip(*js->gzip) == js->data);
  EXPECT_EQ(js->etag.size(), 18u);
  auto png = ui.lookup("logo.png");
  ASSERT_TRUE(png);
  EXPECT_EQ(png->content_type, "image/png");
  EXPECT_FALSE(png->gzip);
  EXPECT_FALSE(ui.lookup("leak.txt"));  // symlink out of the root
  EXPECT_TRUE(ui.lookup("alias.js"));   // symlink inside the root
  EXPECT_FALSE(ui.lookup("dist"));      // directories are not served
  EXPECT_FALSE(ui.lookup("../secret.txt"));
  EXPECT_FALSE(ui.lookup("missing.css"));
  EXPECT_FALSE(static_files(dir.path() / "nope").available());
}

TEST(http_static, dates) {
  EXPECT_EQ(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_FALSE(parse_http_date("yesterday"));
}

TEST(http_router, patterns_and_methods) {
  router r;
  auto h = [](request_context& c) -> boost::asio::awaitable<response> {
    co_return ok_response(c.req);
  };
  r.add(bhttp::verb::get, "/api/v1/messages", h);
  r.add(bhttp::verb::delete_, "/api/v1/messages", h);
  r.add(bhttp::verb::get, "/api/v1/message/{ID}", h);
  r.add(bhttp::verb::get, "/api/v1/message/{ID}/part/{PartID}", h);
  r.add(bhttp::verb::get, "/view/{ID}.html", h);
  r.add(bhttp::verb::put, "/api/v1/tags/{Tag}", h);
  std::vector<std::string> p;
  bool known = false;
  EXPECT_TRUE(r.match(bhttp::verb::get, "/api/v1/messages", p, known));
  EXPECT_FALSE(r.match(bhttp::verb::post, "/api/v1/messages", p, known));
  EXPECT_TRUE(known);
  EXPECT_FALSE(r.match(bhttp::verb::get, "/api/v1/nothing", p, known));
  EXPECT_FALSE(known);
  ASSERT_TRUE(r.match(bhttp::verb::get, "/api/v1/message/abc/part/1.2", p, known));
  EXPECT_EQ(p, (std::vector<std::string>{"abc", "1.2"}));
  ASSERT_TRUE(r.match(bhttp::verb::get, "/view/latest.html", p, known));
  EXPECT_EQ(p, std::vector<std::string>{"latest"});
  EXPECT_FALSE(r.match(bhttp::verb::get, "/view/.html", p, known));  // empty capture
  ASSERT_TRUE(r.match(bhttp::verb::put, "/api/v1/tags/a%20b%2Fc", p, known));
  EXPECT_EQ(p, std::vector<std::string>{"a b/c"});  // captures are decoded
  EXPECT_FALSE(r.match(bhttp::verb::get, "/api/v1/message/", p, known));
}

TEST(http_router, helpers) {
  request req{bhttp::verb::get, "/", 11};
  auto nf = not_found(req);
  EXPECT_EQ(nf.result(), bhttp::status::not_found);
  EXPECT_EQ(nf.body(), "404 page not found\n");
  EXPECT_EQ(nf[bhttp::field::content_type], "text/plain; charset=utf-8");
  auto j = json_response(req, boost::json::object{{"ID", "x"}});
  EXPECT_EQ(j.body(), "{\"ID\":\"x\"}");
  EXPECT_EQ(j[bhttp::field::content_type], "application/json");
  EXPECT_EQ(ok_response(req).body(), "ok");
}

TEST(http_settings, defaults_and_errors) {
  auto parse = [](const std::string& yaml) {
    auto node = sluice::config_node::parse(yaml, "test.yaml");
    return load_settings(node, "/etc/sluice");
  };
  auto s = parse("{}");
  ASSERT_EQ(s.listen.size(), 1u);
  EXPECT_EQ(s.listen[0].host, "127.0.0.1");
  EXPECT_EQ(s.listen[0].port, 8025);
  EXPECT_EQ(s.webroot, "/");
  EXPECT_EQ(s.limits.max_body_bytes, 5u << 20);
  EXPECT_EQ(s.max_send_bytes, 50ull << 20);

  s = parse(R"({listen: ["[::1]:0", "unix:run/http.sock:666"], webroot: mail,
               api_cors: "Allowed.example, other.example:8080 https://third.example/x",
               limits: {max_body_size: 1KB, read_timeout: 5s}})");
  EXPECT_EQ(s.listen[0].host, "::1");
  EXPECT_TRUE(s.listen[1].unix_socket);
  EXPECT_EQ(s.listen[1].path, "/etc/sluice/run/http.sock");
  EXPECT_EQ(s.listen[1].mode, 0666u);
  EXPECT_EQ(s.webroot, "/mail/");
  EXPECT_EQ(s.api_cors,
            (std::vector<std::string>{"allowed.example", "other.example:8080", "third.example"}));
  EXPECT_TRUE(s.cors_configured);
  EXPECT_EQ(s.limits.max_body_bytes, 1024u);
  EXPECT_EQ(s.limits.read_timeout, std::chrono::seconds(5));
  EXPECT_EQ(parse("{api_cors: 'a.example, *'}").api_cors, std::vector<std::string>{"*"});

  EXPECT_THROW(parse("{webroot: 'mail box'}"), sluice::config_error);
  EXPECT_THROW(parse("{webroot: '/a/../b'}"), sluice::config_error);
  EXPECT_THROW(parse("{listen: ['nowhere']}"), sluice::config_error);
  EXPECT_THROW(parse("{tls: {cert: a.pem}}"), sluice::config_error);
  EXPECT_THROW(parse("{send_auth_accept_any: true, send_auth: 'a:b'}"), sluice::config_error);
  EXPECT_THROW(parse("{api_cors: 'http://*.example'}"), sluice::config_error);
  EXPECT_THROW(parse("{limits: {max_connections: 0}}"), sluice::config_error);
}

// ---- link check ----------------------------------------------------------------------

TEST(http_link_check, html_links_as_a_browser_parses_them) {
  const std::string html = R"html(<!doctype html><HTML><head>
<LINK REL="alternate stylesheet" HREF="https://a.example/alt.css">
<link rel=icon href="https://a.example/favicon.ico">
<style>a { background: url(https://a.example/in-style.png) } </style></head>
<body><!-- <a href="https://a.example/commented"> -->
<a class=x href=https://a.example/unquoted/path?x=1>u</a>
<a href = 'https://a.example/q?a=1&amp;b=&#50;&#x33;' title="<a href='https://no.example/'>">q</a>
<a href="HTTPS://A.example/Case">c</a> <a href="mailto:x@y.example">m</a> <a href="/relative">r</a>
<a href="javascript:alert(1)">j</a> <a href="  https://a.example/spaced  ">s</a>
<img alt="x" src="https://a.example/i.png"/> <img data-src="https://a.example/lazy.png">
<a href="https://a.example/first" href="https://a.example/second">dup</a>
<textarea><a href="https://a.example/in-textarea"></textarea>
<script>document.write('<a href="https://a.example/in-script">')</script>
<a href="https://a.example/unquoted/path?x=1">again</a>
</body></html>)html";
  EXPECT_EQ(extract_links(html, "", 100),
            (std::vector<std::string>{
                "https://a.example/alt.css", "https://a.example/unquoted/path?x=1",
                "https://a.example/q?a=1&b=23", "HTTPS://A.example/Case",
                "https://a.example/spaced", "https://a.example/i.png", "https://a.example/first"}));
}

TEST(http_link_check, text_links_and_their_edges) {
  const std::string text =
      "See http://a.example/x. And (https://a.example/y), or https://a.example/z?q=1&r=2;\r\n"
      "Wrapped: <https://a.example/very/\r\n  long/path> end. xhttp://no.example/ "
      "ftp://no.example/ http:// nothing, https://a.example/x again? https://a.example/it's";
  EXPECT_EQ(
      extract_links("", text, 100),
      (std::vector<std::string>{"http://a.example/x", "https://a.example/y",
                                "https://a.example/z?q=1&r=2", "https://a.example/very/long/path",
                                "https://a.example/x", "https://a.example/it's"}));
}

TEST(http_link_check, html_first_then_text_unique_and_bounded) {
  std::string html, text;
  for (int i = 0; i < 30; ++i)
    html += "<a href=\"https://h.example/" + std::to_string(i) + "\">x</a>";
  for (int i = 20; i < 60; ++i)
    text += " https://h.example/" + std::to_string(i);
  const auto links = extract_links(html, text, 50);
  ASSERT_EQ(links.size(), 50u);
  EXPECT_EQ(links.front(), "https://h.example/0");
  EXPECT_EQ(links[29], "https://h.example/29");
  EXPECT_EQ(links[30], "https://h.example/30");  // 20..29 were in the HTML already
  EXPECT_EQ(links.back(), "https://h.example/49");
}

TEST(http_link_check, malformed_html_ends_the_scan_without_reading_past_it) {
  EXPECT_EQ(extract_links("<a href=\"https://a.example/x", "", 10).size(), 0u);
  EXPECT_EQ(extract_links("<a href='https://a.example/ok'><a href=\"unterminated", "", 10),
            std::vector<std::string>{"https://a.example/ok"});
  EXPECT_EQ(extract_links("<!-- never closed <a href='https://a.example/x'>", "", 10).size(), 0u);
  EXPECT_EQ(extract_links("<script><a href='https://a.example/x'>", "", 10).size(), 0u);
  EXPECT_EQ(extract_links("<<<a href=https://a.example/x>>>", "", 10),
            std::vector<std::string>{"https://a.example/x"});
  EXPECT_EQ(extract_links("<a href=\"https://a.example/&#xFFFFFFFFFF;&#0;&bogus;\">", "", 10),
            std::vector<std::string>{"https://a.example/&#xFFFFFFFFFF;\xef\xbf\xbd&bogus;"});
  const std::string huge = "<a href=\"https://a.example/" + std::string(5000, 'x') + "\">";
  EXPECT_EQ(extract_links(huge, "", 10).size(), 0u);  // over 4096 bytes: not a link we check
}

TEST(http_link_check, cache_expires_and_stays_bounded) {
  link_cache c(std::chrono::milliseconds(50), 3);
  link_status s{"https://a.example/", 200, "OK"}, out;
  c.store("a", s);
  ASSERT_TRUE(c.find("a", out));
  EXPECT_EQ(out.status, 200);
  EXPECT_FALSE(c.find("b", out));
  c.store("b", s);
  c.store("c", s);
  c.store("d", s);  // full: cleared, then d
  EXPECT_FALSE(c.find("a", out));
  EXPECT_TRUE(c.find("d", out));
  std::this_thread::sleep_for(std::chrono::milliseconds(80));
  EXPECT_FALSE(c.find("d", out));
}
