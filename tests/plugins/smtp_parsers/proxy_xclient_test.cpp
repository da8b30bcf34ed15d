// proxy_xclient_test.cpp — unit tests for the PROXY protocol (v1/v2) and XCLIENT parsers of
// the smtp plugin (plugins/smtp/src/proxy_protocol.hpp, xclient.hpp). Pure functions, so
// these run single-threaded without sockets; failures are gtest assertions.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "proxy_protocol.hpp"
#include "xclient.hpp"

namespace {

using sluice::smtp::parse_proxy;
using sluice::smtp::parse_status;
using sluice::smtp::proxy_header;

struct result {
  parse_status status;
  proxy_header header;
  std::size_t consumed = 0;
  std::string error;
};

result parse(std::string_view buf) {
  result r;
  r.consumed = 9999;
  r.status = parse_proxy(buf, r.header, r.consumed, r.error);
  return r;
}

// ---- v1 ---------------------------------------------------------------------------------

TEST(ProxyV1, Tcp4) {
  const std::string line = "PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n";
  auto r = parse(line + "EHLO x\r\n");
  ASSERT_EQ(r.status, parse_status::complete) << r.error;
  EXPECT_EQ(r.consumed, line.size());
  EXPECT_FALSE(r.header.local);
  EXPECT_EQ(r.header.src_addr, "192.0.2.10");
  EXPECT_EQ(r.header.dst_addr, "198.51.100.1");
  EXPECT_EQ(r.header.src_port, 56324);
  EXPECT_EQ(r.header.dst_port, 25);
}

TEST(ProxyV1, Tcp6IsCanonicalised) {
  auto r = parse("PROXY TCP6 2001:DB8:0:0::1 ::ffff:192.0.2.1 65535 0\r\n");
  ASSERT_EQ(r.status, parse_status::complete) << r.error;
  EXPECT_EQ(r.header.src_addr, "2001:db8::1");
  EXPECT_EQ(r.header.dst_addr, "::ffff:192.0.2.1");
  EXPECT_EQ(r.header.src_port, 65535);
  EXPECT_EQ(r.header.dst_port, 0);
}

TEST(ProxyV1, Unknown) {
  for (std::string_view s : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2 x y\r\n"}) {
    auto r = parse(s);
    ASSERT_EQ(r.status, parse_status::complete) << s << ": " << r.error;
    EXPECT_TRUE(r.header.local);
    EXPECT_EQ(r.consumed, s.size());
  }
}

TEST(ProxyV1, MaximumLengthLineIsAccepted) {
  // The longest legal line: TCP6 with two full-length addresses and 5-digit ports = 104
  // bytes; UNKNOWN lines may pad up to 107.
  std::string line = "PROXY UNKNOWN ";
  line.append(107 - line.size() - 2, 'a');
  line += "\r\n";
  ASSERT_EQ(line.size(), 107u);
  EXPECT_EQ(parse(line).status, parse_status::complete);
  std::string longer = "PROXY UNKNOWN ";
  longer.append(108 - longer.size() - 2, 'a');
  longer += "\r\n";
  auto r = parse(longer);
  EXPECT_EQ(r.status, parse_status::invalid);
  EXPECT_NE(r.error.find("107"), std::string::npos) << r.error;
}

TEST(ProxyV1, IncrementalInputNeedsMoreThenCompletes) {
  const std::string line = "PROXY TCP4 10.0.0.1 10.0.0.2 1000 2000\r\n";
  for (std::size_t n = 0; n < line.size(); ++n) {
    auto r = parse(std::string_view(line).substr(0, n));
    EXPECT_EQ(r.status, parse_status::need_more) << "prefix " << n << ": " << r.error;
    EXPECT_EQ(r.consumed, 9999u) << "consumed written on need_more";
  }
  EXPECT_EQ(parse(line).status, parse_status::complete);
}

TEST(ProxyV1, NoTerminatorWithin107BytesIsInvalid) {
  std::string s = "PROXY UNKNOWN ";
  s.append(200, 'x');
  EXPECT_EQ(parse(s).status, parse_status::invalid);
}

TEST(ProxyV1, Invalid) {
  const std::vector<std::string> bad = {
      "PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\n",      // bare LF
      "PROXY TCP5 192.0.2.10 198.51.100.1 56324 25\r\n",    // protocol
      "PROXY TCP4 192.0.2.10 198.51.100.1 56324\r\n",       // field missing
      "PROXY TCP4 192.0.2.10 198.51.100.1 56324 25 9\r\n",  // extra field
      "PROXY TCP4 192.0.2.10  198.51.100.1 56324 25\r\n",   // double space
      "PROXY TCP4 192.0.2.300 198.51.100.1 56324 25\r\n",   // bad IPv4
      "PROXY TCP4 2001:db8::1 198.51.100.1 56324 25\r\n",   // IPv6 under TCP4
      "PROXY TCP6 192.0.2.1 2001:db8::1 56324 25\r\n",      // IPv4 under TCP6
      "PROXY TCP4 192.0.2.10 198.51.100.1 65536 25\r\n",    // port range
      "PROXY TCP4 192.0.2.10 198.51.100.1 -1 25\r\n",       // sign
      "PROXY TCP4 192.0.2.10 198.51.100.1 0080 25\r\n",     // leading zero
      "PROXY TCP4 192.0.2.10 198.51.100.1 80 25 \r\n",      // trailing space
      "PROXY TCP4 192.0.2.10 198.51.100.1 80\r25\r\n",      // stray CR
      "PROXY TCP4 192.0.2.10\t198.51.100.1 80 25\r\n",      // tab
      "PROXY tcp4 192.0.2.10 198.51.100.1 80 25\r\n",       // case matters
      "proxy TCP4 192.0.2.10 198.51.100.1 80 25\r\n",       // case matters
      "EHLO example.com\r\n",                               // no header at all
      "PROXYTCP4\r\n",
      "PROXY \r\n",
  };
  for (const auto& s : bad) {
    auto r = parse(s);
    EXPECT_EQ(r.status, parse_status::invalid) << s;
    EXPECT_FALSE(r.error.empty()) << s;
    EXPECT_EQ(r.consumed, 9999u);
  }
}

TEST(ProxyV1, StrayCrBeforeTheEndIsRejectedEarly) {
  EXPECT_EQ(parse("PROXY TCP4 1.2.3.4\r5").status, parse_status::invalid);
  EXPECT_EQ(parse("PROXY TCP4 1.2.3.4\r").status, parse_status::need_more);
}

// ---- v2 ---------------------------------------------------------------------------------

std::string v2(unsigned char ver_cmd, unsigned char fam, const std::vector<unsigned char>& body,
               int length_override = -1) {
  std::string s("\r\n\r\n\0\r\nQUIT\n", 12);
  s.push_back(static_cast<char>(ver_cmd));
  s.push_back(static_cast<char>(fam));
  const std::size_t len =
      length_override >= 0 ? static_cast<std::size_t>(length_override) : body.size();
  s.push_back(static_cast<char>((len >> 8) & 0xff));
  s.push_back(static_cast<char>(len & 0xff));
  s.append(body.begin(), body.end());
  return s;
}

std::vector<unsigned char> inet4_body() {
  return {192, 0, 2, 10, 198, 51, 100, 1, 0xDC, 0x04, 0x00, 0x19};  // ports 56324, 25
}

TEST(ProxyV2, Inet4) {
  const std::string h = v2(0x21, 0x11, inet4_body());
  auto r = parse(h + "EHLO x\r\n");
  ASSERT_EQ(r.status, parse_status::complete) << r.error;
  EXPECT_EQ(r.consumed, 28u);
  EXPECT_FALSE(r.header.local);
  EXPECT_EQ(r.header.src_addr, "192.0.2.10");
  EXPECT_EQ(r.header.dst_addr, "198.51.100.1");
  EXPECT_EQ(r.header.src_port, 56324);
  EXPECT_EQ(r.header.dst_port, 25);
}

TEST(ProxyV2, Inet6) {
  std::vector<unsigned char> body(36, 0);
  body[0] = 0x20;
  body[1] = 0x01;
  body[2] = 0x0d;
  body[3] = 0xb8;
  body[15] = 1;  // 2001:db8::1
  body[31] = 1;  // ::1
  body[32] = 0x01;
  body[33] = 0xbb;  // 443
  body[35] = 25;
  auto r = parse(v2(0x21, 0x21, body));
  ASSERT_EQ(r.status, parse_status::complete) << r.error;
  EXPECT_EQ(r.header.src_addr, "2001:db8::1");
  EXPECT_EQ(r.header.dst_addr, "::1");
  EXPECT_EQ(r.header.src_port, 443);
  EXPECT_EQ(r.header.dst_port, 25);
  EXPECT_EQ(r.consumed, 16u + 36u);
}

TEST(ProxyV2, Unix) {
  std::vector<unsigned char> body(216, 0);
  const std::string src = "/run/lb.sock";
  std::copy(src.begin(), src.end(), body.begin());
  const std::string dst = "abstract";
  std::copy(dst.begin(), dst.end(), body.begin() + 109);  // body[108] = 0: abstract name
  auto r = parse(v2(0x21, 0x31, body));
  ASSERT_EQ(r.status, parse_status::complete) << r.error;
  EXPECT_EQ(r.header.src_addr, "/run/lb.sock");
  EXPECT_EQ(r.header.dst_addr, "@abstract");
  EXPECT_EQ(r.header.src_port, 0);
}

TEST(ProxyV2, LocalIgnoresAddresses) {
  auto r = parse(v2(0x20, 0x00, {}));
  ASSERT_EQ(r.status, parse_status::complete) << r.error;
  EXPECT_TRUE(r.header.local);
  EXPECT_EQ(r.consumed, 16u);
  // LOCAL with a (garbage) address block: still local, block skipped.
  auto r2 = parse(v2(0x20, 0x11, {1, 2, 3}));
  ASSERT_EQ(r2.status, parse_status::complete) << r2.error;
  EXPECT_TRUE(r2.header.local);
  EXPECT_EQ(r2.consumed, 19u);
}

TEST(ProxyV2, ProxyWithUnspecFamilyIsLocal) {
  auto r = parse(v2(0x21, 0x00, {}));
  ASSERT_EQ(r.status, parse_status::complete) << r.error;
  EXPECT_TRUE(r.header.local);
}

TEST(ProxyV2, TlvsAreSkipped) {
  auto body = inet4_body();
  // PP2_TYPE_ALPN "smtp", PP2_TYPE_NOOP with 3 zero bytes, an empty TLV.
  const std::vector<unsigned char> tlvs = {0x01, 0x00, 0x04, 's', 'm', 't',  'p',  0x04,
                                           0x00, 0x03, 0,    0,   0,   0x05, 0x00, 0x00};
  body.insert(body.end(), tlvs.begin(), tlvs.end());
  auto r = parse(v2(0x21, 0x11, body) + "QUIT\r\n");
  ASSERT_EQ(r.status, parse_status::complete) << r.error;
  EXPECT_EQ(r.consumed, 16u + body.size());
  EXPECT_EQ(r.header.src_addr, "192.0.2.10");
}

TEST(ProxyV2, IncrementalInputNeedsMore) {
  const std::string h = v2(0x21, 0x11, inet4_body());
  for (std::size_t n = 0; n < h.size(); ++n) {
    auto r = parse(std::string_view(h).substr(0, n));
    EXPECT_EQ(r.status, parse_status::need_more) << "prefix " << n << ": " << r.error;
  }
}

TEST(ProxyV2, Invalid) {
  auto body = inet4_body();
  std::vector<std::pair<std::string, std::string>> bad = {
      {"version 1", v2(0x11, 0x11, body)},
      {"version 3", v2(0x31, 0x11, body)},
      {"command 2", v2(0x22, 0x11, body)},
      {"family 4", v2(0x21, 0x41, body)},
      {"transport 3", v2(0x21, 0x13, body)},
      {"datagram", v2(0x21, 0x12, body)},
      {"inet too short", v2(0x21, 0x11, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})},
      {"inet6 too short", v2(0x21, 0x21, std::vector<unsigned char>(35, 0))},
      {"unix too short", v2(0x21, 0x31, std::vector<unsigned char>(215, 0))},
  };
  auto truncated_tlv = body;
  truncated_tlv.insert(truncated_tlv.end(), {0x01, 0x00});
  bad.emplace_back("truncated TLV header", v2(0x21, 0x11, truncated_tlv));
  auto overrun_tlv = body;
  overrun_tlv.insert(overrun_tlv.end(), {0x01, 0x00, 0x05, 'a', 'b'});
  bad.emplace_back("TLV overrun", v2(0x21, 0x11, overrun_tlv));
  std::string wrong_sig = v2(0x21, 0x11, body);
  wrong_sig[11] = 'X';
  bad.emplace_back("signature", wrong_sig);
  bad.emplace_back("signature prefix", std::string("\r\n\r\nX", 5));
  for (const auto& [what, s] : bad) {
    auto r = parse(s);
    EXPECT_EQ(r.status, parse_status::invalid) << what;
    EXPECT_FALSE(r.error.empty()) << what;
  }
}

TEST(ProxyV2, DeclaredLengthBeyondBufferNeedsMore) {
  // 0xFFFF bytes announced, 12 present: wait (the caller bounds its buffer at 16+65535).
  auto r = parse(v2(0x21, 0x11, inet4_body(), 0xFFFF));
  EXPECT_EQ(r.status, parse_status::need_more);
}

// ---- XCLIENT ----------------------------------------------------------------------------

using sluice::smtp::parse_xclient;
using sluice::smtp::xclient_attrs;

TEST(Xclient, AllAttributes) {
  xclient_attrs a;
  std::string err;
  ASSERT_TRUE(parse_xclient(
      "NAME=spike.porcupine.org ADDR=168.100.189.2 PORT=4711 HELO=spike.porcupine.org "
      "PROTO=ESMTP LOGIN=wietse DESTADDR=10.0.0.1 DESTPORT=25",
      a, err))
      << err;
  EXPECT_EQ(a.name, "spike.porcupine.org");
  EXPECT_EQ(a.addr, "168.100.189.2");
  EXPECT_EQ(a.port, 4711);
  EXPECT_EQ(a.helo, "spike.porcupine.org");
  EXPECT_EQ(a.proto, "ESMTP");
  EXPECT_EQ(a.login, "wietse");
}

TEST(Xclient, NamesAreCaseInsensitiveAndOnlyGivenAttributesAreSet) {
  xclient_attrs a;
  a.helo = "stale";
  std::string err;
  ASSERT_TRUE(parse_xclient("addr=IPv6:2001:DB8::0:1  proto=smtp\tPort=0", a, err)) << err;
  EXPECT_EQ(a.addr, "2001:db8::1");
  EXPECT_EQ(a.proto, "SMTP");
  EXPECT_EQ(a.port, 0);
  EXPECT_FALSE(a.name);
  EXPECT_FALSE(a.helo);
  EXPECT_FALSE(a.login);
}

TEST(Xclient, XtextValuesAreDecoded) {
  xclient_attrs a;
  std::string err;
  ASSERT_TRUE(parse_xclient("LOGIN=user+40example.com+2Bplus HELO=[192.0.2.1]", a, err)) << err;
  EXPECT_EQ(a.login, "user@example.com+plus");
  EXPECT_EQ(a.helo, "[192.0.2.1]");
  ASSERT_TRUE(parse_xclient("LOGIN=J+c3+a9r+c3+b4me", a, err)) << err;  // lower-case hex, UTF-8
  EXPECT_EQ(a.login, "J\xc3\xa9r\xc3\xb4me");
}

TEST(Xclient, SpecialValues) {
  xclient_attrs a;
  std::string err;
  ASSERT_TRUE(parse_xclient(
      "NAME=[UNAVAILABLE] ADDR=[TEMPUNAVAIL] PORT=[UNAVAILABLE] HELO=[UNAVAILABLE] "
      "PROTO=[UNAVAILABLE] LOGIN=[UNAVAILABLE] DESTADDR=[UNAVAILABLE] DESTPORT=[TEMPUNAVAIL]",
      a, err))
      << err;
  EXPECT_EQ(a.name, "[UNAVAILABLE]");
  EXPECT_EQ(a.addr, "[TEMPUNAVAIL]");
  EXPECT_EQ(a.port, 0);
  EXPECT_EQ(a.helo, "[UNAVAILABLE]");
  EXPECT_EQ(a.proto, "[UNAVAILABLE]");
  EXPECT_EQ(a.login, "[UNAVAILABLE]");
  // Special values also arrive xtext-encoded.
  ASSERT_TRUE(parse_xclient("NAME=+5BUNAVAILABLE+5D", a, err)) << err;
  EXPECT_EQ(a.name, "[UNAVAILABLE]");
}

TEST(Xclient, LaterDuplicateWins) {
  xclient_attrs a;
  std::string err;
  ASSERT_TRUE(parse_xclient("ADDR=1.2.3.4 ADDR=5.6.7.8", a, err)) << err;
  EXPECT_EQ(a.addr, "5.6.7.8");
}

TEST(Xclient, ErrorsLeaveOutputUntouched) {
  const std::vector<std::string> bad = {
      "",
      "   ",
      "FOO=bar",
      "ADDR",
      "=1.2.3.4",
      "ADDR=",
      "ADDR=1.2.3",
      "ADDR=1.2.3.4.5",
      "ADDR=2001:db8::1",  // IPv6 without the IPV6: prefix
      "ADDR=IPV6:1.2.3.4",
      "PORT=65536",
      "PORT=-1",
      "PORT=12a",
      "DESTPORT=99999",
      "DESTADDR=nowhere",
      "PROTO=LMTP",
      "NAME=bad+20name",     // space after decoding
      "NAME=under+00score",  // NUL
      "HELO=a+0Db",          // CR
      "HELO=x+3Bdate",       // ';' would split the Received field
      "HELO=a+28b",          // '('
      "HELO=[999.1.1.1]",    // not an address
      "LOGIN=a+0Ab",         // LF
      "LOGIN=a+7Fb",         // DEL
      "NAME=ok+",            // truncated xtext
      "NAME=ok+4",
      "NAME=ok+GG",
      "NAME=a=b",  // raw '=' inside a value
      "NAME=x ADDR=1.2.3.4 BOGUS=1",
  };
  for (const auto& s : bad) {
    xclient_attrs a;
    a.name = "kept";
    std::string err;
    EXPECT_FALSE(parse_xclient(s, a, err)) << s;
    EXPECT_FALSE(err.empty()) << s;
    EXPECT_EQ(a.name, "kept") << s;
    EXPECT_FALSE(a.addr) << s;
  }
  xclient_attrs a;
  std::string err;
  EXPECT_FALSE(parse_xclient("PORT=70000", a, err));
  EXPECT_EQ(err, "bad PORT value");
  EXPECT_FALSE(parse_xclient("NAME=a+zz", a, err));
  EXPECT_EQ(err, "malformed xtext in a value");
}

TEST(Xclient, UnknownAttributeIsNamedSafely) {
  xclient_attrs a;
  std::string err;
  EXPECT_FALSE(parse_xclient("X\x01Y=1", a, err));
  EXPECT_EQ(err, "unknown attribute X?Y");
}

TEST(Xclient, LongValuesAreRejected) {
  xclient_attrs a;
  std::string err;
  const std::string label(63, 'h');  // a 255-octet domain
  EXPECT_TRUE(parse_xclient("HELO=" + label + "." + label + "." + label + "." + label, a, err))
      << err;
  EXPECT_FALSE(parse_xclient("HELO=" + std::string(256, 'h'), a, err));
  EXPECT_FALSE(parse_xclient("NAME=" + std::string(256, 'n'), a, err));
  EXPECT_FALSE(parse_xclient("LOGIN=" + std::string(256, 'l'), a, err));
}

TEST(Xtext, Decode) {
  std::string out;
  EXPECT_TRUE(sluice::smtp::decode_xtext("", out));
  EXPECT_EQ(out, "");
  EXPECT_TRUE(sluice::smtp::decode_xtext("a+2Bb+3D", out));
  EXPECT_EQ(out, "a+b=");
  EXPECT_FALSE(sluice::smtp::decode_xtext("a b", out));
  EXPECT_FALSE(sluice::smtp::decode_xtext("\x80", out));
  EXPECT_FALSE(sluice::smtp::decode_xtext("+", out));
  EXPECT_FALSE(sluice::smtp::decode_xtext("+Z0", out));
}

}  // namespace
