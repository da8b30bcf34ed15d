// text_test.cpp — sluice/text.hpp: ASCII case folding, trimming and hex digits.
#include "sluice/text.hpp"

#include <gtest/gtest.h>

#include <string>

TEST(Text, IequalsFoldsAsciiLettersOnly) {
  EXPECT_TRUE(sluice::iequals("Content-Type", "content-TYPE"));
  EXPECT_FALSE(sluice::iequals("Content-Type", "Content-Typ"));
  EXPECT_FALSE(sluice::iequals("\xC3\x89", "\xC3\xA9"));  // É and é: not ASCII, exact
  EXPECT_FALSE(sluice::iequals("[", "{"));                // 0x5B and 0x7B differ by 0x20 too
  EXPECT_EQ(sluice::to_lower_ascii("MAIL From:<A@B>"), "mail from:<a@b>");
}

TEST(Text, TrimRemovesSpaceTabCrLfAtBothEnds) {
  EXPECT_EQ(sluice::trim(" \t value \r\n"), "value");
  EXPECT_EQ(sluice::trim("a b"), "a b");
  EXPECT_EQ(sluice::trim(" \r\n\t"), "");
}

TEST(Text, ToHexGivesTwoLowerCaseDigitsPerByte) {
  const unsigned char bytes[] = {0x00, 0x0f, 0x10, 0x7f, 0x80, 0xab, 0xff};
  EXPECT_EQ(sluice::to_hex(bytes, sizeof bytes), "000f107f80abff");
  EXPECT_EQ(sluice::to_hex(bytes, 0), "");
}

TEST(Text, AppendHexIsUpperCaseByDefault) {
  std::string out = "%";
  sluice::append_hex(out, 0xc3);
  out += '%';
  sluice::append_hex(out, 0x0a);
  EXPECT_EQ(out, "%C3%0A");
  out.clear();
  sluice::append_hex(out, 0xc3, false);
  EXPECT_EQ(out, "c3");
}
