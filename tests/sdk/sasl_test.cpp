// sasl_test.cpp — sluice/sasl.hpp against the RFC 4616 §4 and RFC 2195 §2 examples and
// each kind of malformed message.
#include "sluice/sasl.hpp"

#include <gtest/gtest.h>

#include <string>

#include "sluice/base64.hpp"

namespace sasl = sluice::sasl;
using sasl::cram_md5_status;
using sasl::plain_status;

namespace {
std::string bytes(const char* s, std::size_t n) {
  return std::string(s, n);
}
}  // namespace

TEST(SaslPlain, Rfc4616Examples) {
  // §4, first example: no authzid, user tim with password tanstaaftanstaaf.
  auto msg = sluice::base64_decode("AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
  ASSERT_TRUE(msg);
  EXPECT_EQ(*msg, bytes("\0tim\0tanstaaftanstaaf", 21));
  sasl::plain_credentials c;
  ASSERT_EQ(sasl::parse_plain(*msg, c), plain_status::ok);
  EXPECT_EQ(c.authzid, "");
  EXPECT_EQ(c.authcid, "tim");
  EXPECT_EQ(c.password, "tanstaaftanstaaf");
  // §4, second example: Kurt, with his password, asks to act as Ursel.
  ASSERT_EQ(sasl::parse_plain(bytes("Ursel\0Kurt\0xipj3plmq", 20), c), plain_status::ok);
  EXPECT_EQ(c.authzid, "Ursel");
  EXPECT_EQ(c.authcid, "Kurt");
  EXPECT_EQ(c.password, "xipj3plmq");
}

TEST(SaslPlain, FieldsAreOctets) {
  // Spaces and non-ASCII bytes are kept as they are; only NUL separates.
  sasl::plain_credentials c;
  ASSERT_EQ(sasl::parse_plain(bytes("\0J\xc3\xb6rg\0pass word \xff", 18), c), plain_status::ok);
  EXPECT_EQ(c.authcid, "J\xc3\xb6rg");
  EXPECT_EQ(c.password, "pass word \xff");
}

TEST(SaslPlain, MissingNul) {
  sasl::plain_credentials c;
  EXPECT_EQ(sasl::parse_plain("", c), plain_status::missing_nul);
  EXPECT_EQ(sasl::parse_plain("timtanstaaf", c), plain_status::missing_nul);
  EXPECT_EQ(sasl::parse_plain(bytes("tim\0tanstaaf", 12), c), plain_status::missing_nul);
  EXPECT_EQ(sasl::parse_plain(bytes("\0", 1), c), plain_status::missing_nul);
}

TEST(SaslPlain, ExtraNul) {
  sasl::plain_credentials c;
  EXPECT_EQ(sasl::parse_plain(bytes("\0a\0b\0c", 6), c), plain_status::extra_nul);
  EXPECT_EQ(sasl::parse_plain(bytes("\0a\0pw\0", 6), c), plain_status::extra_nul);
  EXPECT_EQ(sasl::parse_plain(bytes("\0\0\0", 3), c), plain_status::extra_nul);
}

TEST(SaslPlain, EmptyFields) {
  sasl::plain_credentials c;
  EXPECT_EQ(sasl::parse_plain(bytes("\0\0pw", 4), c), plain_status::empty_authcid);
  EXPECT_EQ(sasl::parse_plain(bytes("admin\0\0pw", 9), c), plain_status::empty_authcid);
  EXPECT_EQ(sasl::parse_plain(bytes("\0tim\0", 5), c), plain_status::empty_password);
  EXPECT_EQ(sasl::parse_plain(bytes("\0\0", 2), c), plain_status::empty_authcid);
}

TEST(SaslPlain, FieldLengthLimit) {
  const std::string max(sasl::plain_max_field, 'x');
  const std::string over(sasl::plain_max_field + 1, 'x');
  const std::string nul(1, '\0');
  sasl::plain_credentials c;
  ASSERT_EQ(sasl::parse_plain(max + nul + max + nul + max, c), plain_status::ok);
  EXPECT_EQ(c.authzid.size(), 255u);
  EXPECT_EQ(c.authcid.size(), 255u);
  EXPECT_EQ(c.password.size(), 255u);
  EXPECT_EQ(sasl::parse_plain(over + nul + "tim" + nul + "pw", c), plain_status::too_long);
  EXPECT_EQ(sasl::parse_plain(nul + over + nul + "pw", c), plain_status::too_long);
  EXPECT_EQ(sasl::parse_plain(nul + "tim" + nul + over, c), plain_status::too_long);
}

TEST(SaslPlain, LooserRulesAllowAnEmptyPasswordAndLongFields) {
  const std::string nul(1, '\0');
  const std::string token(2048, 't');  // e.g. an API token used as the password
  const sasl::plain_rules loose{.max_field = 4096, .allow_empty_password = true};
  sasl::plain_credentials c;
  ASSERT_EQ(sasl::parse_plain(nul + "tim" + nul, c, loose), plain_status::ok);
  EXPECT_EQ(c.authcid, "tim");
  EXPECT_EQ(c.password, "");
  ASSERT_EQ(sasl::parse_plain(nul + "tim" + nul + token, c, loose), plain_status::ok);
  EXPECT_EQ(c.password, token);
  // What the rules do not loosen.
  EXPECT_EQ(sasl::parse_plain(nul + nul + "pw", c, loose), plain_status::empty_authcid);
  EXPECT_EQ(sasl::parse_plain(nul + "tim" + nul + "a" + nul, c, loose), plain_status::extra_nul);
  EXPECT_EQ(sasl::parse_plain(nul + "tim" + nul + std::string(4097, 'x'), c, loose),
            plain_status::too_long);
  // The defaults are RFC 4616's.
  EXPECT_EQ(sasl::parse_plain(nul + "tim" + nul, c), plain_status::empty_password);
  EXPECT_EQ(sasl::parse_plain(nul + "tim" + nul + token, c), plain_status::too_long);
}

TEST(SaslPlain, DescribeNeverEchoesTheMessage) {
  for (auto s :
       {plain_status::ok, plain_status::missing_nul, plain_status::extra_nul,
        plain_status::empty_authcid, plain_status::empty_password, plain_status::too_long}) {
    EXPECT_FALSE(sasl::describe(s).empty());
  }
  EXPECT_EQ(sasl::describe(plain_status::extra_nul), "more than two NUL separators");
  EXPECT_EQ(sasl::describe(cram_md5_status::bad_digest), "digest is not 32 hex digits");
}

TEST(SaslCramMd5, Rfc2195Example) {
  // RFC 2195 §2: user tim, shared secret tanstaaftanstaaf.
  const std::string challenge = "<1896.697170952@postoffice.reston.mci.net>";
  EXPECT_EQ(sluice::base64_encode(challenge),
            "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
  EXPECT_EQ(sasl::cram_md5_digest("tanstaaftanstaaf", challenge),
            "b913a602c7eda7a495b4e6e7334d3890");
  auto response = sluice::base64_decode("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
  ASSERT_TRUE(response);
  sasl::cram_md5_response r;
  ASSERT_EQ(sasl::parse_cram_md5(*response, r), cram_md5_status::ok);
  EXPECT_EQ(r.user, "tim");
  EXPECT_EQ(r.digest_hex, "b913a602c7eda7a495b4e6e7334d3890");
  EXPECT_TRUE(sasl::cram_md5_verify("tanstaaftanstaaf", challenge, r.digest_hex));
  EXPECT_FALSE(sasl::cram_md5_verify("tanstaaftanstaafX", challenge, r.digest_hex));
  EXPECT_FALSE(sasl::cram_md5_verify("tanstaaftanstaaf", challenge + " ", r.digest_hex));
  EXPECT_FALSE(
      sasl::cram_md5_verify("tanstaaftanstaaf", challenge, "b913a602c7eda7a495b4e6e7334d3891"));
  EXPECT_FALSE(sasl::cram_md5_verify("tanstaaftanstaaf", challenge, ""));
}

TEST(SaslCramMd5, ResponseForms) {
  sasl::cram_md5_response r;
  // Upper-case hex is accepted and comes back lower-case.
  ASSERT_EQ(sasl::parse_cram_md5("tim B913A602C7EDA7A495B4E6E7334D3890", r), cram_md5_status::ok);
  EXPECT_EQ(r.digest_hex, "b913a602c7eda7a495b4e6e7334d3890");
  // The split is at the last space: a user name may contain spaces.
  ASSERT_EQ(sasl::parse_cram_md5("tim the enchanter b913a602c7eda7a495b4e6e7334d3890", r),
            cram_md5_status::ok);
  EXPECT_EQ(r.user, "tim the enchanter");
}

TEST(SaslCramMd5, MalformedResponses) {
  sasl::cram_md5_response r;
  r.user = "untouched";
  EXPECT_EQ(sasl::parse_cram_md5("", r), cram_md5_status::missing_user);
  EXPECT_EQ(sasl::parse_cram_md5("b913a602c7eda7a495b4e6e7334d3890", r),
            cram_md5_status::missing_user);
  EXPECT_EQ(sasl::parse_cram_md5(" b913a602c7eda7a495b4e6e7334d3890", r),
            cram_md5_status::missing_user);
  EXPECT_EQ(sasl::parse_cram_md5("tim short", r), cram_md5_status::bad_digest);
  EXPECT_EQ(sasl::parse_cram_md5("tim ", r), cram_md5_status::bad_digest);
  EXPECT_EQ(sasl::parse_cram_md5("tim b913a602c7eda7a495b4e6e7334d38900", r),
            cram_md5_status::bad_digest);
  EXPECT_EQ(sasl::parse_cram_md5("tim g913a602c7eda7a495b4e6e7334d3890", r),
            cram_md5_status::bad_digest);
  EXPECT_EQ(sasl::parse_cram_md5("tim b913a602c7eda7a495b4e6e7334d3890 ", r),
            cram_md5_status::bad_digest);
  EXPECT_EQ(r.user, "untouched");
}

TEST(SaslCramMd5, ChallengeForm) {
  const std::string a = sasl::cram_md5_challenge("mx.test");
  const std::string b = sasl::cram_md5_challenge("mx.test");
  ASSERT_TRUE(a.starts_with("<") && a.ends_with("@mx.test>")) << a;
  EXPECT_NE(a, b);  // 64 random bits each
  // "<" digits "." digits "@"
  const std::size_t dot = a.find('.');
  const std::size_t at = a.find('@');
  ASSERT_NE(dot, std::string::npos);
  ASSERT_LT(dot, at);
  EXPECT_GT(dot, 1u);
  EXPECT_GT(at, dot + 1);
  for (std::size_t i = 1; i < at; ++i) {
    if (i != dot) EXPECT_TRUE(a[i] >= '0' && a[i] <= '9') << a;
  }
}
