// http_host_unit_test.cpp — the request authority rules (RFC 9112 §3.2, RFC 9110 §7.2,
// RFC 3986 §3.2.2) and the WebSocket keep-alive settings.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "host_header.hpp"
#include "settings.hpp"

using namespace sluice::http;

TEST(http_host, valid_values) {
  for (const char* v : {"", "example.org", "EXAMPLE.org:8025", "127.0.0.1", "127.0.0.1:80", "[::1]",
                        "[::1]:8025", "[2001:db8::7]:1", "[v1.fe80::a+en1]", "a-b_c~d", "x%41y",
                        "host:", "sub!$&'()*+,;=delims", "localhost:65535"}) {
    EXPECT_TRUE(valid_host_value(v)) << v;
  }
  for (const char* v :
       {"exa mple.org", "a/b",    "a@b",     "x:y:z",    "host:99999", "host:123456", "host:8o",
        "[::1",         "[::1]x", "[::1]:a", "[nothex]", "[v.x]",      "[v1.]",       "%4",
        "%zz",          "a\\b",   "a?b",     "a#b",      "\"q\"",      "ünï.example"}) {
    EXPECT_FALSE(valid_host_value(v)) << v;
  }
}

TEST(http_host, required_single_and_valid) {
  // HTTP/1.1 without Host: 400; HTTP/1.0 without Host is fine.
  auto r = check_authority(11, {}, "/livez");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("missing Host"), std::string::npos) << r.error;
  r = check_authority(10, {}, "/livez");
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.host, "");
  // More than one Host field: 400 for any version.
  r = check_authority(11, {"a.example", "a.example"}, "/");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("more than one"), std::string::npos);
  EXPECT_FALSE(check_authority(10, {"a", "b"}, "/").ok);
  // An invalid value: 400.
  r = check_authority(11, {"bad host"}, "/");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("invalid Host"), std::string::npos);
  // An empty Host is valid (RFC 9110 §7.2).
  r = check_authority(11, {""}, "/");
  EXPECT_TRUE(r.ok);
  r = check_authority(11, {"mail.example:8025"}, "/api/v1/info");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.host, "mail.example:8025");
  EXPECT_FALSE(r.origin_form);
}

TEST(http_host, absolute_form_target_wins) {
  auto r = check_authority(11, {"other.example"}, "http://mail.example:8025/api/v1/info?x=1");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.host, "mail.example:8025");
  ASSERT_TRUE(r.origin_form);
  EXPECT_EQ(*r.origin_form, "/api/v1/info?x=1");
  r = check_authority(11, {""}, "HTTPS://[::1]:9");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.host, "[::1]:9");
  EXPECT_EQ(*r.origin_form, "/");
  r = check_authority(11, {"h"}, "http://h?q=1");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(*r.origin_form, "/?q=1");
  // The Host field still has to be there (HTTP/1.1), single and well-formed.
  EXPECT_FALSE(check_authority(11, {}, "http://mail.example/").ok);
  EXPECT_FALSE(check_authority(11, {"a b"}, "http://mail.example/").ok);
  // A target without a host, with userinfo, a bad authority or another scheme: 400.
  EXPECT_FALSE(check_authority(11, {"h"}, "http:///path").ok);
  EXPECT_FALSE(check_authority(11, {"h"}, "http://:80/path").ok);
  EXPECT_FALSE(check_authority(11, {"h"}, "http://user:pw@mail.example/").ok);
  EXPECT_FALSE(check_authority(11, {"h"}, "http://bad host/").ok);
  EXPECT_FALSE(check_authority(11, {"h"}, "ftp://mail.example/").ok);
  // "*" and origin-form pass with the Host rules.
  EXPECT_TRUE(check_authority(11, {"h"}, "*").ok);
  EXPECT_FALSE(check_authority(11, {}, "*").ok);
}

TEST(http_settings, websocket_keepalive_keys) {
  auto parse = [](const std::string& yaml) {
    auto node = sluice::config_node::parse(yaml, "test.yaml");
    return load_settings(node, "/etc/sluice");
  };
  auto s = parse("{}");
  EXPECT_EQ(s.limits.ws_ping_interval, std::chrono::seconds(54));
  EXPECT_EQ(s.limits.ws_pong_timeout, std::chrono::seconds(60));
  s = parse("{limits: {websocket_ping_interval: 500ms, websocket_pong_timeout: 2s}}");
  EXPECT_EQ(s.limits.ws_ping_interval, std::chrono::milliseconds(500));
  EXPECT_EQ(s.limits.ws_pong_timeout, std::chrono::seconds(2));
  EXPECT_THROW(parse("{limits: {websocket_ping_interval: 60s}}"), sluice::config_error);
  EXPECT_THROW(parse("{limits: {websocket_pong_timeout: 10s}}"), sluice::config_error);
  EXPECT_THROW(parse("{limits: {websocket_pong_timeout: 0s}}"), sluice::config_error);
  try {
    parse("{limits: {websocket_ping_interval: 5s,\n  websocket_pong_timeout: 5s}}");
    ADD_FAILURE() << "no error";
  } catch (const sluice::config_error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("test.yaml:"), std::string::npos) << what;
    EXPECT_NE(what.find("shorter"), std::string::npos) << what;
  }
}
