// api_messages.cpp — Mailpit's message endpoints: list, search, mark read, delete, one
// message, its headers, raw source, parts, thumbnails, release, the spam result (sa-check)
// and training (train, through the spam_trainer service), and the checks Sluice does not
// offer yet.
//
// Each handler awaits the mailbox service (which does its blocking work on its own
// threads) and answers with Mailpit's status codes, texts and JSON key sets
// (mailpit-compat.md §2). Thumbnails are decoded on the host's worker pool. Bad input is
// answered 400; a store failure escapes as an exception (the core answers 500).
#include <map>
#include <string>
#include <vector>

#include <boost/asio/this_coro.hpp>
#include <boost/json/array.hpp>

#include "api.hpp"
#include "api_util.hpp"
#include "sluice/mailpit_json.hpp"
#include "sluice/search.hpp"
#include "sluice/spam.hpp"
#include "sluice/text.hpp"
#include "thumb.hpp"

namespace sluice::http::api {
namespace {

using bhttp::verb;
using boost::asio::awaitable;

// A file name for a quoted Content-Disposition parameter: no quotes, backslashes or
// control characters (they would end or split the header), at most 255 bytes.
std::string safe_filename(std::string_view name) {
  std::string out;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      out += '_';
    } else {
      out += static_cast<char>(c);
    }
    if (out.size() >= 255) break;
  }
  return out;
}

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

// RFC 8187 ext-value: UTF-8'' followed by percent-encoded octets outside attr-char.
std::string ext_value(std::string_view s) {
  std::string out = "UTF-8''";
  for (unsigned char c : s) {
    const bool attr =
        (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
        std::string_view("!#$&+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
    if (attr) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      append_hex(out, c);
    }
  }
  return out;
}

std::string content_disposition(std::string_view kind, std::string_view filename) {
  std::string v(kind);
  if (filename.empty()) return v;
  const std::string safe = safe_filename(filename);
  if (is_ascii(safe)) return v + "; filename=\"" + safe + "\"";
  // Non-ASCII: an ASCII fallback for old clients plus the exact name (RFC 6266 §4.3).
  std::string fallback;
  for (unsigned char c : safe)
    fallback += c < 0x80 ? static_cast<char>(c) : '_';
  return v + "; filename=\"" + fallback + "\"; filename*=" + ext_value(safe);
}

// Fills a search request from the common parameters (tz, before).
std::optional<std::string> read_search_params(const request_context& ctx, search_request& sr) {
  sr.mailbox = ctx.mailbox;
  if (const auto* tz = ctx.param("tz")) sr.tz = *tz;
  // A before= that is no time is ignored, as Mailpit does (getStartLimit).
  if (const auto* b = ctx.param("before"); b && !b->empty()) {
    if (auto ms = parse_time_ms(*b)) sr.before_ms = *ms;
  }
  page p;
  if (auto e = read_page(ctx, p)) return e;
  sr.offset = p.start;
  sr.limit = p.limit;
  return std::nullopt;
}

// GET /api/v1/messages
awaitable<response> list_messages(request_context& ctx) {
  search_request sr;
  if (auto e = read_search_params(ctx, sr)) co_return bad_request(ctx.req, *e);
  auto res = co_await ctx.env.store->search(sr);
  // The list's counts are the mailbox's even with before= (Mailpit's GetMessages); only a
  // search counts its matches.
  res.matched = res.total;
  res.matched_unread = res.unread;
  co_return json_response(ctx.req, messages_summary_json(res, sr.offset));
}

// GET /api/v1/search
awaitable<response> search_messages(request_context& ctx) {
  const std::string* q = ctx.param("query");
  if (!q || trim(*q).empty()) co_return bad_request(ctx.req, "Error: no search query");
  search_request sr;
  if (auto e = read_search_params(ctx, sr)) co_return bad_request(ctx.req, *e);
  sr.query = *q;
  auto res = co_await ctx.env.store->search(sr);
  co_return json_response(ctx.req, messages_summary_json(res, sr.offset));
}

// DELETE /api/v1/search
awaitable<response> delete_search(request_context& ctx) {
  const std::string* q = ctx.param("query");
  if (!q || trim(*q).empty()) co_return bad_request(ctx.req, "Error: no search query");
  // A query whose every term is ignored (dates that cannot be read, as Mailpit ignores
  // them) would select the whole mailbox: a delete refuses it instead of emptying it.
  if (parse_search(*q).empty()) {
    co_return bad_request(ctx.req,
                          "Error: the search has no usable term (unreadable dates are "
                          "ignored), so it would delete every message");
  }
  message_selector sel;
  sel.query = *q;
  if (const auto* tz = ctx.param("tz")) sel.tz = *tz;
  co_await ctx.env.store->remove(ctx.mailbox, std::move(sel));
  co_return ok_response(ctx.req);
}

// PUT /api/v1/messages: {"IDs": [...]} or {"Search": "..."} with "Read"; neither: all.
awaitable<response> set_read(request_context& ctx) {
  auto body = parse_json_body(ctx.req);
  if (body.too_large) {
    co_return text_response(ctx.req, bhttp::status::payload_too_large, body.error);
  }
  if (!body) co_return bad_request(ctx.req, body.error);
  const auto& o = body.value.get_object();
  std::string error;
  message_selector sel;
  bool read = false;
  std::string search;
  if (!read_string_array(o, "IDs", sel.ids, error) || !read_string(o, "Search", search, error) ||
      !read_bool(o, "Read", read, error)) {
    co_return bad_request(ctx.req, error);
  }
  if (!sel.ids.empty() && !search.empty()) {
    co_return bad_request(ctx.req, "You may specify either IDs or Search query, not both");
  }
  if (!search.empty()) {
    sel.query = search;
    if (const auto* tz = ctx.param("tz")) sel.tz = *tz;
  }
  co_await ctx.env.store->set_read(ctx.mailbox, std::move(sel), read);
  co_return ok_response(ctx.req);
}

// DELETE /api/v1/messages: {"IDs": [...]}; an empty, missing or unparseable body deletes
// every message of the mailbox (Mailpit's behaviour). A body over the limit is refused
// instead: a truncated list must never turn into "delete everything".
awaitable<response> delete_messages(request_context& ctx) {
  auto body = parse_json_body(ctx.req);
  if (body.too_large) {
    co_return text_response(ctx.req, bhttp::status::payload_too_large, body.error);
  }
  message_selector sel;
  if (body) {
    std::string error;
    if (!read_string_array(body.value.get_object(), "IDs", sel.ids, error)) sel.ids.clear();
  }
  co_await ctx.env.store->remove(ctx.mailbox, std::move(sel));
  co_return ok_response(ctx.req);
}

// GET /api/v1/message/{ID}: the Message object; marks the message read.
awaitable<response> get_message(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  auto m = co_await ctx.env.store->get(ctx.mailbox, *id);
  if (!m) co_return not_found(ctx.req);
  if (!m->read) {
    message_selector sel;
    sel.ids.push_back(*id);
    // Reading a message works on a full disk too; only its read flag stays unset.
    try {
      co_await ctx.env.store->set_read(ctx.mailbox, std::move(sel), true);
    } catch (const storage_full_error&) {
    }
  }
  co_return json_response(ctx.req, mailpit::message_json(*m));
}

// GET /api/v1/message/{ID}/headers: {"Canonical-Key": [values…]}, keys sorted as Go
// marshals a map.
awaitable<response> get_headers(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  auto m = co_await ctx.env.store->get(ctx.mailbox, *id);
  if (!m) co_return not_found(ctx.req);
  std::map<std::string, json::array> by_key;
  for (const auto& [name, value] : m->headers)
    by_key[go_canonical_header_key(name)].emplace_back(std::string(trim(value)));
  json::object o;
  o.reserve(by_key.size());
  for (auto& [k, v] : by_key)
    o[k] = std::move(v);
  co_return json_response(ctx.req, o);
}

// GET /api/v1/message/{ID}/raw[?dl=1]
awaitable<response> get_raw(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  auto raw = co_await ctx.env.store->raw(ctx.mailbox, *id, true);
  if (!raw) co_return not_found(ctx.req);
  auto r = bytes_response(ctx.req, "text/plain; charset=utf-8", std::move(*raw));
  if (const auto* dl = ctx.param("dl"); dl && (*dl == "1" || *dl == "true")) {
    r.set(bhttp::field::content_disposition, content_disposition("attachment", *id + ".eml"));
  }
  co_return r;
}

// GET /api/v1/message/{ID}/part/{PartID}
awaitable<response> get_part(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  if (ctx.params.size() < 2 || ctx.params[1].size() > kMaxIdLength) co_return not_found(ctx.req);
  auto p = co_await ctx.env.store->part(ctx.mailbox, *id, ctx.params[1]);
  if (!p) co_return not_found(ctx.req);
  std::string type =
      p->part.content_type.empty() ? "application/octet-stream" : p->part.content_type;
  if (!p->part.charset.empty() && type.starts_with("text/")) {
    type += "; charset=" + p->part.charset;
  }
  auto r = bytes_response(ctx.req, type, std::move(p->data));
  r.set(bhttp::field::content_disposition,
        content_disposition("inline", mailpit::file_name(p->part)));
  // A part is the sender's content served from our origin: never let a browser run it
  // (an HTML or SVG attachment opened directly would otherwise script the API).
  r.set("X-Content-Type-Options", "nosniff");
  r.set("Content-Security-Policy",
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox");
  co_return r;
}

// GET /api/v1/message/{ID}/part/{PartID}/thumb
awaitable<response> get_thumb(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  if (ctx.params.size() < 2 || ctx.params[1].size() > kMaxIdLength) co_return not_found(ctx.req);
  auto p = co_await ctx.env.store->part(ctx.mailbox, *id, ctx.params[1]);
  // Mailpit answers an unknown part of a thumbnail with 400 (GetAttachmentPart's error).
  if (!p) co_return bad_request(ctx.req, "attachment not found");
  thumb_result t;
  if (ctx.env.host) {
    t = co_await offload(*ctx.env.host,
                         [data = std::move(p->data)] { return make_thumbnail(data); });
  } else {
    t = make_thumbnail(p->data);
  }
  if (t.status == thumb_status::refused || t.status == thumb_status::failed) {
    ctx.env.log.info("thumbnail not made", {{"id", *id},
                                            {"part", ctx.params[1]},
                                            {"status", std::string(to_string(t.status))},
                                            {"reason", t.reason}});
  }
  auto r = bytes_response(ctx.req, "image/jpeg", std::move(t.jpeg));
  r.set(bhttp::field::content_disposition,
        content_disposition("inline", mailpit::file_name(p->part)));
  // Which thumbnail this is (the image, or the blank one and why), for clients and tests.
  r.set("X-Sluice-Thumbnail", std::string(to_string(t.status)));
  co_return r;
}

// POST /api/v1/message/{ID}/release: api_release.cpp.
awaitable<response> release_message(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  co_return co_await release_stored(ctx, *id);
}

// GET /api/v1/message/{ID}/auth (Sluice): the authentication checks the auth stages
// recorded (attribute "auth", plugins/auth/README.md), one entry per check in the order
// Authentication-Results gives them; 404 when no check ran for the message.
json::object auth_check(std::string method, const json::object& r, json::object props) {
  auto str = [&](std::string_view k) {
    const auto* v = r.if_contains(k);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
  };
  return json::object{{"Method", std::move(method)},
                      {"Result", str("result")},
                      {"Reason", str("reason")},
                      {"Properties", std::move(props)},
                      {"Details", r}};
}

awaitable<response> get_auth(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  auto m = co_await ctx.env.store->get(ctx.mailbox, *id);
  if (!m) co_return not_found(ctx.req);
  const auto* a = m->attributes.if_contains("auth");
  if (!a || !a->is_object())
    co_return text_response(ctx.req, bhttp::status::not_found, "No authentication results");
  const json::object& auth = a->get_object();
  auto field = [](const json::object& o, std::string_view k) {
    const auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
  };
  json::array checks;
  if (const auto* spf = auth.if_contains("spf"); spf && spf->is_object()) {
    const auto& o = spf->get_object();
    json::object props;
    if (field(o, "identity") == "helo") {
      props["smtp.helo"] = field(o, "helo_name");
    } else {
      props["smtp.mailfrom"] = field(o, "mailfrom");
    }
    checks.push_back(auth_check("spf", o, std::move(props)));
  }
  if (const auto* dkim = auth.if_contains("dkim"); dkim && dkim->is_array()) {
    for (const auto& sig : dkim->get_array()) {
      if (!sig.is_object()) continue;
      const auto& o = sig.get_object();
      checks.push_back(auth_check(
          "dkim", o,
          json::object{{"header.d", field(o, "domain")}, {"header.s", field(o, "selector")}}));
    }
  }
  if (const auto* dmarc = auth.if_contains("dmarc"); dmarc && dmarc->is_object()) {
    const auto& o = dmarc->get_object();
    checks.push_back(
        auth_check("dmarc", o, json::object{{"header.from", field(o, "from_domain")}}));
  }
  co_return json_response(ctx.req,
                          json::object{{"ID", *id}, {"Checks", std::move(checks)}, {"Raw", auth}});
}

// GET /api/v1/message/{ID}/sa-check: the spam stage's result (attribute "spam",
// plugins/spam/README.md) in Mailpit's SpamAssassin shape {"Error", "IsSpam", "Score",
// "Rules": [{"Name", "Score", "Description"}]}. Without a spam result the answer is
// Mailpit's when SpamAssassin is disabled (404 "File not found").
awaitable<response> sa_check(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  auto m = co_await ctx.env.store->get(ctx.mailbox, *id);
  if (!m) co_return not_found(ctx.req);
  const auto* a = m->attributes.if_contains("spam");
  if (!a || !a->is_object()) {
    co_return text_response(ctx.req, bhttp::status::not_found, "File not found");
  }
  const json::object& spam = a->get_object();
  auto num = [](const json::object& o, std::string_view k) {
    const auto* v = o.if_contains(k);
    if (!v) return 0.0;
    if (v->is_double()) return v->get_double();
    if (v->is_int64()) return static_cast<double>(v->get_int64());
    if (v->is_uint64()) return static_cast<double>(v->get_uint64());
    return 0.0;
  };
  auto str = [](const json::object& o, std::string_view k) {
    const auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->get_string()) : std::string();
  };
  json::array rules;
  if (const auto* r = spam.if_contains("rules"); r && r->is_array()) {
    for (const auto& rule : r->get_array()) {
      if (!rule.is_object()) continue;
      const auto& o = rule.get_object();
      rules.push_back(json::object{{"Name", str(o, "name")},
                                   {"Score", num(o, "score")},
                                   {"Description", str(o, "description")}});
    }
  }
  const auto* is_spam = spam.if_contains("is_spam");
  co_return json_response(
      ctx.req, json::object{{"Error", str(spam, "error")},
                            {"IsSpam", is_spam && is_spam->is_bool() && is_spam->get_bool()},
                            {"Score", num(spam, "score")},
                            {"Rules", std::move(rules)}});
}

// POST /api/v1/message/{ID}/train (Sluice): {"As": "spam"|"ham"} teaches the spam
// classifier (the spam_trainer service, sluice/spam.hpp) with the stored message: its
// header fields and parsed view. 400 when no spam service is configured or the body is
// wrong; 404 for an unknown message.
awaitable<response> train_message(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  auto body = parse_json_body(ctx.req);
  if (body.too_large) {
    co_return text_response(ctx.req, bhttp::status::payload_too_large, body.error);
  }
  if (!body) co_return bad_request(ctx.req, body.error);
  std::string as, error;
  if (!read_string(body.value.get_object(), "As", as, error)) co_return bad_request(ctx.req, error);
  if (as != "spam" && as != "ham") co_return bad_request(ctx.req, "As must be \"spam\" or \"ham\"");
  std::shared_ptr<spam_trainer> trainer;
  if (ctx.env.host && !ctx.env.host->services().names(spam_trainer::kind).empty()) {
    trainer = ctx.env.host->services().get<spam_trainer>();
  }
  if (!trainer) {
    co_return bad_request(ctx.req,
                          "spam training is not configured (add a service with plugin: spam)");
  }
  auto m = co_await ctx.env.store->get(ctx.mailbox, *id);
  if (!m) co_return not_found(ctx.req);
  std::string headers;
  for (const auto& [name, value] : m->headers)
    headers += name + ": " + value + "\r\n";
  parsed_message view = m->view ? *m->view : parsed_message{};
  if (!m->view) view.subject = m->subject;
  auto r = co_await trainer->train(std::move(headers), std::move(view),
                                   as == "spam" ? spam_label::spam : spam_label::ham);
  co_return json_response(ctx.req, json::object{{"ID", *id},
                                                {"As", as},
                                                {"Outcome", r.outcome},
                                                {"Tokens", r.tokens},
                                                {"SpamMessages", r.spam_messages},
                                                {"HamMessages", r.ham_messages}});
}

// GET /api/v1/message/{ID}/link-check[?follow=true]: Mailpit's LinkCheckResponse for the
// links of the message's HTML and text (link_check.hpp); marks the message read.
awaitable<response> not_available(request_context& ctx);

awaitable<response> link_check(request_context& ctx) {
  if (!ctx.env.links) co_return co_await not_available(ctx);
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  auto m = co_await ctx.env.store->get(ctx.mailbox, *id);
  if (!m) co_return not_found(ctx.req);
  if (!m->read) {
    message_selector sel;
    sel.ids.push_back(*id);
    co_await ctx.env.store->set_read(ctx.mailbox, std::move(sel), true);
  }
  const auto* f = ctx.param("follow");
  const bool follow = f && (*f == "true" || *f == "1");
  std::vector<std::string> links;
  if (m->view)
    links = extract_links(m->view->html, m->view->text, ctx.env.links->settings.max_links);
  auto results = co_await ctx.env.links->check(co_await boost::asio::this_coro::executor,
                                               std::move(links), follow);
  std::int64_t errors = 0;
  json::array out;
  out.reserve(results.size());
  for (auto& r : results) {
    if (r.status == 0 || r.status >= 400) ++errors;
    out.push_back(json::object{
        {"URL", std::move(r.url)}, {"StatusCode", r.status}, {"Status", std::move(r.reason)}});
  }
  co_return json_response(ctx.req, json::object{{"Errors", errors}, {"Links", std::move(out)}});
}

// sa-check without a spam stage, html-check without its data: Mailpit registers sa-check
// only when SpamAssassin is enabled, so the request falls through to its file server: 404
// "File not found". The same answer keeps clients (and the web UI) treating it as "not
// available".
awaitable<response> not_available(request_context& ctx) {
  co_return text_response(ctx.req, bhttp::status::not_found, "File not found");
}

// GET /api/v1/message/{ID}/html-check: html_check.hpp. Does not mark the message read (as
// Mailpit); 400 for a message without HTML. The check runs on the host's worker pool.
awaitable<response> html_check(request_context& ctx) {
  if (!ctx.env.html_check) co_return co_await not_available(ctx);
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  auto m = co_await ctx.env.store->get(ctx.mailbox, *id);
  if (!m) co_return not_found(ctx.req);
  if (!m->view || m->view->html.empty()) {
    co_return bad_request(ctx.req, "message does not contain HTML");
  }
  auto run = [data = ctx.env.html_check, html = std::move(m->view->html)] {
    return run_html_check(*data, html);
  };
  auto result = ctx.env.host ? co_await offload(*ctx.env.host, std::move(run)) : run();
  co_return json_response(ctx.req, std::move(result));
}

}  // namespace

json::object messages_summary_json(const search_result& r, std::uint64_t start) {
  json::object o;
  o["total"] = r.total;
  o["unread"] = r.unread;
  o["count"] = r.messages.size();
  o["messages_count"] = r.matched;
  o["messages_unread"] = r.matched_unread;
  o["start"] = start;
  json::array tags;
  for (const auto& t : r.tags)
    tags.emplace_back(t);
  o["tags"] = std::move(tags);
  json::array msgs;
  msgs.reserve(r.messages.size());
  for (const auto& m : r.messages)
    msgs.push_back(mailpit::summary_json(m));
  o["messages"] = std::move(msgs);
  return o;
}

// GET /api/v1/message/{ID}/deliveries (Sluice): the message's delivery log, one entry per
// attempt of a deferred stage (relay, webhook, …), oldest first; 404 for an unknown message.
awaitable<response> get_deliveries(request_context& ctx) {
  std::optional<response> fail;
  auto id = co_await message_id(ctx, fail);
  if (!id) co_return std::move(*fail);
  auto log = co_await ctx.env.store->deliveries(ctx.mailbox, *id);
  if (!log) co_return not_found(ctx.req);
  json::array out;
  out.reserve(log->size());
  for (const auto& v : *log) {
    if (!v.is_object()) continue;
    const auto& e = v.get_object();
    auto ms = [&](std::string_view k) -> json::value {
      const auto* x = e.if_contains(k);
      return x && x->is_int64() ? json::value(mailpit::rfc3339(x->get_int64())) : nullptr;
    };
    auto copy = [&](std::string_view k) -> json::value {
      const auto* x = e.if_contains(k);
      return x ? *x : json::value(nullptr);
    };
    out.push_back(json::object{{"Time", ms("At")},
                               {"Stage", copy("Stage")},
                               {"Pipeline", copy("Pipeline")},
                               {"Attempt", copy("Attempt")},
                               {"Status", copy("Status")},
                               {"Reply", copy("Last")},
                               {"NextAttempt", ms("NextAttempt")},
                               {"Details", copy("Details")}});
  }
  co_return json_response(ctx.req, json::object{{"ID", *id}, {"Deliveries", std::move(out)}});
}

void add_message_routes(router& r) {
  r.add(verb::get, "/api/v1/messages", guarded(list_messages));
  r.add(verb::put, "/api/v1/messages", guarded(set_read));
  r.add(verb::delete_, "/api/v1/messages", guarded(delete_messages));
  r.add(verb::get, "/api/v1/search", guarded(search_messages));
  r.add(verb::delete_, "/api/v1/search", guarded(delete_search));
  r.add(verb::get, "/api/v1/message/{ID}", guarded(get_message));
  r.add(verb::get, "/api/v1/message/{ID}/headers", guarded(get_headers));
  r.add(verb::get, "/api/v1/message/{ID}/raw", guarded(get_raw));
  r.add(verb::get, "/api/v1/message/{ID}/part/{PartID}", guarded(get_part));
  r.add(verb::get, "/api/v1/message/{ID}/part/{PartID}/thumb", guarded(get_thumb));
  r.add(verb::post, "/api/v1/message/{ID}/release", guarded(release_message));
  r.add(verb::get, "/api/v1/message/{ID}/auth", guarded(get_auth));
  r.add(verb::get, "/api/v1/message/{ID}/deliveries", guarded(get_deliveries));
  r.add(verb::get, "/api/v1/message/{ID}/sa-check", guarded(sa_check));
  r.add(verb::post, "/api/v1/message/{ID}/train", guarded(train_message));
  r.add(verb::get, "/api/v1/message/{ID}/html-check", guarded(html_check));
  r.add(verb::get, "/api/v1/message/{ID}/link-check", guarded(link_check));
}

}  // namespace sluice::http::api
