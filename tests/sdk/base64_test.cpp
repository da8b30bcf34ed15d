// base64_test.cpp — sluice/base64.hpp against RFC 4648 §10 and malformed input.
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
