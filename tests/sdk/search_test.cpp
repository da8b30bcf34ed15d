// search_test.cpp — the search language parser (sluice/search.hpp).
#include <gtest/gtest.h>

#include "sluice/search.hpp"

using sluice::parse_search;
using sluice::search_error;
using field = sluice::search_term::field;

TEST(SearchParser, WordsPhrasesAndNegation) {
  auto q = parse_search("  hello \"big world\" -spam !\"not this\" - ");
  ASSERT_EQ(q.terms.size(), 5u);
  EXPECT_EQ(q.terms[0].kind, field::text);
  EXPECT_EQ(q.terms[0].value, "hello");
  EXPECT_EQ(q.terms[1].value, "big world");
  EXPECT_FALSE(q.terms[1].negated);
  EXPECT_TRUE(q.terms[2].negated);
  EXPECT_EQ(q.terms[2].value, "spam");
  EXPECT_TRUE(q.terms[3].negated);
  EXPECT_EQ(q.terms[3].value, "not this");
  EXPECT_EQ(q.terms[4].value, "-");  // a lone dash is a word
  EXPECT_TRUE(parse_search("").empty());
  EXPECT_TRUE(parse_search("   \t ").empty());
  EXPECT_TRUE(parse_search("\"\"").empty());
}

TEST(SearchParser, EveryPrefix) {
  struct c {
    const char* q;
    field f;
    const char* value;
  } cases[] = {
      {"from:alice", field::from, "alice"},
      {"TO:bob", field::to, "bob"},
      {"cc:c@x", field::cc, "c@x"},
      {"bcc:d", field::bcc, "d"},
      {"reply-to:r", field::reply_to, "r"},
      {"addressed:a", field::addressed, "a"},
      {"subject:\"two words\"", field::subject, "two words"},
      {"message-id:abc@h", field::message_id, "abc@h"},
      {"tag:Work", field::tag, "Work"},
      {"is:read", field::is_read, ""},
      {"is:UNREAD", field::is_unread, ""},
      {"is:tagged", field::is_tagged, ""},
      {"has:attachment", field::has_attachment, ""},
      {"has:attachments", field::has_attachment, ""},
      {"has:inline", field::has_inline, ""},
      {"has:inlines", field::has_inline, ""},
      {"unknown:x", field::text, "unknown:x"},
      {"\"from:x\"", field::text, "from:x"},
  };
  for (const auto& t : cases) {
    SCOPED_TRACE(t.q);
    auto q = parse_search(t.q);
    ASSERT_EQ(q.terms.size(), 1u);
    EXPECT_EQ(q.terms[0].kind, t.f);
    EXPECT_EQ(q.terms[0].value, t.value);
  }
  auto neg = parse_search("-from:x !tag:y");
  EXPECT_TRUE(neg.terms[0].negated);
  EXPECT_EQ(neg.terms[0].kind, field::from);
  EXPECT_TRUE(neg.terms[1].negated);
  EXPECT_TRUE(parse_search("from: subject:").empty());  // empty values match all (Mailpit)
}

TEST(SearchParser, Headers) {
  auto q = parse_search("header:X-Mailer:\"Acme Mail\" header:List-Id -header:X-Spam:yes:no");
  ASSERT_EQ(q.terms.size(), 3u);
  EXPECT_EQ(q.terms[0].kind, field::header);
  EXPECT_EQ(q.terms[0].header_name, "X-Mailer");
  EXPECT_EQ(q.terms[0].value, "Acme Mail");
  EXPECT_EQ(q.terms[1].header_name, "List-Id");
  EXPECT_EQ(q.terms[1].value, "");
  EXPECT_EQ(q.terms[2].value, "yes:no");
  EXPECT_TRUE(q.terms[2].negated);
  EXPECT_THROW(parse_search("header:"), search_error);
  EXPECT_THROW(parse_search("header::x"), search_error);
}

// The one term a query parses to (an empty term, and a failure, when it is not one).
sluice::search_term only_term(const char* q) {
  auto terms = parse_search(q).terms;
  EXPECT_EQ(terms.size(), 1u) << q;
  return terms.empty() ? sluice::search_term{} : terms[0];
}

TEST(SearchParser, Sizes) {
  EXPECT_EQ(parse_search("larger:100").terms[0].size, 100u);
  EXPECT_EQ(parse_search("larger:2K").terms[0].size, 2048u);
  EXPECT_EQ(parse_search("smaller:1.5MB").terms[0].size, 1572864u);
  EXPECT_EQ(parse_search("smaller:1gb").terms[0].size, 1073741824u);
  EXPECT_EQ(parse_search("larger:10kb").terms[0].kind, field::larger);
  // Not a size: searched as that literal text, as Mailpit does (also "larger:" alone).
  for (const char* bad : {"larger:abc", "larger:5X", "smaller:.", "larger:99999999999G"}) {
    auto q = parse_search(bad);
    ASSERT_EQ(q.terms.size(), 1u) << bad;
    EXPECT_EQ(q.terms[0].kind, field::text) << bad;
    EXPECT_EQ(q.terms[0].value, bad);
    EXPECT_TRUE(q.terms[0].literal);
  }
  EXPECT_EQ(only_term("larger:").value, "larger:");
  EXPECT_FALSE(only_term("plain").literal);
  EXPECT_EQ(parse_search("-larger:abc").terms[0].value, "larger:abc");
  EXPECT_TRUE(parse_search("-larger:abc").terms[0].negated);
}

TEST(SearchParser, Dates) {
  auto d = parse_search("before:2024-02-29").terms[0];
  EXPECT_EQ(d.kind, field::before);
  EXPECT_EQ(d.time.year, 2024);
  EXPECT_EQ(d.time.month, 2);
  EXPECT_EQ(d.time.day, 29);
  EXPECT_FALSE(d.time.has_time);
  EXPECT_EQ(d.time.days_ago, -1);
  auto t = parse_search("after:\"2024/03/05 13:45\"").terms[0].time;
  EXPECT_TRUE(t.has_time);
  EXPECT_EQ(t.hour, 13);
  EXPECT_EQ(t.minute, 45);
  EXPECT_FALSE(t.has_offset);
  auto r = parse_search("after:2024-03-05T10:00:30.5+02:00").terms[0].time;
  EXPECT_TRUE(r.has_offset);
  EXPECT_EQ(r.offset_minutes, 120);
  EXPECT_EQ(r.second, 30);
  EXPECT_EQ(parse_search("before:2024-03-05T10:00:00Z").terms[0].time.offset_minutes, 0);
  auto m = parse_search("before:\"Tue, 1 Jul 2003 10:52:37 -0700\"").terms[0].time;
  EXPECT_EQ(m.year, 2003);
  EXPECT_EQ(m.month, 7);
  EXPECT_EQ(m.day, 1);
  EXPECT_EQ(m.offset_minutes, -420);
  EXPECT_EQ(parse_search("before:\"1 Jul 2003\"").terms[0].time.month, 7);
  EXPECT_EQ(parse_search("after:today").terms[0].time.days_ago, 0);
  EXPECT_EQ(parse_search("before:Yesterday").terms[0].time.days_ago, 1);
  // More of dateparse's forms, which Mailpit accepts.
  auto us = only_term("before:12/31/2099").time;
  EXPECT_EQ(us.year, 2099);
  EXPECT_EQ(us.month, 12);
  EXPECT_EQ(us.day, 31);
  EXPECT_EQ(only_term("after:3/1/14").time.year, 2014);
  EXPECT_EQ(only_term("after:3/1/69").time.year, 1969);  // Go's rule: 69-99 are 19xx
  auto us_time = only_term("after:\"12/07/2026 13:45:10\"").time;
  EXPECT_EQ(us_time.month, 12);
  EXPECT_EQ(us_time.day, 7);
  EXPECT_EQ(us_time.second, 10);
  auto words = only_term("after:\"Dec 7, 2026\"").time;
  EXPECT_EQ(words.year, 2026);
  EXPECT_EQ(words.month, 12);
  EXPECT_EQ(words.day, 7);
  EXPECT_FALSE(words.has_time);
  EXPECT_EQ(only_term("after:\"Monday, December 7 2026 10:00\"").time.hour, 10);
  EXPECT_EQ(only_term("after:\"1 SEPTEMBER 2026\"").time.month, 9);
  EXPECT_EQ(only_term("after:\"may 4, 2026\"").time.month, 5);
  EXPECT_EQ(only_term("before:20261207").time.day, 7);
  auto unix_s = only_term("before:1765000000").time;  // 2025-12-06T05:46:40Z
  EXPECT_EQ(unix_s.year, 2025);
  EXPECT_EQ(unix_s.month, 12);
  EXPECT_EQ(unix_s.day, 6);
  EXPECT_EQ(unix_s.hour, 5);
  EXPECT_EQ(unix_s.minute, 46);
  EXPECT_EQ(unix_s.second, 40);
  EXPECT_TRUE(unix_s.has_offset);
  EXPECT_EQ(unix_s.offset_minutes, 0);
  auto unix_ms = only_term("before:1765000000123").time;
  EXPECT_EQ(unix_ms.second, 40);
  EXPECT_EQ(unix_ms.millisecond, 123);  // kept: Mailpit compares with UnixMilli
  EXPECT_EQ(only_term("after:2024-03-05T10:00:30.5+02:00").time.millisecond, 500);
  // A 12-hour clock, as dateparse reads it.
  auto pm = only_term("after:\"12/07/2026 1:45 PM\"").time;
  EXPECT_EQ(pm.hour, 13);
  EXPECT_EQ(pm.minute, 45);
  EXPECT_FALSE(pm.has_offset);
  EXPECT_EQ(only_term("after:\"12/07/2026 12:00 AM\"").time.hour, 0);
  EXPECT_EQ(only_term("after:\"12/07/2026 12:30 pm\"").time.hour, 12);
  EXPECT_EQ(only_term("after:\"Dec 7, 2026 9:05:10am\"").time.hour, 9);
  EXPECT_EQ(only_term("after:\"2026-12-07 11:59:59 PM\"").time.hour, 23);
  auto pm_zone = only_term("before:\"12/07/2026 1:45 pm EST\"").time;
  EXPECT_EQ(pm_zone.hour, 13);
  EXPECT_TRUE(pm_zone.has_offset);
  EXPECT_EQ(pm_zone.offset_minutes, -300);
  EXPECT_EQ(only_term("after:\"12/07/2026 9:05\"").time.hour, 9);  // one hour digit
  // Dates it cannot read are ignored (Mailpit logs and drops them); the rest still counts.
  for (const char* bad : {"before:", "before:2023-02-29", "before:2024-13-01", "after:tomorrow",
                          "before:2024-01-01T25:00", "before:\"1 Foo 2003\"", "after:2024-01",
                          "before:notadate", "after:13/40/2026", "before:123456789",
                          "after:\"Decxyz 7, 2026\"", "before:\"1 Julember 2003\"",
                          "after:\"12/07/2026 13:45 PM\"", "after:\"12/07/2026 0:30 am\"",
                          "after:\"12/07/2026 123:45\"", "after:\"12/07/2026 1:45 XM\""}) {
    EXPECT_TRUE(parse_search(bad).empty()) << bad;
    auto q = parse_search(std::string(bad) + " word");
    ASSERT_EQ(q.terms.size(), 1u) << bad;
    EXPECT_EQ(q.terms[0].value, "word");
  }
}

TEST(SearchParser, ErrorsAndLimits) {
  EXPECT_THROW(parse_search("\"unterminated"), search_error);
  // Unknown is:/has: values are text, as Mailpit (they then match only that text).
  for (const char* t : {"is:starred", "has:nothing", "is:"}) {
    auto q = parse_search(t);
    ASSERT_EQ(q.terms.size(), 1u) << t;
    EXPECT_EQ(q.terms[0].kind, field::text) << t;
    EXPECT_EQ(q.terms[0].value, t);
  }
  EXPECT_THROW(parse_search(std::string(4097, 'a')), search_error);
  std::string many;
  for (int i = 0; i < 65; ++i)
    many += "w" + std::to_string(i) + " ";
  EXPECT_THROW(parse_search(many), search_error);
  try {
    parse_search("header::x");
    FAIL();
  } catch (const search_error& e) {
    EXPECT_NE(std::string(e.what()).find("header::x"), std::string::npos);  // names the term
  }
}
