// webhook_unit_test.cpp — the webhook plugin's pure pieces: the signature scheme, template
// rendering and JSON escaping, the SSRF address classes (IPv4, IPv6, embedded IPv4),
// Retry-After, the token bucket, rates, settings errors and the MessageSummary shape.
#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include <boost/asio/ip/address.hpp>
#include <boost/json.hpp>

#include "fields.hpp"
#include "retry_after.hpp"
#include "settings.hpp"
#include "signature.hpp"
#include "sluice/address_class.hpp"
#include "sluice/http_client.hpp"
#include "sluice/parsed_message.hpp"
#include "template.hpp"
#include "token_bucket.hpp"

namespace json = boost::json;
using namespace sluice;
using namespace sluice::webhook;
using boost::asio::ip::make_address;

// ---- signature -------------------------------------------------------------------------

TEST(webhook_signature, hmac_matches_rfc4231_test_case_2) {
  EXPECT_EQ(hmac_sha256_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(webhook_signature, header_is_timestamp_and_hmac_over_timestamp_dot_body) {
  const std::string body = R"({"ID":"abc"})";
  const std::string h = sign("s3cret", 1700000000, body);
  EXPECT_EQ(h, "t=1700000000,v1=" + hmac_sha256_hex("s3cret", "1700000000." + body));
}

TEST(webhook_signature, verify_accepts_its_own_and_refuses_changes) {
  const std::string body = "{\"a\":1}";
  const std::string h = sign("k", 1000, body);
  EXPECT_EQ(verify("k", h, body, 1000), verify_result::ok);
  EXPECT_EQ(verify("k", h, body, 1299), verify_result::ok);
  EXPECT_EQ(verify("k", h, body, 1301), verify_result::stale);
  EXPECT_EQ(verify("k", h, body, 699), verify_result::stale);
  EXPECT_EQ(verify("other", h, body, 1000), verify_result::mismatch);
  EXPECT_EQ(verify("k", h, "{\"a\":2}", 1000), verify_result::mismatch);
  // The timestamp is signed too: moving it breaks the signature.
  std::string moved = h;
  moved.replace(2, 4, "1001");
  EXPECT_EQ(verify("k", moved, body, 1000), verify_result::mismatch);
  EXPECT_EQ(verify("k", "v1=abc", body, 1000), verify_result::malformed);
  EXPECT_EQ(verify("k", "t=1000", body, 1000), verify_result::malformed);
  EXPECT_EQ(verify("k", "t=x,v1=00", body, 1000), verify_result::malformed);
  EXPECT_EQ(verify("k", "", body, 1000), verify_result::malformed);
  // Rotation: any of several v1 entries may match.
  const std::string both = "t=1000,v1=" + std::string(64, '0') + "," + h.substr(h.find("v1="));
  EXPECT_EQ(verify("k", both, body, 1000), verify_result::ok);
}

TEST(webhook_signature, constant_time_equal_compares_bytes_and_lengths) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

// ---- templates -------------------------------------------------------------------------

namespace {
field_map sample() {
  field_map f;
  f["subject"] = "He said \"hi\"\\\n\t</script> \xC3\xA9\x01";
  f["size"] = 1234;
  f["to"] = json::array{"a@example.com", "b@example.com"};
  f["summary"] = json::object{{"ID", "x"}, {"Size", 5}};
  f["id"] = "ID1";
  f["rcpt_domain"] = "example.com";
  f["from"] = "evil/../x?y=1#@host:99";
  return f;
}
}  // namespace

TEST(webhook_json_template, escapes_every_character_a_message_supplies) {
  auto t = json_template::parse(R"({"text": "Subject: {{subject}}", "raw": "{{ subject }}"})");
  const std::string out = t.render(sample());
  // The output parses, and the values are exactly the field text.
  const json::value v = json::parse(out);
  EXPECT_EQ(v.at("text").as_string(), "Subject: He said \"hi\"\\\n\t</script> \xC3\xA9\x01");
  EXPECT_EQ(v.at("raw").as_string(), "He said \"hi\"\\\n\t</script> \xC3\xA9\x01");
  EXPECT_NE(out.find(R"(\"hi\")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"(\n\t)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"(\u0001)"), std::string::npos) << out;
}

TEST(webhook_json_template, a_whole_placeholder_keeps_the_fields_type) {
  auto t = json_template::parse(
      R"j({"size": "{{size}}", "to": "{{to}}", "msg": "{{summary}}", "n": ["{{id}}", 3, null],)j"
      R"j( "joined": "to {{to}} ({{size}} bytes)"})j");
  const json::value v = json::parse(t.render(sample()));
  EXPECT_EQ(v.at("size").as_int64(), 1234);
  EXPECT_EQ(v.at("to").as_array().size(), 2u);
  EXPECT_EQ(v.at("msg").at("ID").as_string(), "x");
  EXPECT_EQ(v.at("n").at(0).as_string(), "ID1");
  EXPECT_EQ(v.at("n").at(1).as_int64(), 3);
  EXPECT_EQ(v.at("joined").as_string(), "to a@example.com, b@example.com (1234 bytes)");
}

TEST(webhook_json_template, load_errors_say_what_is_wrong) {
  EXPECT_THROW(json_template::parse("{\"a\": "), std::invalid_argument);
  try {
    json_template::parse(R"({"a": "{{nosuch}}"})");
    FAIL() << "unknown field accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("nosuch"), std::string::npos) << e.what();
  }
  EXPECT_THROW(json_template::parse(R"({"a": "x {{subject"})"), std::invalid_argument);
  EXPECT_THROW(json_template::parse(R"({"a": "{{Subject}}"})"), std::invalid_argument);
}

TEST(webhook_url_template, substitutes_percent_encoded_so_fields_cannot_change_the_shape) {
  auto t = url_template::parse("https://hooks.example.net/in/{{rcpt_domain}}?from={{from}}");
  EXPECT_TRUE(t.templated());
  EXPECT_EQ(t.render(sample()),
            "https://hooks.example.net/in/example.com?from=evil%2F..%2Fx%3Fy%3D1%23%40host%3A99");
  auto fixed = url_template::parse("http://127.0.0.1:8080/hook?token=abc");
  EXPECT_FALSE(fixed.templated());
  EXPECT_EQ(fixed.render(sample()), "http://127.0.0.1:8080/hook?token=abc");
}

TEST(webhook_url_template, rejects_what_is_not_an_http_url) {
  EXPECT_THROW(url_template::parse("ftp://example.com/"), std::invalid_argument);
  EXPECT_THROW(url_template::parse("/relative"), std::invalid_argument);
  EXPECT_THROW(url_template::parse("https://example.com/#frag"), std::invalid_argument);
  EXPECT_THROW(url_template::parse("https://example.com/{{bogus}}"), std::invalid_argument);
  EXPECT_THROW(url_template::parse("{{subject}}://example.com/"), std::invalid_argument);
}

TEST(webhook_excerpt, one_line_valid_utf8_within_the_limit) {
  EXPECT_EQ(one_line_excerpt("a\r\nb\tc", 100), "a  b c");
  EXPECT_EQ(one_line_excerpt("abcdef", 3), "abc");
  EXPECT_EQ(one_line_excerpt("\xC3\xA9\xC3\xA9", 3), "\xC3\xA9");  // never half a character
  EXPECT_EQ(one_line_excerpt("\xF0\x9F\x98\x80", 4), "\xF0\x9F\x98\x80");
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(one_line_excerpt("\xC0\xAF", 100), fffd + fffd);             // overlong "/"
  EXPECT_EQ(one_line_excerpt("\xED\xA0\x80", 100), fffd + fffd + fffd);  // a surrogate
  EXPECT_EQ(one_line_excerpt("\xF4\x90\x80\x80", 100), fffd + fffd + fffd + fffd);
  EXPECT_EQ(one_line_excerpt("x\x80y", 100), "x" + fffd + "y");
  EXPECT_EQ(one_line_excerpt("\xE2\x82", 100), fffd + fffd);  // cut short
}

TEST(webhook_redact_url, drops_credentials_and_query) {
  EXPECT_EQ(redact_url("https://user:pw@hooks.example.net:8443/a/b?token=secret"),
            "https://hooks.example.net:8443/a/b");
  EXPECT_EQ(redact_url("http://[::1]?x=1"), "http://[::1]/");
  EXPECT_EQ(url_origin("https://user:pw@hooks.example.net:8443/services/T0/B0/s3cr3t?x=1"),
            "https://hooks.example.net:8443");
}

// ---- SSRF address classes ---------------------------------------------------------------

namespace {
address_class cls(const char* s) {
  return classify(make_address(s));
}
}  // namespace

TEST(webhook_address_class, ipv4_ranges) {
  EXPECT_EQ(cls("127.0.0.1"), address_class::loopback);
  EXPECT_EQ(cls("127.255.255.254"), address_class::loopback);
  EXPECT_EQ(cls("10.1.2.3"), address_class::private_);
  EXPECT_EQ(cls("172.16.0.1"), address_class::private_);
  EXPECT_EQ(cls("172.31.255.255"), address_class::private_);
  EXPECT_EQ(cls("172.32.0.1"), address_class::global);
  EXPECT_EQ(cls("172.15.255.255"), address_class::global);
  EXPECT_EQ(cls("192.168.1.1"), address_class::private_);
  EXPECT_EQ(cls("169.254.169.254"), address_class::link_local);  // cloud metadata
  EXPECT_EQ(cls("0.0.0.0"), address_class::unspecified);
  EXPECT_EQ(cls("0.1.2.3"), address_class::unspecified);
  EXPECT_EQ(cls("100.64.0.1"), address_class::shared);
  EXPECT_EQ(cls("100.128.0.1"), address_class::global);
  EXPECT_EQ(cls("224.0.0.1"), address_class::multicast);
  EXPECT_EQ(cls("255.255.255.255"), address_class::reserved);
  EXPECT_EQ(cls("240.0.0.1"), address_class::reserved);
  EXPECT_EQ(cls("192.0.2.10"), address_class::reserved);
  EXPECT_EQ(cls("198.18.0.1"), address_class::reserved);
  EXPECT_EQ(cls("192.0.0.8"), address_class::reserved);
  EXPECT_EQ(cls("8.8.8.8"), address_class::global);
  EXPECT_EQ(cls("1.1.1.1"), address_class::global);
  EXPECT_EQ(cls("93.184.216.34"), address_class::global);
}

TEST(webhook_address_class, ipv6_ranges) {
  EXPECT_EQ(cls("::1"), address_class::loopback);
  EXPECT_EQ(cls("::"), address_class::unspecified);
  EXPECT_EQ(cls("fe80::1"), address_class::link_local);
  EXPECT_EQ(cls("febf::1"), address_class::link_local);
  EXPECT_EQ(cls("fec0::1"), address_class::private_);
  EXPECT_EQ(cls("fc00::1"), address_class::unique_local);
  EXPECT_EQ(cls("fd12:3456::1"), address_class::unique_local);
  EXPECT_EQ(cls("ff02::1"), address_class::multicast);
  EXPECT_EQ(cls("2001:db8::1"), address_class::reserved);
  EXPECT_EQ(cls("2001::1"), address_class::reserved);
  EXPECT_EQ(cls("100::1"), address_class::reserved);
  EXPECT_EQ(cls("3fff::1"), address_class::global);
  EXPECT_EQ(cls("4000::1"), address_class::reserved);
  EXPECT_EQ(cls("2606:4700:4700::1111"), address_class::global);
  EXPECT_EQ(cls("2a00:1450:4001:82a::200e"), address_class::global);
}

TEST(webhook_address_class, ipv6_forms_embedding_ipv4_are_judged_by_the_ipv4_address) {
  EXPECT_EQ(cls("::ffff:127.0.0.1"), address_class::loopback);
  EXPECT_EQ(cls("::ffff:7f00:1"), address_class::loopback);
  EXPECT_EQ(cls("::ffff:10.0.0.1"), address_class::private_);
  EXPECT_EQ(cls("::ffff:169.254.169.254"), address_class::link_local);
  EXPECT_EQ(cls("::ffff:8.8.8.8"), address_class::global);
  EXPECT_EQ(cls("::127.0.0.1"), address_class::loopback);  // IPv4-compatible
  EXPECT_EQ(cls("::192.168.0.1"), address_class::private_);
  EXPECT_EQ(cls("64:ff9b::127.0.0.1"), address_class::loopback);  // NAT64
  EXPECT_EQ(cls("64:ff9b::8.8.8.8"), address_class::global);
  EXPECT_EQ(cls("2002:7f00:1::1"), address_class::loopback);  // 6to4 of 127.0.0.1
  EXPECT_EQ(cls("2002:c0a8:101::1"), address_class::private_);
  EXPECT_EQ(cls("2002:808:808::1"), address_class::global);
}

TEST(webhook_address_class, permitted_only_global_unless_allowed) {
  EXPECT_TRUE(permitted(make_address("8.8.8.8"), false));
  EXPECT_FALSE(permitted(make_address("127.0.0.1"), false));
  EXPECT_FALSE(permitted(make_address("::ffff:127.0.0.1"), false));
  EXPECT_TRUE(permitted(make_address("127.0.0.1"), true));
  EXPECT_TRUE(permitted(make_address("fd00::1"), true));
}

// ---- Retry-After -------------------------------------------------------------------------

TEST(webhook_retry_after, delay_seconds_and_the_three_date_forms) {
  using std::chrono::seconds;
  const std::int64_t now = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), now);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), now);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), now);
  EXPECT_EQ(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
  EXPECT_EQ(parse_http_date("Wed, 29 Feb 2028 12:00:00 GMT"), 1835438400);
  EXPECT_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"));
  EXPECT_FALSE(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"));
  EXPECT_FALSE(parse_http_date("yesterday"));

  const seconds max(3600);
  EXPECT_EQ(parse_retry_after("120", now, max), seconds(120));
  EXPECT_EQ(parse_retry_after(" 0 ", now, max), seconds(0));
  EXPECT_EQ(parse_retry_after("999999", now, max), max);
  EXPECT_EQ(parse_retry_after("99999999999999999999", now, max), max);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now, max), seconds(120));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now, max), seconds(0));  // past
  EXPECT_FALSE(parse_retry_after("-5", now, max));
  EXPECT_FALSE(parse_retry_after("1.5", now, max));
  EXPECT_FALSE(parse_retry_after("", now, max));
  EXPECT_FALSE(parse_retry_after("soon", now, max));
}

// ---- token bucket and rates --------------------------------------------------------------

TEST(webhook_token_bucket, delays_instead_of_refusing_and_serves_in_order) {
  using namespace std::chrono;
  const auto t0 = token_bucket::clock::time_point{} + hours(1);
  token_bucket b(2.0, 1.0, t0);  // 2 per second, burst 1
  EXPECT_EQ(b.reserve(t0), token_bucket::clock::duration::zero());
  EXPECT_EQ(duration_cast<milliseconds>(b.reserve(t0)), milliseconds(500));
  EXPECT_EQ(duration_cast<milliseconds>(b.reserve(t0)), milliseconds(1000));
  // A caller that will not wait gives its token back: the next waits as long as it did.
  b.cancel(t0);
  EXPECT_EQ(duration_cast<milliseconds>(b.reserve(t0)), milliseconds(1000));
  // After the debt is paid off and a second more, one token (the burst) is there.
  EXPECT_EQ(b.reserve(t0 + seconds(3)), token_bucket::clock::duration::zero());
  EXPECT_EQ(duration_cast<milliseconds>(b.reserve(t0 + seconds(3))), milliseconds(500));
}

TEST(webhook_token_bucket, burst_allows_that_many_at_once_and_never_more) {
  using namespace std::chrono;
  const auto t0 = token_bucket::clock::time_point{} + hours(1);
  token_bucket b(1.0, 3.0, t0);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(b.reserve(t0), token_bucket::clock::duration::zero()) << i;
  EXPECT_EQ(duration_cast<milliseconds>(b.reserve(t0)), milliseconds(1000));
  // A long idle time refills to the burst, not beyond.
  const auto later = t0 + hours(1);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(b.reserve(later), token_bucket::clock::duration::zero()) << i;
  EXPECT_GT(b.reserve(later), token_bucket::clock::duration::zero());
}

TEST(webhook_rate, parses_per_second_minute_and_hour) {
  EXPECT_DOUBLE_EQ(*parse_rate("10/s"), 10.0);
  EXPECT_DOUBLE_EQ(*parse_rate("120/m"), 2.0);
  EXPECT_DOUBLE_EQ(*parse_rate("60 / min"), 1.0);
  EXPECT_DOUBLE_EQ(*parse_rate("3600/h"), 1.0);
  EXPECT_DOUBLE_EQ(*parse_rate("0.5/s"), 0.5);
  EXPECT_FALSE(parse_rate("10"));
  EXPECT_FALSE(parse_rate("0/s"));
  EXPECT_FALSE(parse_rate("-1/s"));
  EXPECT_FALSE(parse_rate("10/d"));
  EXPECT_FALSE(parse_rate("x/s"));
}

// ---- settings ----------------------------------------------------------------------------

namespace {
std::string settings_error(const std::string& yaml) {
  try {
    auto cfg = sluice::config_node::parse(yaml, "w.yaml");
    (void)parse_settings(cfg, "/tmp");
    cfg.check_unknown_keys();
  } catch (const sluice::config_error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(webhook_settings, errors_name_the_place_and_the_problem) {
  EXPECT_EQ(settings_error("url: http://127.0.0.1/hook\n"), "");
  EXPECT_NE(settings_error("method: POST\n").find("url"), std::string::npos);
  EXPECT_NE(settings_error("url: ftp://x/\n").find("w.yaml:1:6"), std::string::npos);
  EXPECT_NE(settings_error("url: http://x/\ntemplate: '{\"a\": \"{{nope}}\"}'\n").find("w.yaml:2:"),
            std::string::npos);
  EXPECT_NE(settings_error("url: http://x/\nrate: fast\n").find("expected a rate"),
            std::string::npos);
  EXPECT_NE(settings_error("url: http://x/\nheaders: {Host: evil}\n").find("Host"),
            std::string::npos);
  EXPECT_NE(settings_error("url: http://x/\nheaders: {\"Bad Name\": v}\n").find("valid header"),
            std::string::npos);
  EXPECT_NE(settings_error("url: http://x/\nsignature_header: X-Sig\n").find("without a secret"),
            std::string::npos);
  EXPECT_NE(settings_error("url: http://x/\nca_file: ./ca.pem\n").find("http://"),
            std::string::npos);
  EXPECT_NE(settings_error("url: http://x/\nrate_burst: 3\n").find("without rate"),
            std::string::npos);
  EXPECT_NE(settings_error("url: http://x/\nbogus: 1\n").find("unknown key"), std::string::npos);
}

TEST(webhook_settings, an_empty_url_disables_and_empty_header_values_are_left_out) {
  auto cfg = sluice::config_node::parse("url: \"\"\nheaders: {Mailpit-Label: \"\", X-Kept: v}\n",
                                        "w.yaml");
  const settings s = parse_settings(cfg, "/tmp");
  EXPECT_TRUE(s.disabled);
  ASSERT_EQ(s.headers.size(), 1u);
  EXPECT_EQ(s.headers[0].first, "X-Kept");
  auto on = sluice::config_node::parse("url: http://127.0.0.1:1/\n", "w.yaml");
  EXPECT_FALSE(parse_settings(on, "/tmp").disabled);
}

TEST(webhook_settings, a_missing_ca_file_is_a_config_error) {
  auto cfg =
      sluice::config_node::parse("url: https://x/\nca_file: /nonexistent/ca.pem\n", "w.yaml");
  try {
    (void)parse_settings(cfg, "/tmp");
    FAIL() << "accepted";
  } catch (const sluice::config_error& e) {
    EXPECT_NE(std::string(e.what()).find("w.yaml:2:"), std::string::npos) << e.what();
  }
}

// ---- the MessageSummary ------------------------------------------------------------------

TEST(webhook_summary, has_exactly_mailpits_keys_and_types) {
  sluice::message m;
  m.id = "2ZxTjFEt9Hyb9ZBj3pJpQd";
  m.envelope.mail_from = "bounce@example.com";
  m.envelope.recipients.push_back({"bob@example.com", {}});
  m.envelope.auth_user = "app";
  m.envelope.received_at =
      std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123));
  m.raw = sluice::message_body::from_string("Subject: hi\r\n\r\nbody\r\n");
  sluice::parsed_message v;
  v.from = sluice::mail_address{"Alice", "alice@example.com"};
  v.to = {{"Bob", "bob@example.com"}};
  v.subject = "hi";
  v.message_id = "m1@example.com";
  v.snippet = "body";
  m.attributes["mime"] = sluice::to_json(v);
  const json::object s = message_summary(m);
  std::set<std::string> keys;
  for (const auto& kv : s)
    keys.insert(std::string(kv.key()));
  EXPECT_EQ(keys, (std::set<std::string>{"ID", "MessageID", "Read", "From", "To", "Cc", "Bcc",
                                         "ReplyTo", "Subject", "Created", "Username", "Tags",
                                         "Size", "Attachments", "Snippet"}));
  EXPECT_EQ(s.at("ID").as_string(), m.id);
  EXPECT_EQ(s.at("MessageID").as_string(), "m1@example.com");
  EXPECT_FALSE(s.at("Read").as_bool());
  EXPECT_EQ(s.at("From").at("Name").as_string(), "Alice");
  EXPECT_EQ(s.at("To").at(0).at("Address").as_string(), "bob@example.com");
  EXPECT_TRUE(s.at("Cc").as_array().empty());  // [] for webhooks, as Mailpit sends them
  EXPECT_TRUE(s.at("Tags").is_array());
  EXPECT_EQ(s.at("Created").as_string(), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(s.at("Username").as_string(), "app");
  EXPECT_EQ(s.at("Size").to_number<std::int64_t>(), 21);
  EXPECT_EQ(s.at("Attachments").to_number<std::int64_t>(), 0);

  const field_map f = message_fields(m, s);
  EXPECT_EQ(f.at("from").as_string(), "alice@example.com");
  EXPECT_EQ(f.at("from_domain").as_string(), "example.com");
  EXPECT_EQ(f.at("rcpt_domain").as_string(), "example.com");
  EXPECT_EQ(f.at("mail_from").as_string(), "bounce@example.com");
  for (const auto& n : field_names())
    EXPECT_TRUE(f.contains(n)) << n;
  EXPECT_EQ(f.size(), field_names().size());
}

TEST(webhook_summary, without_a_parsed_view_the_envelope_stands_in) {
  sluice::message m;
  m.id = "x";
  m.envelope.mail_from = "a@example.com";
  m.envelope.recipients.push_back({"b@example.org", {}});
  m.raw = sluice::message_body::from_string("\r\n");
  const json::object s = message_summary(m);
  EXPECT_EQ(s.at("From").at("Address").as_string(), "a@example.com");
  EXPECT_EQ(s.at("To").at(0).at("Address").as_string(), "b@example.org");
}
