// rewrite_test.cpp — unit tests of the rewrite rules (the core library, no plugin loading)
// and of the stage through the real plugin .so in an in-process host: each rule kind,
// first-match-wins and continue, merging of duplicates, the From override and subject
// prefix over RFC 2047 subjects (checked by decoding with GMime), the "rewrite" and "mime"
// attributes, and every load-time validation with its file:line:col.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <string>

#include "header_text.hpp"
#include "plugin_host.hpp"
#include "regex.hpp"
#include "rewriter.hpp"
#include "sluice/config.hpp"
#include "sluice/message.hpp"

using namespace sluice;
using namespace sluice::rewrite;

namespace {

// Parses `yaml` as a stage config the way the kernel does (unknown keys are errors).
rule_set rules(const std::string& yaml) {
  auto cfg = config_node::parse(yaml, "rewrite.yaml");
  rule_set rs = parse_rules(cfg);
  cfg.check_unknown_keys();
  return rs;
}

// The config error message for `yaml`, or "" when it loads.
std::string load_error(const std::string& yaml) {
  try {
    rules(yaml);
  } catch (const config_error& e) {
    return e.what();
  }
  return {};
}

std::shared_ptr<message> make_message(std::string raw, std::string from,
                                      std::vector<std::string> rcpts) {
  auto m = std::make_shared<message>();
  m->id = make_message_id();
  m->raw = message_body::from_string(std::move(raw));
  m->envelope.mail_from = std::move(from);
  for (auto& r : rcpts)
    m->envelope.recipients.push_back({std::move(r), {}});
  return m;
}

const std::string kRaw =
    "Received: from client by mx; Tue, 1 Dec 2026 10:00:00 +0000\r\n"
    "From: \"Jane Doe\" <jane@app.example>\r\n"
    "To: Bob <bob@customer.example>\r\n"
    "Subject: Your invoice\r\n"
    "X-Internal: secret\r\n"
    "\r\n"
    "Body line\r\n";

std::vector<std::string> rcpts(const message& m) {
  std::vector<std::string> out;
  for (const auto& r : m.envelope.recipients)
    out.push_back(r.address);
  return out;
}

std::string header(const message& m, const std::string& name) {
  auto v = field_values(m.output_headers(), name);
  return v.empty() ? std::string("<none>") : v.front();
}

std::string json_string(const boost::json::value& v) {
  return std::string(v.as_string());
}

}  // namespace

// ---------------------------------------------------------------- envelope rules

TEST(RewriteEnvelope, ExactMapIsCaseInsensitiveAndFirstMatchWins) {
  auto rs = rules(R"(
recipients:
  - {match: Bob@Customer.example, to: qa@staging.example}
  - {match: qa@staging.example, to: never@staging.example}
)");
  auto m = make_message(kRaw, "jane@app.example", {"bob@customer.example", "carol@x.example"});
  auto r = apply(rs, *m);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(rcpts(*m), (std::vector<std::string>{"qa@staging.example", "carol@x.example"}));
  const auto& rec = m->attributes.at("rewrite").as_object();
  ASSERT_EQ(rec.at("recipients").as_array().size(), 1u);
  const auto& one = rec.at("recipients").as_array()[0].as_object();
  EXPECT_EQ(json_string(one.at("original")), "bob@customer.example");
  EXPECT_EQ(json_string(one.at("rewritten")), "qa@staging.example");
  EXPECT_EQ(json_string(one.at("rules").as_array()[0]), "recipients[0]");
  EXPECT_EQ(rec.at("original_recipients").as_array().size(), 2u);
}

TEST(RewriteEnvelope, ContinueFeedsTheNextRule) {
  auto rs = rules(R"(
recipients:
  - {regex: '\+[^@]*@', to: '@', continue: true, label: strip-tag}
  - {match: "@customer.example", to: "@staging.example"}
)");
  auto m = make_message(kRaw, "a@b.example", {"bob+news@customer.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  EXPECT_EQ(rcpts(*m), (std::vector<std::string>{"bob@staging.example"}));
  const auto& labels =
      m->attributes.at("rewrite").at("recipients").as_array()[0].at("rules").as_array();
  ASSERT_EQ(labels.size(), 2u);
  EXPECT_EQ(json_string(labels[0]), "strip-tag");
  EXPECT_EQ(json_string(labels[1]), "recipients[1]");
}

TEST(RewriteEnvelope, DomainMapKeepsTheLocalPart) {
  auto rs = rules(R"(
sender:
  - {match: "@app.example", to: "@staging.example"}
recipients:
  - {match: "@OLD.example", to: "@new.example"}
  - {match: "@gone.example", to: postmaster@new.example}
)");
  auto m = make_message(kRaw, "Jane@APP.example",
                        {"x@old.example", "y@notold.example", "z@gone.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  EXPECT_EQ(m->envelope.mail_from, "Jane@staging.example");
  EXPECT_EQ(rcpts(*m), (std::vector<std::string>{"x@new.example", "y@notold.example",
                                                 "postmaster@new.example"}));
  const auto& s = m->attributes.at("rewrite").at("sender").as_object();
  EXPECT_EQ(json_string(s.at("original")), "Jane@APP.example");
  EXPECT_EQ(json_string(s.at("rewritten")), "Jane@staging.example");
}

TEST(RewriteEnvelope, ReturnPathFollowsTheRewrittenSender) {
  auto rs = rules("sender:\n  - {match: \"*\", to: bounce@staging.example}\n");
  auto m = make_message("Return-Path: <jane@app.example>\r\n" + kRaw, "jane@app.example",
                        {"bob@customer.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  EXPECT_EQ(m->envelope.mail_from, "bounce@staging.example");
  EXPECT_TRUE(m->output_headers().starts_with("Return-Path: <bounce@staging.example>\r\n"));
  // Without one, none is added (a relay adds none; the final delivery does).
  auto bare = make_message(kRaw, "jane@app.example", {"bob@customer.example"});
  ASSERT_TRUE(apply(rs, *bare).error.empty());
  EXPECT_EQ(header(*bare, "Return-Path"), "<none>");
}

TEST(RewriteEnvelope, RegexWithCaptureGroupsAndNamedGroups) {
  auto rs = rules(R"(
recipients:
  - {regex: '^(.+)@(?<dom>[^.]+)\.corp\.example$', to: '$1+$dom@staging.example'}
  - {regex: '^USER-(\d+)@', to: 'u$${1}@', case_sensitive: true}
  - {regex: '^(?<who>[^@]+)@(?<d>x\.example)$', to: 'cost-$$$$-$${who}@$d'}
)");
  auto m = make_message(
      kRaw, "a@b.example",
      {"alice@sales.corp.example", "user-7@x.example", "USER-7@x.example", "z@y.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  // In YAML, ${…} is environment substitution: $${1} is the group ${1}, $$$$ a literal $.
  EXPECT_EQ(rcpts(*m),
            (std::vector<std::string>{"alice+sales@staging.example", "cost-$-user-7@x.example",
                                      "u7@x.example", "z@y.example"}));
}

TEST(RewriteEnvelope, EveryRecipientToOneAddressMergesDuplicates) {
  auto rs = rules(R"(
recipients:
  - {match: "*", to: qa@staging.example}
original_to_header: true
)");
  auto m = make_message(kRaw, "jane@app.example",
                        {"bob@customer.example", "carol@customer.example", "dave@other.example"});
  m->envelope.recipients[0].params.push_back({"NOTIFY", "FAILURE"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  ASSERT_EQ(rcpts(*m), (std::vector<std::string>{"qa@staging.example"}));
  ASSERT_EQ(m->envelope.recipients[0].params.size(), 1u);  // the first keeps its parameters
  const auto& rec = m->attributes.at("rewrite").as_object();
  EXPECT_EQ(rec.at("merged").to_number<int>(), 2);
  EXPECT_EQ(rec.at("recipients").as_array().size(), 3u);
  std::string xot = header(*m, "X-Original-To");  // unfolded: a fold leaves its tab
  std::replace(xot.begin(), xot.end(), '\t', ' ');
  EXPECT_EQ(xot, "bob@customer.example, carol@customer.example, dave@other.example");
}

TEST(RewriteEnvelope, XOriginalToIsBounded) {
  auto rs = rules(
      "recipients:\n  - {match: \"*\", to: qa@staging.example}\n"
      "original_to_header: true\n");
  std::vector<std::string> many;
  for (int i = 0; i < 1000; ++i)
    many.push_back("recipient-number-" + std::to_string(i) + "@customer.example");
  auto m = make_message(kRaw, "a@b.example", many);
  ASSERT_TRUE(apply(rs, *m).error.empty());
  const std::string v = header(*m, "X-Original-To");
  EXPECT_LE(v.size(), 8192u + 400u);  // the folds' tabs and the comment
  EXPECT_TRUE(v.ends_with(" more)")) << v.substr(v.size() - 40);
  EXPECT_EQ(m->attributes.at("rewrite").at("original_recipients").as_array().size(), 1000u);
  EXPECT_EQ(rcpts(*m), (std::vector<std::string>{"qa@staging.example"}));
}

TEST(RewriteEnvelope, SpilledBodyIsRewrittenWithoutTouchingIt) {
  test::temp_dir dir;
  const std::filesystem::path file = dir.path() / "body.eml";
  std::string body(3 << 20, 'x');
  for (std::size_t i = 76; i < body.size(); i += 78) {
    body[i] = '\r';
    body[i + 1] = '\n';
  }
  test::write_file(file, kRaw + body);
  std::error_code ec;
  auto m = std::make_shared<message>();
  m->raw = message_body::from_file(file, ec);
  ASSERT_FALSE(ec);
  m->envelope.mail_from = "jane@app.example";
  m->envelope.recipients.push_back({"bob@customer.example", {}});
  auto rs = rules("subject_prefix: \"[S] \"\noverride_from: n@staging.example\n");
  ASSERT_TRUE(apply(rs, *m).error.empty());
  const std::string out = m->output();
  EXPECT_NE(out.find("Subject: [S] Your invoice\r\n"), std::string::npos);
  EXPECT_TRUE(out.ends_with(body));
  EXPECT_EQ(test::read_file(file), kRaw + body);
}

TEST(RewriteEnvelope, MergeComparesDomainsCaseInsensitivelyOnly) {
  auto rs = rules("recipients:\n  - {match: \"@a.example\", to: \"@b.example\"}\n");
  auto m = make_message(kRaw, "s@x.example", {"u@a.example", "u@B.EXAMPLE", "U@b.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  EXPECT_EQ(rcpts(*m), (std::vector<std::string>{"u@b.example", "U@b.example"}));
  EXPECT_EQ(m->attributes.at("rewrite").at("merged").to_number<int>(), 1);
}

TEST(RewriteEnvelope, NullSenderIsNeverRewritten) {
  auto rs = rules("sender:\n  - {match: \"*\", to: bounce@staging.example}\n");
  auto m = make_message(kRaw, "", {"bob@customer.example"});
  auto r = apply(rs, *m);
  EXPECT_TRUE(r.error.empty());
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(m->envelope.mail_from, "");
  EXPECT_FALSE(m->attributes.contains("rewrite"));
}

TEST(RewriteEnvelope, ConditionsUseTheOriginalEnvelope) {
  auto rs = rules(R"(
recipients:
  - {match: "*", to: qa@staging.example, when: {sender: '@app\.example$'}}
headers:
  - {op: set, name: X-Customer-Mail, value: "yes", when: {recipient: '@customer\.example$'}}
  - {op: set, name: X-Never, value: "no", when: {recipient: '@nowhere\.example$'}}
)");
  auto m = make_message(kRaw, "jane@app.example", {"bob@customer.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  EXPECT_EQ(rcpts(*m), (std::vector<std::string>{"qa@staging.example"}));
  EXPECT_EQ(header(*m, "X-Customer-Mail"), "yes");  // matched before the rewrite
  EXPECT_EQ(header(*m, "X-Never"), "<none>");

  auto other = make_message(kRaw, "jane@elsewhere.example", {"bob@customer.example"});
  ASSERT_TRUE(apply(rs, *other).error.empty());
  EXPECT_EQ(rcpts(*other), (std::vector<std::string>{"bob@customer.example"}));
}

TEST(RewriteEnvelope, ARegexResultThatIsNoAddressFailsClosed) {
  auto rs = rules("recipients:\n  - {regex: '^.*$', to: 'not an address'}\n");
  auto m = make_message(kRaw, "a@b.example", {"bob@customer.example"});
  auto r = apply(rs, *m);
  EXPECT_NE(r.error.find("which is not an address"), std::string::npos) << r.error;
}

// RFC 5321 §4.1.2: a quoted local part may hold spaces; rewriting its domain keeps it.
TEST(RewriteEnvelope, AQuotedLocalPartIsAnAddress) {
  auto rs = rules("recipients:\n  - {regex: '^(.*)@rw\\.test$', to: '$$1@out.test'}\n");
  auto m = make_message(kRaw, "a@b.example", {"\"a b\"@rw.test"});
  auto r = apply(rs, *m);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(rcpts(*m), (std::vector<std::string>{"\"a b\"@out.test"}));
  using sluice::rewrite::address_problem;
  EXPECT_EQ(address_problem("\"a \\\" b\"@x.example"), "");
  EXPECT_NE(address_problem("\"a b@x.example"), "");       // unterminated
  EXPECT_NE(address_problem("\"a\"b@x.example"), "");      // text after the quotes
  EXPECT_NE(address_problem("\"a\r\nb\"@x.example"), "");  // control characters
  EXPECT_NE(address_problem("a b@x.example"), "");         // unquoted space
}

TEST(RewriteEnvelope, ARegexHittingItsMatchLimitFailsClosed) {
  // Catastrophic backtracking on a long subject: PCRE2's limit stops it.
  auto rs = rules("recipients:\n  - {regex: '^(a+)+$', to: x@y.example}\n");
  auto m = make_message(kRaw, "a@b.example", {std::string(40, 'a') + "b@c.example"});
  auto r = apply(rs, *m);
  EXPECT_NE(r.error.find("match limit"), std::string::npos) << r.error;
  EXPECT_EQ(rcpts(*m)[0], std::string(40, 'a') + "b@c.example");
}

// ---------------------------------------------------------------- header rules

TEST(RewriteHeaders, SetAddRemoveRenameAsEditsOnly) {
  auto rs = rules(R"(
headers:
  - {op: set, name: X-Environment, value: staging}
  - {op: add, name: X-Note, value: first}
  - {op: add, name: X-Note, value: second}
  - {op: remove, name: x-internal}
  - {op: rename, name: To, to: X-Original-Header-To}
)");
  auto m = make_message(kRaw, "a@b.example", {"bob@customer.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  EXPECT_EQ(m->raw->to_string(), kRaw);  // the raw message is untouched
  const std::string out = m->output();
  EXPECT_NE(out.find("X-Environment: staging\r\n"), std::string::npos);
  EXPECT_LT(out.find("X-Note: first\r\n"), out.find("X-Note: second\r\n"));
  EXPECT_EQ(out.find("X-Internal"), std::string::npos);
  EXPECT_NE(out.find("X-Original-Header-To: Bob <bob@customer.example>\r\n"), std::string::npos);
  EXPECT_EQ(out.find("\r\nTo:"), std::string::npos);
  EXPECT_TRUE(out.ends_with("\r\n\r\nBody line\r\n"));
  const auto& applied = m->attributes.at("rewrite").at("headers").as_array();
  ASSERT_EQ(applied.size(), 5u);
  EXPECT_EQ(json_string(applied[4].at("op")), "rename");
  EXPECT_EQ(json_string(applied[4].at("to")), "X-Original-Header-To");
}

TEST(RewriteHeaders, SetReplacesEveryCopy) {
  auto rs = rules("headers:\n  - {op: set, name: X-Tag, value: one}\n");
  auto m = make_message("X-Tag: a\r\nX-Tag: b\r\nSubject: s\r\n\r\nx\r\n", "a@b.example",
                        {"c@d.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  EXPECT_EQ(field_values(m->output_headers(), "X-Tag"), (std::vector<std::string>{"one"}));
}

TEST(RewriteHeaders, NonAsciiValuesAreEncoded) {
  auto rs = rules(R"(
headers:
  - {op: set, name: X-Greeting, value: "Grüße aus Köln"}
  - {op: set, name: Reply-To, value: "Zoë Support <support@staging.example>"}
)");
  auto m = make_message(kRaw, "a@b.example", {"c@d.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  const std::string greeting = header(*m, "X-Greeting");
  EXPECT_TRUE(is_ascii(greeting)) << greeting;
  EXPECT_NE(greeting.find("=?UTF-8?"), std::string::npos);
  EXPECT_EQ(decode_text(greeting), "Grüße aus Köln");
  const std::string reply_to = header(*m, "Reply-To");
  EXPECT_TRUE(is_ascii(reply_to)) << reply_to;
  auto parsed = parse_addresses(reply_to);
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0].name, "Zoë Support");
  EXPECT_EQ(parsed[0].address, "support@staging.example");
}

// ---------------------------------------------------------------- From override

TEST(RewriteFrom, KeepsTheDisplayNameAndRecordsXOriginalFrom) {
  auto rs = rules("override_from: noreply@staging.example\n");
  auto m = make_message(kRaw, "bounce@app.example", {"bob@customer.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  EXPECT_EQ(header(*m, "From"), "\"Jane Doe\" <noreply@staging.example>");
  // As Mailpit: the original address (not the name) in X-Original-From.
  EXPECT_EQ(header(*m, "X-Original-From"), "jane@app.example");
  EXPECT_EQ(m->envelope.mail_from, "noreply@staging.example");  // and the envelope, as Mailpit
  const auto& f = m->attributes.at("rewrite").at("from").as_object();
  EXPECT_EQ(json_string(f.at("original")), "jane@app.example");
  EXPECT_EQ(json_string(f.at("name")), "Jane Doe");
}

TEST(RewriteFrom, EncodedDisplayNameSurvivesDecoded) {
  auto rs = rules("override_from: {address: noreply@staging.example, envelope: false}\n");
  auto m = make_message("From: =?ISO-8859-1?Q?Ren=E9_M=FCller?= <rene@app.example>\r\n\r\nx\r\n",
                        "bounce@app.example", {"c@d.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  const std::string from = header(*m, "From");
  EXPECT_TRUE(is_ascii(from)) << from;
  auto parsed = parse_addresses(from);
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0].name, "René Müller");
  EXPECT_EQ(parsed[0].address, "noreply@staging.example");
  EXPECT_EQ(m->envelope.mail_from, "bounce@app.example");
}

TEST(RewriteFrom, FixedNameNoFromAndUnparseableFrom) {
  auto rs = rules("override_from: {address: noreply@staging.example, name: Staging Bot}\n");
  auto none = make_message("Subject: x\r\n\r\nx\r\n", "a@b.example", {"c@d.example"});
  ASSERT_TRUE(apply(rs, *none).error.empty());
  EXPECT_EQ(header(*none, "From"), "\"Staging Bot\" <noreply@staging.example>");
  EXPECT_EQ(header(*none, "X-Original-From"), "<none>");

  auto plain = rules("override_from: noreply@staging.example\n");
  auto two =
      make_message("From: a@x.example, b@y.example\r\n\r\nx\r\n", "a@b.example", {"c@d.example"});
  ASSERT_TRUE(apply(plain, *two).error.empty());
  EXPECT_EQ(header(*two, "From"), "<noreply@staging.example>");
  EXPECT_EQ(header(*two, "X-Original-From"), "a@x.example, b@y.example");
}

// ---------------------------------------------------------------- subject prefix

TEST(RewriteSubject, PrefixOnceAscii) {
  auto rs = rules("subject_prefix: \"[STAGING] \"\n");
  auto m = make_message(kRaw, "a@b.example", {"c@d.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  EXPECT_EQ(header(*m, "Subject"), "[STAGING] Your invoice");
  // A message that already went through the gateway (a reply, a second pass).
  auto again = make_message("Subject: Re: [staging] Your invoice\r\n\r\nx\r\n", "a@b.example",
                            {"c@d.example"});
  ASSERT_TRUE(apply(rs, *again).error.empty());
  EXPECT_EQ(header(*again, "Subject"), "Re: [staging] Your invoice");
  EXPECT_EQ(json_string(again->attributes.at("rewrite").at("subject").at("skipped")),
            "already prefixed");
}

TEST(RewriteSubject, EncodedSubjectKeepsItsEncodedWords) {
  const std::string ew = "=?UTF-8?B?w4ljaGFudGlsbG9uIGfDqW7DqXLDqQ==?=";  // "Échantillon généré"
  auto rs = rules("subject_prefix: \"[STAGING] \"\n");
  auto m = make_message("Subject: " + ew + "\r\n\r\nx\r\n", "a@b.example", {"c@d.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  const std::string s = header(*m, "Subject");
  EXPECT_EQ(s, "[STAGING] " + ew);
  EXPECT_EQ(decode_text(s), "[STAGING] Échantillon généré");

  // Already prefixed, but only visible once decoded.
  auto enc = make_message("Subject: =?UTF-8?Q?=5BSTAGING=5D_d=C3=A9j=C3=A0?=\r\n\r\nx\r\n",
                          "a@b.example", {"c@d.example"});
  ASSERT_TRUE(apply(rs, *enc).error.empty());
  EXPECT_EQ(header(*enc, "Subject"), "=?UTF-8?Q?=5BSTAGING=5D_d=C3=A9j=C3=A0?=");
}

TEST(RewriteSubject, PrefixWithoutSpaceBeforeAnEncodedWord) {
  auto rs = rules("subject_prefix: \"[S]\"\n");
  const std::string ew = "=?UTF-8?Q?caf=C3=A9?=";
  auto m = make_message("Subject: " + ew + "\r\n\r\nx\r\n", "a@b.example", {"c@d.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  const std::string s = header(*m, "Subject");
  EXPECT_TRUE(s.ends_with(" " + ew)) << s;  // the original encoded-word is kept as it was
  EXPECT_EQ(decode_text(s), "[S]café");     // and no space appears between
}

TEST(RewriteSubject, NonAsciiPrefixAndMissingSubject) {
  auto rs = rules("subject_prefix: \"[PRÜFUNG] \"\n");
  auto m = make_message(kRaw, "a@b.example", {"c@d.example"});
  ASSERT_TRUE(apply(rs, *m).error.empty());
  const std::string s = header(*m, "Subject");
  EXPECT_TRUE(is_ascii(s)) << s;
  EXPECT_EQ(decode_text(s), "[PRÜFUNG] Your invoice");
  // Applying the stage again does not prefix twice.
  ASSERT_TRUE(apply(rs, *m).error.empty());
  EXPECT_EQ(decode_text(header(*m, "Subject")), "[PRÜFUNG] Your invoice");

  auto none = make_message("From: a@b.example\r\n\r\nx\r\n", "a@b.example", {"c@d.example"});
  ASSERT_TRUE(apply(rs, *none).error.empty());
  EXPECT_EQ(decode_text(header(*none, "Subject")), "[PRÜFUNG]");

  auto glued = rules("subject_prefix: \"Ä:\"\n");
  auto plain = make_message("Subject: hello world\r\n\r\nx\r\n", "a@b.example", {"c@d.example"});
  ASSERT_TRUE(apply(glued, *plain).error.empty());
  EXPECT_EQ(decode_text(header(*plain, "Subject")), "Ä:hello world");
}

TEST(RewriteSubject, UpdatesTheMimeViewTheStoreShows) {
  auto rs = rules("subject_prefix: \"[STAGING] \"\noverride_from: noreply@staging.example\n");
  auto m = make_message(kRaw, "a@b.example", {"c@d.example"});
  m->attributes["mime"] = boost::json::object{
      {"subject", "Your invoice"},
      {"from", boost::json::object{{"name", "Jane Doe"}, {"address", "jane@app.example"}}},
      {"text", "Body line"}};
  ASSERT_TRUE(apply(rs, *m).error.empty());
  const auto& view = m->attributes.at("mime").as_object();
  EXPECT_EQ(json_string(view.at("subject")), "[STAGING] Your invoice");
  EXPECT_EQ(json_string(view.at("from").at("address")), "noreply@staging.example");
  EXPECT_EQ(json_string(view.at("from").at("name")), "Jane Doe");
  EXPECT_EQ(json_string(view.at("text")), "Body line");
}

// ---------------------------------------------------------------- encoding helpers

TEST(RewriteText, EncodedWordsStayWithinLimitsAndRoundTrip) {
  std::string longtext;
  for (int i = 0; i < 40; ++i)
    longtext += "日本語のテキスト ";
  const std::string enc = encode_text(longtext);
  EXPECT_TRUE(is_ascii(enc));
  std::size_t start = 0;
  while (start < enc.size()) {
    std::size_t sp = enc.find(' ', start);
    std::size_t len = (sp == std::string::npos ? enc.size() : sp) - start;
    EXPECT_LE(len, 75u);
    if (sp == std::string::npos) break;
    start = sp + 1;
  }
  EXPECT_EQ(decode_text(enc), longtext);
  EXPECT_EQ(encode_text("plain ascii stays"), "plain ascii stays");
  EXPECT_EQ(decode_text(encode_text("mixed Ünïcödé and ascii")), "mixed Ünïcödé and ascii");
  EXPECT_EQ(encode_phrase("Doe, Jane \"JD\""), "\"Doe, Jane \\\"JD\\\"\"");
}

TEST(RewriteRegex, ReplacementTemplatesAreChecked) {
  regex re("^(a)(?<b>b)$", false);
  EXPECT_NO_THROW(re.check_replacement("$1${2}${b}$$"));
  EXPECT_THROW(re.check_replacement("$3"), std::invalid_argument);
  EXPECT_THROW(re.check_replacement("${nope}"), std::invalid_argument);
  EXPECT_THROW(re.check_replacement("$"), std::invalid_argument);
  EXPECT_THROW(re.check_replacement("${1"), std::invalid_argument);
  EXPECT_EQ(re.replace("ab", "[$2$1]"), "[ba]");
  EXPECT_FALSE(re.replace("abc", "x"));
}

// ---------------------------------------------------------------- validation at load

TEST(RewriteConfig, BadRegexIsAConfigErrorWithItsLocation) {
  const std::string e = load_error("recipients:\n  - {regex: 'a(b', to: x@y.example}\n");
  EXPECT_NE(e.find("rewrite.yaml:2:"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid regular expression"), std::string::npos) << e;
  EXPECT_NE(e.find("recipients[0].regex"), std::string::npos) << e;
}

TEST(RewriteConfig, EveryBadRuleNamesItsPlace) {
  struct bad {
    std::string yaml;
    std::string where;
    std::string what;
  };
  const std::vector<bad> cases = {
      {"recipients:\n  - {regex: '(a)', to: '$2'}\n", "rewrite.yaml:2:", "group $2"},
      {"recipients:\n  - {regex: '(a)', to: '$${x}'}\n",
       "rewrite.yaml:2:", "no group of that name"},
      {"recipients:\n  - {regex: '(a)', to: '$x'}\n", "rewrite.yaml:2:", "no group of that name"},
      {"recipients:\n  - {regex: '(a)', to: '$%'}\n", "rewrite.yaml:2:", "followed by"},
      {"recipients:\n  - {match: a@b.example, regex: a, to: x@y.example}\n",
       "rewrite.yaml:2:", "exactly one of match or regex"},
      {"recipients:\n  - {match: not-an-address, to: x@y.example}\n",
       "rewrite.yaml:2:", "has no @domain"},
      {"recipients:\n  - {match: '*', to: 'two words@y.example'}\n",
       "rewrite.yaml:2:", "is not an address"},
      {"recipients:\n  - {match: '*'}\n", "rewrite.yaml:2:", "missing required key"},
      {"sender:\n  - {match: '@bad domain', to: x@y.example}\n",
       "rewrite.yaml:2:", "not allowed in a domain"},
      {"headers:\n  - {op: replace, name: X-A, value: b}\n",
       "rewrite.yaml:2:", "unknown op \"replace\""},
      {"headers:\n  - {op: set, name: 'X A', value: b}\n",
       "rewrite.yaml:2:", "not a valid header field name"},
      {"headers:\n  - {op: set, name: 'X:A', value: b}\n",
       "rewrite.yaml:2:", "not a valid header field name"},
      {"headers:\n  - {op: set, name: X-A, value: \"b\\r\\nBcc: victim@x.example\"}\n",
       "rewrite.yaml:2:", "inject a header field"},
      {"headers:\n  - {op: add, name: X-A, value: \"b\\nc\"}\n", "rewrite.yaml:2:", "line break"},
      {"headers:\n  - {op: set, name: Message-ID, value: \"<ü@x>\"}\n",
       "rewrite.yaml:2:", "structured field"},
      {"headers:\n  - {op: rename, name: X-A, to: 'bad name'}\n",
       "rewrite.yaml:2:", "not a valid header field name"},
      {"headers:\n  - {op: remove, name: X-A, value: x}\n", "rewrite.yaml:2:", "unknown key"},
      {"headers:\n  - {op: set, name: X-A, value: b, when: {}}\n",
       "rewrite.yaml:2:", "sender and/or recipient"},
      {"headers:\n  - {op: set, name: X-A, value: b, when: {sender: '[x'}}\n",
       "rewrite.yaml:2:", "invalid regular expression"},
      {"headers:\n  - {op: remove, name: X-A, label: \"\"}\n",
       "rewrite.yaml:2:", "1 to 100 characters"},
      {"override_from: not-an-address\n", "rewrite.yaml:1:", "has no @domain"},
      {"subject_prefix: \"a\\rb\"\n", "rewrite.yaml:1:", "line break"},
      {"subject_prefix: \"  \"\n", "rewrite.yaml:1:", "must not be empty"},
      {"original_to_header: true\n", "rewrite.yaml:1:", "has no rules"},
      {"recipients:\n  - {match: '*', to: x@y.example, bogus: 1}\n",
       "rewrite.yaml:2:", "unknown key"},
  };
  for (const auto& c : cases) {
    const std::string e = load_error(c.yaml);
    EXPECT_NE(e.find(c.where), std::string::npos) << c.yaml << " -> " << e;
    EXPECT_NE(e.find(c.what), std::string::npos) << c.yaml << " -> " << e;
  }
}

// ---------------------------------------------------------------- the plugin

TEST(RewritePlugin, StageRewritesAndFailsClosed) {
  test::plugin_host host;
  auto stage = host.make_stage("rewrite", R"(
recipients:
  - {match: "*", to: qa@staging.example}
override_from: noreply@staging.example
subject_prefix: "[STAGING] "
)");
  auto m = make_message(kRaw, "jane@app.example", {"bob@customer.example", "x@y.example"});
  stage_call call;
  call.log = logger("rewrite");
  verdict v = host.run(stage->process(m, call));
  EXPECT_EQ(v.kind, verdict_kind::continue_);
  EXPECT_EQ(rcpts(*m), (std::vector<std::string>{"qa@staging.example"}));
  EXPECT_EQ(header(*m, "Subject"), "[STAGING] Your invoice");

  auto bad = host.make_stage("rewrite", "recipients:\n  - {regex: '^(a+)+$', to: x@y.example}\n");
  auto m2 = make_message(kRaw, "jane@app.example", {std::string(40, 'a') + "b@c.example"});
  verdict v2 = host.run(bad->process(m2, call));
  EXPECT_EQ(v2.kind, verdict_kind::tempfail);
  EXPECT_EQ(v2.reply.code, 451);
  EXPECT_EQ(v2.reply.enhanced, "4.3.0");

  EXPECT_THROW(host.make_stage("rewrite", "headers:\n  - {op: nope, name: X}\n"), config_error);
}
