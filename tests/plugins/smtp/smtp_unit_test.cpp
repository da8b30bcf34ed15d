// tests/plugins/smtp/smtp_unit_test.cpp — the pure parts of the SMTP plugin: command-line
// parsing, the DATA decoder (dot-unstuffing, terminator, smuggling), header helpers, SASL
// and network lists.
#include <gtest/gtest.h>

#include <string>

#include "cidr.hpp"
#include "command.hpp"
#include "data_decoder.hpp"
#include "headers.hpp"
#include "sasl.hpp"

using namespace sluice::smtp;
using sluice::base64_decode;
using sluice::base64_encode;

namespace {

struct decoded {
  std::string bytes;
  std::size_t consumed = 0;
  bool done = false;
  bool too_long = false;
};

// Feeds `in` in pieces of `step` bytes (0 = all at once).
decoded decode(std::string_view in, std::size_t step = 0, std::size_t max_line = 0) {
  data_decoder d(max_line);
  decoded out;
  std::size_t pos = 0;
  while (pos < in.size() && !out.done) {
    std::size_t n = step == 0 ? in.size() - pos : std::min(step, in.size() - pos);
    auto r = d.feed(in.substr(pos, n), [&](std::string_view s) { out.bytes.append(s); });
    pos += r.consumed;
    out.done = r.done;
  }
  out.consumed = pos;
  out.too_long = d.line_too_long();
  EXPECT_EQ(d.decoded_size(), out.bytes.size());
  return out;
}

}  // namespace

TEST(SmtpCommand, VerbsAreCaseInsensitiveAndArgsTrimmed) {
  auto c = parse_command("mAiL FROM:<a@b.c>  ");
  EXPECT_EQ(c.verb, verb::mail);
  EXPECT_EQ(c.name, "mAiL");
  EXPECT_EQ(c.args, "FROM:<a@b.c>");
  EXPECT_EQ(parse_command("EHLO x").verb, verb::ehlo);
  EXPECT_EQ(parse_command("LHLO x").verb, verb::lhlo);
  EXPECT_EQ(parse_command("STARTTLS").verb, verb::starttls);
  EXPECT_EQ(parse_command("XCLIENT ADDR=1.2.3.4").verb, verb::xclient);
  EXPECT_EQ(parse_command("").verb, verb::unknown);
  EXPECT_EQ(parse_command("MAILX FROM:<a@b>").verb, verb::unknown);
  auto q = parse_command("QUIT");
  EXPECT_EQ(q.verb, verb::quit);
  EXPECT_TRUE(q.args.empty());
}

TEST(SmtpCommand, PathWithParameters) {
  path_args p;
  ASSERT_EQ(parse_path("FROM:<alice@example.com> SIZE=1000 BODY=8BITMIME SMTPUTF8", "FROM", p),
            path_status::ok);
  EXPECT_EQ(p.address, "alice@example.com");
  EXPECT_FALSE(p.null_path);
  ASSERT_EQ(p.param_count, 3u);
  EXPECT_EQ(p.params[0].keyword, "SIZE");
  EXPECT_EQ(p.params[0].value, "1000");
  EXPECT_TRUE(p.params[0].has_value);
  EXPECT_EQ(p.params[2].keyword, "SMTPUTF8");
  EXPECT_FALSE(p.params[2].has_value);
}

TEST(SmtpCommand, PathLenientForms) {
  path_args p;
  ASSERT_EQ(parse_path("from: <a@b.example>", "FROM", p), path_status::ok);
  EXPECT_EQ(p.address, "a@b.example");
  ASSERT_EQ(parse_path("TO:a@b.example", "TO", p), path_status::ok);
  EXPECT_EQ(p.address, "a@b.example");
  ASSERT_EQ(parse_path("FROM:<>", "FROM", p), path_status::ok);
  EXPECT_TRUE(p.null_path);
  ASSERT_EQ(parse_path("TO:<@relay.example,@other.example:user@dest.example>", "TO", p),
            path_status::ok);
  EXPECT_EQ(p.address, "user@dest.example");
  ASSERT_EQ(parse_path("TO:<\"john doe\"@example.com>", "TO", p), path_status::ok);
  EXPECT_EQ(p.address, "\"john doe\"@example.com");
  EXPECT_TRUE(valid_mailbox(p.address, false));
}

TEST(SmtpCommand, PathErrors) {
  path_args p;
  EXPECT_EQ(parse_path("TO:<a@b>", "FROM", p), path_status::missing_keyword);
  EXPECT_EQ(parse_path("FROM <a@b>", "FROM", p), path_status::missing_keyword);
  EXPECT_EQ(parse_path("FROM:<a@b", "FROM", p), path_status::bad_address);
  EXPECT_EQ(parse_path("FROM:<a@b>x", "FROM", p), path_status::bad_address);
  EXPECT_EQ(parse_path("FROM:<a\x01@b>", "FROM", p), path_status::bad_address);
  EXPECT_EQ(parse_path("FROM:<a@b> =x", "FROM", p), path_status::bad_params);
  EXPECT_EQ(parse_path("FROM:<a@b> SIZE=1=2", "FROM", p), path_status::bad_params);
  std::string many = "FROM:<a@b>";
  for (int i = 0; i < 17; ++i)
    many += " X" + std::to_string(i);
  EXPECT_EQ(parse_path(many, "FROM", p), path_status::too_many_params);
  // Invalid UTF-8 is refused even before SMTPUTF8 is considered.
  EXPECT_EQ(parse_path("FROM:<\xff@b.example>", "FROM", p), path_status::bad_address);
}

TEST(SmtpCommand, Utf8Addresses) {
  path_args p;
  ASSERT_EQ(parse_path("TO:<用户@例子.测试>", "TO", p), path_status::ok);
  EXPECT_TRUE(p.has_8bit);
  EXPECT_TRUE(valid_mailbox(p.address, false));
  EXPECT_TRUE(valid_utf8("grüße"));
  EXPECT_FALSE(valid_utf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(valid_utf8("\xe4\xbd"));          // truncated
  EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // > U+10FFFF
}

TEST(SmtpCommand, Mailbox) {
  EXPECT_TRUE(valid_mailbox("a.b+c@example.com", false));
  EXPECT_TRUE(valid_mailbox("a@[192.0.2.1]", false));
  EXPECT_TRUE(valid_mailbox("Postmaster", true));
  EXPECT_FALSE(valid_mailbox("postmaster", false));
  EXPECT_FALSE(valid_mailbox("a..b@example.com", false));
  EXPECT_FALSE(valid_mailbox("@example.com", false));
  EXPECT_FALSE(valid_mailbox("a@", false));
  EXPECT_FALSE(valid_mailbox("a@-x.com", false));
  EXPECT_FALSE(valid_mailbox("a b@example.com", false));
  EXPECT_FALSE(valid_mailbox("a@b@c", false));
}

TEST(SmtpCommand, HeloArgumentAndAddressLiterals) {
  for (const char* good : {"client.example", "my_laptop", "localhost", "h\xc3\xa9llo.test",
                           "[127.0.0.1]", "[IPv6:::1]", "[ipv6:2001:db8::1]"}) {
    EXPECT_TRUE(valid_helo_argument(good)) << good;
  }
  for (const char* bad :
       {"",         "two words",   "foo\x1b[31m", "a;b",       "a(b",       "foo_bar!", "a..b",
        "-a.com",   "[999.1.1.1]", "[1.2.3]",     "[foo]",     "[IPv6:zz]", "[IPv6:]",  "[:x]",
        "[tag-:x]", "[t:a b]",     "[x-tag:abc]", "[TO::}(}]", "h\xc3(llo", "\xff\xfe"}) {
    EXPECT_FALSE(valid_helo_argument(bad)) << bad;
  }
  EXPECT_FALSE(valid_helo_argument(std::string(256, 'a')));
  EXPECT_FALSE(valid_helo_argument(std::string("a\0b", 3)));
  EXPECT_FALSE(valid_mailbox("a@[300.0.0.1]", false));
  EXPECT_TRUE(valid_mailbox("a@[IPv6:2001:db8::1]", false));
}

TEST(SmtpCommand, Bdat) {
  bdat_args b;
  ASSERT_TRUE(parse_bdat("1234", b));
  EXPECT_EQ(b.size, 1234u);
  EXPECT_FALSE(b.last);
  ASSERT_TRUE(parse_bdat("0 last", b));
  EXPECT_EQ(b.size, 0u);
  EXPECT_TRUE(b.last);
  EXPECT_FALSE(parse_bdat("", b));
  EXPECT_FALSE(parse_bdat("x", b));
  EXPECT_FALSE(parse_bdat("12 FIRST", b));
  EXPECT_FALSE(parse_bdat("-1", b));
  EXPECT_FALSE(parse_bdat("99999999999999999999", b));
  EXPECT_FALSE(parse_bdat("12LAST", b));
}

TEST(SmtpDataDecoder, UnstuffsAndEndsAtCrlfDotCrlf) {
  auto d = decode("Subject: x\r\n\r\n..dot\r\n.\r\nMAIL FROM:<next>\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.bytes, "Subject: x\r\n\r\n.dot\r\n");
  EXPECT_EQ(d.consumed, std::string_view("Subject: x\r\n\r\n..dot\r\n.\r\n").size());
}

TEST(SmtpDataDecoder, EmptyMessage) {
  auto d = decode(".\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.bytes, "");
  EXPECT_EQ(d.consumed, 3u);
}

TEST(SmtpDataDecoder, SmugglingSequencesAreContent) {
  // None of these may end the data: only CRLF.CRLF does.
  for (std::string_view s : {"a\n.\nMAIL FROM:<x@y>\r\n", "a\r.\rMAIL\r\n", "a\n.\r\nMAIL\r\n",
                             "a\r\n.\nMAIL\r\n", "a\r\n.x\r\n", "a\r\n.\r.\r\n"}) {
    auto d = decode(s);
    EXPECT_FALSE(d.done) << s;
    EXPECT_EQ(d.consumed, s.size()) << s;
  }
  auto d = decode("a\n.\nb\r\n.\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.bytes, "a\n.\nb\r\n");
  // ".\r" + x at line start: the dot is stuffing and the CR is content.
  auto e = decode("a\r\n.\rb\r\n.\r\n");
  EXPECT_TRUE(e.done);
  EXPECT_EQ(e.bytes, "a\r\n\rb\r\n");
}

TEST(SmtpDataDecoder, SplitAnywhereGivesTheSameResult) {
  const std::string in = "H: v\r\n\r\n..a\r\n.b\r\nx\n.\ny\r\r\n.\r\ntrailing";
  auto whole = decode(in);
  ASSERT_TRUE(whole.done);
  for (std::size_t step = 1; step < 8; ++step) {
    auto part = decode(in, step);
    EXPECT_EQ(part.bytes, whole.bytes) << step;
    EXPECT_EQ(part.consumed, whole.consumed) << step;
    EXPECT_TRUE(part.done);
  }
}

TEST(SmtpDataDecoder, LineLength) {
  std::string ok(998, 'a');
  auto d = decode(ok + "\r\n.\r\n", 0, 1000);
  EXPECT_TRUE(d.done);
  EXPECT_FALSE(d.too_long);
  auto l = decode(ok + "a\r\n.\r\n", 0, 1000);
  EXPECT_TRUE(l.done);
  EXPECT_TRUE(l.too_long);
}

TEST(SmtpDataDecoder, ResetForTheNextMessage) {
  data_decoder d;
  std::string out;
  auto sink = [&](std::string_view s) { out.append(s); };
  auto r = d.feed("a\r\n.\r\n", sink);
  EXPECT_TRUE(r.done);
  d.reset();
  out.clear();
  r = d.feed("b\r\n.\r\n", sink);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(out, "b\r\n");
}

TEST(SmtpHeaders, ValuesAndAddresses) {
  std::string block =
      "From: A <a@x.example>\r\nTo: \"B, b\" <b@x.example>,\r\n c@x.example (C)\r\n"
      "cc: group: d@x.example, E <e@x.example>;\r\nSubject: s\r\n\r\n";
  auto to = header_values(block, "to");
  ASSERT_EQ(to.size(), 1u);
  auto addrs = header_address_list(to[0]);
  ASSERT_EQ(addrs.size(), 2u);
  EXPECT_EQ(addrs[0], "b@x.example");
  EXPECT_EQ(addrs[1], "c@x.example");
  auto cc = header_address_list(header_values(block, "CC").at(0));
  ASSERT_EQ(cc.size(), 2u);
  EXPECT_EQ(cc[0], "d@x.example");
  EXPECT_EQ(cc[1], "e@x.example");
  EXPECT_TRUE(header_values(block, "Bcc").empty());
  EXPECT_EQ(ascii_lower("A@X.Example"), "a@x.example");
}

TEST(SmtpHeaders, BareCr) {
  EXPECT_FALSE(has_bare_cr(""));
  EXPECT_FALSE(has_bare_cr("Subject: s\r\nTo: t\r\n\r\n"));
  EXPECT_FALSE(has_bare_cr("Subject: bare LF is not a CR\n\n"));
  EXPECT_TRUE(has_bare_cr("Subject: s\r\r\n\r\n"));
  EXPECT_TRUE(has_bare_cr("Subject: a\rb\r\n"));
  EXPECT_TRUE(has_bare_cr("Subject: s\r"));  // at the very end
}

TEST(SmtpHeaders, ReceivedForm) {
  received_info r;
  r.helo = "client.test";
  r.client_address = "192.0.2.1";
  r.hostname = "mx.test";
  r.protocol = "ESMTPS";
  r.tls_version = "TLSv1.3";
  r.tls_cipher = "TLS_AES_256_GCM_SHA384";
  r.id = "ID1";
  r.for_recipient = "bob@example.com";
  r.when = std::chrono::system_clock::from_time_t(0);
  EXPECT_EQ(received_value(r),
            "from client.test (unknown [192.0.2.1]) by mx.test (Sluice) with ESMTPS (TLSv1.3 with "
            "cipher TLS_AES_256_GCM_SHA384) id ID1 for <bob@example.com>; Thu, 01 Jan 1970 "
            "00:00:00 +0000");
  // An IPv6 client is an IPv6 address literal (RFC 5321 §4.1.3).
  r.client_address = "2001:db8::5";
  EXPECT_NE(received_value(r).find("(unknown [IPv6:2001:db8::5])"), std::string::npos);
}

TEST(SmtpSasl, Base64AndPlain) {
  EXPECT_EQ(base64_encode(std::string("\0alice\0secret", 13)), "AGFsaWNlAHNlY3JldA==");
  auto d = base64_decode("AGFsaWNlAHNlY3JldA==");
  ASSERT_TRUE(d);
  auto c = parse_plain(*d);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->authzid, "");
  EXPECT_EQ(c->authcid, "alice");
  EXPECT_EQ(c->password, "secret");
  EXPECT_FALSE(base64_decode("not base64!"));
  EXPECT_FALSE(parse_plain("no nul"));
  EXPECT_EQ(base64_encode("Username:"), "VXNlcm5hbWU6");
}

TEST(SmtpSasl, CramMd5Rfc2195Example) {
  // RFC 2195 §2: tim / tanstaaftanstaaf.
  std::string challenge = "<1896.697170952@postoffice.reston.mci.net>";
  EXPECT_EQ(hmac_md5_hex("tanstaaftanstaaf", challenge), "b913a602c7eda7a495b4e6e7334d3890");
  std::string user, digest;
  ASSERT_TRUE(parse_cram_md5("tim b913a602c7eda7a495b4e6e7334d3890", user, digest));
  EXPECT_EQ(user, "tim");
  EXPECT_FALSE(parse_cram_md5("tim short", user, digest));
  auto ch = cram_md5_challenge("mx.test");
  EXPECT_TRUE(ch.starts_with("<") && ch.ends_with("@mx.test>"));
}

TEST(SmtpNetworks, Matching) {
  network_list l;
  network n;
  ASSERT_TRUE(parse_network("10.0.0.0/8", n));
  l.add(n);
  ASSERT_TRUE(parse_network("::1", n));
  l.add(n);
  EXPECT_FALSE(parse_network("10.0.0.0/33", n));
  EXPECT_FALSE(parse_network("nonsense", n));
  auto a = [](const char* s) { return boost::asio::ip::make_address(s); };
  EXPECT_TRUE(l.contains(a("10.1.2.3"), false));
  EXPECT_TRUE(l.contains(a("::ffff:10.1.2.3"), false));
  EXPECT_FALSE(l.contains(a("11.1.2.3"), false));
  EXPECT_TRUE(l.contains(a("::1"), false));
  EXPECT_FALSE(l.contains(a("::2"), false));
  EXPECT_FALSE(l.contains(a("10.1.2.3"), true));
  ASSERT_TRUE(parse_network("unix", n));
  l.add(n);
  EXPECT_TRUE(l.contains(boost::asio::ip::address(), true));
}
