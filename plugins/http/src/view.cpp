// view.cpp — see view.hpp. Handlers await the mailbox service; the rewriting is a single
// pass over the HTML (no DOM), bounded by the HTML's size.
#include "view.hpp"

#include <openssl/evp.h>

#include "api.hpp"
#include "api_util.hpp"
#include "sluice/text.hpp"

namespace sluice::http {
namespace {

using boost::asio::awaitable;

// The height reporter of embed=1 views. The CSP admits it by hash: change a byte and the
// hash follows (computed below).
constexpr std::string_view kHeightScript =
    "(function(){function r(){var b=document.body,h=Math.max(b?b.scrollHeight:0,"
    "document.documentElement.scrollHeight);try{parent.postMessage({messageHeight:h},\"*\")}"
    "catch(e){}}window.addEventListener(\"load\",r);if(window.ResizeObserver){"
    "new ResizeObserver(r).observe(document.documentElement)}})();";

const std::string& script_hash() {
  static const std::string hash = [] {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(kHeightScript.data(), kHeightScript.size(), md, &n, EVP_sha256(), nullptr);
    unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    const int len = EVP_EncodeBlock(b64, md, static_cast<int>(n));
    return std::string(reinterpret_cast<char*>(b64), static_cast<std::size_t>(len));
  }();
  return hash;
}

bool ieq_at(std::string_view s, std::size_t at, std::string_view w) {
  return at + w.size() <= s.size() && iequals(s.substr(at, w.size()), w);
}

std::size_t ifind(std::string_view s, std::string_view w, std::size_t from = 0) {
  for (std::size_t i = from; i + w.size() <= s.size(); ++i) {
    if (ieq_at(s, i, w)) return i;
  }
  return std::string_view::npos;
}

std::size_t irfind(std::string_view s, std::string_view w) {
  if (w.size() > s.size()) return std::string_view::npos;
  for (std::size_t i = s.size() - w.size() + 1; i-- > 0;) {
    if (ieq_at(s, i, w)) return i;
  }
  return std::string_view::npos;
}

bool space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

std::string percent_decode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      const int h = hex(s[i + 1]), l = hex(s[i + 2]);
      if (h >= 0 && l >= 0) {
        out += static_cast<char>(h * 16 + l);
        i += 2;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

const mime_part* find_cid(const stored_message& m, const std::string& cid) {
  if (!m.view) return nullptr;
  for (const auto* list : {&m.view->inline_parts, &m.view->attachments}) {
    for (const auto& p : *list)
      if (p.content_id == cid) return &p;
  }
  for (const auto* list : {&m.view->inline_parts, &m.view->attachments}) {
    for (const auto& p : *list)
      if (iequals(p.content_id, cid)) return &p;
  }
  return nullptr;
}

// Whether the "cid:" at `at` begins a URL value: after '=' or "url(", with an optional
// quote and spaces between.
bool url_context(std::string_view html, std::size_t at) {
  std::size_t i = at;
  while (i > 0 && space(html[i - 1]))
    --i;
  if (i > 0 && (html[i - 1] == '"' || html[i - 1] == '\'')) --i;
  while (i > 0 && space(html[i - 1]))
    --i;
  if (i > 0 && html[i - 1] == '=') return true;
  return i >= 4 && ieq_at(html, i - 4, "url(");
}

// One <a …> start tag rewritten: target and rel replaced. `tag` spans "<a" to '>'.
std::string rewrite_anchor(std::string_view tag) {
  std::string out = "<a";
  std::size_t i = 2;
  std::string_view close = ">";
  while (i < tag.size()) {
    const std::size_t start = i;
    while (i < tag.size() && space(tag[i]))
      ++i;
    if (i >= tag.size()) break;
    if (tag[i] == '>') break;
    if (tag[i] == '/' && i + 1 < tag.size() && tag[i + 1] == '>') {
      close = "/>";
      break;
    }
    const std::size_t name_start = i;
    while (i < tag.size() && !space(tag[i]) && tag[i] != '=' && tag[i] != '>' &&
           !(tag[i] == '/' && i + 1 < tag.size() && tag[i + 1] == '>'))
      ++i;
    if (i == name_start) {  // a stray '/' or '='
      ++i;
      continue;
    }
    const std::string_view name = tag.substr(name_start, i - name_start);
    std::size_t j = i;
    while (j < tag.size() && space(tag[j]))
      ++j;
    if (j < tag.size() && tag[j] == '=') {
      ++j;
      while (j < tag.size() && space(tag[j]))
        ++j;
      if (j < tag.size() && (tag[j] == '"' || tag[j] == '\'')) {
        const char q = tag[j];
        const std::size_t end = tag.find(q, j + 1);
        j = end == std::string_view::npos ? tag.size() : end + 1;
      } else {
        while (j < tag.size() && !space(tag[j]) && tag[j] != '>')
          ++j;
      }
      i = j;
    }
    if (!iequals(name, "target") && !iequals(name, "rel")) out += tag.substr(start, i - start);
  }
  out += " target=\"_blank\" rel=\"noreferrer noopener\"";
  out += close;
  return out;
}

// The end of the tag starting at `lt` (index after '>'), quotes respected.
std::size_t tag_end(std::string_view s, std::size_t lt) {
  char quote = 0;
  for (std::size_t i = lt + 1; i < s.size(); ++i) {
    if (quote) {
      if (s[i] == quote) quote = 0;
    } else if (s[i] == '"' || s[i] == '\'') {
      quote = s[i];
    } else if (s[i] == '>') {
      return i + 1;
    }
  }
  return s.size();
}

std::string add_link_targets(std::string_view html) {
  std::string out;
  out.reserve(html.size() + html.size() / 16);
  std::size_t i = 0;
  while (i < html.size()) {
    const std::size_t lt = html.find('<', i);
    if (lt == std::string_view::npos) {
      out += html.substr(i);
      break;
    }
    out += html.substr(i, lt - i);
    if (html.substr(lt, 4) == "<!--") {
      const std::size_t end = html.find("-->", lt + 4);
      const std::size_t stop = end == std::string_view::npos ? html.size() : end + 3;
      out += html.substr(lt, stop - lt);
      i = stop;
      continue;
    }
    // Raw text elements: their content is not markup.
    bool raw = false;
    for (std::string_view el : {"script", "style", "textarea", "title"}) {
      if (ieq_at(html, lt + 1, el) && lt + 1 + el.size() < html.size() &&
          (space(html[lt + 1 + el.size()]) || html[lt + 1 + el.size()] == '>')) {
        const std::size_t close = ifind(html, "</" + std::string(el), lt + 1);
        const std::size_t stop = close == std::string_view::npos ? html.size() : close;
        out += html.substr(lt, stop - lt);
        i = stop;
        raw = true;
        break;
      }
    }
    if (raw) {
      if (i == lt) {  // cannot happen (close > lt); guard the loop anyway
        out += html[lt];
        i = lt + 1;
      }
      continue;
    }
    const std::size_t end = tag_end(html, lt);
    if (lt + 2 < html.size() && (html[lt + 1] == 'a' || html[lt + 1] == 'A') &&
        (space(html[lt + 2]) || html[lt + 2] == '>' || html[lt + 2] == '/')) {
      out += rewrite_anchor(html.substr(lt, end - lt));
    } else {
      out += html.substr(lt, end - lt);
    }
    i = end;
  }
  return out;
}

// GET /view/{ID}.html[?embed=1]
awaitable<response> view_html(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await api::message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  auto m = co_await ctx.env.store->get(ctx.mailbox, *id);
  if (!m || !m->view || m->view->html.empty()) co_return not_found(ctx.req);
  if (!m->read) {
    message_selector sel;
    sel.ids.push_back(*id);
    co_await ctx.env.store->set_read(ctx.mailbox, std::move(sel), true);
  }
  const std::string* e = ctx.param("embed");
  const bool embed = e && (*e == "1" || *e == "true");
  std::string html = rewrite_cid_references(m->view->html, *m, ctx.base);
  if (embed) html = embed_html(html);
  auto r = api::bytes_response(ctx.req, "text/html; charset=utf-8", std::move(html));
  r.set("Content-Security-Policy", view_csp(embed, ctx.env.block_remote_css_and_fonts));
  r.set("X-Content-Type-Options", "nosniff");
  co_return r;
}

// GET /view/{ID}.txt
awaitable<response> view_text(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await api::message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  auto m = co_await ctx.env.store->get(ctx.mailbox, *id);
  if (!m) co_return not_found(ctx.req);
  if (!m->read) {
    message_selector sel;
    sel.ids.push_back(*id);
    co_await ctx.env.store->set_read(ctx.mailbox, std::move(sel), true);
  }
  auto r = api::bytes_response(ctx.req, "text/plain; charset=utf-8",
                               m->view ? m->view->text : std::string());
  r.set("X-Content-Type-Options", "nosniff");
  co_return r;
}

// GET /view/latest[?query=]: 302 to the web UI's view of the newest (matching) message.
awaitable<response> view_latest(request_context& ctx) {
  auto id = co_await api::resolve_id(ctx, "latest");
  if (!id) co_return api::message_not_found(ctx.req);
  response r{bhttp::status::found, ctx.req.version()};
  r.set(bhttp::field::location, ctx.base + "view/" + *id);
  r.set(bhttp::field::content_type, "text/plain; charset=utf-8");
  r.keep_alive(ctx.req.keep_alive());
  r.body() = "Found";
  r.prepare_payload();
  co_return r;
}

}  // namespace

std::string rewrite_cid_references(std::string_view html, const stored_message& m,
                                   const std::string& base) {
  std::string out;
  out.reserve(html.size());
  std::size_t i = 0;
  while (i < html.size()) {
    const std::size_t at = ifind(html, "cid:", i);
    if (at == std::string_view::npos) {
      out += html.substr(i);
      break;
    }
    out += html.substr(i, at - i);
    std::size_t end = at + 4;
    while (end < html.size() && !space(html[end]) && html[end] != '"' && html[end] != '\'' &&
           html[end] != ')' && html[end] != '>' && html[end] != '<')
      ++end;
    const mime_part* p = nullptr;
    if (url_context(html, at) && end > at + 4) {
      p = find_cid(m, percent_decode(html.substr(at + 4, end - at - 4)));
    }
    if (p) {
      out += base + "api/v1/message/" + m.id + "/part/" + p->part_id;
    } else {
      out += html.substr(at, end - at);
    }
    i = end;
  }
  return out;
}

std::string embed_html(std::string_view html) {
  std::string doc = add_link_targets(html);
  if (ifind(doc, "<html") == std::string::npos) {
    doc = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>" + doc +
          "</body></html>";
  }
  const std::string script = "<script>" + std::string(kHeightScript) + "</script>";
  const std::size_t body_end = irfind(doc, "</body");
  if (body_end != std::string::npos) {
    doc.insert(body_end, script);
  } else {
    doc += script;
  }
  return doc;
}

std::string view_csp(bool embed, bool block_remote_css_and_fonts) {
  // Remote images, styles and fonts load as in a mail client; scripts, plugins, frames,
  // forms and network requests from the message do not. Mailpit's
  // --block-remote-css-and-fonts keeps styles and fonts to this origin (the message's own
  // parts) and the message itself.
  const char* remote = block_remote_css_and_fonts ? "'self'" : "*";
  std::string csp = "default-src 'none'; img-src * data: blob:; style-src ";
  csp += remote;
  csp += " 'unsafe-inline' data:; font-src ";
  csp += remote;
  // Only the web UI (this origin) may frame the view (clickjacking).
  csp +=
      " data:; media-src * data: blob:; base-uri 'none'; form-action 'none'; "
      "frame-ancestors 'self'; ";
  csp += embed ? "script-src 'sha256-" + script_hash() + "'" : std::string("script-src 'none'");
  return csp;
}

namespace api {
void add_view_routes(router& r) {
  r.add(bhttp::verb::get, "/view/latest", guarded(view_latest));
  r.add(bhttp::verb::get, "/view/{ID}.html", guarded(view_html));
  r.add(bhttp::verb::get, "/view/{ID}.txt", guarded(view_text));
}
}  // namespace api

}  // namespace sluice::http
