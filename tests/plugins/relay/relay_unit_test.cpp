// Unit tests of the relay plugin's protocol pieces: reply parsing (RFC 5321 §4.2),
// EHLO keywords, dot-stuffing (§4.5.2), SASL client messages (RFC 4616, RFC 2195 vectors,
// XOAUTH2) and the choice of mechanism, recipient patterns.
#include <gtest/gtest.h>

#include "downgrade.hpp"
#include "protocol.hpp"

namespace sluice::relay {
namespace {

smtp_reply parse_one(std::string_view bytes) {
  reply_parser p;
  p.feed(bytes);
  smtp_reply r;
  std::string err;
  EXPECT_EQ(p.next(r, err), reply_parser::status::complete) << err;
  return r;
}

TEST(RelayReplyParser, SingleLineWithEnhancedCode) {
  auto r = parse_one("550 5.1.1 <nobody@example.com>: Recipient address rejected\r\n");
  EXPECT_EQ(r.code, 550);
  EXPECT_EQ(r.enhanced, "5.1.1");
  ASSERT_EQ(r.lines.size(), 1u);
  EXPECT_EQ(r.text(), "5.1.1 <nobody@example.com>: Recipient address rejected");
  EXPECT_TRUE(r.permanent());
}

TEST(RelayReplyParser, MultilineAcrossChunks) {
  reply_parser p;
  smtp_reply r;
  std::string err;
  p.feed("250-mx.example.com Hello\r\n250-PIPE");
  EXPECT_EQ(p.next(r, err), reply_parser::status::incomplete);
  p.feed("LINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n220 next");
  ASSERT_EQ(p.next(r, err), reply_parser::status::complete);
  EXPECT_EQ(r.code, 250);
  ASSERT_EQ(r.lines.size(), 4u);
  EXPECT_EQ(r.lines[1], "PIPELINING");
  EXPECT_EQ(p.next(r, err), reply_parser::status::incomplete);  // "220 next" has no CRLF yet
}

TEST(RelayReplyParser, BareCodeAndBareLf) {
  auto r = parse_one("354\n");
  EXPECT_EQ(r.code, 354);
  EXPECT_TRUE(r.enhanced.empty());
}

TEST(RelayReplyParser, RejectsGarbageAndMixedCodes) {
  for (std::string_view bad : {"hello\r\n", "25x ok\r\n", "250x\r\n", "650 no\r\n"}) {
    reply_parser p;
    p.feed(bad);
    smtp_reply r;
    std::string err;
    EXPECT_EQ(p.next(r, err), reply_parser::status::error) << bad;
    EXPECT_FALSE(err.empty());
  }
  reply_parser p;
  p.feed("250-a\r\n251 b\r\n");
  smtp_reply r;
  std::string err;
  EXPECT_EQ(p.next(r, err), reply_parser::status::error);
}

TEST(RelayReplyParser, LineLengthIsBounded) {
  reply_parser p(64, 4);
  p.feed(std::string(100, 'x'));
  smtp_reply r;
  std::string err;
  EXPECT_EQ(p.next(r, err), reply_parser::status::error);
  reply_parser q(64, 2);
  q.feed("250-a\r\n250-b\r\n250-c\r\n250 d\r\n");
  EXPECT_EQ(q.next(r, err), reply_parser::status::error);
}

TEST(RelayReplyParser, EnhancedCodeMustMatchClass) {
  EXPECT_EQ(parse_one("451 5.1.1 odd\r\n").enhanced, "");
  EXPECT_EQ(parse_one("250 2.0.0 Ok: queued\r\n").enhanced, "2.0.0");
  EXPECT_EQ(enhanced_code_of("4.7.11 x"), "4.7.11");
  EXPECT_EQ(enhanced_code_of("4.7.1x"), "");
  EXPECT_EQ(enhanced_code_of("2.0.0"), "2.0.0");
}

TEST(RelayEhlo, Keywords) {
  auto r = parse_one(
      "250-mx Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH PLAIN login\r\n"
      "250-AUTH=CRAM-MD5\r\n250-STARTTLS\r\n250-smtputf8\r\n250 8BITMIME\r\n");
  auto c = parse_ehlo(r);
  EXPECT_TRUE(c.has("PIPELINING"));
  EXPECT_TRUE(c.has("STARTTLS"));
  EXPECT_TRUE(c.has("SMTPUTF8"));
  EXPECT_TRUE(c.has("8BITMIME"));
  EXPECT_FALSE(c.has("CHUNKING"));
  EXPECT_EQ(c.size_limit(), 10240000u);
  EXPECT_EQ(c.auth_mechanisms(), (std::vector<std::string>{"PLAIN", "LOGIN", "CRAM-MD5"}));
  EXPECT_EQ(parse_ehlo(parse_one("250-x\r\n250 SIZE\r\n")).size_limit(), 0u);
}

std::string stuff(std::vector<std::string_view> chunks) {
  dot_stuffer d;
  std::string out;
  for (auto c : chunks)
    d.encode(c, out);
  return out + d.finish();
}

TEST(RelayDotStuffing, LeadingDotsDoubledAcrossChunks) {
  EXPECT_EQ(stuff({".hidden\r\nok\r\n..two\r\n"}), "..hidden\r\nok\r\n...two\r\n.\r\n");
  EXPECT_EQ(stuff({"a\r", "\n.", "b\r\n"}), "a\r\n..b\r\n.\r\n");
  EXPECT_EQ(stuff({"a\r\n", ".\r\n"}), "a\r\n..\r\n.\r\n");
  EXPECT_EQ(stuff({"no dot . inside\r\n"}), "no dot . inside\r\n.\r\n");
}

TEST(RelayDotStuffing, LineEndsNormalisedAndTerminated) {
  EXPECT_EQ(stuff({"bare\nlf\n.x"}), "bare\r\nlf\r\n..x\r\n.\r\n");
  EXPECT_EQ(stuff({"bare\rcr"}), "bare\r\ncr\r\n.\r\n");
  EXPECT_EQ(stuff({"ends\r"}), "ends\r\n.\r\n");
  EXPECT_EQ(stuff({""}), ".\r\n");
  // A "\r\n.\r\n" in the content never ends DATA early.
  auto s = stuff({"x\r\n.\r\ny\r\n"});
  EXPECT_EQ(s.find("\r\n.\r\n"), s.size() - 5);
}

TEST(RelaySasl, Base64RoundTrip) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(base64_decode("Zm8="), "fo");
  EXPECT_FALSE(base64_decode("Zm9v!"));
}

TEST(RelaySasl, Plain) {
  // RFC 4616 §4 example: authcid "tim", passwd "tanstaaftanstaaf", no authzid.
  EXPECT_EQ(base64_encode(sasl_plain("", "tim", "tanstaaftanstaaf")),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
}

TEST(RelaySasl, CramMd5Rfc2195Vector) {
  // RFC 2195 §2: challenge, secret and response from the document.
  const std::string challenge = "<1896.697170952@postoffice.reston.mci.net>";
  EXPECT_EQ(base64_encode(challenge), "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
  const std::string resp = cram_md5_response("tim", "tanstaaftanstaaf", challenge);
  EXPECT_EQ(resp, "tim b913a602c7eda7a495b4e6e7334d3890");
  EXPECT_EQ(base64_encode(resp), "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
}

TEST(RelaySasl, Xoauth2) {
  // The example of Google's XOAUTH2 protocol description.
  EXPECT_EQ(base64_encode(
                xoauth2("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg")),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr"
            "QmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
}

TEST(RelaySasl, MechanismChoice) {
  using v = std::vector<std::string>;
  EXPECT_EQ(choose_mechanism(v{"PLAIN", "LOGIN", "CRAM-MD5"}, false, true), mechanism::cram_md5);
  EXPECT_EQ(choose_mechanism(v{"LOGIN", "PLAIN"}, false, true), mechanism::plain);
  EXPECT_EQ(choose_mechanism(v{"LOGIN"}, false, true), mechanism::login);
  EXPECT_EQ(choose_mechanism(v{"PLAIN", "XOAUTH2"}, true, false), mechanism::xoauth2);
  EXPECT_EQ(choose_mechanism(v{"PLAIN"}, true, false), std::nullopt);
  EXPECT_EQ(choose_mechanism(v{"GSSAPI"}, false, true), std::nullopt);
  EXPECT_EQ(mechanism_from_string("cram-md5"), mechanism::cram_md5);
  EXPECT_EQ(mechanism_from_string("DIGEST-MD5"), std::nullopt);
}

TEST(RelayRecipientFilter, AllowedAndBlocked) {
  recipient_filter none;
  EXPECT_EQ(none.check("anyone@example.com"), recipient_filter::result::pass);
  recipient_filter f({"@example\\.com$", "^ops@"}, {"^blocked@", "@example\\.com\\.evil$"});
  EXPECT_EQ(f.check("a@example.com"), recipient_filter::result::pass);
  EXPECT_EQ(f.check("A@EXAMPLE.COM"), recipient_filter::result::pass);
  EXPECT_EQ(f.check("ops@elsewhere.org"), recipient_filter::result::pass);
  EXPECT_EQ(f.check("a@other.org"), recipient_filter::result::not_allowed);
  EXPECT_EQ(f.check("blocked@example.com"), recipient_filter::result::blocked);
  recipient_filter only_block({}, {"@gmail\\.com$"});
  EXPECT_EQ(only_block.check("x@gmail.com"), recipient_filter::result::blocked);
  EXPECT_EQ(only_block.check("x@corp.com"), recipient_filter::result::pass);
  EXPECT_THROW(recipient_filter({"("}, {}), std::regex_error);
}

TEST(RelayAddresses, Helpers) {
  EXPECT_TRUE(needs_utf8("jörg@example.com"));
  EXPECT_FALSE(needs_utf8("joerg@example.com"));
  EXPECT_EQ(domain_of("a@Example.COM."), "example.com");
  EXPECT_EQ(domain_of("postmaster"), "");
  EXPECT_TRUE(safe_path("a@b"));
  EXPECT_TRUE(safe_path(""));
  EXPECT_FALSE(safe_path("a@b>\r\nRCPT TO:<c@d"));
}

// RFC 6152 §3: the 8-bit parts of a message are re-encoded to 7 bits, the rest is kept.
TEST(Downgrade, EightBitPartsBecomeQuotedPrintableOrBase64AndTheRestIsKept) {
  const std::string in =
      "From: a@example.org\r\nTo: b@example.net\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
      "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
      "--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
      "Gr\xc3\xbc\xc3\x9f"
      "e aus K\xc3\xb6ln.\r\n.leading dot\r\n"
      "--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
      "\x01\x02\xff\xfe\x80\r\n"
      "--b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
      "aGVsbG8=\r\n"
      "--b1--\r\n";
  auto out = downgrade_to_7bit(in);
  ASSERT_TRUE(out.error.empty()) << out.error;
  EXPECT_TRUE(out.changed);
  EXPECT_FALSE(has_8bit_bytes(out.bytes)) << out.bytes;
  EXPECT_NE(out.bytes.find("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"), std::string::npos);
  EXPECT_NE(out.bytes.find("Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                           "Gr=C3=BC=C3=9Fe aus K=C3=B6ln.\r\n.leading dot\r\n"),
            std::string::npos)
      << out.bytes;
  EXPECT_NE(out.bytes.find("Content-Transfer-Encoding: base64\r\n\r\nAQL//oA=\r\n"),
            std::string::npos)
      << out.bytes;
  EXPECT_NE(out.bytes.find("aGVsbG8=\r\n"), std::string::npos);  // already 7-bit: untouched
  EXPECT_EQ(out.bytes.find("\n\n"), std::string::npos);          // CRLF line ends only
}

// A message without MIME structure gets a transfer encoding and MIME-Version with it.
TEST(Downgrade, APlainEightBitMessageGetsMimeVersionAndAnEncoding) {
  const std::string in =
      "From: a@example.org\r\nSubject: plain\r\n\r\nCaf\xc3\xa9 cr\xc3\xa8me\r\n";
  auto out = downgrade_to_7bit(in);
  ASSERT_TRUE(out.error.empty()) << out.error;
  EXPECT_FALSE(has_8bit_bytes(out.bytes)) << out.bytes;
  EXPECT_NE(out.bytes.find("MIME-Version: 1.0\r\n"), std::string::npos) << out.bytes;
  EXPECT_NE(out.bytes.find("Content-Transfer-Encoding: quoted-printable\r\n"), std::string::npos)
      << out.bytes;
  EXPECT_NE(out.bytes.find("Caf=C3=A9 cr=C3=A8me"), std::string::npos) << out.bytes;
  // RFC 2045 §5.2: without a Content-Type the text would be read as US-ASCII.
  EXPECT_NE(out.bytes.find("Content-Type: text/plain; charset=utf-8\r\n"), std::string::npos)
      << out.bytes;
  // Not UTF-8 (Latin-1): RFC 1428's unknown-8bit.
  out = downgrade_to_7bit("From: a@example.org\r\n\r\nCaf\xe9\r\n");
  ASSERT_TRUE(out.error.empty()) << out.error;
  EXPECT_NE(out.bytes.find("charset=unknown-8bit"), std::string::npos) << out.bytes;
  EXPECT_NE(out.bytes.find("Caf=E9"), std::string::npos) << out.bytes;
}

// Nothing to convert: 8-bit bytes only in a header field, or a body declared 8bit that is
// 7-bit: the caller sends the original.
TEST(Downgrade, NothingToConvertLeavesTheMessageAsItIs) {
  auto out = downgrade_to_7bit(
      "From: a@example.org\r\nSubject: Gr\xc3\xbc\xc3\x9f"
      "e\r\n\r\nplain\r\n");
  EXPECT_TRUE(out.error.empty()) << out.error;
  EXPECT_FALSE(out.changed);
  out = downgrade_to_7bit(
      "From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n"
      "Content-Transfer-Encoding: 8bit\r\n\r\nonly ascii\r\n");
  EXPECT_TRUE(out.error.empty()) << out.error;
  EXPECT_FALSE(out.changed);
}

// RFC 1847: signed content must reach the verifier byte for byte, so 8-bit content under
// multipart/signed is refused, not converted.
TEST(Downgrade, EightBitSignedContentIsRefused) {
  const std::string in =
      "From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; "
      "protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=\"s\"\r\n\r\n"
      "--s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
      "Gr\xc3\xbc\xc3\x9f"
      "e\r\n--s\r\nContent-Type: application/pgp-signature\r\n\r\n"
      "-----BEGIN PGP SIGNATURE-----\r\nxx\r\n-----END PGP SIGNATURE-----\r\n--s--\r\n";
  auto out = downgrade_to_7bit(in);
  EXPECT_FALSE(out.changed);
  EXPECT_NE(out.error.find("signed"), std::string::npos) << out.error;
}

// An attached message's 8-bit parts are converted and its container relabelled 7bit; bare
// LF line ends come out as CRLF.
TEST(Downgrade, AttachedMessagesAndBareLineFeeds) {
  const std::string in =
      "From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"m\"\n\n"
      "--m\nContent-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\n"
      "From: b@example.org\nSubject: inner\nContent-Type: text/plain; charset=utf-8\n"
      "Content-Transfer-Encoding: 8bit\n\nK\xc3\xb6ln\n"
      "--m--\n";
  auto out = downgrade_to_7bit(in);
  ASSERT_TRUE(out.error.empty()) << out.error;
  ASSERT_TRUE(out.changed);
  EXPECT_FALSE(has_8bit_bytes(out.bytes)) << out.bytes;
  EXPECT_NE(out.bytes.find("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n"),
            std::string::npos)
      << out.bytes;
  EXPECT_NE(out.bytes.find("K=C3=B6ln"), std::string::npos) << out.bytes;
  for (std::size_t i = out.bytes.find('\n'); i != std::string::npos;
       i = out.bytes.find('\n', i + 1))
    ASSERT_TRUE(i > 0 && out.bytes[i - 1] == '\r') << "bare LF at " << i << ": " << out.bytes;
}

TEST(Downgrade, EightBitBytesAreFound) {
  EXPECT_FALSE(has_8bit_bytes("plain ascii\r\n"));
  EXPECT_TRUE(has_8bit_bytes("caf\xc3\xa9"));
  EXPECT_TRUE(has_8bit_bytes(std::string_view("a\0b", 3)));
}

}  // namespace
}  // namespace sluice::relay
