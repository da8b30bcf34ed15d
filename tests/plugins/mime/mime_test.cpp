// mime_test.cpp — the MIME parse over the corpus in tests/data/mime, its limits, and the
// `mime` stage loaded from the real plugin .so into an in-process host.
//
// Every part of every corpus message (and of its CRLF twin) is also checked the way the
// store serves it: raw[offset, offset + length) decoded with transfer_encoding, by an
// independent decoder here, must give `size` bytes with the recorded SHA-256.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <pthread.h>

#include <boost/json/serialize.hpp>
#include <chrono>
#include <fstream>
#include <span>
#include <sstream>

#include "parse.hpp"
#include "plugin_host.hpp"
#include "sluice/mailpit_json.hpp"
#include "sluice_test.hpp"
#include "text.hpp"
#include "unsubscribe.hpp"

using namespace sluice;

namespace {

const char* const kCorpus[] = {"plain.eml",
                               "alternative.eml",
                               "mixed_attachments.eml",
                               "inline_cid.eml",
                               "nested.eml",
                               "encoded_words.eml",
                               "rfc2231.eml",
                               "qp_base64.eml",
                               "eightbit_nocharset.eml",
                               "rfc822_attachment.eml",
                               "missing_boundary.eml",
                               "bad_base64.eml",
                               "unknown_charset.eml",
                               "no_mime.eml",
                               "empty_body.eml",
                               "list_unsub_valid.eml",
                               "list_unsub_invalid.eml",
                               "list_unsub_oneclick.eml"};

std::string corpus(const std::string& name) {
  std::ifstream f(std::string(SLUICE_TEST_DATA_DIR) + "/mime/" + name, std::ios::binary);
  EXPECT_TRUE(f.good()) << name;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string to_crlf(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) out += '\r';
    out += s[i];
  }
  return out;
}

parsed_message parse_string(std::string raw, std::vector<header_edit> edits = {},
                            mime::parse_limits limits = {}) {
  auto r = mime::parse(message_body::from_string(std::move(raw)), edits, limits);
  EXPECT_FALSE(r.io_error) << r.io_error.message();
  return r.view;
}

parsed_message parse_file(const std::string& name) {
  return parse_string(corpus(name));
}

std::string digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), out, &n, md, nullptr);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(b, sizeof b, "%02x", out[i]);
    hex += b;
  }
  return hex;
}
std::string sha256(std::string_view d) {
  return digest(EVP_sha256(), d);
}
std::string md5(std::string_view d) {
  return digest(EVP_md5(), d);
}

// Independent decoders (lenient, as readers are): base64 skipping foreign characters,
// quoted-printable with soft line breaks.
std::string decode_base64(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned acc = 0;
  int bits = 0, group = 0;
  for (char c : in) {
    if (c == '=') {
      // Padding ends a group of 2 or 3 characters: 1 or 2 bytes.
      if (group >= 2) out += static_cast<char>((acc >> (group == 2 ? 4 : 10)) & 0xff);
      if (group == 3) out += static_cast<char>((acc >> 2) & 0xff);
      acc = 0;
      bits = 0;
      group = 0;
      continue;
    }
    const int v = val(c);
    if (v < 0) continue;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    ++group;
    if (group == 4) {
      out += static_cast<char>((acc >> 16) & 0xff);
      out += static_cast<char>((acc >> 8) & 0xff);
      out += static_cast<char>(acc & 0xff);
      acc = 0;
      bits = 0;
      group = 0;
    }
  }
  // A group cut short without padding yields nothing (as GMime decodes it).
  (void)bits;
  return out;
}

std::string decode_qp(std::string_view in) {
  std::string out;
  auto hexv = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '=') {
      out += in[i];
      continue;
    }
    if (i + 2 < in.size() + 0 && hexv(in[i + 1]) >= 0 && hexv(in[i + 2]) >= 0) {
      out += static_cast<char>(hexv(in[i + 1]) * 16 + hexv(in[i + 2]));
      i += 2;
      continue;
    }
    std::size_t j = i + 1;
    while (j < in.size() && (in[j] == ' ' || in[j] == '\t'))
      ++j;
    if (j < in.size() && in[j] == '\r') ++j;
    if (j < in.size() && in[j] == '\n') {
      i = j;
      continue;
    }
    out += '=';
  }
  return out;
}

std::string serve(const std::string& raw, const mime_part& p) {
  EXPECT_LE(p.offset + p.length, raw.size()) << p.part_id;
  const std::string slice = raw.substr(p.offset, p.length);
  if (p.transfer_encoding == "base64") {
    return decode_base64(slice);
  }
  if (p.transfer_encoding == "quoted-printable") return decode_qp(slice);
  return slice;
}

void expect_servable(const std::string& raw, const parsed_message& v, const std::string& what) {
  std::vector<mime_part> parts = v.attachments;
  parts.insert(parts.end(), v.inline_parts.begin(), v.inline_parts.end());
  for (const auto& p : parts) {
    const std::string data = serve(raw, p);
    EXPECT_EQ(data.size(), p.size) << what << " part " << p.part_id;
    EXPECT_EQ(sha256(data), p.sha256) << what << " part " << p.part_id;
    EXPECT_EQ(md5(data), p.md5) << what << " part " << p.part_id;
    EXPECT_EQ(p.sha1.size(), 40u);
  }
}

bool has_problem(const parsed_message& v, std::string_view needle) {
  for (const auto& p : v.problems) {
    if (p.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST(mime_corpus, every_part_is_servable_by_offset_and_checksums_match) {
  for (const char* name : kCorpus) {
    const std::string raw = corpus(name);
    expect_servable(raw, parse_string(raw), name);
    const std::string crlf = to_crlf(raw);
    expect_servable(crlf, parse_string(crlf), std::string(name) + " (CRLF)");
  }
}

TEST(mime_corpus, every_string_is_valid_utf8_and_views_round_trip_through_json) {
  for (const char* name : kCorpus) {
    const parsed_message v = parse_file(name);
    const std::string json = boost::json::serialize(to_json(v));
    EXPECT_TRUE(mime::valid_utf8(json)) << name;
    const parsed_message back = parsed_message_from_json(to_json(v));
    EXPECT_EQ(back.subject, v.subject);
    EXPECT_EQ(back.attachments.size(), v.attachments.size());
    EXPECT_EQ(back.date_ms, v.date_ms);
  }
}

TEST(mime_corpus, plain_text_message_addresses_and_headers) {
  const parsed_message v = parse_file("plain.eml");
  ASSERT_TRUE(v.from);
  EXPECT_EQ(v.from->name, "Alice Example");
  EXPECT_EQ(v.from->address, "alice@example.org");
  ASSERT_EQ(v.to.size(), 2u);
  EXPECT_EQ(v.to[0], (mail_address{"Bob", "bob@example.com"}));
  EXPECT_EQ(v.to[1], (mail_address{"", "carol@example.com"}));
  ASSERT_EQ(v.cc.size(), 1u);
  EXPECT_EQ(v.cc[0], (mail_address{"Dave, Jr.", "dave@example.net"}));
  ASSERT_EQ(v.reply_to.size(), 1u);
  EXPECT_EQ(v.reply_to[0].address, "replies@example.org");
  EXPECT_TRUE(v.bcc.empty());
  EXPECT_EQ(v.return_path, "bounce@example.org");
  EXPECT_EQ(v.sender, "list@example.org");
  EXPECT_EQ(v.subject, "Plain text message");
  EXPECT_EQ(v.message_id, "plain-1@example.org");
  // Tue, 01 Dec 2026 10:20:30 +0100 = 09:20:30 UTC.
  EXPECT_EQ(v.date_ms, std::optional<std::int64_t>(1796116830000));
  EXPECT_EQ(v.date_offset_min, std::optional<int>(60));
  // Mailpit's Date keeps the zone it was written in (Go's net/mail), through the view's JSON.
  stored_message sm;
  sm.view = parsed_message_from_json(to_json(v));
  EXPECT_EQ(mailpit::message_json(sm).at("Date").as_string(), "2026-12-01T10:20:30+01:00");
  EXPECT_EQ(mailpit::rfc3339(1796116830500, -330), "2026-12-01T03:50:30.5-05:30");
  EXPECT_EQ(mailpit::rfc3339(1796116830000, 0), "2026-12-01T09:20:30Z");
  EXPECT_EQ(v.text, "Hello Bob,\r\n\r\nthis is a plain    text message.\r\nBye.\r\n");
  EXPECT_EQ(v.text_part_id, "1");
  EXPECT_EQ(v.html, "");
  EXPECT_EQ(v.search_text, v.text);
  EXPECT_EQ(v.snippet, "Hello Bob, this is a plain text message. Bye.");
  EXPECT_TRUE(v.inline_parts.empty());
  EXPECT_TRUE(v.attachments.empty());
  EXPECT_TRUE(v.problems.empty());
}

TEST(mime_corpus, alternative_picks_text_and_html_and_html_search_text_skips_script_and_style) {
  const parsed_message v = parse_file("alternative.eml");
  EXPECT_EQ(v.text, "Plain version.");
  EXPECT_EQ(v.text_part_id, "1");
  EXPECT_EQ(v.html_part_id, "2");
  EXPECT_NE(v.html.find("<b>bold</b>"), std::string::npos);
  EXPECT_EQ(v.search_text, "HTML & bold version.");
  EXPECT_EQ(v.snippet, "HTML & bold version.");  // the HTML's, as Mailpit's CreateSnippet
  EXPECT_TRUE(v.attachments.empty());
  EXPECT_TRUE(v.problems.empty());
}

TEST(mime_corpus, mixed_with_attachments_names_types_sizes_and_checksums) {
  const parsed_message v = parse_file("mixed_attachments.eml");
  EXPECT_EQ(v.text, "See the attached files.");
  EXPECT_EQ(v.text_part_id, "1.1");
  EXPECT_EQ(v.html_part_id, "1.2");
  ASSERT_EQ(v.attachments.size(), 2u);
  std::string pdf = "%PDF-1.4\n% fake pdf for tests\n";
  for (int i = 0; i < 256; ++i)
    pdf += static_cast<char>(i);
  const mime_part& a = v.attachments[0];
  EXPECT_EQ(a.part_id, "2");
  EXPECT_EQ(a.file_name, "report.pdf");
  EXPECT_EQ(a.content_type, "application/pdf");
  EXPECT_EQ(a.disposition, "attachment");
  EXPECT_EQ(a.transfer_encoding, "base64");
  EXPECT_EQ(a.size, pdf.size());
  EXPECT_EQ(a.md5, md5(pdf));
  EXPECT_EQ(a.sha1, digest(EVP_sha1(), pdf));
  EXPECT_EQ(a.sha256, sha256(pdf));
  const mime_part& b = v.attachments[1];
  EXPECT_EQ(b.part_id, "3");
  EXPECT_EQ(b.file_name, "notes.txt");
  EXPECT_EQ(b.content_type, "text/plain");
  EXPECT_EQ(b.charset, "utf-8");
  EXPECT_EQ(b.transfer_encoding, "");
  EXPECT_EQ(b.sha256, sha256("line one\nline two"));
  EXPECT_TRUE(v.inline_parts.empty());
}

TEST(mime_corpus, inline_cid_images_are_inline_even_with_attachment_disposition_when_referenced) {
  const parsed_message v = parse_file("inline_cid.eml");
  EXPECT_EQ(v.html_part_id, "1");
  EXPECT_EQ(v.text_part_id, "");
  // No text part: the text is the HTML's (Mailpit's enmime down-converts it).
  EXPECT_FALSE(v.text.empty());
  EXPECT_EQ(v.text, v.search_text);
  ASSERT_EQ(v.inline_parts.size(), 2u);
  EXPECT_EQ(v.inline_parts[0].part_id, "2");
  EXPECT_EQ(v.inline_parts[0].content_id, "logo@example.org");
  EXPECT_EQ(v.inline_parts[0].content_type, "image/png");
  // Mailpit #589: a cid: part referenced by the HTML is not an attachment.
  EXPECT_EQ(v.inline_parts[1].part_id, "3");
  EXPECT_EQ(v.inline_parts[1].file_name, "chart.png");
  ASSERT_EQ(v.attachments.size(), 1u);
  EXPECT_EQ(v.attachments[0].part_id, "4");
  EXPECT_EQ(v.attachments[0].file_name, "unused.png");
  EXPECT_EQ(v.snippet, "Logo: the logo");
}

TEST(mime_corpus, nested_multiparts_number_parts_like_imap) {
  const parsed_message v = parse_file("nested.eml");
  EXPECT_EQ(v.text_part_id, "1.1");
  EXPECT_EQ(v.text, "Nested plain.");
  EXPECT_EQ(v.html_part_id, "1.2.1");
  ASSERT_EQ(v.inline_parts.size(), 1u);
  EXPECT_EQ(v.inline_parts[0].part_id, "1.2.2");
  EXPECT_EQ(v.inline_parts[0].content_id, "pic");
  ASSERT_EQ(v.attachments.size(), 1u);
  EXPECT_EQ(v.attachments[0].part_id, "2");
  EXPECT_EQ(v.attachments[0].file_name, "data.bin");
  EXPECT_EQ(v.attachments[0].sha256, sha256("binary-ish data"));
}

TEST(mime_parse, a_from_that_is_no_address_is_kept_as_the_name) {
  // Mailpit (internal/storage Store): {Name: <the header>, Address: ""}.
  parsed_message v = parse_string("From: Just A Name\r\nTo: b@example.com\r\n\r\nx\r\n");
  ASSERT_TRUE(v.from);
  EXPECT_EQ(*v.from, (mail_address{"Just A Name", ""}));
  v = parse_string("From: root\r\n\r\nx\r\n");  // cron's mail: no domain, no address
  ASSERT_TRUE(v.from);
  EXPECT_EQ(*v.from, (mail_address{"root", ""}));
  v = parse_string("From:  \r\nTo: b@example.com\r\n\r\nx\r\n");
  EXPECT_FALSE(v.from);
  v = parse_string("To: b@example.com\r\n\r\nx\r\n");
  EXPECT_FALSE(v.from);
}

TEST(mime_corpus, encoded_words_in_five_charsets_decode_to_utf8) {
  const parsed_message v = parse_file("encoded_words.eml");
  ASSERT_TRUE(v.from);
  EXPECT_EQ(v.from->name, "José Müller");  // ISO-8859-1, Q
  ASSERT_EQ(v.to.size(), 2u);
  EXPECT_EQ(v.to[0].name, "Иван");        // KOI8-R
  EXPECT_EQ(v.to[1].name, "こんにちは");  // ISO-2022-JP
  ASSERT_EQ(v.cc.size(), 1u);
  EXPECT_EQ(v.cc[0].name, "Smart “quotes”");  // Windows-1252
  // UTF-8, two adjacent padded base64 words: the space between them is not text (RFC 2047
  // §6.2), and the second word is kept (GMime alone loses it).
  EXPECT_EQ(v.subject, "Grüße aus Köln✓ done");
  EXPECT_EQ(v.text, "Körper in UTF-8 ✓\n");
}

TEST(mime_corpus, rfc2231_continued_and_encoded_file_names) {
  const parsed_message v = parse_file("rfc2231.eml");
  ASSERT_EQ(v.attachments.size(), 2u);
  EXPECT_EQ(v.attachments[0].file_name, "日本語 Bericht für 2026.txt");
  EXPECT_EQ(v.attachments[0].transfer_encoding, "7bit");
  EXPECT_EQ(v.attachments[1].file_name, "résumé.txt");
}

TEST(mime_corpus, quoted_printable_and_base64_bodies) {
  const parsed_message v = parse_file("qp_base64.eml");
  EXPECT_EQ(v.text,
            "Café crème: a long line that will be soft-wrapped by the quoted-printable encoder "
            "because it is longer than seventy-six characters.");
  EXPECT_EQ(v.html, "<p>Grüße — base64 HTML</p>");
  EXPECT_EQ(v.search_text, "Grüße — base64 HTML");
  EXPECT_TRUE(v.problems.empty());
}

TEST(mime_corpus, eight_bit_body_without_charset_is_read_with_the_fallback) {
  const parsed_message v = parse_file("eightbit_nocharset.eml");
  EXPECT_EQ(v.text, "naïve café € euro\n");
  EXPECT_TRUE(has_problem(v, "8-bit text without a charset in part 1, read as windows-1252"));
}

TEST(mime_corpus, attached_message_is_one_attachment_named_after_its_subject) {
  const parsed_message v = parse_file("rfc822_attachment.eml");
  EXPECT_EQ(v.text, "See the forwarded message.");
  ASSERT_EQ(v.attachments.size(), 1u);
  const mime_part& a = v.attachments[0];
  EXPECT_EQ(a.part_id, "2");
  EXPECT_EQ(a.content_type, "message/rfc822");
  EXPECT_EQ(a.file_name, "Original_ plans_Q4.eml");
  const std::string raw = corpus("rfc822_attachment.eml");
  EXPECT_TRUE(raw.substr(a.offset, a.length).starts_with("From: carol@example.com\n"));
  EXPECT_TRUE(raw.substr(a.offset, a.length).ends_with("--INNER--"));
  EXPECT_TRUE(v.inline_parts.empty());
  EXPECT_TRUE(v.problems.empty());
}

TEST(mime_corpus, missing_closing_boundary_keeps_every_part_and_says_so) {
  const parsed_message v = parse_file("missing_boundary.eml");
  EXPECT_EQ(v.text, "first part");
  ASSERT_EQ(v.attachments.size(), 1u);
  EXPECT_EQ(v.attachments[0].file_name, "cut.bin");
  EXPECT_EQ(v.attachments[0].sha256, sha256("the message ends here without a closing boundary\n"));
  EXPECT_EQ(v.problems, std::vector<std::string>{"missing closing boundary of the message"});
}

TEST(mime_corpus, bad_base64_is_decoded_leniently_and_noted) {
  const parsed_message v = parse_file("bad_base64.eml");
  ASSERT_EQ(v.attachments.size(), 1u);
  EXPECT_EQ(v.attachments[0].sha256, sha256("hello wor"));
  EXPECT_TRUE(has_problem(v, "invalid base64 in part 2: 3 characters outside the alphabet"));
  EXPECT_TRUE(has_problem(v, "base64 in part 2 ends in the middle of a group"));
}

TEST(mime_corpus, unknown_charset_is_read_with_the_fallback_and_noted) {
  const parsed_message v = parse_file("unknown_charset.eml");
  EXPECT_EQ(v.text, "byte é in an unknown charset\n");
  EXPECT_TRUE(has_problem(v, "unknown charset x-no-such-charset in part 1, read as windows-1252"));
}

TEST(mime_corpus, message_without_mime_headers_is_one_text_part) {
  const parsed_message v = parse_file("no_mime.eml");
  EXPECT_EQ(v.text, "Just text, no MIME-Version, no Content-Type.\n");
  EXPECT_EQ(v.text_part_id, "1");
  EXPECT_TRUE(v.problems.empty());
}

TEST(mime_corpus, message_without_body) {
  const parsed_message v = parse_file("empty_body.eml");
  EXPECT_EQ(v.subject, "Empty");
  EXPECT_EQ(v.text, "");
  EXPECT_EQ(v.snippet, "");
  EXPECT_TRUE(v.attachments.empty());
  EXPECT_TRUE(v.problems.empty()) << v.problems.front();
  const parsed_message e = parse_string("");
  EXPECT_FALSE(e.from);
  EXPECT_EQ(e.text, "");
}

TEST(mime_corpus, list_unsubscribe_valid_invalid_and_one_click) {
  const parsed_message ok = parse_file("list_unsub_valid.eml");
  EXPECT_EQ(ok.list_unsubscribe.header,
            "<mailto:unsub@example.org?subject=unsubscribe>, <http://example.org/unsub?u=1>");
  EXPECT_EQ(ok.list_unsubscribe.links,
            (std::vector<std::string>{"mailto:unsub@example.org?subject=unsubscribe",
                                      "http://example.org/unsub?u=1"}));
  EXPECT_EQ(ok.list_unsubscribe.errors, "");
  EXPECT_EQ(ok.list_unsubscribe.header_post, "");

  const parsed_message bad = parse_file("list_unsub_invalid.eml");
  EXPECT_EQ(bad.list_unsubscribe.links, std::vector<std::string>{"ftp://example.org/x"});
  EXPECT_EQ(bad.list_unsubscribe.errors,
            "text outside angle brackets: \"mailto:unsub@example.org\"; unsupported scheme "
            "\"ftp\" (expected mailto, http or https): <ftp://example.org/x>; one-click "
            "unsubscribe (RFC 8058) needs an https URI in List-Unsubscribe");

  const parsed_message one = parse_file("list_unsub_oneclick.eml");
  EXPECT_EQ(one.list_unsubscribe.links,
            (std::vector<std::string>{"https://example.org/unsub/abc", "mailto:u@example.org"}));
  EXPECT_EQ(one.list_unsubscribe.errors, "");
  EXPECT_EQ(one.list_unsubscribe.header_post, "List-Unsubscribe=One-Click");
}

TEST(mime_unsubscribe, rules_of_rfc_2369_and_8058) {
  EXPECT_EQ(mime::check_list_unsubscribe("", "").errors, "");
  EXPECT_EQ(
      mime::check_list_unsubscribe("<https://a.example/u>", "List-Unsubscribe=One-Click").errors,
      "");
  EXPECT_EQ(
      mime::check_list_unsubscribe("<http://a.example/u>", "List-Unsubscribe=One-Click").errors,
      "one-click unsubscribe (RFC 8058) needs an https URI in List-Unsubscribe");
  EXPECT_EQ(mime::check_list_unsubscribe("<https://a.example/u>", "One-Click").errors,
            "List-Unsubscribe-Post must be \"List-Unsubscribe=One-Click\" (RFC 8058), got "
            "\"One-Click\"");
  EXPECT_EQ(mime::check_list_unsubscribe("", "List-Unsubscribe=One-Click").errors,
            "List-Unsubscribe-Post without a List-Unsubscribe header");
  EXPECT_EQ(mime::check_list_unsubscribe("<mailto:>", "").errors,
            "mailto URI without an address: <mailto:>");
  EXPECT_EQ(mime::check_list_unsubscribe("<https://a.example/u> <mailto:x@y>", "").errors,
            "missing comma before <mailto:x@y>");
  EXPECT_EQ(mime::check_list_unsubscribe("<https://a.example/u", "").errors,
            "unterminated <: \"<https://a.example/u\"; no <URI> found");
  EXPECT_EQ(mime::check_list_unsubscribe("<not a uri>", "").errors, "not a valid URI: <notauri>")
      << "white space inside the brackets is ignored (RFC 2369 §2)";
  EXPECT_EQ(mime::check_list_unsubscribe("<https://a.example/u a=1>", "").links,
            std::vector<std::string>{"https://a.example/ua=1"});
  const auto r = mime::check_list_unsubscribe(" <https://x.example/a> , <mailto:a@x.example> ", "");
  EXPECT_EQ(r.header, "<https://x.example/a> , <mailto:a@x.example>");
  EXPECT_EQ(r.links.size(), 2u);
}

// fuzz_mime found it (tests/fuzz/regressions/fuzz_mime/list-unsubscribe-cut-utf8): an
// error quoting 80 bytes of a field cut a UTF-8 sequence in two.
TEST(mime_unsubscribe, errors_quoting_long_non_ascii_text_stay_valid_utf8) {
  std::string junk = "x";
  for (int i = 0; i < 60; ++i)
    junk += "ü";
  const auto r = mime::check_list_unsubscribe(junk + ", <" + junk + ">", "");
  EXPECT_TRUE(mime::valid_utf8(r.errors)) << r.errors;
  EXPECT_NE(r.errors.find("text outside angle brackets"), std::string::npos);
  const std::string raw =
      test::read_file(std::string(SLUICE_SOURCE_DIR) +
                      "/tests/fuzz/regressions/fuzz_mime/list-unsubscribe-cut-utf8");
  const parsed_message v = parse_string(raw.substr(1));
  EXPECT_TRUE(mime::valid_utf8(boost::json::serialize(to_json(v))));
}

// fuzz_mime found it (tests/fuzz/regressions/fuzz_mime/crash-6e9e109b…): GMime keeps the
// bytes of a malformed Content-Type as they are, and the part's type was not made valid UTF-8.
TEST(mime_parts, a_content_type_with_bytes_that_are_not_utf8_is_made_valid) {
  const parsed_message v = parse_string(
      "From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"MB\"\n\n"
      "--MB\nContent-Type: text/plain\n\nhello\n"
      "--MB\nContent-Type: application/octet-stream\xf6\xbc\x90\x99x\xff\n"
      "Content-Disposition: attachment; filename=\"a.bin\"\n\ndata\n--MB--\n");
  ASSERT_EQ(v.attachments.size(), 1u);
  EXPECT_TRUE(mime::valid_utf8(v.attachments[0].content_type)) << v.attachments[0].content_type;
  EXPECT_EQ(v.attachments[0].content_type.rfind("application/octet-stream", 0), 0u);
  EXPECT_TRUE(mime::valid_utf8(boost::json::serialize(to_json(v))));
  const std::string raw = test::read_file(
      std::string(SLUICE_SOURCE_DIR) +
      "/tests/fuzz/regressions/fuzz_mime/crash-6e9e109b4f3b88dc7a9d34db05a3bf9f7be415de");
  EXPECT_TRUE(mime::valid_utf8(boost::json::serialize(to_json(parse_string(raw.substr(1))))));
}

TEST(mime_headers, header_fields_come_from_the_headers_with_the_edits_applied) {
  const std::string raw =
      "From: a@example.org\r\nTo: b@example.org\r\nSubject: original\r\n\r\nbody\r\n";
  std::vector<header_edit> edits{
      {edit_op::prepend, "Return-Path", "<envelope@example.org>"},
      {edit_op::append, "Message-ID", "<added@sluice.test>"},
      {edit_op::append, "Bcc", "hidden@example.org"},
      {edit_op::set, "Subject", "=?utf-8?q?edited_=E2=9C=93?="},
  };
  const parsed_message v = parse_string(raw, edits);
  EXPECT_EQ(v.subject, "edited ✓");
  EXPECT_EQ(v.message_id, "added@sluice.test");
  ASSERT_EQ(v.bcc.size(), 1u);
  EXPECT_EQ(v.bcc[0].address, "hidden@example.org");
  EXPECT_EQ(v.return_path, "envelope@example.org");
  EXPECT_EQ(v.text, "body\r\n");
}

TEST(mime_headers, null_return_path_and_groups) {
  const parsed_message v = parse_string(
      "Return-Path: <>\nFrom: x@example.org\nTo: Team: a@example.org, \"B\" <b@example.org>;, "
      "c@example.org\nDate: not a date\n\nhi\n");
  EXPECT_EQ(v.return_path, "");
  ASSERT_EQ(v.to.size(), 3u);
  EXPECT_EQ(v.to[1].name, "B");
  EXPECT_EQ(v.to[2].address, "c@example.org");
  EXPECT_FALSE(v.date_ms);
  EXPECT_TRUE(has_problem(v, "unreadable Date header \"not a date\""));
}

TEST(mime_text, html_to_text_decodes_entities_and_breaks_blocks) {
  EXPECT_EQ(mime::html_to_text("<p>a&nbsp;&lt;b&gt; &eacute;</p><div>two<br>lines</div>"
                               "<ul><li>x</li><li>y</li></ul><style>z{}</style>"),
            "a\xC2\xA0<b> é\ntwo\nlines\nx\ny");
  EXPECT_EQ(mime::html_to_text("<table><tr><td>a</td><td>b</td></tr></table>"), "a b");
  EXPECT_EQ(mime::html_to_text("<pre>x\n  y</pre>"), "x\ny");
  EXPECT_EQ(mime::html_to_text("unclosed <b>bold <i>text"), "unclosed bold text");
  // Deep HTML must not recurse: ten thousand nested divs (libxml2 keeps 256 levels).
  std::string deep = "before";
  for (int i = 0; i < 10000; ++i)
    deep += "<div>";
  deep += "deep";
  EXPECT_EQ(mime::html_to_text(deep).substr(0, 6), "before");
}

TEST(mime_text, links_are_written_after_their_text_as_enmime_does) {
  const auto t = mime::html_to_texts(
      "<p>Click <a href=\"https://example.org/reset?t=456\">reset</a> or "
      "<a href=\"http://example.com/b\">http://example.com/b</a>, "
      "<a href=\"mailto:x@example.com\">mail</a>, <a href=\"#top\">top</a>, "
      "<a href=\" HTTPS://example.net/\"><img src=\"x.png\"></a></p>");
  EXPECT_EQ(t.plain, "Click reset or http://example.com/b, mail, top,");
  EXPECT_EQ(t.with_links,
            "Click reset ( https://example.org/reset?t=456 ) or http://example.com/b, mail ( "
            "x@example.com ), top ( #top ), ( HTTPS://example.net/ )");
  // An HTML-only message's Text and search text carry the links; the snippet does not.
  const parsed_message v = parse_string(
      "Content-Type: text/html\r\n\r\n<p>Click <a href=\"https://example.org/reset?t=456\">"
      "reset</a></p>\r\n");
  EXPECT_EQ(v.text, "Click reset ( https://example.org/reset?t=456 )");
  EXPECT_EQ(v.search_text, v.text);
  EXPECT_EQ(v.snippet, "Click reset");
}

TEST(mime_text, snippet_collapses_white_space_and_cuts_at_200_characters) {
  EXPECT_EQ(mime::make_snippet("  a \r\n\t b  "), "a b");
  std::string long_text;
  for (int i = 0; i < 300; ++i)
    long_text += "é";
  const std::string s = mime::make_snippet(long_text);
  EXPECT_EQ(s.size(), 200 * 2 + 3);
  EXPECT_TRUE(s.ends_with("..."));
  EXPECT_EQ(mime::make_snippet(std::string(200, 'x')), std::string(200, 'x'));
  EXPECT_EQ(mime::make_snippet(std::string(199, 'x') + " yz"), std::string(199, 'x') + "...");
}

TEST(mime_text, charset_conversion_replaces_invalid_bytes) {
  mime::charset_outcome how;
  EXPECT_EQ(mime::to_utf8("caf\xC3\xA9", "utf-8", "windows-1252", how), "café");
  EXPECT_EQ(how, mime::charset_outcome::ok);
  EXPECT_EQ(mime::to_utf8("a\xFF"
                          "b",
                          "utf-8", "windows-1252", how),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(how, mime::charset_outcome::invalid_bytes);
  EXPECT_EQ(mime::to_utf8("\xE9t\xE9", "ISO-8859-1", "windows-1252", how), "été");
  EXPECT_EQ(mime::to_utf8("\x1B$B$3$s$K$A$O\x1B(B", "iso-2022-jp", "windows-1252", how),
            "こんにちは");
  EXPECT_EQ(mime::to_utf8("\xE9\xD7\xC1\xCE", "koi8-r", "windows-1252", how), "Иван");
  EXPECT_TRUE(mime::valid_utf8(mime::to_utf8("\x1B$B\xFF\xFF", "iso-2022-jp", "utf-8", how)));
}

namespace {

std::string deep_message(int depth) {
  std::string m = "From: a@example.org\r\nSubject: deep\r\nMIME-Version: 1.0\r\n";
  for (int i = 0; i < depth; ++i) {
    m += "Content-Type: multipart/mixed; boundary=\"b" + std::to_string(i) + "\"\r\n\r\n--b" +
         std::to_string(i) + "\r\n";
  }
  m += "Content-Type: text/plain\r\n\r\ninnermost\r\n";
  for (int i = depth - 1; i >= 0; --i)
    m += "--b" + std::to_string(i) + "--\r\n";
  m += "--b0--\r\n";
  return m;
}

// Runs fn on a thread with a small stack: proof that the work does not need a deep one.
template <class F>
void on_small_stack(std::size_t bytes, F fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, bytes);
  pthread_t t;
  auto* heap_fn = new F(std::move(fn));
  ASSERT_EQ(pthread_create(
                &t, &attr,
                [](void* p) -> void* {
                  std::unique_ptr<F> f(static_cast<F*>(p));
                  (*f)();
                  return nullptr;
                },
                heap_fn),
            0);
  pthread_join(t, nullptr);
  pthread_attr_destroy(&attr);
}

}  // namespace

TEST(mime_limits, five_thousand_deep_nesting_is_cut_at_max_depth_without_deep_recursion) {
  const std::string raw = deep_message(5000);
  parsed_message v;
  const auto started = std::chrono::steady_clock::now();
  // 1 MB of stack (ASan frames included) for a 5000-deep message.
  on_small_stack(1 << 20, [&] { v = parse_string(raw); });
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  std::string id = "1";
  for (int i = 1; i < 63; ++i)
    id += ".1";
  EXPECT_TRUE(
      has_problem(v, "MIME nesting deeper than 64 levels at part " + id + ": kept as one part"));
  ASSERT_EQ(v.attachments.size(), 1u);
  const mime_part& a = v.attachments[0];
  EXPECT_EQ(a.part_id, id);
  EXPECT_EQ(a.content_type, "multipart/mixed");  // as the message said, though kept whole
  EXPECT_NE(raw.substr(a.offset, a.length).find("innermost"), std::string::npos);
  EXPECT_EQ(v.subject, "deep");
  expect_servable(raw, v, "deep");

  mime::parse_limits shallow;
  shallow.structure.max_depth = 3;
  const parsed_message s = parse_string(raw, {}, shallow);
  ASSERT_EQ(s.attachments.size(), 1u);
  EXPECT_EQ(s.attachments[0].part_id, "1.1");
}

TEST(mime_limits, header_block_of_two_megabytes) {
  std::string raw = "From: first@example.org\r\n";
  while (raw.size() < 2 * 1024 * 1024)
    raw += "X-Filler: " + std::string(100, 'f') + "\r\n";
  raw += "Subject: after the limit\r\n\r\nbody after a huge header\r\n";
  const parsed_message v = parse_string(raw);
  ASSERT_TRUE(v.from);
  EXPECT_EQ(v.from->address, "first@example.org");
  EXPECT_EQ(v.subject, "");  // beyond max_header_bytes
  EXPECT_TRUE(has_problem(v, "the header block is larger than 1048576 bytes"));
  EXPECT_EQ(v.text, "body after a huge header\r\n");
}

// Fields past max_header_bytes are hidden from GMime (one blank field instead of thousands
// of objects): a Content-Type there does not count, in the message and in a part; the
// offsets of what is listed stay those of the raw bytes.
TEST(mime_limits, fields_past_the_header_limit_do_not_shape_the_structure) {
  mime::parse_limits lim;
  lim.structure.max_header_bytes = 1024;
  std::string filler;
  for (int i = 0; i < 200; ++i)
    filler += "X-H" + std::to_string(i) + ": v\r\n";
  std::string raw = "From: a@example.org\r\n" + filler +
                    "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\npart\r\n--b--\r\n";
  parsed_message v = parse_string(raw, {}, lim);
  EXPECT_TRUE(v.attachments.empty());
  EXPECT_EQ(v.text, "--b\r\n\r\npart\r\n--b--\r\n");  // not multipart: all text
  EXPECT_TRUE(has_problem(v, "the header block is larger than 1024 bytes"));
  expect_servable(raw, v, "message header past the limit");

  raw = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" + filler +
        "Content-Type: image/png\r\nContent-Disposition: attachment; filename=a.png\r\n\r\n"
        "png\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--b--\r\n";
  v = parse_string(raw, {}, lim);
  EXPECT_TRUE(has_problem(v, "header block of part 1 is larger than 1024 bytes")) << raw;
  EXPECT_EQ(v.text, "png");  // part 1's own fields past the limit are gone: a text part
  ASSERT_EQ(v.attachments.size(), 1u);
  EXPECT_EQ(v.attachments[0].part_id, "2");
  expect_servable(raw, v, "part header past the limit");
}

TEST(mime_limits, parts_beyond_max_parts_are_not_listed) {
  std::string raw = "Content-Type: multipart/mixed; boundary=P\n\n";
  for (int i = 0; i < 3000; ++i)
    raw += "--P\nContent-Type: application/octet-stream\n\npart " + std::to_string(i) + "\n";
  raw += "--P--\n";
  const parsed_message v = parse_string(raw);
  EXPECT_EQ(v.attachments.size(), 999u);  // the message itself is the 1000th entity
  EXPECT_TRUE(has_problem(v, "more than 1000 MIME parts"));
  EXPECT_FALSE(has_problem(v, "missing closing boundary"));
  expect_servable(raw, v, "many parts");
  mime::parse_limits few;
  few.structure.max_parts = 10;
  EXPECT_EQ(parse_string(raw, {}, few).attachments.size(), 9u);
}

TEST(mime_limits, decoded_text_beyond_max_text_size_is_cut_on_a_character_boundary) {
  std::string raw = "Content-Type: text/plain; charset=utf-8\n\n";
  for (int i = 0; i < 3000; ++i)
    raw += "é";
  mime::parse_limits lim;
  lim.max_text_bytes = 1025;
  const parsed_message v = parse_string(raw, {}, lim);
  EXPECT_EQ(v.text.size(), 1024u);
  EXPECT_TRUE(mime::valid_utf8(v.text));
  EXPECT_TRUE(has_problem(v, "is larger than 1025 bytes"));
}

namespace {

// A file-backed body whose reads fail, as a broken disk would.
class failing_body final : public message_body {
 public:
  std::uint64_t size() const noexcept override { return 1000; }
  std::size_t read(std::uint64_t, std::span<char>, std::error_code& ec) const noexcept override {
    ec = std::make_error_code(std::errc::io_error);
    return 0;
  }
  std::optional<std::string_view> memory() const noexcept override { return std::nullopt; }
  const std::filesystem::path& file() const noexcept override { return path_; }

 private:
  std::filesystem::path path_ = "/nonexistent/spool/file";
};

}  // namespace

TEST(mime_parse, read_error_of_the_body_is_reported) {
  auto r = mime::parse(std::make_shared<failing_body>(), {}, {});
  EXPECT_EQ(r.io_error, std::make_error_code(std::errc::io_error));
}

// ---- the stage, loaded from the plugin .so -------------------------------------------

namespace {

struct mime_stage : ::testing::Test {
  test::plugin_host host{{test::build_dir() + "/lib/sluice/plugins"}};
  stage_call call{phase::inline_, 1, "test", logger("mime-test")};

  std::shared_ptr<message> message_from(std::shared_ptr<const message_body> body) {
    auto m = std::make_shared<message>();
    m->id = make_message_id();
    m->raw = std::move(body);
    return m;
  }
};

}  // namespace

TEST_F(mime_stage, stage_attaches_the_view_for_memory_and_spooled_bodies) {
  auto stage = host.make_stage("mime", "max_depth: 10\ninline_parse_max: 1KB\n");
  const std::string raw = corpus("mixed_attachments.eml");
  // In memory, small: parsed on the I/O thread.
  auto small = message_from(message_body::from_string(raw));
  small->append_header("Message-ID", "<stage@test>");
  verdict v = host.run(stage->process(small, call));
  EXPECT_EQ(v.kind, verdict_kind::continue_);
  ASSERT_TRUE(small->attributes.contains("mime"));
  parsed_message view = parsed_message_from_json(small->attributes["mime"].as_object());
  EXPECT_EQ(view.subject, "With attachments");
  EXPECT_EQ(view.message_id, "stage@test");
  EXPECT_EQ(view.attachments.size(), 2u);

  // Spooled: parsed on the workers from the file.
  test::temp_dir dir;
  const auto path = dir.path() / "body.eml";
  std::ofstream(path, std::ios::binary) << raw;
  std::error_code ec;
  auto spooled = message_from(message_body::from_file(path, ec));
  ASSERT_FALSE(ec);
  v = host.run(stage->process(spooled, call));
  EXPECT_EQ(v.kind, verdict_kind::continue_);
  parsed_message fview = parsed_message_from_json(spooled->attributes["mime"].as_object());
  EXPECT_EQ(boost::json::serialize(to_json(fview)),
            boost::json::serialize(to_json(parse_string(raw))));
  EXPECT_EQ(fview.attachments.at(0).sha256, view.attachments.at(0).sha256);
  EXPECT_EQ(fview.attachments.at(0).offset, view.attachments.at(0).offset);
}

TEST_F(mime_stage, malformed_message_continues_and_read_error_throws) {
  auto stage = host.make_stage("mime", "");
  auto bad = message_from(message_body::from_string(corpus("missing_boundary.eml")));
  EXPECT_EQ(host.run(stage->process(bad, call)).kind, verdict_kind::continue_);
  EXPECT_FALSE(parsed_message_from_json(bad->attributes["mime"].as_object()).problems.empty());

  auto broken = message_from(std::make_shared<failing_body>());
  EXPECT_THROW(host.run(stage->process(broken, call)), std::system_error);
  EXPECT_FALSE(broken->attributes.contains("mime"));
}

TEST_F(mime_stage, configuration_is_validated) {
  EXPECT_THROW(host.make_stage("mime", "max_depth: 0\n"), config_error);
  EXPECT_THROW(host.make_stage("mime", "max_parts: 1000000\n"), config_error);
  EXPECT_THROW(host.make_stage("mime", "max_header_bytes: 10\n"), config_error);
  EXPECT_THROW(host.make_stage("mime", "fallback_charset: x-no-such-charset\n"), config_error);
  EXPECT_THROW(host.make_stage("mime", "max_dept: 3\n"), config_error);  // unknown key
  EXPECT_NO_THROW(host.make_stage("mime",
                                  "max_depth: 20\nmax_parts: 50\nmax_header_bytes: 64KB\n"
                                  "max_text_size: 1MB\nfallback_charset: iso-8859-15\n"
                                  "inline_parse_max: 0\n"));
}

TEST_F(mime_stage, concurrent_parses_on_several_stage_instances) {
  auto a = host.make_stage("mime", "inline_parse_max: 0\n");
  auto b = host.make_stage("mime", "");
  std::vector<std::shared_ptr<message>> msgs;
  std::vector<std::future<verdict>> done;
  for (int i = 0; i < 40; ++i) {
    auto m = message_from(message_body::from_string(corpus(kCorpus[i % std::size(kCorpus)])));
    msgs.push_back(m);
    done.push_back(boost::asio::co_spawn(host.io(), (i % 2 ? a : b)->process(m, call),
                                         boost::asio::use_future));
  }
  for (auto& f : done) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
    EXPECT_EQ(f.get().kind, verdict_kind::continue_);
  }
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    const auto v = parsed_message_from_json(msgs[i]->attributes["mime"].as_object());
    EXPECT_EQ(boost::json::serialize(to_json(v)),
              boost::json::serialize(to_json(parse_file(kCorpus[i % std::size(kCorpus)]))));
  }
}
