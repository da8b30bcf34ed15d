// base64_test.cpp — sluice/base64.hpp against RFC 4648 §10, malformed input, and the
// DKIM (unchecked padding) and MIME (lenient) forms.
#include "sluice/base64.hpp"

#include <gtest/gtest.h>

#include <vector>

using sluice::base64_decode;
using sluice::base64_encode;
using sluice::base64_padding;

TEST(Base64, Rfc4648Vectors) {
  const std::pair<const char*, const char*> v[] = {{"", ""},
                                                   {"f", "Zg=="},
                                                   {"fo", "Zm8="},
                                                   {"foo", "Zm9v"},
                                                   {"foob", "Zm9vYg=="},
                                                   {"fooba", "Zm9vYmE="},
                                                   {"foobar", "Zm9vYmFy"}};
  for (auto [plain, enc] : v) {
    EXPECT_EQ(base64_encode(plain), enc);
    EXPECT_EQ(base64_decode(enc), std::optional<std::string>(plain));
  }
}

TEST(Base64, BinaryRoundTrip) {
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  EXPECT_EQ(base64_decode(base64_encode(all)), std::optional<std::string>(all));
  EXPECT_EQ(base64_decode(base64_encode(std::string("a\0b", 3))),
            std::optional<std::string>(std::string("a\0b", 3)));
}

TEST(Base64, RejectsMalformed) {
  for (const char* bad : {"Zg", "Zm8", "Z", "Zg=", "Zg===", "Z===", "=", "==", "Zm=v", "Zg==Zg==",
                          "Zm9v!", "Zm9v\n", " Zm9v", "Zm9v YmFy", "Zm-_", "Zm9v\r\n"}) {
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
  }
}

TEST(Base64, OptionalPadding) {
  EXPECT_EQ(base64_decode("Zg", base64_padding::optional), std::optional<std::string>("f"));
  EXPECT_EQ(base64_decode("Zm8", base64_padding::optional), std::optional<std::string>("fo"));
  EXPECT_EQ(base64_decode("Zg==", base64_padding::optional), std::optional<std::string>("f"));
  EXPECT_FALSE(base64_decode("Z", base64_padding::optional).has_value());
  EXPECT_FALSE(base64_decode("Zg=", base64_padding::optional).has_value());
  EXPECT_FALSE(base64_decode("Zm9v!", base64_padding::optional).has_value());
}

// Moved from the pop3 unit tests: pop3 decodes AUTH responses with optional padding.
TEST(Base64, Pop3SaslResponses) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0alice\0secret", 13)}) {
    auto d = base64_decode(base64_encode(s), base64_padding::optional);
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(base64_encode(std::string("\0alice\0secret", 13)), "AGFsaWNlAHNlY3JldA==");
  EXPECT_FALSE(base64_decode("AGFs aWNl", base64_padding::optional));
  EXPECT_FALSE(base64_decode("A", base64_padding::optional));
  EXPECT_FALSE(base64_decode("QQ===", base64_padding::optional));
  EXPECT_TRUE(base64_decode("QQ", base64_padding::optional));
}

// DKIM tags (RFC 6376 §3.5): zero to two trailing '=' whether or not they fit.
TEST(Base64, UncheckedPadding) {
  constexpr auto u = base64_padding::unchecked;
  EXPECT_EQ(base64_decode("Zg==", u), std::optional<std::string>("f"));
  EXPECT_EQ(base64_decode("Zg=", u), std::optional<std::string>("f"));
  EXPECT_EQ(base64_decode("Zg", u), std::optional<std::string>("f"));
  EXPECT_EQ(base64_decode("Zm9v=", u), std::optional<std::string>("foo"));
  EXPECT_EQ(base64_decode("Zm9v==", u), std::optional<std::string>("foo"));
  EXPECT_EQ(base64_decode("=", u), std::optional<std::string>(""));
  for (const char* bad : {"Z", "Z=", "Zg===", "===", "Zm=v", "=Zg", "Zg==Zg", "Zm9v!", " Zm9v"}) {
    EXPECT_FALSE(base64_decode(bad, u).has_value()) << bad;
  }
}

// MIME bodies and encoded words (RFC 2045 §6.8): foreign bytes skipped and counted, the
// first '=' ends the data, a last incomplete group is dropped; output is appended.
TEST(Base64, Lenient) {
  std::string out = "x";
  EXPECT_EQ(sluice::base64_decode_lenient("Zm9v\r\nYmFy", out), 2u);
  EXPECT_EQ(out, "xfoobar");
  out.clear();
  EXPECT_EQ(sluice::base64_decode_lenient("Zm9vYg==Zm9v", out), 0u);
  EXPECT_EQ(out, "foob");
  out.clear();
  EXPECT_EQ(sluice::base64_decode_lenient("Zm9vY", out), 0u);  // 4n+1: the sextet is dropped
  EXPECT_EQ(out, "foo");
  out.clear();
  EXPECT_EQ(sluice::base64_decode_lenient("Zm!9v =! junk", out), 2u);  // only before the '='
  EXPECT_EQ(out, "foo");
  out.clear();
  EXPECT_EQ(sluice::base64_decode_lenient("", out), 0u);
  EXPECT_EQ(out, "");
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  std::string folded;
  const std::string enc = base64_encode(all);
  for (std::size_t i = 0; i < enc.size(); i += 76)
    folded += enc.substr(i, 76) + "\r\n";
  out.clear();
  sluice::base64_decode_lenient(folded, out);
  EXPECT_EQ(out, all);
}

TEST(Base64, Alphabet) {
  int n = 0;
  for (int c = 0; c < 256; ++c)
    n += sluice::is_base64_char(static_cast<char>(c)) ? 1 : 0;
  EXPECT_EQ(n, 64);
  EXPECT_TRUE(sluice::is_base64_char('+'));
  EXPECT_TRUE(sluice::is_base64_char('/'));
  EXPECT_FALSE(sluice::is_base64_char('='));
  EXPECT_FALSE(sluice::is_base64_char('-'));
}
