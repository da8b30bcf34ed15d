// tests/plugins/pop3/pop3_unit_test.cpp — unit tests of the pop3 plugin's pure parts:
// command splitting, message numbers, PLAIN, the APOP digest, line-end
// normalisation, dot-stuffing and TOP, UIDs, and the settings parser.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol.hpp"
#include "settings.hpp"
#include "sluice/config.hpp"

using namespace sluice::pop3;

namespace {

// Everything a multiline_encoder produces, with small budgets to exercise the pieces.
std::string encode_all(std::string_view raw, std::size_t budget) {
  multiline_encoder enc(raw);
  std::string out;
  for (int guard = 0; guard < 1'000'000 && enc.next(out, budget); ++guard) {
  }
  return out;
}

// Undoes dot-stuffing and strips the terminator, as a client does.
std::string unstuff(std::string_view wire) {
  std::string out;
  std::size_t pos = 0;
  while (pos < wire.size()) {
    std::size_t nl = wire.find("\r\n", pos);
    std::string_view line = wire.substr(pos, nl - pos);
    pos = nl + 2;
    if (line == ".") break;
    if (!line.empty() && line[0] == '.') line.remove_prefix(1);
    out += line;
    out += "\r\n";
  }
  return out;
}

}  // namespace

TEST(Pop3Protocol, SplitsCommandsCaseInsensitively) {
  auto c = split_command("list 2");
  EXPECT_EQ(c.keyword, "LIST");
  EXPECT_EQ(c.args, "2");
  c = split_command("PASS  pass word ");
  EXPECT_EQ(c.keyword, "PASS");
  EXPECT_EQ(c.args, " pass word ");  // kept as sent: passwords may hold spaces
  c = split_command("QUIT");
  EXPECT_EQ(c.keyword, "QUIT");
  EXPECT_TRUE(c.args.empty());
}

TEST(Pop3Protocol, SplitsArguments) {
  std::string_view w[2];
  std::size_t n = 0;
  ASSERT_TRUE(split_args("1  10", w, 2, n));
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(w[0], "1");
  EXPECT_EQ(w[1], "10");
  EXPECT_FALSE(split_args("1 2 3", w, 2, n));
  ASSERT_TRUE(split_args("   ", w, 2, n));
  EXPECT_EQ(n, 0u);
}

TEST(Pop3Protocol, ParsesMessageNumbers) {
  EXPECT_EQ(parse_number("1"), 1u);
  EXPECT_EQ(parse_number("0"), 0u);
  EXPECT_EQ(parse_number("4294967295"), 4294967295u);
  EXPECT_FALSE(parse_number(""));
  EXPECT_FALSE(parse_number("-1"));
  EXPECT_FALSE(parse_number("+1"));
  EXPECT_FALSE(parse_number("1a"));
  EXPECT_FALSE(parse_number("12345678901"));  // more than 10 digits
}

TEST(Pop3Protocol, ParsesPlain) {
  auto c = parse_plain(std::string("\0alice\0secret", 13));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->authzid, "");
  EXPECT_EQ(c->authcid, "alice");
  EXPECT_EQ(c->password, "secret");
  c = parse_plain(std::string("admin\0alice\0pw", 14));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->authzid, "admin");
  EXPECT_FALSE(parse_plain("alice"));
  EXPECT_FALSE(parse_plain(std::string("\0\0pw", 4)));                         // empty authcid
  EXPECT_FALSE(parse_plain(std::string("\0a\0b\0c", 6)));                      // three NULs
  EXPECT_FALSE(parse_plain(std::string("\0a\0", 3) + std::string(256, 'p')));  // too long
}

TEST(Pop3Protocol, ApopDigestMatchesRfc1939Example) {
  // RFC 1939 §7, APOP example.
  EXPECT_EQ(apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb");
  std::string ts = apop_timestamp("pop.test");
  EXPECT_EQ(ts.front(), '<');
  EXPECT_EQ(ts.back(), '>');
  EXPECT_NE(ts.find("@pop.test>"), std::string::npos);
  EXPECT_NE(apop_timestamp("pop.test"), ts);  // fresh per call
  EXPECT_TRUE(is_md5_hex("c4c9334bac560ecc979e58001b3e22fb"));
  EXPECT_TRUE(is_md5_hex("C4C9334BAC560ECC979E58001B3E22FB"));
  EXPECT_FALSE(is_md5_hex("c4c9334bac560ecc979e58001b3e22f"));
  EXPECT_FALSE(is_md5_hex("g4c9334bac560ecc979e58001b3e22fb"));
}

TEST(Pop3Protocol, NormalizedSizeIsWhatRetrSendsBeforeStuffing) {
  const std::string cases[] = {
      "",
      "Subject: x\r\n\r\nbody\r\n",
      "Subject: x\n\nbare LF\n",
      "mixed\r\nbare\nend without newline",
      ".leading dot\r\n..two\r\n.\r\nend\r\n",
      "lone CR at the end\r",
      "CR in\rthe middle\r\n",
      "\n\n\n",
      std::string(200'000, 'x') + "\n.\n" + std::string(70'000, '.'),
  };
  for (const auto& raw : cases) {
    for (std::size_t budget : {std::size_t{1}, std::size_t{7}, std::size_t{65536}}) {
      std::string wire = encode_all(raw, budget);
      ASSERT_GE(wire.size(), 3u);
      EXPECT_EQ(wire.substr(wire.size() - 3), ".\r\n");
      std::string body = unstuff(wire);
      EXPECT_EQ(body.size(), normalized_size(raw)) << "budget " << budget << " raw " << raw.size();
      // No line of the wire form starts with a lone "." except the terminator.
      if (wire.size() > 3) {
        EXPECT_FALSE(wire.starts_with(".\r\n"));
        EXPECT_EQ(wire.find("\r\n.\r\n"), wire.size() - 5);
      }
    }
  }
  EXPECT_EQ(normalized_size("a\nb\n"), 6u);
  EXPECT_EQ(normalized_size("a\r\nb"), 6u);
  EXPECT_EQ(encode_all(".x\r\n", 64), "..x\r\n.\r\n");
  EXPECT_EQ(encode_all("a\nb", 64), "a\r\nb\r\n.\r\n");
  EXPECT_EQ(encode_all("", 64), ".\r\n");
}

TEST(Pop3Protocol, StuffsADotAfterALongLineSplitAcrossPieces) {
  std::string raw = std::string(10, 'a') + "\r\n.b\r\n";
  EXPECT_EQ(encode_all(raw, 3), std::string(10, 'a') + "\r\n..b\r\n.\r\n");
  // A '.' in the middle of a line that was cut into pieces is not stuffed.
  EXPECT_EQ(encode_all("aaa.bbb\r\n", 3), "aaa.bbb\r\n.\r\n");
}

TEST(Pop3Protocol, TopSendsHeaderBlankLineAndNBodyLines) {
  std::string raw = "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\nl3\r\n";
  EXPECT_EQ(top_of(raw, 0), "A: 1\r\nB: 2\r\n\r\n");
  EXPECT_EQ(top_of(raw, 2), "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n");
  EXPECT_EQ(top_of(raw, 100), "A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n");
  EXPECT_EQ(top_of("A: 1\nB: 2", 5), "A: 1\r\nB: 2\r\n");  // no body at all
}

TEST(Pop3Protocol, UidsArePrintableBoundedAndStable) {
  EXPECT_EQ(uid_for("0357JyuFdkDtJP99w2ddyA"), "0357JyuFdkDtJP99w2ddyA");
  std::string mapped = uid_for("has space");
  EXPECT_EQ(mapped.size(), 65u);
  EXPECT_EQ(mapped[0], 'x');
  EXPECT_EQ(mapped, uid_for("has space"));
  EXPECT_NE(mapped, uid_for("has  space"));
  EXPECT_EQ(uid_for(std::string(65, 'a')).size(), 65u);
  EXPECT_NE(uid_for(std::string(65, 'a')), std::string(65, 'a'));
  EXPECT_EQ(uid_for(std::string(64, 'a')), std::string(64, 'a'));
  EXPECT_EQ(uid_for("").size(), 65u);
}

// ---------------------------------------------------------------------------- settings

namespace {
settings load(const std::string& yaml) {
  auto node = sluice::config_node::parse(yaml, "pop3.yaml");
  auto s = load_settings(node, "/cfg");
  node.check_unknown_keys();
  return s;
}
std::string load_error(const std::string& yaml) {
  try {
    load(yaml);
  } catch (const sluice::config_error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Pop3Settings, Defaults) {
  settings s = load("users: \"a:b\"\nallow_insecure: true\n");
  ASSERT_EQ(s.listen.size(), 1u);
  EXPECT_EQ(s.listen[0].host, "127.0.0.1");
  EXPECT_EQ(s.listen[0].port, 1110);
  EXPECT_EQ(s.mailbox, "default");
  EXPECT_EQ(s.idle_timeout, std::chrono::minutes(10));  // RFC 1939 §3: at least 10 minutes
  EXPECT_EQ(s.max_messages, 0u);
  EXPECT_EQ(s.max_line_length, 1024u);
  EXPECT_EQ(s.max_auth_failures, 3u);
  EXPECT_TRUE(s.apop);
  EXPECT_EQ(s.tls, tls_mode::off);
}

TEST(Pop3Settings, ParsesEverything) {
  settings s = load(
      "listen: [\"[::1]:110\", \"unix:pop.sock:600\"]\n"
      "hostname: pop.test\n"
      "service: other\n"
      "mailbox: \"user-{user}\"\n"
      "mailboxes: {alice: shared}\n"
      "htpasswd: users.htpasswd\n"
      "apop: false\n"
      "tls: {mode: starttls, cert: c.pem, key: k.pem}\n"
      "max_messages: 100\n"
      "max_line_length: 512\n"
      "max_auth_failures: 5\n"
      "max_errors: 7\n"
      "idle_timeout: 15m\n"
      "session_timeout: 1h\n"
      "max_connections: 9\n"
      "transcript: true\n");
  EXPECT_EQ(s.listen[0].host, "::1");
  EXPECT_TRUE(s.listen[1].unix_socket);
  EXPECT_EQ(s.listen[1].path, "/cfg/pop.sock");
  EXPECT_EQ(s.listen[1].mode, 0600u);
  EXPECT_EQ(s.service, "other");
  EXPECT_EQ(s.mailbox, "user-{user}");
  EXPECT_EQ(s.mailboxes.at("alice"), "shared");
  EXPECT_EQ(s.htpasswd, "/cfg/users.htpasswd");
  EXPECT_EQ(s.tls, tls_mode::starttls);
  EXPECT_EQ(s.tls_cert, "/cfg/c.pem");
  EXPECT_EQ(s.max_messages, 100u);
  EXPECT_EQ(s.max_line_length, 512u);
  EXPECT_EQ(s.max_auth_failures, 5u);
  EXPECT_EQ(s.max_errors, 7u);
  EXPECT_EQ(s.idle_timeout, std::chrono::minutes(15));
  EXPECT_EQ(s.max_connections, 9u);
  EXPECT_TRUE(s.transcript);
}

TEST(Pop3Settings, RejectsBadValues) {
  EXPECT_NE(load_error("allow_insecure: true\n").find("POP3 needs users"), std::string::npos);
  EXPECT_NE(load_error("users: \"a:b\"\nallow_insecure: true\nmax_line_length: 100\n")
                .find("max_line_length"),
            std::string::npos);
  EXPECT_NE(load_error("users: \"a:b\"\nallow_insecure: true\ntls: {mode: starttls}\n")
                .find("needs tls.cert"),
            std::string::npos);
  EXPECT_NE(load_error("users: \"a:b\"\nallow_insecure: true\ntls: {mode: maybe}\n")
                .find("expected off, starttls or implicit"),
            std::string::npos);
  EXPECT_NE(load_error("users: \"a:b\"\napop: false\n").find("no way to log in"),
            std::string::npos);
  EXPECT_NE(load_error("users: \"a:b\"\nallow_insecure: true\nlisten: \"nowhere\"\n")
                .find("expected host:port"),
            std::string::npos);
  EXPECT_NE(load_error("users: \"a:b\"\nallow_insecure: true\nmailbox: \"\"\n").find("mailbox"),
            std::string::npos);
  EXPECT_NE(load_error("users: \"a:b\"\nallow_insecure: true\nhostname: \"a b\"\n")
                .find("not a host name"),
            std::string::npos);
  EXPECT_NE(load_error("users: \"a:b\"\nallow_insecure: true\nbogus: 1\n").find("unknown key"),
            std::string::npos);
}
