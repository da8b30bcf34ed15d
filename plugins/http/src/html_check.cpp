// html_check.cpp — Mailpit's HTML check: see html_check.hpp.
#include "html_check.hpp"

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "html_escape.hpp"
#include "sluice/text.hpp"

namespace sluice::http {
namespace json = boost::json;

class html_check_data {
 public:
  struct feature {
    json::object warning;  // the HTMLCheckWarning, Score.Found 0
    double partial = 0;
    double unsupported = 0;
  };
  std::unordered_map<std::string, feature> features;
  json::object platforms;
};

namespace {

// ---- text helpers (sluice/text.hpp has iequals, to_lower_ascii, trim) ----

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}
bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool is_ident(char c) {
  return is_word(c) || c == '-' || static_cast<unsigned char>(c) >= 0x80;
}

bool ends_with_icase(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}

// ---- the data ----

std::string_view str(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

const json::object* obj(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_object() ? &v->get_object() : nullptr;
}

std::string nice(const json::object* names, std::string_view key) {
  if (names)
    if (const auto* v = names->if_contains(key); v && v->is_string())
      return std::string(v->get_string());
  return std::string(key);
}

// "y", "n #1", "a #2 #3", "u": yes, no, partial; nullopt for unknown.
std::optional<std::string_view> support_of(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  switch (s.front()) {
    case 'y':
      return "yes";
    case 'n':
      return "no";
    case 'a':
      return "partial";
    default:
      return std::nullopt;
  }
}

// The last "#N" of a support value (as Mailpit), "" without one.
std::string note_of(std::string_view s) {
  auto hash = s.rfind('#');
  if (hash == std::string_view::npos) return {};
  std::string digits;
  for (auto i = hash + 1; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i)
    digits += s[i];
  return digits;
}

// ---- the document ----

constexpr std::size_t kUnits = 7;  // unit_tests() below
struct declaration {
  std::string value;  // without !important
  bool important = false;
  // What the value holds, found once per declaration (analyze, below), not per element it
  // applies to: bit i for value_needles()[i]; occurrences per unit of unit_tests().
  std::uint32_t contains = 0;
  std::array<std::uint32_t, kUnits> units{};
};
using declarations = std::vector<std::pair<std::string, declaration>>;
// Property (lower case) → declaration; both point into declarations that outlive the map.
using style_map = std::map<std::string_view, const declaration*, std::less<>>;

// Parses "a: b; c: d !important" (declarations of a style attribute or a rule's block).
declarations parse_declarations(std::string_view s) {
  declarations out;
  std::size_t start = 0;
  int depth = 0;
  char quote = 0;
  auto flush = [&](std::size_t end) {
    auto d = s.substr(start, end - start);
    auto colon = d.find(':');
    if (colon == std::string_view::npos) return;
    auto prop = trim(d.substr(0, colon));
    auto value = trim(d.substr(colon + 1));
    if (prop.empty()) return;
    declaration decl;
    auto bang = value.rfind('!');
    if (bang != std::string_view::npos && iequals(trim(value.substr(bang + 1)), "important")) {
      decl.important = true;
      value = trim(value.substr(0, bang));
    }
    decl.value = std::string(value);
    out.emplace_back(to_lower_ascii(prop), std::move(decl));
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (depth > 0) --depth;
    } else if (c == ';' && depth == 0) {
      flush(i);
      start = i + 1;
    }
  }
  flush(s.size());
  return out;
}

// A later declaration wins unless the earlier one is !important and it is not.
void apply(style_map& m, std::string_view prop, const declaration* d) {
  auto [it, fresh] = m.emplace(prop, d);
  if (!fresh && (d->important || !it->second->important)) it->second = d;
}

struct element {
  std::string tag;  // lower case (libxml2 lowercases HTML names)
  int parent = -1;  // index of the parent element, -1 at the top
  bool in_body = false;
  std::vector<std::pair<std::string, std::string>> attrs;  // names in lower case
  const std::string* id = nullptr;                         // into attrs
  std::vector<std::string_view> classes;                   // into attrs
  declarations inline_style;                               // the style attribute
  style_map style;  // merged: matching style rules, then the style attribute
};

// The attribute's value, nullptr without it; `name` in lower case.
const std::string* attr(const element& e, std::string_view name) {
  for (const auto& [n, v] : e.attrs)
    if (n == name) return &v;
  return nullptr;
}

std::string text_of(xmlNode* n) {
  std::string out;
  for (xmlNode* c = n->children; c; c = c->next)
    if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) && c->content)
      out += reinterpret_cast<const char*>(c->content);
  return out;
}

// ---- style sheets: the rules that are merged into elements ----

struct compound {
  std::string tag;  // "" or "*": any
  std::string id;
  std::vector<std::string> classes;
  std::vector<std::pair<std::string, std::optional<std::string>>> attrs;  // [a] or [a=v]
};
struct selector {
  std::vector<compound> parts;    // left to right
  std::vector<char> combinators;  // between parts: ' ' descendant, '>' child
  int specificity = 0;
};
struct style_rule {
  selector sel;
  const declarations* decls = nullptr;  // shared by the selectors of one list
};
constexpr int kMaxSimpleSelectors = 32;  // per complex selector; longer ones are not merged

// One complex selector of the supported kinds, nullopt for anything else.
std::optional<selector> parse_selector(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  selector out;
  std::size_t i = 0;
  char pending = 0;
  int simple = 0;
  while (i < s.size()) {
    if (is_space(s[i]) || s[i] == '>') {
      char comb = ' ';
      while (i < s.size() && (is_space(s[i]) || s[i] == '>')) {
        if (s[i] == '>') comb = '>';
        ++i;
      }
      if (out.parts.empty()) return std::nullopt;
      pending = comb;
      continue;
    }
    compound c;
    auto ident = [&]() {
      std::size_t b = i;
      while (i < s.size() && is_ident(s[i]))
        ++i;
      return std::string(s.substr(b, i - b));
    };
    if (s[i] == '*') {
      c.tag = "*";
      ++i;
    } else if (is_ident(s[i])) {
      c.tag = to_lower_ascii(ident());
    }
    while (i < s.size() && !is_space(s[i]) && s[i] != '>') {
      if (s[i] == '#') {
        ++i;
        c.id = ident();
        if (c.id.empty()) return std::nullopt;
        out.specificity += 100;
      } else if (s[i] == '.') {
        ++i;
        auto cls = ident();
        if (cls.empty()) return std::nullopt;
        c.classes.push_back(std::move(cls));
        out.specificity += 10;
      } else if (s[i] == '[') {
        auto close = s.find(']', i);
        if (close == std::string_view::npos) return std::nullopt;
        auto inner = trim(s.substr(i + 1, close - i - 1));
        i = close + 1;
        auto eq = inner.find('=');
        if (eq == std::string_view::npos) {
          if (inner.empty()) return std::nullopt;
          c.attrs.emplace_back(to_lower_ascii(inner), std::nullopt);
        } else {
          auto name = trim(inner.substr(0, eq));
          if (name.empty() || !is_ident(name.back())) return std::nullopt;  // ^= *= …
          auto value = trim(inner.substr(eq + 1));
          if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
              value.back() == value.front()) {
            value = value.substr(1, value.size() - 2);
          }
          c.attrs.emplace_back(to_lower_ascii(name), std::string(value));
        }
        out.specificity += 10;
      } else {
        return std::nullopt;  // pseudo-classes, + and ~, namespaces: not merged
      }
    }
    if (c.tag.empty() && c.id.empty() && c.classes.empty() && c.attrs.empty()) return std::nullopt;
    simple += 1 + static_cast<int>(c.classes.size() + c.attrs.size()) + (c.id.empty() ? 0 : 1);
    if (simple > kMaxSimpleSelectors) return std::nullopt;
    if (!c.tag.empty() && c.tag != "*") out.specificity += 1;
    if (!out.parts.empty()) out.combinators.push_back(pending ? pending : ' ');
    pending = 0;
    out.parts.push_back(std::move(c));
  }
  if (out.parts.empty() || pending) return std::nullopt;
  return out;
}

std::string strip_comments(std::string_view css) {
  std::string out;
  out.reserve(css.size());
  for (std::size_t i = 0; i < css.size(); ++i) {
    // The <!-- and --> around a sheet (common in mail) are ignored by CSS at the top level.
    if (css.substr(i, 4) == "<!--" || css.substr(i, 3) == "-->") {
      const std::size_t n = css[i] == '<' ? 4 : 3;
      out.append(n, ' ');
      i += n - 1;
      continue;
    }
    if (css[i] == '/' && i + 1 < css.size() && css[i + 1] == '*') {
      auto end = css.find("*/", i + 2);
      if (end == std::string_view::npos) break;
      i = end + 1;
      out += ' ';
    } else {
      out += css[i];
    }
  }
  return out;
}

// The top-level style rules of a style sheet (comments stripped); at-rules are skipped.
void parse_rules(std::string_view css, std::vector<style_rule>& rules,
                 std::deque<declarations>& blocks, std::size_t max_rules) {
  std::size_t i = 0;
  while (i < css.size() && rules.size() < max_rules) {
    auto open = css.find_first_of("{;", i);
    if (open == std::string_view::npos) return;
    auto prelude = trim(css.substr(i, open - i));
    if (css[open] == ';') {  // @import, @charset, or junk
      i = open + 1;
      continue;
    }
    // The block's end, nested blocks included.
    std::size_t j = open + 1;
    int depth = 1;
    for (; j < css.size() && depth > 0; ++j) {
      if (css[j] == '{') ++depth;
      if (css[j] == '}') --depth;
    }
    auto body = css.substr(open + 1, (depth == 0 ? j - 1 : j) - open - 1);
    i = j;
    if (prelude.empty() || prelude.front() == '@') continue;
    auto decls = parse_declarations(body);
    if (decls.empty()) continue;
    blocks.push_back(std::move(decls));
    const declarations* shared = &blocks.back();
    // A selector list: split at commas outside brackets and parentheses.
    std::size_t start = 0;
    int nest = 0;
    for (std::size_t k = 0; k <= prelude.size() && rules.size() < max_rules; ++k) {
      if (k < prelude.size()) {
        char c = prelude[k];
        if (c == '[' || c == '(') ++nest;
        if ((c == ']' || c == ')') && nest > 0) --nest;
        if (c != ',' || nest > 0) continue;
      }
      if (auto sel = parse_selector(prelude.substr(start, k - start))) {
        rules.push_back({std::move(*sel), shared});
      }
      start = k + 1;
    }
  }
}

bool has_class(const element& e, std::string_view cls) {
  return std::find(e.classes.begin(), e.classes.end(), cls) != e.classes.end();
}

bool matches(const compound& c, const element& e) {
  if (!c.tag.empty() && c.tag != "*" && c.tag != e.tag) return false;
  if (!c.id.empty() && (!e.id || *e.id != c.id)) return false;
  for (const auto& cls : c.classes)
    if (!has_class(e, cls)) return false;
  for (const auto& [name, value] : c.attrs) {
    const auto* v = attr(e, name);
    if (!v || (value && *v != *value)) return false;
  }
  return true;
}

// Right to left from element `at`: a child combinator tries the parent only, a descendant
// combinator every ancestor in turn (each try matches the rest of the selector from there).
bool matches_from(const selector& s, int part, const std::vector<element>& els, int at,
                  std::size_t& budget) {
  if (budget == 0) return false;
  --budget;
  if (!matches(s.parts[part], els[at])) return false;
  if (part == 0) return true;
  char comb = s.combinators[part - 1];
  for (int p = els[at].parent; p >= 0; p = els[p].parent) {
    if (matches_from(s, part - 1, els, p, budget)) return true;
    if (comb == '>' || budget == 0) return false;
  }
  return false;
}

// ---- the tests ----

struct element_test {
  const char* slug;
  // Each alternative: tag ("" any), attribute (nullptr: none), value test.
  struct alt {
    const char* tag;
    const char* attr;
    enum { present, equals_icase, prefix } op;
    const char* value;
  };
  std::vector<alt> alts;
};

const std::vector<element_test>& element_tests() {
  using a = element_test::alt;
  static const std::vector<element_test> tests = {
      {"html-object", {{"object", nullptr, a::present, ""}, {"embed", nullptr, a::present, ""}}},
      {"html-link", {{"link", nullptr, a::present, ""}}},
      {"html-hr", {{"hr", nullptr, a::present, ""}}},
      {"html-dialog", {{"dialog", nullptr, a::present, ""}}},
      {"html-srcset", {{"", "srcset", a::present, ""}}},
      {"html-picture", {{"picture", nullptr, a::present, ""}}},
      {"html-svg", {{"svg", nullptr, a::present, ""}}},
      {"html-progress", {{"progress", nullptr, a::present, ""}}},
      {"html-required", {{"", "required", a::present, ""}}},
      {"html-meter", {{"meter", nullptr, a::present, ""}}},
      {"html-audio", {{"audio", nullptr, a::present, ""}}},
      {"html-form", {{"form", nullptr, a::present, ""}}},
      {"html-input-submit", {{"input", "type", a::equals_icase, "submit"}}},
      {"html-button-reset", {{"button", "type", a::equals_icase, "reset"}}},
      {"html-button-submit", {{"button", "type", a::equals_icase, "submit"}}},
      {"html-base", {{"base", nullptr, a::present, ""}}},
      {"html-input-checkbox", {{"input", "type", a::equals_icase, "checkbox"}}},
      {"html-input-hidden", {{"", "type", a::equals_icase, "hidden"}}},
      {"html-input-radio", {{"input", "type", a::equals_icase, "radio"}}},
      {"html-input-text", {{"input", "type", a::equals_icase, "text"}}},
      {"html-video", {{"video", nullptr, a::present, ""}}},
      {"html-semantics",
       {{"article", nullptr, a::present, ""},
        {"aside", nullptr, a::present, ""},
        {"details", nullptr, a::present, ""},
        {"figcaption", nullptr, a::present, ""},
        {"figure", nullptr, a::present, ""},
        {"footer", nullptr, a::present, ""},
        {"header", nullptr, a::present, ""},
        {"main", nullptr, a::present, ""},
        {"mark", nullptr, a::present, ""},
        {"nav", nullptr, a::present, ""},
        {"section", nullptr, a::present, ""},
        {"summary", nullptr, a::present, ""},
        {"time", nullptr, a::present, ""}}},
      {"html-select", {{"select", nullptr, a::present, ""}}},
      {"html-textarea", {{"textarea", nullptr, a::present, ""}}},
      {"html-anchor-links", {{"a", "href", a::prefix, "#"}}},
      {"html-style", {{"style", nullptr, a::present, ""}}},
      {"html-image-maps", {{"map", nullptr, a::present, ""}, {"img", "usemap", a::present, ""}}},
  };
  return tests;
}

bool matches(const element_test::alt& t, const element& e) {
  if (*t.tag && e.tag != t.tag) return false;
  if (!t.attr) return true;
  auto v = attr(e, t.attr);
  if (!v) return false;
  switch (t.op) {
    case element_test::alt::present:
      return true;
    case element_test::alt::equals_icase:
      return iequals(trim(*v), t.value);
    case element_test::alt::prefix:
      return v->starts_with(t.value);
  }
  return false;
}

// <img src> formats: by the extension of the path, or a data: URL.
struct image_test {
  const char* slug;
  std::vector<const char*> extensions;  // empty: data:image/
};
const std::vector<image_test>& image_tests() {
  static const std::vector<image_test> tests = {
      {"image-apng", {".apng"}}, {"image-avif", {".avif"}}, {"image-base64", {}},
      {"image-bmp", {".bmp"}},   {"image-gif", {".gif"}},   {"image-hdr", {".hdr"}},
      {"image-heif", {".heif"}}, {"image-ico", {".ico"}},   {"image-mp4", {".mp4"}},
      {"image-ppm", {".ppm"}},   {"image-svg", {".svg"}},   {"image-tiff", {".tif", ".tiff"}},
      {"image-webp", {".webp"}},
  };
  return tests;
}

// A CSS feature of merged declarations, per element.
struct css_test {
  const char* slug;
  std::vector<const char*> properties;   // any of these properties (a trailing '*': prefix)
  const char* value_contains = nullptr;  // with properties: the value must contain it (icase);
                                         // alone: any declaration's value contains it
  std::vector<const char*> attributes;   // HTML attributes that count the same
  bool important = false;                // any !important declaration
};

css_test props(const char* slug, std::vector<const char*> p, std::vector<const char*> attrs = {}) {
  return css_test{slug, std::move(p), nullptr, std::move(attrs), false};
}
css_test value(const char* slug, std::vector<const char*> p, const char* contains) {
  return css_test{slug, std::move(p), contains, {}, false};
}
css_test any_value(const char* slug, const char* contains) {
  return css_test{slug, {}, contains, {}, false};
}
css_test important(const char* slug) {
  return css_test{slug, {}, nullptr, {}, true};
}

const std::vector<css_test>& css_tests() {
  static const std::vector<css_test> tests = {
      props("css-accent-color", {"accent-color"}),
      props("css-align-items", {"align-items"}),
      props("css-animation", {"animation", "animation-*"}),
      props("css-aspect-ratio", {"aspect-ratio"}),
      props("css-backdrop-filter", {"backdrop-filter"}),
      props("css-background-blend-mode", {"background-blend-mode"}),
      props("css-background-clip", {"background-clip"}),
      props("css-background-color", {"background-color"}, {"bgcolor"}),
      props("css-background-image", {"background-image"}),
      props("css-background-origin", {"background-origin"}),
      props("css-background-position", {"background-position"}),
      props("css-background-repeat", {"background-repeat"}),
      props("css-background-size", {"background-size"}),
      props("css-background", {"background"}, {"background"}),
      props("css-block-inline-size", {"block-size", "inline-size"}),
      props("css-border-collapse", {"border-collapse"}),
      props("css-border-image", {"border-image", "border-image-*"}),
      props("css-border-inline-block", {"border-inline", "border-block"}),
      props("css-border-inline-block-individual",
            {"border-inline-start", "border-inline-end", "border-block-start", "border-block-end"}),
      props("css-border-radius", {"border-radius"}),
      props("css-border-spacing", {"border-spacing"}),
      props("css-border", {"border"}, {"border"}),
      props("css-box-shadow", {"box-shadow"}),
      props("css-box-sizing", {"box-sizing"}),
      props("css-caption-side", {"caption-side"}),
      props("css-clear", {"clear"}),
      props("css-clip-path", {"clip-path"}),
      props("css-color-scheme", {"color-scheme"}),
      props("css-column-count", {"column-count"}),
      props("css-column-layout-properties", {"columns", "column-*"}),
      any_value("css-conic-gradient", "conic-gradient("),
      props("css-cursor", {"cursor"}),
      props("css-direction", {"direction"}),
      value("css-display-flex", {"display"}, "flex"),
      value("css-display-grid", {"display"}, "grid"),
      value("css-display-none", {"display"}, "none"),
      props("css-display", {"display"}),
      props("css-filter", {"filter"}),
      props("css-flex-direction", {"flex-direction"}),
      props("css-flex-wrap", {"flex-wrap"}),
      props("css-float", {"float"}),
      props("css-font-kerning", {"font-kerning"}),
      props("css-font-size", {"font-size"}),
      props("css-font-weight", {"font-weight"}),
      props("css-font", {"font"}),
      any_value("css-function-clamp", "clamp("),
      any_value("css-function-light-dark", "light-dark("),
      props("css-gap", {"gap"}),
      props("css-grid-template", {"grid-template", "grid-template-*"}),
      props("css-height", {"height"}, {"height"}),
      props("css-hyphens", {"hyphens"}),
      important("css-important"),
      props("css-inline-size", {"inline-size"}),
      props("css-inset", {"inset"}),
      any_value("css-intrinsic-size", "-content"),
      props("css-justify-content", {"justify-content"}),
      props("css-left-right-top-bottom", {"left", "right", "top", "bottom"}),
      props("css-letter-spacing", {"letter-spacing"}),
      props("css-line-height", {"line-height"}),
      any_value("css-linear-gradient", "linear-gradient("),
      props("css-list-style-image", {"list-style-image"}),
      props("css-list-style-position", {"list-style-position"}),
      props("css-list-style-type", {"list-style-type"}),
      props("css-list-style", {"list-style"}),
      props("css-margin-block-start-end", {"margin-block-start", "margin-block-end"}),
      props("css-margin-inline-block", {"margin-inline", "margin-block"}),
      props("css-margin-inline-start-end", {"margin-inline-start", "margin-inline-end"}),
      props("css-margin", {"margin"}),
      props("css-mask-image", {"mask-image"}),
      props("css-max-block-size", {"max-block-size"}),
      props("css-max-height", {"max-height"}),
      props("css-max-inline-size", {"max-inline-size"}),
      props("css-max-width", {"max-width"}),
      props("css-min-block-size", {"min-block-size"}),
      props("css-min-height", {"min-height"}),
      props("css-min-inline-size", {"min-inline-size"}),
      props("css-min-width", {"min-width"}),
      props("css-mix-blend-mode", {"mix-blend-mode"}),
      props("css-object-fit", {"object-fit"}),
      props("css-object-position", {"object-position"}),
      props("css-opacity", {"opacity"}),
      props("css-outline-offset", {"outline-offset"}),
      props("css-outline", {"outline"}),
      props("css-overflow-wrap", {"overflow-wrap"}),
      props("css-overflow", {"overflow"}),
      props("css-padding-block-start-end", {"padding-block-start", "padding-block-end"}),
      props("css-padding-inline-block", {"padding-inline", "padding-block"}),
      props("css-padding-inline-start-end", {"padding-inline-start", "padding-inline-end"}),
      props("css-padding", {"padding"}, {"padding"}),
      props("css-position", {"position"}),
      any_value("css-radial-gradient", "radial-gradient("),
      props("css-resize", {"resize"}),
      any_value("css-rgb", "rgb("),
      any_value("css-rgba", "rgba("),
      props("css-scroll-snap", {"scroll-snap-*"}),
      props("css-tab-size", {"tab-size"}),
      props("css-table-layout", {"table-layout"}),
      props("css-text-align-last", {"text-align-last"}),
      props("css-text-align", {"text-align"}),
      props("css-text-decoration-color", {"text-decoration-color"}),
      props("css-text-decoration-line", {"text-decoration-line"}),
      props("css-text-decoration-style", {"text-decoration-style"}),
      props("css-text-decoration-thickness", {"text-decoration-thickness"}),
      props("css-text-decoration", {"text-decoration"}),
      props("css-text-emphasis-position", {"text-emphasis-position"}),
      props("css-text-emphasis", {"text-emphasis"}),
      props("css-text-indent", {"text-indent"}),
      props("css-text-overflow", {"text-overflow"}),
      props("css-text-shadow", {"text-shadow"}),
      props("css-text-transform", {"text-transform"}),
      props("css-text-underline-offset", {"text-underline-offset"}),
      props("css-text-wrap", {"text-wrap"}),
      props("css-transform", {"transform"}),
      props("css-transition", {"transition", "transition-*"}),
      any_value("css-unit-calc", "calc("),
      props("css-variables", {"--*"}),
      props("css-visibility", {"visibility"}),
      props("css-white-space", {"white-space"}),
      props("css-width", {"width"}, {"width"}),
      props("css-word-break", {"word-break"}),
      props("css-writing-mode", {"writing-mode"}),
      props("css-z-index", {"z-index"}),
  };
  return tests;
}

bool contains_icase(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (iequals(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

// The distinct value_contains strings of css_tests(), in order: bit i of
// declaration::contains says the value contains needle i (case-insensitively).
const std::vector<std::string_view>& value_needles() {
  static const std::vector<std::string_view> needles = [] {
    std::vector<std::string_view> out;
    for (const auto& t : css_tests())
      if (t.value_contains && std::find(out.begin(), out.end(), t.value_contains) == out.end())
        out.emplace_back(t.value_contains);
    return out;
  }();
  return needles;
}
std::uint32_t needle_bit(const char* needle) {
  const auto& n = value_needles();
  return 1u << (std::find(n.begin(), n.end(), needle) - n.begin());
}

// css_tests() by what triggers them, so an element is tested through its own declarations
// and attributes (a few) rather than every test looking each of its properties up.
struct css_index {
  std::unordered_map<std::string_view, std::vector<std::size_t>> by_property;   // exact
  std::vector<std::pair<std::string_view, std::size_t>> by_prefix;              // "animation-*"
  std::unordered_map<std::string_view, std::vector<std::size_t>> by_attribute;  // bgcolor, …
  std::vector<std::size_t> by_value;  // no property: any declaration whose value has the needle
  std::vector<std::size_t> important;
  std::vector<std::uint32_t> bits;  // per test: needle_bit, 0 without a needle
};
const css_index& css_tests_index() {
  static const css_index index = [] {
    css_index x;
    const auto& tests = css_tests();
    for (std::size_t t = 0; t < tests.size(); ++t) {
      const auto& ct = tests[t];
      x.bits.push_back(ct.value_contains ? needle_bit(ct.value_contains) : 0);
      for (std::string_view p : ct.properties) {
        if (p.ends_with('*')) {
          x.by_prefix.emplace_back(p.substr(0, p.size() - 1), t);
        } else {
          x.by_property[p].push_back(t);
        }
      }
      for (std::string_view a : ct.attributes)
        x.by_attribute[a].push_back(t);
      if (ct.properties.empty() && ct.value_contains) x.by_value.push_back(t);
      if (ct.important) x.important.push_back(t);
    }
    return x;
  }();
  return index;
}

// How many elements have each test of css_tests() (in its order).
std::vector<std::size_t> count_css_tests(const std::vector<element>& els) {
  const auto& x = css_tests_index();
  std::vector<std::size_t> found(x.bits.size(), 0);
  std::vector<std::size_t> last(x.bits.size(), SIZE_MAX);  // the element that last counted
  for (std::size_t i = 0; i < els.size(); ++i) {
    auto hit = [&](std::size_t t) {
      if (last[t] != i) {
        last[t] = i;
        ++found[t];
      }
    };
    const auto& e = els[i];
    for (const auto& entry : e.style) {
      const std::string_view prop = entry.first;
      const declaration* d = entry.second;
      auto ok = [&](std::size_t t) { return !x.bits[t] || (d->contains & x.bits[t]); };
      if (auto it = x.by_property.find(prop); it != x.by_property.end())
        for (auto t : it->second)
          if (ok(t)) hit(t);
      for (const auto& [prefix, t] : x.by_prefix)
        if (prop.starts_with(prefix) && ok(t)) hit(t);
      for (auto t : x.by_value)
        if (d->contains & x.bits[t]) hit(t);
      if (d->important)
        for (auto t : x.important)
          hit(t);
    }
    for (const auto& [name, value] : e.attrs)
      if (auto it = x.by_attribute.find(name); it != x.by_attribute.end())
        for (auto t : it->second)
          hit(t);
  }
  return found;
}

// Units and keywords in the merged declarations' values, counted per occurrence: a number
// directly followed by the unit (not inside a word), or the value `initial`.
struct unit_test {
  const char* slug;
  const char* unit;  // nullptr: the keyword `initial`
};
const std::vector<unit_test>& unit_tests() {
  static const std::vector<unit_test> tests = {
      {"css-unit-ch", "ch"}, {"css-unit-initial", nullptr}, {"css-unit-rem", "rem"},
      {"css-unit-vh", "vh"}, {"css-unit-vmax", "vmax"},     {"css-unit-vmin", "vmin"},
      {"css-unit-vw", "vw"},
  };
  return tests;
}

std::size_t count_unit(std::string_view v, std::string_view unit) {
  std::size_t n = 0;
  std::size_t i = 0;
  while (i < v.size()) {
    // A digit run that does not continue a word ("1.5rem" counts through its "5").
    if (!(v[i] >= '0' && v[i] <= '9') || (i > 0 && is_word(v[i - 1]))) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < v.size() && v[j] >= '0' && v[j] <= '9')
      ++j;
    if (v.substr(j, unit.size()) == unit &&
        (j + unit.size() == v.size() || !is_word(v[j + unit.size()]))) {
      ++n;
    }
    i = j;
  }
  return n;
}

// What a declaration's value holds (once per declaration).
void analyze(declaration& d) {
  const auto& needles = value_needles();
  for (std::size_t i = 0; i < needles.size() && i < 32; ++i)
    if (contains_icase(d.value, needles[i])) d.contains |= 1u << i;
  const auto& units = unit_tests();
  for (std::size_t i = 0; i < units.size() && i < kUnits; ++i) {
    if (units[i].unit) {
      d.units[i] = static_cast<std::uint32_t>(count_unit(d.value, units[i].unit));
    } else {
      d.units[i] = d.value.size() >= 7 &&
                   iequals(std::string_view(d.value).substr(0, 7), "initial") &&
                   (d.value.size() == 7 || !is_ident(d.value[7]));
    }
  }
}

// Features of the <style> text (comments stripped).
struct sheet_test {
  const char* slug;
  const char* text;
  bool icase = false;
  bool then_paren = false;      // optional white space, then '('
  bool then_ident_end = false;  // not followed by an identifier character
};
const std::vector<sheet_test>& sheet_tests() {
  static const std::vector<sheet_test> tests = {
      {"css-at-font-face", "@font-face", true, false, true},
      {"css-at-import", "@import", true, false, true},
      {"css-at-keyframes", "@keyframes", true, false, true},
      {"css-at-media", "@media", true, false, true},
      {"css-at-supports", "@supports", true, false, true},
      {"css-pseudo-class-active", ":active"},
      {"css-pseudo-class-checked", ":checked"},
      {"css-pseudo-class-first-child", ":first-child"},
      {"css-pseudo-class-first-of-type", ":first-of-type"},
      {"css-pseudo-class-focus", ":focus", false, false, true},
      {"css-pseudo-class-focus-visible", ":focus-visible"},
      {"css-pseudo-class-focus-within", ":focus-within"},
      {"css-pseudo-class-has", ":has", false, true},
      {"css-pseudo-class-hover", ":hover"},
      {"css-pseudo-class-lang", ":lang", false, true},
      {"css-pseudo-class-last-child", ":last-child"},
      {"css-pseudo-class-last-of-type", ":last-of-type"},
      {"css-pseudo-class-link", ":link"},
      {"css-pseudo-class-not", ":not", false, true},
      {"css-pseudo-class-nth-child", ":nth-child", false, true},
      {"css-pseudo-class-nth-last-child", ":nth-last-child", false, true},
      {"css-pseudo-class-nth-last-of-type", ":nth-last-of-type", false, true},
      {"css-pseudo-class-nth-of-type", ":nth-of-type", false, true},
      {"css-pseudo-class-only-child", ":only-child"},
      {"css-pseudo-class-only-of-type", ":only-of-type"},
      {"css-pseudo-class-target", ":target"},
      {"css-pseudo-class-visited", ":visited"},
      {"css-pseudo-element-after", ":after"},
      {"css-pseudo-element-before", ":before"},
      {"css-pseudo-element-first-letter", "::first-letter"},
      {"css-pseudo-element-first-line", "::first-line"},
      {"css-pseudo-element-marker", "::marker"},
      {"css-pseudo-element-placeholder", "::placeholder"},
  };
  return tests;
}

std::size_t count_sheet(std::string_view css, const sheet_test& t) {
  std::string_view needle = t.text;
  std::size_t n = 0;
  for (std::size_t i = 0; i + needle.size() <= css.size(); ++i) {
    auto here = css.substr(i, needle.size());
    if (t.icase ? !iequals(here, needle) : here != needle) continue;
    std::size_t j = i + needle.size();
    if (t.then_ident_end && j < css.size() && is_ident(css[j])) continue;
    if (t.then_paren) {
      while (j < css.size() && is_space(css[j]))
        ++j;
      if (j >= css.size() || css[j] != '(') continue;
    }
    ++n;
  }
  return n;
}

// Media features in @media preludes.
struct media_test {
  const char* slug;
  const char* feature;
};
const std::vector<media_test>& media_tests() {
  static const std::vector<media_test> tests = {
      {"css-at-media-prefers-color-scheme", "prefers-color-scheme"},
      {"css-at-media-prefers-reduced-motion", "prefers-reduced-motion"},
      {"css-at-media-orientation", "orientation"},
      {"css-at-media-hover", "hover"},
      {"css-at-media-device-pixel-ratio", "device-pixel-ratio"},
  };
  return tests;
}

// ---- the response ----

class checker {
 public:
  checker(const html_check_data& data) : data_(data) {}

  // Adds the warning of `slug` found `found` times; a slug the data lacks is no test.
  void test(std::string_view slug, std::size_t found) {
    auto it = data_.features.find(std::string(slug));
    if (it == data_.features.end()) return;
    ++tests_;
    if (found == 0) return;
    json::object w = it->second.warning;
    w["Score"].as_object()["Found"] = found;
    warnings_.push_back({std::move(w), it->second.partial, it->second.unsupported, found});
  }
  void script(std::size_t found) {
    ++tests_;
    if (found == 0) return;
    json::object w{
        {"Slug", "html-script"},
        {"Title", "<script> element"},
        {"Description", "JavaScript is not supported in any email client."},
        {"URL", ""},
        {"Category", "html"},
        {"Tags", json::array()},
        {"Keywords", ""},
        {"Results", json::array()},
        {"NotesByNumber", json::object()},
        {"Score",
         json::object{
             {"Found", found}, {"Supported", 0.0}, {"Partial", 0.0}, {"Unsupported", 100.0}}}};
    warnings_.push_back({std::move(w), 0.0, 100.0, found});
  }

  json::object finish(std::size_t nodes) {
    const double n = static_cast<double>(std::max<std::size_t>(nodes, 1));
    double partial = 0, unsupported = 0;
    for (const auto& w : warnings_) {
      partial = std::max(partial, w.partial * static_cast<double>(w.found) / n);
      unsupported = std::max(unsupported, w.unsupported * static_cast<double>(w.found) / n);
    }
    // Found can exceed the node count (units and style-sheet features count occurrences),
    // so the shares are kept within 0-100 % (Mailpit's can go below 0 % supported).
    unsupported = std::min(unsupported, 100.0);
    partial = std::min(partial, 100.0 - unsupported);
    // Worst first: the weighted share of clients without full support; then by slug.
    std::stable_sort(warnings_.begin(), warnings_.end(), [&](const auto& a, const auto& b) {
      double wa = (a.partial + a.unsupported) * static_cast<double>(a.found);
      double wb = (b.partial + b.unsupported) * static_cast<double>(b.found);
      if (wa != wb) return wa > wb;
      return a.w.at("Slug").as_string() < b.w.at("Slug").as_string();
    });
    json::array out;
    out.reserve(warnings_.size());
    for (auto& w : warnings_)
      out.push_back(std::move(w.w));
    return json::object{{"Warnings", std::move(out)},
                        {"Platforms", data_.platforms},
                        {"Total", json::object{{"Nodes", nodes},
                                               {"Tests", tests_},
                                               {"Supported", 100.0 - partial - unsupported},
                                               {"Partial", partial},
                                               {"Unsupported", unsupported}}}};
  }

 private:
  struct found_warning {
    json::object w;
    double partial, unsupported;
    std::size_t found;
  };
  const html_check_data& data_;
  std::vector<found_warning> warnings_;
  std::size_t tests_ = 0;
};

void init_libxml() {
  static const bool done = [] {
    xmlInitParser();
    return true;
  }();
  (void)done;
}

}  // namespace

std::string markdown_to_html(std::string_view md) {
  std::string out;
  out.reserve(md.size() + 16);
  std::size_t i = 0;
  auto emphasis = [&](std::size_t at, std::string_view mark, std::string_view tag) -> bool {
    if (md.substr(at, mark.size()) != mark) return false;
    // Opens before a non-space, closes after one, and not inside a word (for _).
    std::size_t b = at + mark.size();
    if (b >= md.size() || is_space(md[b])) return false;
    if (mark == "_" && at > 0 && is_word(md[at - 1])) return false;
    // The first closing mark: after a non-space, and for _ not inside a word.
    auto closes = [&](std::size_t e) {
      if (is_space(md[e - 1])) return false;
      return mark != "_" || e + 1 >= md.size() || !is_word(md[e + 1]);
    };
    auto end = md.find(mark, b);
    while (end != std::string_view::npos && !closes(end))
      end = md.find(mark, end + 1);
    if (end == std::string_view::npos) return false;
    out += '<';
    out += tag;
    out += '>';
    out += markdown_to_html(md.substr(b, end - b));
    out += "</";
    out += tag;
    out += '>';
    i = end + mark.size();
    return true;
  };
  while (i < md.size()) {
    char c = md[i];
    if (c == '\\' && i + 1 < md.size() &&
        std::string_view("\\`*_[]()#!").find(md[i + 1]) != std::string_view::npos) {
      append_html_escaped(out, md.substr(i + 1, 1));
      i += 2;
      continue;
    }
    if (c == '`') {
      std::size_t ticks = 0;
      while (i + ticks < md.size() && md[i + ticks] == '`')
        ++ticks;
      auto fence = md.substr(i, ticks);
      auto end = md.find(fence, i + ticks);
      if (end != std::string_view::npos) {
        out += "<code>";
        append_html_escaped(out, trim(md.substr(i + ticks, end - i - ticks)));
        out += "</code>";
        i = end + ticks;
        continue;
      }
    }
    if (c == '[') {
      auto close = md.find("](", i + 1);
      auto bracket = md.find(']', i + 1);
      if (close != std::string_view::npos && close == bracket) {
        // The URL ends at the ")" that balances the "(": "…/ms533742(v=vs.85)".
        std::size_t end = close + 2;
        for (int depth = 1; end < md.size(); ++end) {
          if (md[end] == '(') ++depth;
          if (md[end] == ')' && --depth == 0) break;
        }
        if (end < md.size()) {
          std::string url(trim(md.substr(close + 2, end - close - 2)));
          // caniemail's own links are relative to its site; other schemes are not linked.
          if (url.starts_with('/')) url = "https://www.caniemail.com" + url;
          const bool linkable = url.starts_with("https://") || url.starts_with("http://") ||
                                url.starts_with("mailto:");
          if (linkable) {
            out += "<a href=\"";
            append_html_escaped(out, url);
            out += "\" target=\"_blank\">";
          }
          out += markdown_to_html(md.substr(i + 1, close - i - 1));
          if (linkable) out += "</a>";
          i = end + 1;
          continue;
        }
      }
    }
    if (c == '*' && (emphasis(i, "**", "strong") || emphasis(i, "*", "em"))) continue;
    if (c == '_' && (emphasis(i, "__", "strong") || emphasis(i, "_", "em"))) continue;
    append_html_escaped(out, md.substr(i, 1));
    ++i;
  }
  return out;
}

std::shared_ptr<const html_check_data> parse_html_check_data(std::string_view text) {
  boost::system::error_code ec;
  auto root = json::parse(text, ec);
  if (ec) throw std::runtime_error("not JSON: " + ec.message());
  if (!root.is_object()) throw std::runtime_error("not a JSON object");
  const auto& o = root.get_object();
  const auto* data = o.if_contains("data");
  if (!data || !data->is_array()) throw std::runtime_error("no \"data\" array");
  const json::object* names = obj(o, "nicenames");
  const json::object* families = names ? obj(*names, "family") : nullptr;
  const json::object* platform_names = names ? obj(*names, "platform") : nullptr;

  auto out = std::make_shared<html_check_data>();
  std::map<std::string, std::set<std::string>> platforms;
  for (const auto& item : data->get_array()) {
    if (!item.is_object()) continue;
    const auto& f = item.get_object();
    std::string slug(str(f, "slug"));
    if (slug.empty()) continue;
    json::array tags;
    if (const auto* t = f.if_contains("tags"); t && t->is_array())
      for (const auto& x : t->get_array())
        if (x.is_string()) tags.push_back(x);
    json::object notes;
    if (const auto* n = obj(f, "notes_by_num"))
      for (const auto& [k, v] : *n)
        if (v.is_string()) notes[k] = markdown_to_html(v.get_string());
    json::array results;
    double yes = 0, no = 0, partial = 0;
    if (const auto* stats = obj(f, "stats")) {
      for (const auto& [family, per_platform] : *stats) {
        if (!per_platform.is_object()) continue;
        for (const auto& [platform, versions] : per_platform.get_object()) {
          platforms[std::string(platform)].insert(nice(families, family));
          if (!versions.is_object()) continue;
          for (const auto& [version, support] : versions.get_object()) {
            if (!support.is_string()) continue;
            auto s = support_of(support.get_string());
            if (!s) continue;
            (*s == "yes" ? yes : *s == "no" ? no : partial) += 1;
            results.push_back(json::object{
                {"Name", nice(families, family) + " " + nice(platform_names, platform) + " (" +
                             std::string(version) + ")"},
                {"Platform", platform},
                {"Family", family},
                {"Version", version},
                {"Support", *s},
                {"NoteNumber", note_of(support.get_string())}});
          }
        }
      }
    }
    const double total = yes + no + partial;
    auto pct = [&](double x) { return total > 0 ? x / total * 100.0 : 0.0; };
    html_check_data::feature feat;
    feat.partial = pct(partial);
    feat.unsupported = pct(no);
    feat.warning = json::object{{"Slug", slug},
                                {"Title", str(f, "title")},
                                {"Description", markdown_to_html(str(f, "description"))},
                                {"URL", str(f, "url")},
                                {"Category", str(f, "category")},
                                {"Tags", std::move(tags)},
                                {"Keywords", str(f, "keywords")},
                                {"Results", std::move(results)},
                                {"NotesByNumber", std::move(notes)},
                                {"Score", json::object{{"Found", 0},
                                                       {"Supported", pct(yes)},
                                                       {"Partial", pct(partial)},
                                                       {"Unsupported", pct(no)}}}};
    out->features.emplace(std::move(slug), std::move(feat));
  }
  if (out->features.empty()) throw std::runtime_error("no features in \"data\"");
  for (auto& [platform, fams] : platforms) {
    json::array a;
    for (const auto& f : fams)
      a.emplace_back(f);
    out->platforms[platform] = std::move(a);
  }
  return out;
}

std::shared_ptr<const html_check_data> load_html_check_data(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(file.string() + ": cannot be read");
  std::ostringstream ss;
  ss << in.rdbuf();
  try {
    return parse_html_check_data(ss.str());
  } catch (const std::exception& e) {
    throw std::runtime_error(file.string() + ": " + e.what());
  }
}

json::object run_html_check(const html_check_data& data, std::string_view html) {
  init_libxml();
  checker c(data);
  const int opts = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                   HTML_PARSE_NONET | HTML_PARSE_COMPACT;
  std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)> doc(
      htmlReadMemory(html.data(), static_cast<int>(std::min<std::size_t>(html.size(), INT32_MAX)),
                     nullptr, "UTF-8", opts),
      xmlFreeDoc);

  // The elements in document order (an iterative walk: documents can nest deeply).
  std::vector<element> els;
  std::string sheet;  // the text of every <style>
  if (doc) {
    struct item {
      xmlNode* node;
      int parent;
      bool in_body;
    };
    std::vector<item> stack;
    std::vector<xmlNode*> kids;
    auto push_children = [&](xmlNode* n, int parent, bool in_body) {
      kids.clear();
      for (xmlNode* k = n; k; k = k->next)
        if (k->type == XML_ELEMENT_NODE) kids.push_back(k);
      for (auto it = kids.rbegin(); it != kids.rend(); ++it)
        stack.push_back({*it, parent, in_body});
    };
    push_children(doc->children, -1, false);
    while (!stack.empty()) {
      auto [n, parent, in_body] = stack.back();
      stack.pop_back();
      element e;
      e.tag = to_lower_ascii(n->name ? reinterpret_cast<const char*>(n->name) : "");
      e.parent = parent;
      e.in_body = in_body;
      for (xmlAttr* a = n->properties; a; a = a->next) {
        if (!a->name) continue;
        std::string v;
        if (xmlChar* x = xmlNodeListGetString(n->doc, a->children, 1)) {
          v = reinterpret_cast<const char*>(x);
          xmlFree(x);
        }
        e.attrs.emplace_back(to_lower_ascii(reinterpret_cast<const char*>(a->name)), std::move(v));
      }
      if (e.tag == "style") sheet += text_of(n) + "\n";
      els.push_back(std::move(e));
      push_children(n->children, static_cast<int>(els.size() - 1),
                    in_body || els.back().tag == "body");
    }
  }

  // Nodes, as Mailpit counts them: with a </body> in the source, every element but html,
  // head and meta; without, the elements inside body and the scripts.
  std::size_t nodes = 0;
  const bool has_body = contains_icase(html, "</body>");
  for (const auto& e : els) {
    if (has_body ? (e.tag != "html" && e.tag != "head" && e.tag != "meta")
                 : (e.in_body || e.tag == "script")) {
      ++nodes;
    }
  }

  // HTML.
  std::size_t scripts = 0;
  for (const auto& e : els) {
    if (e.tag != "script") continue;
    auto type = attr(e, "type");
    if (type &&
        (iequals(trim(*type), "application/ld+json") || iequals(trim(*type), "application/json"))) {
      continue;
    }
    ++scripts;
  }
  c.script(scripts);
  c.test("html-body", has_body ? 1 : 0);
  for (const auto& t : element_tests()) {
    std::size_t found = 0;
    for (const auto& e : els)
      if (std::any_of(t.alts.begin(), t.alts.end(), [&](const auto& a) { return matches(a, e); }))
        ++found;
    c.test(t.slug, found);
  }
  std::vector<std::string_view> srcs;  // into the elements' attributes
  for (const auto& e : els) {
    if (e.tag != "img") continue;
    if (const auto* src = attr(e, "src")) srcs.push_back(trim(*src));
  }
  for (const auto& t : image_tests()) {
    std::size_t found = 0;
    for (const auto& src : srcs) {
      if (t.extensions.empty()) {
        if (src.size() >= 11 && iequals(src.substr(0, 11), "data:image/")) ++found;
        continue;
      }
      std::string_view path = src;
      if (iequals(path.substr(0, std::min<std::size_t>(5, path.size())), "data:")) continue;
      path = path.substr(0, path.find_first_of("?#"));
      for (const char* ext : t.extensions)
        if (ends_with_icase(path, ext)) {
          ++found;
          break;
        }
    }
    c.test(t.slug, found);
  }

  // CSS: merge the style rules into the elements they match, then the style attributes.
  // The merged maps point at the parsed declarations (each analyzed once); the budget counts
  // selector tests and merged declarations.
  const std::string css = strip_comments(sheet);
  std::vector<style_rule> rules;
  std::deque<declarations> blocks;
  parse_rules(css, rules, blocks, 10'000);
  for (auto& b : blocks)
    for (auto& [p, d] : b)
      analyze(d);
  std::stable_sort(rules.begin(), rules.end(), [](const auto& a, const auto& b) {
    return a.sel.specificity < b.sel.specificity;
  });
  for (auto& e : els) {
    e.id = attr(e, "id");
    if (const auto* cls = attr(e, "class")) {
      std::string_view v = *cls;
      for (std::size_t i = 0; i < v.size();) {
        while (i < v.size() && is_space(v[i]))
          ++i;
        std::size_t b = i;
        while (i < v.size() && !is_space(v[i]))
          ++i;
        if (i > b && e.classes.size() < 64) e.classes.push_back(v.substr(b, i - b));
      }
    }
    if (const auto* st = attr(e, "style")) {
      e.inline_style = parse_declarations(*st);
      for (auto& [p, d] : e.inline_style)
        analyze(d);
    }
  }
  std::size_t budget = kMaxStyleMatches;
  for (int i = 0; i < static_cast<int>(els.size()) && budget > 0; ++i) {
    for (const auto& r : rules) {
      if (!matches_from(r.sel, static_cast<int>(r.sel.parts.size()) - 1, els, i, budget)) continue;
      budget -= std::min(budget, r.decls->size());
      for (const auto& [p, d] : *r.decls)
        apply(els[i].style, p, &d);
    }
  }
  for (auto& e : els)
    for (const auto& [p, d] : e.inline_style)
      apply(e.style, p, &d);
  {
    const auto found = count_css_tests(els);
    const auto& tests = css_tests();
    for (std::size_t t = 0; t < tests.size(); ++t)
      c.test(tests[t].slug, found[t]);
  }
  const auto& units = unit_tests();
  for (std::size_t u = 0; u < units.size() && u < kUnits; ++u) {
    std::size_t found = 0;
    for (const auto& e : els)
      for (const auto& [p, d] : e.style)
        found += d->units[u];
    c.test(units[u].slug, found);
  }
  for (const auto& t : sheet_tests())
    c.test(t.slug, count_sheet(css, t));
  // Media features: in the preludes of @media rules (up to the block, at most 1 KB each).
  std::vector<std::string> preludes;
  for (std::size_t i = 0; (i = css.find('@', i)) != std::string::npos; ++i) {
    if (!iequals(std::string_view(css).substr(i, 6), "@media")) continue;
    const std::size_t from = i + 6;
    auto end = css.find_first_of("{;}@", from);
    if (end == std::string::npos) end = css.size();
    preludes.push_back(to_lower_ascii(
        std::string_view(css).substr(from, std::min<std::size_t>(end - from, 1024))));
  }
  for (const auto& t : media_tests()) {
    std::size_t found = 0;
    for (const auto& p : preludes)
      if (p.find(t.feature) != std::string::npos) ++found;
    c.test(t.slug, found);
  }
  return c.finish(nodes);
}

}  // namespace sluice::http
