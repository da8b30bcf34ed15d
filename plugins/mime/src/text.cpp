// text.cpp — see text.hpp.
#include "text.hpp"

#include <gmime/gmime.h>
#include <iconv.h>
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "sluice/text.hpp"

namespace sluice::mime {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length of the valid UTF-8 sequence at s[i], or 0 if it is invalid (RFC 3629: no
// overlongs, no surrogates, nothing above U+10FFFF).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) return 1;
  auto cont = [&](std::size_t k) {
    return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
  };
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (b0 == 0xE0 && at(1) < 0xA0) return 0;
    if (b0 == 0xED && at(1) > 0x9F) return 0;
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (b0 == 0xF0 && at(1) < 0x90) return 0;
    if (b0 == 0xF4 && at(1) > 0x8F) return 0;
    return 4;
  }
  return 0;
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

struct iconv_handle {
  iconv_t cd = reinterpret_cast<iconv_t>(-1);
  ~iconv_handle() {
    if (ok()) iconv_close(cd);
  }
  bool ok() const { return cd != reinterpret_cast<iconv_t>(-1); }
};

// iconv's name for a MIME charset name (GMime's alias table: "latin1", "ks_c_5601-1987",
// "x-unknown" …), or the name itself.
std::string iconv_name(std::string_view charset) {
  init_libraries();  // GMime's alias table
  const std::string name(charset);
  const char* mapped = g_mime_charset_iconv_name(name.c_str());
  return mapped ? std::string(mapped) : name;
}

// Converts with iconv; every byte it cannot convert becomes U+FFFD.
std::string convert(std::string_view in, iconv_t cd, std::size_t& replaced) {
  std::string out;
  out.reserve(in.size() + in.size() / 2 + 16);
  char* inp = const_cast<char*>(in.data());
  std::size_t inleft = in.size();
  char buf[16 * 1024];
  for (;;) {
    char* outp = buf;
    std::size_t outleft = sizeof buf;
    const std::size_t rc = iconv(cd, &inp, &inleft, &outp, &outleft);
    out.append(buf, static_cast<std::size_t>(outp - buf));
    if (rc != static_cast<std::size_t>(-1)) break;  // all input converted
    if (errno == E2BIG) continue;
    if ((errno == EILSEQ || errno == EINVAL) && inleft > 0) {
      // EINVAL: an incomplete sequence at the end of the input.
      out += kReplacement;
      ++replaced;
      ++inp;
      --inleft;
      iconv(cd, nullptr, nullptr, nullptr, nullptr);  // back to the initial shift state
      if (inleft == 0) break;
      continue;
    }
    break;  // unexpected: keep what was converted
  }
  // Stateful charsets (ISO-2022-JP) may owe a return to the initial state.
  char* outp = buf;
  std::size_t outleft = sizeof buf;
  iconv(cd, nullptr, nullptr, &outp, &outleft);
  out.append(buf, static_cast<std::size_t>(outp - buf));
  return out;
}

bool is_utf8_name(const std::string& c) {
  return c == "utf-8" || c == "utf8" || c == "us-ascii" || c == "ascii";
}

}  // namespace

void init_libraries() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_mime_init();
    xmlInitParser();
  });
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::size_t make_valid_utf8(std::string& s) {
  if (valid_utf8(s)) return 0;
  std::string out;
  out.reserve(s.size() + 16);
  std::size_t replaced = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) {
      out += kReplacement;
      ++replaced;
      ++i;
    } else {
      out.append(s, i, n);
      i += n;
    }
  }
  s = std::move(out);
  return replaced;
}

void truncate_utf8(std::string& s, std::size_t max) {
  if (s.size() <= max) return;
  std::size_t cut = max;
  // Back up over continuation bytes so that no sequence is split.
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
    --cut;
  s.resize(cut);
}

bool charset_known(std::string_view charset) {
  iconv_handle h;
  h.cd = iconv_open("UTF-8", iconv_name(charset).c_str());
  return h.ok();
}

std::string to_utf8(std::string_view bytes, std::string_view charset, std::string_view fallback,
                    charset_outcome& outcome) {
  outcome = charset_outcome::ok;
  const std::string cs = lower_ascii(charset);
  const bool utf8 = valid_utf8(bytes);
  std::string from;
  if (cs.empty() || is_utf8_name(cs)) {
    if (utf8) return std::string(bytes);
    if (cs.empty() || cs == "us-ascii" || cs == "ascii") {
      outcome = charset_outcome::no_charset_fallback;
      from = std::string(fallback);
    } else {
      std::string s(bytes);
      make_valid_utf8(s);
      outcome = charset_outcome::invalid_bytes;
      return s;
    }
  } else {
    from = cs;
  }
  iconv_handle h;
  h.cd = iconv_open("UTF-8", iconv_name(from).c_str());
  if (!h.ok()) {
    outcome =
        utf8 ? charset_outcome::unknown_charset_utf8 : charset_outcome::unknown_charset_fallback;
    if (utf8) return std::string(bytes);
    h.cd = iconv_open("UTF-8", iconv_name(fallback).c_str());
    if (!h.ok()) {
      std::string s(bytes);
      make_valid_utf8(s);
      return s;
    }
  }
  std::size_t replaced = 0;
  std::string out = convert(bytes, h.cd, replaced);
  replaced += make_valid_utf8(out);
  if (replaced > 0 && outcome == charset_outcome::ok) outcome = charset_outcome::invalid_bytes;
  return out;
}

namespace {

bool is_block(std::string_view n) {
  static constexpr std::string_view blocks[] = {
      "address", "article",  "aside",      "blockquote", "br",      "dd",    "div", "dl",
      "dt",      "fieldset", "figcaption", "figure",     "footer",  "form",  "h1",  "h2",
      "h3",      "h4",       "h5",         "h6",         "header",  "hr",    "li",  "main",
      "nav",     "ol",       "p",          "pre",        "section", "table", "tr",  "ul"};
  for (auto b : blocks) {
    if (n == b) return true;
  }
  return false;
}

bool is_skipped(std::string_view n) {
  return n == "script" || n == "style" || n == "head" || n == "template" || n == "title";
}

class text_writer {
 public:
  void text(std::string_view t, bool pre) {
    for (char c : t) {
      const bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
      if (pre && c == '\n') {
        newline();
        continue;
      }
      if (ws) {
        pending_space_ = !out_.empty() && out_.back() != '\n';
        continue;
      }
      if (pending_space_) out_ += ' ';
      pending_space_ = false;
      out_ += c;
    }
  }
  void cell() { pending_space_ = !out_.empty() && out_.back() != '\n'; }
  std::size_t mark() const { return out_.size(); }
  // The text written since mark `m`, without surrounding white space.
  std::string_view since(std::size_t m) const {
    return sluice::trim(std::string_view(out_).substr(std::min(m, out_.size())));
  }
  void newline() {
    pending_space_ = false;
    while (!out_.empty() && out_.back() == ' ')
      out_.pop_back();
    // One line break per block boundary, however many blocks meet there.
    if (out_.empty() || out_.ends_with('\n')) return;
    out_ += '\n';
  }
  std::string finish() {
    while (!out_.empty() && (out_.back() == '\n' || out_.back() == ' '))
      out_.pop_back();
    return std::move(out_);
  }

 private:
  std::string out_;
  bool pending_space_ = false;
};

// The walk's two texts: `plain`, and `links`, which also gets the links' targets.
struct text_pair {
  text_writer plain;
  text_writer links;
  void text(std::string_view t, bool pre) {
    plain.text(t, pre);
    links.text(t, pre);
  }
  void newline() {
    plain.newline();
    links.newline();
  }
  void cell() {
    plain.cell();
    links.cell();
  }
};

}  // namespace

namespace {

// A link's target as enmime's html2text (jaytaylor/html2text) writes it: trimmed, a
// "mailto:" prefix dropped; empty without an href.
std::string link_target(xmlNode* n) {
  xmlChar* href = xmlGetProp(n, reinterpret_cast<const xmlChar*>("href"));
  if (!href) return {};
  std::string h(sluice::trim(reinterpret_cast<const char*>(href)));
  xmlFree(href);
  if (h.starts_with("mailto:")) h.erase(0, 7);
  return h;
}

}  // namespace

std::string html_to_text(std::string_view html) {
  return html_to_texts(html).plain;
}

html_texts html_to_texts(std::string_view html) {
  if (html.empty()) return {};
  init_libraries();
  const int opts = HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                   HTML_PARSE_NONET | HTML_PARSE_NOIMPLIED | HTML_PARSE_COMPACT;
  // The input is UTF-8 already (the body was converted); a <meta charset> must not
  // make libxml2 convert it again.
  std::unique_ptr<xmlDoc, decltype(&xmlFreeDoc)> doc(
      htmlReadMemory(html.data(), static_cast<int>(std::min<std::size_t>(html.size(), INT32_MAX)),
                     nullptr, "UTF-8", opts),
      xmlFreeDoc);
  if (!doc) return {};
  text_pair w;
  // Iterative walk: documents can be nested deeply; the stack holds nodes to leave.
  struct item {
    xmlNode* node;
    bool leaving;
    bool pre;
    std::size_t mark = 0;  // for <a>: where its text starts in w.links
  };
  std::vector<item> stack;
  // Push the top-level nodes in reverse so they are visited in order.
  std::vector<xmlNode*> top;
  for (xmlNode* n = doc->children; n; n = n->next)
    top.push_back(n);
  for (auto it = top.rbegin(); it != top.rend(); ++it)
    stack.push_back({*it, false, false});
  while (!stack.empty()) {
    item cur = stack.back();
    stack.pop_back();
    xmlNode* n = cur.node;
    if (cur.leaving) {
      const std::string_view name = reinterpret_cast<const char*>(n->name);
      if (name == "a") {
        // A link's target after its text, as enmime's html2text writes it ("text ( url )");
        // not again when the text is the target itself.
        if (std::string href = link_target(n); !href.empty() && w.links.since(cur.mark) != href) {
          w.links.text(" ( " + href + " )", false);
        }
      }
      if (is_block(name)) w.newline();
      if (name == "td" || name == "th") w.cell();
      continue;
    }
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
      if (n->content) w.text(reinterpret_cast<const char*>(n->content), cur.pre);
      continue;
    }
    if (n->type != XML_ELEMENT_NODE) continue;
    const std::string_view name = n->name ? reinterpret_cast<const char*>(n->name) : "";
    if (is_skipped(name)) continue;
    if (name == "br") {
      w.newline();
      continue;
    }
    if (is_block(name)) w.newline();
    if (name == "img") {
      // Alt text stands for the picture, as a reader of the text would expect.
      if (xmlChar* alt = xmlGetProp(n, reinterpret_cast<const xmlChar*>("alt"))) {
        w.text(reinterpret_cast<const char*>(alt), false);
        xmlFree(alt);
      }
      continue;
    }
    const bool pre = cur.pre || name == "pre";
    stack.push_back({n, true, pre, w.links.mark()});
    std::vector<xmlNode*> kids;
    for (xmlNode* c = n->children; c; c = c->next)
      kids.push_back(c);
    for (auto it = kids.rbegin(); it != kids.rend(); ++it)
      stack.push_back({*it, false, pre});
  }
  html_texts out{w.plain.finish(), w.links.finish()};
  make_valid_utf8(out.plain);
  make_valid_utf8(out.with_links);
  return out;
}

std::string make_snippet(std::string_view text) {
  std::string out;
  std::size_t chars = 0;
  bool space = false;
  bool cut = false;
  for (std::size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      space = !out.empty();
      ++i;
      continue;
    }
    std::size_t n = utf8_sequence(text, i);
    if (n == 0) n = 1;
    if (chars + (space ? 1 : 0) >= 200) {
      cut = true;
      break;
    }
    if (space) {
      out += ' ';
      ++chars;
      space = false;
      if (chars >= 200) {
        cut = true;
        break;
      }
    }
    out.append(text.substr(i, n));
    ++chars;
    i += n;
  }
  if (cut) {
    while (!out.empty() && out.back() == ' ')
      out.pop_back();
    out += "...";
  }
  return out;
}

}  // namespace sluice::mime
