// Unit tests of the HTML check (plugins/http/src/html_check.hpp): the Markdown of the
// descriptions, the data loader, what is found in a document and how it is scored, and the
// real caniemail data when the build has it.
#include "html_check.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>

#include <boost/json.hpp>

namespace json = boost::json;
using sluice::http::markdown_to_html;
using sluice::http::parse_html_check_data;
using sluice::http::run_html_check;

namespace {

// caniemail's format: four clients, one of them with an unknown result.
std::string stats(std::string_view apple = "a #1") {
  return R"({"gmail": {"desktop-webmail": {"2020-01": "y"}},
             "outlook": {"windows": {"2019": "n #2"}},
             "apple-mail": {"macos": {"12": ")" +
         std::string(apple) + R"("}},
             "thunderbird": {"macos": {"60": "u"}}})";
}

std::string feature(std::string_view slug, std::string_view s) {
  std::string sl(slug);
  return R"j({"slug": ")j" + sl + R"j(", "title": "T )j" + sl + R"j(", "description": "Uses `<)j" +
         sl +
         R"j(>` [more](https://example.com/x)", "url": "https://www.caniemail.com/features/)j" +
         sl + R"j(/", "category": "css", "tags": ["a"], "keywords": "k",
         "notes_by_num": {"1": "Only **some**.", "2": "_Never_."}, "stats": )j" +
         std::string(s) + "}";
}

std::string data_set() {
  const char* slugs[] = {"html-svg",
                         "html-body",
                         "html-style",
                         "css-display-flex",
                         "css-display",
                         "css-at-media",
                         "css-at-media-prefers-color-scheme",
                         "css-pseudo-class-hover",
                         "css-unit-rem",
                         "css-important",
                         "css-background-color",
                         "css-width",
                         "css-font-size",
                         "image-webp",
                         "image-base64"};
  std::string out = R"({"api_version": "1.0.4", "nicenames": {"family": {"gmail": "Gmail",
      "outlook": "Outlook", "apple-mail": "Apple Mail", "thunderbird": "Mozilla Thunderbird"},
      "platform": {"desktop-webmail": "Desktop Webmail", "windows": "Windows",
      "macos": "macOS"}}, "data": [)";
  bool first = true;
  for (const char* s : slugs) {
    if (!first) out += ",";
    first = false;
    // html-svg: every client supports it (no partial or unsupported share).
    out += feature(s, std::string_view(s) == "css-font-size"
                          ? R"({"gmail": {"desktop-webmail": {"2020-01": "y"}}})"
                          : stats());
  }
  return out + "]}";
}

const char* kDocument = R"(<!DOCTYPE html>
<html><head><meta charset="utf-8"><style>
/* a:hover in a comment does not count */
@media (prefers-color-scheme: dark) { .box p { color: white } }
a:hover { color: red }
div.box > p { display: flex; }
#main td { font-size: 12px }
</style></head><body>
<div class="box" id="main"><p>one</p><p style="display: block">two</p>
<svg></svg><svg></svg>
<img src="https://example.com/a.WEBP?x=1"><img src="b.png"><img src="data:image/png;base64,AA==">
<table bgcolor="#fff" width="10"><tr><td style="background-color: red; padding: 1.5rem !important">x</td></tr></table>
<script>alert(1)</script><script type="application/ld+json">{}</script>
</div></body></html>)";

const json::object* warning(const json::object& r, std::string_view slug) {
  for (const auto& w : r.at("Warnings").as_array())
    if (w.at("Slug").as_string() == slug) return &w.as_object();
  return nullptr;
}

std::int64_t found(const json::object& r, std::string_view slug) {
  const auto* w = warning(r, slug);
  return w ? w->at("Score").at("Found").to_number<std::int64_t>() : 0;
}

}  // namespace

TEST(HtmlCheckMarkdown, CodeLinksEmphasisAndEscapes) {
  EXPECT_EQ(markdown_to_html("Only through a `<link>` tag & more."),
            "Only through a <code>&lt;link&gt;</code> tag &amp; more.");
  EXPECT_EQ(markdown_to_html("See [this article](https://e.example/a?b=1&c=2)."),
            "See <a href=\"https://e.example/a?b=1&amp;c=2\" target=\"_blank\">this article</a>.");
  EXPECT_EQ(markdown_to_html("**Buggy**, *partly* and _filtered_a_ but snake_case_word"),
            "<strong>Buggy</strong>, <em>partly</em> and <em>filtered_a</em> but snake_case_word");
  EXPECT_EQ(markdown_to_html("The universal selector (`*`) and 2 * 3"),
            "The universal selector (<code>*</code>) and 2 * 3");
  EXPECT_EQ(markdown_to_html("<b>\"x\"</b>"), "&lt;b&gt;&quot;x&quot;&lt;/b&gt;");
  EXPECT_EQ(markdown_to_html("an [unclosed link"), "an [unclosed link");
  // Balanced parentheses in a URL; caniemail's relative links; no other schemes.
  EXPECT_EQ(markdown_to_html("[MS](https://e.example/ms533742(v=vs.85))."),
            "<a href=\"https://e.example/ms533742(v=vs.85)\" target=\"_blank\">MS</a>.");
  EXPECT_EQ(markdown_to_html("[svg](/features/html-svg/)"),
            "<a href=\"https://www.caniemail.com/features/html-svg/\" target=\"_blank\">svg</a>");
  EXPECT_EQ(markdown_to_html("[x](javascript:alert(1)) [y](https://e.example/\"q)"),
            "x <a href=\"https://e.example/&quot;q\" target=\"_blank\">y</a>");
}

TEST(HtmlCheckData, RefusesWhatIsNotCaniemailData) {
  EXPECT_THROW(parse_html_check_data("not json"), std::runtime_error);
  EXPECT_THROW(parse_html_check_data("[]"), std::runtime_error);
  EXPECT_THROW(parse_html_check_data("{}"), std::runtime_error);
  EXPECT_THROW(parse_html_check_data(R"({"data": []})"), std::runtime_error);
  try {
    parse_html_check_data(R"({"data": 3})");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "no \"data\" array");
  }
}

TEST(HtmlCheck, FindsHtmlAndCssFeaturesAndScoresThem) {
  auto data = parse_html_check_data(data_set());
  auto r = run_html_check(*data, kDocument);

  // With </body> in the source: every element but html, head and meta (Mailpit's count):
  // style, body, div, p, p, svg, svg, img ×3, table, tr, td, script ×2 (libxml2 adds no tbody).
  EXPECT_EQ(r.at("Total").at("Nodes").as_uint64(), 15u) << json::serialize(r);
  // Every feature of the data set has a test, plus the <script> one.
  EXPECT_EQ(r.at("Total").at("Tests").as_uint64(), 16u);

  EXPECT_EQ(found(r, "html-svg"), 2);
  EXPECT_EQ(found(r, "html-body"), 1);
  EXPECT_EQ(found(r, "html-style"), 1);
  EXPECT_EQ(found(r, "html-script"), 1);  // the JSON-LD script is not JavaScript
  // div.box > p gives the first <p> display: flex; the second's own display: block wins.
  EXPECT_EQ(found(r, "css-display-flex"), 1);
  EXPECT_EQ(found(r, "css-display"), 2);
  // #main td merges font-size into the cell (descendant combinator, id selector).
  EXPECT_EQ(found(r, "css-font-size"), 1);
  EXPECT_EQ(found(r, "css-at-media"), 1);
  EXPECT_EQ(found(r, "css-at-media-prefers-color-scheme"), 1);
  EXPECT_EQ(found(r, "css-pseudo-class-hover"), 1);  // not the one in the comment
  EXPECT_EQ(found(r, "css-unit-rem"), 1);            // 1.5rem
  EXPECT_EQ(found(r, "css-important"), 1);
  EXPECT_EQ(found(r, "css-background-color"), 2);  // bgcolor="#fff" and background-color
  EXPECT_EQ(found(r, "css-width"), 1);             // width="10"
  EXPECT_EQ(found(r, "image-webp"), 1);            // .WEBP before a query
  EXPECT_EQ(found(r, "image-base64"), 1);

  // A warning: the data's fields, the Markdown as HTML, the clients' results (the unknown
  // one left out), the score from them.
  const auto* svg = warning(r, "html-svg");
  ASSERT_NE(svg, nullptr);
  EXPECT_EQ(svg->at("Title").as_string(), "T html-svg");
  EXPECT_EQ(svg->at("Description").as_string(),
            "Uses <code>&lt;html-svg&gt;</code> <a href=\"https://example.com/x\" "
            "target=\"_blank\">more</a>");
  EXPECT_EQ(svg->at("URL").as_string(), "https://www.caniemail.com/features/html-svg/");
  EXPECT_EQ(svg->at("Category").as_string(), "css");
  EXPECT_EQ(svg->at("Tags").as_array().size(), 1u);
  EXPECT_EQ(svg->at("NotesByNumber").at("1").as_string(), "Only <strong>some</strong>.");
  const auto& results = svg->at("Results").as_array();
  ASSERT_EQ(results.size(), 3u);
  std::map<std::string, json::object> by_family;
  for (const auto& x : results)
    by_family[std::string(x.at("Family").as_string())] = x.as_object();
  EXPECT_EQ(by_family["gmail"].at("Support").as_string(), "yes");
  EXPECT_EQ(by_family["gmail"].at("Name").as_string(), "Gmail Desktop Webmail (2020-01)");
  EXPECT_EQ(by_family["outlook"].at("Support").as_string(), "no");
  EXPECT_EQ(by_family["outlook"].at("NoteNumber").as_string(), "2");
  EXPECT_EQ(by_family["apple-mail"].at("Support").as_string(), "partial");
  EXPECT_EQ(by_family["apple-mail"].at("NoteNumber").as_string(), "1");
  EXPECT_EQ(by_family["apple-mail"].at("Platform").as_string(), "macos");
  EXPECT_EQ(by_family["apple-mail"].at("Version").as_string(), "12");
  EXPECT_EQ(by_family.count("thunderbird"), 0u);
  const auto& score = svg->at("Score").as_object();
  EXPECT_NEAR(score.at("Supported").as_double(), 100.0 / 3, 1e-9);
  EXPECT_NEAR(score.at("Partial").as_double(), 100.0 / 3, 1e-9);
  EXPECT_NEAR(score.at("Unsupported").as_double(), 100.0 / 3, 1e-9);

  // The total: the worst weighted share of any warning (Mailpit's formula); html-script
  // (100% unsupported, found once) against html-svg (33.3% found twice) and the rest.
  const auto& total = r.at("Total").as_object();
  EXPECT_NEAR(total.at("Unsupported").as_double(), 100.0 / 15, 1e-9);
  EXPECT_NEAR(total.at("Partial").as_double(), 100.0 / 3 * 2 / 15, 1e-9);
  EXPECT_NEAR(total.at("Supported").as_double(),
              100 - total.at("Unsupported").as_double() - total.at("Partial").as_double(), 1e-9);

  // Worst first by (partial + unsupported) × found, ties by slug: the three found twice
  // (66.7 × 2), then html-script (100 × 1); the fully supported font-size comes last.
  const auto& ws = r.at("Warnings").as_array();
  ASSERT_GE(ws.size(), 4u);
  EXPECT_EQ(ws[0].at("Slug").as_string(), "css-background-color");
  EXPECT_EQ(ws[1].at("Slug").as_string(), "css-display");
  EXPECT_EQ(ws[2].at("Slug").as_string(), "html-svg");
  EXPECT_EQ(ws[3].at("Slug").as_string(), "html-script");
  EXPECT_EQ(ws.back().at("Slug").as_string(), "css-font-size");

  // Platforms: each platform's client families, sorted.
  const auto& p = r.at("Platforms").as_object();
  EXPECT_EQ(json::serialize(p.at("macos")), R"(["Apple Mail","Mozilla Thunderbird"])");
  EXPECT_EQ(json::serialize(p.at("windows")), R"(["Outlook"])");
}

TEST(HtmlCheck, WithoutBodyCountsTheBodyContentAndScripts) {
  auto data = parse_html_check_data(data_set());
  auto r = run_html_check(*data, "<p>Hello <b>there</b></p><svg></svg>");
  EXPECT_EQ(r.at("Total").at("Nodes").as_uint64(), 3u) << json::serialize(r);
  EXPECT_EQ(found(r, "html-body"), 0);
  EXPECT_EQ(found(r, "html-svg"), 1);
}

TEST(HtmlCheck, RulesInAtRulesAndPseudoSelectorsAreNotMerged) {
  auto data = parse_html_check_data(data_set());
  auto r = run_html_check(*data, R"(<style>
    @media (max-width: 600px) { p { display: flex } }
    p:first-child { display: flex }
    p + p { display: flex }
    [data-x^="a"] { display: flex }
  </style><p>a</p><p data-x="ab">b</p>)");
  EXPECT_EQ(found(r, "css-display-flex"), 0) << json::serialize(r);
  EXPECT_EQ(found(r, "css-at-media"), 1);
}

TEST(HtmlCheck, SelectorsMergeAsCssApplies) {
  auto data = parse_html_check_data(data_set());
  auto r = run_html_check(*data, R"(<style><!--
    .a p { display: flex }            /* an ancestor, not the parent */
    .b > p { font-size: 1rem }        /* the parent only */
    [data-k=v], #x { width: 1rem }    /* a list: attribute value, id */
    p { display: block !important }   /* loses to nothing but another !important */
    span.s { display: flex }
    .s { display: block }             /* less specific than span.s */
  --></style>
  <div class="a"><section class="b"><p>1</p></section><div><p>2</p></div></div>
  <p data-k="v">3</p><p id="x" data-k="w">4</p><span class="s q">5</span>
  <p style="display: flex">6</p>)");
  // 1 and 2 match .a p, but p's !important block wins over every flex (also the inline one);
  // span.s (specificity 11) beats .s (10).
  EXPECT_EQ(found(r, "css-display-flex"), 1) << json::serialize(r);
  EXPECT_EQ(found(r, "css-font-size"), 1);  // only 1: its parent is .b
  EXPECT_EQ(found(r, "css-width"), 2);      // 3 ([data-k=v]) and 4 (#x)
  EXPECT_EQ(found(r, "css-unit-rem"), 3);
  EXPECT_EQ(found(r, "css-display"), 6);  // the five p and the span
}

TEST(HtmlCheck, GarbageAndDeepDocumentsAreChecked) {
  auto data = parse_html_check_data(data_set());
  for (std::string_view html : {std::string_view(""), std::string_view("<<<>>>&&&"),
                                std::string_view("\0\xff\xfe", 3), std::string_view("<style>")}) {
    auto r = run_html_check(*data, html);
    EXPECT_TRUE(r.contains("Warnings"));
  }
  std::string deep;
  for (int i = 0; i < 50000; ++i)
    deep += "<div style=\"width: 1rem\">";
  auto r = run_html_check(*data, deep);
  // libxml2 stops nesting at 256 levels; every div it kept has its rem.
  EXPECT_EQ(static_cast<std::uint64_t>(found(r, "css-unit-rem")),
            r.at("Total").at("Nodes").as_uint64())
      << json::serialize(r.at("Total"));
}

// Many rules and many elements: the merging stops at its budget instead of running for
// elements × rules × depth selector tests.
TEST(HtmlCheck, StyleMergingIsBounded) {
  auto data = parse_html_check_data(data_set());
  std::string html = "<style>";
  for (int i = 0; i < 5000; ++i)
    html += "div div div .c" + std::to_string(i) + " { display: flex }\n";
  html += "</style>";
  for (int i = 0; i < 200; ++i)
    html += "<div>";
  for (int i = 0; i < 2000; ++i)
    html += "<p>x</p>";
  auto start = std::chrono::steady_clock::now();
  auto r = run_html_check(*data, html);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  // The last rule matches every <p>, but the budget runs out before the last elements.
  (void)ms;
  html.insert(html.find("</style>"), "p { display: flex }\n");
  r = run_html_check(*data, html);
  EXPECT_GT(found(r, "css-display-flex"), 0);
  EXPECT_LT(found(r, "css-display-flex"), 2000);
}

// Inputs that once needed memory or time out of proportion to their size.
TEST(HtmlCheck, HostileStyleSheetsStayProportionate) {
  auto data = parse_html_check_data(data_set());
  // A 200,000-selector list: cut at 10,000 rules (p is among them), declarations stored once.
  std::string list = "<style>p,";
  for (int i = 0; i < 200000; ++i)
    list += "b,";
  list += "p { width: 1rem; padding: " + std::string(10000, 'x') + " }</style><p>x</p>";
  auto r = run_html_check(*data, list);
  EXPECT_EQ(found(r, "css-width"), 1);
  // 100,000 @media without a block: each prelude ends at the next @.
  std::string media = "<style>";
  for (int i = 0; i < 100000; ++i)
    media += "@media";
  media += "</style>";
  r = run_html_check(*data, media);
  EXPECT_EQ(found(r, "css-at-media"), 100000);
  // One 1 MB value merged into 20,000 elements is analyzed once.
  std::string big = "<style>* { background-color: rgb(" + std::string(1 << 20, '1') + ") }</style>";
  for (int i = 0; i < 20000; ++i)
    big += "<i></i>";
  r = run_html_check(*data, big);
  EXPECT_GT(found(r, "css-background-color"), 20000);
}

#ifdef SLUICE_CANIEMAIL_JSON
// The data the build installs (scripts/install-deps.sh): it loads, and a common document
// gets warnings with real clients.
TEST(HtmlCheckRealData, LoadsAndChecks) {
  auto data = sluice::http::load_html_check_data(SLUICE_CANIEMAIL_JSON);
  auto r = run_html_check(*data, kDocument);
  EXPECT_EQ(found(r, "css-display-flex"), 1);
  EXPECT_EQ(found(r, "html-svg"), 2);
  const auto* w = warning(r, "css-display-flex");
  ASSERT_NE(w, nullptr);
  EXPECT_GT(w->at("Results").as_array().size(), 20u);
  EXPECT_EQ(w->at("URL").as_string(), "https://www.caniemail.com/features/css-display-flex/");
  EXPECT_TRUE(r.at("Platforms").as_object().contains("ios"));
  EXPECT_GT(r.at("Total").at("Tests").as_uint64(), 150u);
}
#endif
