// plugins/http/src/session.cpp — see session.hpp.
#include "session.hpp"

#include <openssl/rand.h>

#include <chrono>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json.hpp>

#include "compress.hpp"
#include "cors.hpp"
#include "host_header.hpp"
#include "html_escape.hpp"
#include "sluice/mailbox.hpp"
#include "sluice/text.hpp"
#include "url.hpp"
#include "websocket.hpp"

namespace sluice::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::awaitable;

void set_security_headers(bhttp::fields& f, const server_state& st, std::string_view nonce) {
  if (f.find("Content-Security-Policy") == f.end()) {
    // The UI's documents load only their own scripts, styles and images and talk only to
    // their own origin (the WebSocket included); nothing may frame them. Handlers that
    // serve other documents (message views, parts) set their own policy.
    std::string csp = "default-src 'none'; script-src 'self'";
    if (!nonce.empty()) csp += " 'nonce-" + std::string(nonce) + "'";
    csp +=
        "; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        "frame-src 'self'; manifest-src 'self'; base-uri 'self'; form-action 'self'; "
        "frame-ancestors 'none'";
    f.set("Content-Security-Policy", csp);
  }
  if (f.find("Referrer-Policy") == f.end()) {
    f.set("Referrer-Policy", "no-referrer");
  }
  if (f.find("X-Content-Type-Options") == f.end()) f.set("X-Content-Type-Options", "nosniff");
}

namespace {

constexpr std::size_t discard_body_max = 64 * 1024;

std::string random_nonce() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) return {};
  return to_hex(b, sizeof b);
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
}

// Whether the Transfer-Encoding fields (a comma-separated list, RFC 9112 §6.1) name
// exactly one coding, "chunked", the only one this server decodes.
bool only_chunked(const bhttp::request_header<>& hdr) {
  int codings = 0;
  bool chunked = false;
  for (auto [it, end] = hdr.equal_range(bhttp::field::transfer_encoding); it != end; ++it) {
    std::string_view v = it->value();
    while (!v.empty()) {
      auto comma = v.find(',');
      std::string_view item = trim(v.substr(0, comma));
      v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
      if (item.empty()) continue;  // empty list elements are allowed (RFC 9110 §5.6.1)
      ++codings;
      chunked = iequals(item, "chunked");
    }
  }
  return codings == 1 && chunked;
}

response empty_response(const request& req, bhttp::status s) {
  response res{s, req.version()};
  res.keep_alive(req.keep_alive());
  return res;
}

response redirect(const request& req, bhttp::status s, const std::string& target) {
  // A backslash is a slash to browsers (WHATWG URL): "/\\evil.test" would leave the site.
  std::string location = target;
  replace_all(location, "\\", "%5C");
  response res{s, req.version()};
  res.set(bhttp::field::location, location);
  res.keep_alive(req.keep_alive());
  if (req.method() == bhttp::verb::get || req.method() == bhttp::verb::head) {
    // What Go's http.Redirect writes, so scripts that look at the body see the same.
    res.set(bhttp::field::content_type, "text/html; charset=utf-8");
    res.body() = "<a href=\"" + html_escape(location) + "\">" +
                 std::string(bhttp::obsolete_reason(s)) + "</a>.\n\n";
  }
  return res;
}

response unauthorized(const request& req) {
  auto res = text_response(req, bhttp::status::unauthorized, "Unauthorized.\n");
  res.set(bhttp::field::www_authenticate, "Basic realm=\"Login\"");
  return res;
}

bool etag_matches(std::string_view if_none_match, std::string_view etag_a,
                  std::string_view etag_b) {
  // Weak comparison (RFC 9110 §13.1.2): W/ is ignored.
  while (!if_none_match.empty()) {
    auto comma = if_none_match.find(',');
    std::string_view t = trim(if_none_match.substr(0, comma));
    if_none_match = comma == std::string_view::npos ? "" : if_none_match.substr(comma + 1);
    if (t == "*") return true;
    if (t.starts_with("W/")) t.remove_prefix(2);
    if (t == etag_a || t == etag_b) return true;
  }
  return false;
}

// What the header phase found out about a request.
struct routed {
  std::string path;  // after the web root and mailbox prefix, starts with '/'
  std::string query;
  std::string mailbox;
  std::string base;
  std::string user;
  std::string origin;
  bool is_send = false;
  bool is_events = false;
  bool cors_headers = false;
  bool close = false;  // answer, then close the connection (a malformed request)
  std::string host;    // the effective host[:port]: the absolute-form authority or Host
};

template <class Stream>
class connection final : public std::enable_shared_from_this<connection<Stream>> {
 public:
  connection(std::shared_ptr<server_state> st, Stream stream, peer_info peer)
      : st_(std::move(st)), stream_(std::move(stream)), peer_(std::move(peer)) {}

  ~connection() {
    if (drain_token_ != 0) {
      if (auto g = st_->lctx.drain_gate()) g->cancel(drain_token_);
    }
    st_->connections.fetch_sub(1);
    if (st_->metrics.connections_active) st_->metrics.connections_active->add(-1);
  }

  awaitable<void> run() {
    auto self = this->shared_from_this();
    if (auto g = st_->lctx.drain_gate()) {
      holder_ = g->try_enter();
      if (!holder_) co_return;  // draining: close without a word
      auto ex = stream_.get_executor();
      std::weak_ptr<connection> w = self;
      // Runs on the thread that closes the gate: hop onto our strand.
      drain_token_ = g->on_close([w, ex] {
        asio::post(ex, [w] {
          if (auto s = w.lock()) s->on_drain();
        });
      });
    }
    boost::system::error_code ec;
    if constexpr (std::is_same_v<Stream, tls_stream>) {
      beast::get_lowest_layer(stream_).expires_after(st_->cfg.limits.read_timeout);
      co_await stream_.async_handshake(asio::ssl::stream_base::server,
                                       asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        st_->log.debug("TLS handshake failed", {{"peer", peer_.address}, {"error", ec.message()}});
        co_return;
      }
    }
    try {
      while (co_await serve_one()) {
      }
    } catch (const std::exception& e) {
      // Only the core's own bugs get here; handlers' exceptions are caught per request.
      st_->log.error("connection failed", {{"peer", peer_.address}, {"error", e.what()}});
    }
    if (upgraded_) co_return;
    if constexpr (std::is_same_v<Stream, tls_stream>) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
      co_await stream_.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
    } else {
      stream_.socket().shutdown(asio::socket_base::shutdown_send, ec);
    }
    beast::get_lowest_layer(stream_).close();
  }

 private:
  void on_drain() {
    draining_ = true;
    if (idle_) beast::get_lowest_layer(stream_).cancel();  // nothing in flight: close now
  }

  // Reads and answers one request; false when the connection should close.
  awaitable<bool> serve_one() {
    boost::system::error_code ec;
    const auto& lim = st_->cfg.limits;
    if (buf_.size() == 0) {
      // Between requests: the only state in which a drain closes the connection at once.
      if (draining_) co_return false;
      idle_ = true;
      beast::get_lowest_layer(stream_).expires_after(lim.idle_timeout);
      auto n = co_await stream_.async_read_some(buf_.prepare(16 * 1024),
                                                asio::redirect_error(asio::use_awaitable, ec));
      idle_ = false;
      if (ec) co_return false;
      buf_.commit(n);
    }
    auto started = std::chrono::steady_clock::now();
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(lim.max_header_bytes));
    // The body limit depends on the route, known only after the header: Beast's default
    // (1 MiB) would refuse a larger Content-Length as a bad header. Set below.
    parser.body_limit(boost::none);
    beast::get_lowest_layer(stream_).expires_after(lim.read_timeout);
    co_await bhttp::async_read_header(stream_, buf_, parser,
                                      asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == bhttp::error::header_limit) {
        co_await send_error(bhttp::status::request_header_fields_too_large,
                            "431 Request Header Fields Too Large\n");
      } else if (ec == beast::error::timeout) {
        if (st_->metrics.timeouts) st_->metrics.timeouts->inc();
      } else if (ec != bhttp::error::end_of_stream && ec != asio::error::eof &&
                 ec != asio::error::operation_aborted && ec != bhttp::error::partial_message &&
                 ec != asio::error::connection_reset) {
        co_await send_error(bhttp::status::bad_request, "400 Bad Request\n");
      }
      co_return false;
    }
    const auto& hdr = parser.get();
    if (auto te = hdr.find(bhttp::field::transfer_encoding); te != hdr.end()) {
      // RFC 9112 §6.1/§6.3: only "chunked" is decoded here. Any other coding (or chunked
      // not last) leaves the body's length unknown: answering and reading on would run
      // the body as the next request. HTTP/1.0 has no Transfer-Encoding.
      if (hdr.version() < 11) {
        co_await send_error(bhttp::status::bad_request,
                            "400 Bad Request: Transfer-Encoding in an HTTP/1.0 request\n");
        co_return false;
      }
      if (!only_chunked(hdr)) {
        co_await send_error(bhttp::status::not_implemented,
                            "501 Not Implemented: only the chunked transfer coding is accepted\n");
        co_return false;
      }
    }
    routed r;
    std::optional<response> early = co_await route_header(hdr, r);
    bool has_body = parser.chunked() || (parser.content_length() && *parser.content_length() > 0);
    bool keep = true;
    if (!early) {
      std::uint64_t limit = r.is_send ? st_->env.max_send_bytes : lim.max_body_bytes;
      if (parser.content_length() && *parser.content_length() > limit) {
        early = too_large(hdr, r);
        keep = false;
      }
    } else if (has_body) {
      // Answered without reading the body: read a small one away, close for a big one.
      if (parser.content_length() && *parser.content_length() <= discard_body_max &&
          !iequals(hdr[bhttp::field::expect], "100-continue")) {
        parser.body_limit(discard_body_max);
        co_await bhttp::async_read(stream_, buf_, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) keep = false;
      } else {
        keep = false;
      }
    }
    response res;
    if (early) {
      res = std::move(*early);
    } else {
      std::uint64_t limit = r.is_send ? st_->env.max_send_bytes : lim.max_body_bytes;
      parser.body_limit(limit);
      if (has_body && iequals(hdr[bhttp::field::expect], "100-continue")) {
        bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, hdr.version()};
        beast::get_lowest_layer(stream_).expires_after(lim.write_timeout);
        co_await bhttp::async_write(stream_, cont, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return false;
      }
      if (has_body || !parser.is_done()) {
        beast::get_lowest_layer(stream_).expires_after(lim.read_timeout);
        co_await bhttp::async_read(stream_, buf_, parser,
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec == bhttp::error::body_limit) {
          res = too_large(hdr, r);
          keep = false;
          ec = {};
        } else if (ec) {
          if (ec == beast::error::timeout && st_->metrics.timeouts) st_->metrics.timeouts->inc();
          // A malformed body (bad chunk size, chunk extension…) gets an answer (RFC 9112
          // §2.2) before the close; a cut-off one does not.
          if (ec.category() == bhttp::make_error_code(bhttp::error::bad_chunk).category() &&
              ec != bhttp::error::partial_message && ec != bhttp::error::end_of_stream) {
            co_await send_error(bhttp::status::bad_request, "400 Bad Request: malformed body\n");
          }
          co_return false;
        }
      }
      if (keep) {
        request req = parser.release();
        if (r.is_events && beast::websocket::is_upgrade(req)) {
          upgraded_ = true;
          count(101, started);
          run_websocket(st_, std::move(stream_), std::move(req), r.mailbox, std::move(holder_));
          co_return false;
        }
        res = co_await dispatch(req, r);
        co_return co_await finish(req, r, std::move(res), keep, started);
      }
    }
    // The request's header (and no usable body) is all we have.
    request head_only(hdr.base());
    co_return co_await finish(head_only, r, std::move(res), keep, started);
  }

  response too_large(const bhttp::request_header<>& hdr, const routed& r) {
    request req(hdr);
    if (r.is_send) {
      boost::json::object o;
      o["Error"] =
          "request body too large (limit " + std::to_string(st_->env.max_send_bytes) + " bytes)";
      return json_response(req, o, bhttp::status::payload_too_large);
    }
    return text_response(req, bhttp::status::payload_too_large, "413 Request Entity Too Large\n");
  }

  // Everything that needs only the request header: canonical path, web root, mailbox,
  // probes, Origin, preflight, credentials. A response means "answer this, do not
  // dispatch".
  awaitable<std::optional<response>> route_header(const bhttp::request_header<>& hdr, routed& r) {
    request req(hdr);
    std::string_view target = hdr.target();
    // RFC 9112 §3.2: exactly one valid Host (HTTP/1.0 may omit it), else 400 and close.
    // An absolute-form target's authority is the request's host (§3.2.2).
    std::vector<std::string_view> hosts;
    for (auto [it, end] = hdr.equal_range(bhttp::field::host); it != end; ++it) {
      hosts.push_back(it->value());
    }
    authority_result auth = check_authority(hdr.version(), hosts, target);
    if (!auth.ok) {
      st_->log.debug("bad request authority", {{"peer", peer_.address}, {"error", auth.error}});
      r.close = true;
      co_return text_response(req, bhttp::status::bad_request,
                              "400 Bad Request: " + auth.error + "\n");
    }
    r.host = std::move(auth.host);
    if (target == "*") {
      if (hdr.method() == bhttp::verb::options) co_return empty_response(req, bhttp::status::ok);
      co_return text_response(req, bhttp::status::bad_request, "400 Bad Request\n");
    }
    std::string absolute_path;
    if (auth.origin_form) {
      absolute_path = std::move(*auth.origin_form);
      target = absolute_path;
    } else if (!target.starts_with("/")) {
      // authority-form (CONNECT) or garbage: not for an origin server.
      co_return text_response(req, bhttp::status::bad_request, "400 Bad Request\n");
    }
    std::string_view raw_path = target.substr(0, target.find('?'));
    if (auto q = target.find('?'); q != std::string_view::npos) r.query = target.substr(q + 1);
    if (auto hash = raw_path.find('#'); hash != std::string_view::npos) {
      raw_path = raw_path.substr(0, hash);
    }
    std::string clean = clean_path(raw_path);
    if (clean != raw_path && hdr.method() != bhttp::verb::connect) {
      // Go's ServeMux: a path with "//", "." or ".." is redirected to its clean form
      // (cypress-mailpit requests "//view/…" and relies on it).
      std::string loc = clean;
      if (!r.query.empty()) loc += "?" + r.query;
      co_return redirect(req, bhttp::status::moved_permanently, loc);
    }
    const std::string& webroot = st_->cfg.webroot;
    if (!clean.starts_with(webroot)) {
      if (clean + "/" == webroot && hdr.method() == bhttp::verb::get) {
        co_return redirect(req, bhttp::status::found, webroot);
      }
      co_return not_found(req);
    }
    std::string rest = clean.substr(webroot.size() - 1);
    r.mailbox = st_->cfg.default_mailbox;
    r.base = webroot;
    if (rest.starts_with("/mailbox/")) {
      std::string_view after = std::string_view(rest).substr(9);
      auto slash = after.find('/');
      auto name = percent_decode(after.substr(0, slash), false);
      if (!name || name->empty() || name->find('/') != std::string::npos || !mailbox_known(*name)) {
        co_return not_found(req);
      }
      if (slash == std::string_view::npos) {
        std::string loc = clean + "/";
        if (!r.query.empty()) loc += "?" + r.query;
        co_return redirect(req, bhttp::status::found, loc);
      }
      r.mailbox = std::move(*name);
      r.base = webroot + "mailbox/" + encode_segment(r.mailbox) + "/";
      rest = std::string(after.substr(slash));
    }
    r.path = rest;
    r.is_send = r.path == "/api/v1/send" && hdr.method() == bhttp::verb::post;
    r.is_events = r.path == "/api/events";
    // Kubernetes probes answer without credentials or Origin checks (as Mailpit).
    if (r.path == "/livez" || r.path == "/readyz") co_return std::nullopt;

    if (auto o = hdr.find(bhttp::field::origin); o != hdr.end()) {
      r.origin = std::string(o->value());
      // The message view runs in a sandboxed iframe (an opaque origin), whose image and
      // style loads of the message's own parts carry "Origin: null". Only those reads are
      // let through: GET/HEAD of a part, never answered with CORS headers, so a page
      // elsewhere can embed a part it knows the id of but can neither read nor change it.
      const bool opaque_part_read =
          r.origin == "null" &&
          (hdr.method() == bhttp::verb::get || hdr.method() == bhttp::verb::head) &&
          r.path.starts_with("/api/v1/message/") && r.path.find("/part/") != std::string::npos;
      if (opaque_part_read) {
        r.origin.clear();
      } else if (!origin_allowed(r.origin, r.host, st_->cfg.api_cors)) {
        if (st_->metrics.cors_refused) st_->metrics.cors_refused->inc();
        st_->log.warn("blocked request from unauthorized origin",
                      {{"origin", origin_host(r.origin)}, {"peer", peer_.address}});
        co_return text_response(req, bhttp::status::forbidden, "Blocked due to CORS violation\n");
      }
      r.cors_headers = r.path.starts_with("/api/") || r.path.starts_with("/view/");
    }
    // Browsers send preflights without credentials; Mailpit then skips authentication.
    bool preflight = hdr.method() == bhttp::verb::options;
    if (!(preflight && st_->cfg.cors_configured)) {
      std::shared_ptr<credential_set> creds = st_->ui_auth;
      if (r.is_send) {
        if (st_->cfg.send_auth_accept_any) {
          creds = nullptr;
        } else if (st_->send_auth) {
          creds = st_->send_auth;
        }
      }
      if (creds) {
        auto user = co_await creds->check(st_->host, std::string(hdr[bhttp::field::authorization]));
        if (!user) {
          if (st_->metrics.auth_failures) st_->metrics.auth_failures->inc();
          co_return unauthorized(req);
        }
        r.user = std::move(*user);
      }
    }
    if (preflight && r.path.starts_with("/api/")) co_return empty_response(req, bhttp::status::ok);
    co_return std::nullopt;
  }

  bool mailbox_known(const std::string& name) const {
    if (name == st_->cfg.default_mailbox) return true;
    try {
      auto all = st_->env.store->mailboxes();
      return std::find(all.begin(), all.end(), name) != all.end();
    } catch (const std::exception&) {
      return false;
    }
  }

  awaitable<response> dispatch(const request& req, routed& r) {
    request_context ctx{req, st_->env, r.path, parse_query(r.query), {}, r.mailbox, r.base, r.user};
    bool known = false;
    auto method = req.method();
    const handler* h = st_->routes.match(method, r.path, ctx.params, known);
    if (!h && method == bhttp::verb::head) {
      bool k2 = false;
      h = st_->routes.match(bhttp::verb::get, r.path, ctx.params, k2);
      known = known || k2;
    }
    if (h) {
      try {
        co_return co_await (*h)(ctx);
      } catch (const sluice::storage_full_error& e) {
        st_->log.warn("request refused: the store's disk is full", {{"path", r.path}});
        co_return text_response(req, bhttp::status::insufficient_storage,
                                std::string(e.what()) + "\n");
      } catch (const sluice::storage_error& e) {
        st_->log.error("request failed: the store failed", {{"path", r.path}, {"error", e.what()}});
        co_return text_response(req, bhttp::status::internal_server_error,
                                std::string(e.what()) + "\n");
      } catch (const std::exception& e) {
        st_->log.error("handler failed", {{"path", r.path}, {"error", e.what()}});
      } catch (...) {
        st_->log.error("handler failed", {{"path", r.path}});
      }
      co_return text_response(req, bhttp::status::internal_server_error,
                              "500 Internal Server Error\n");
    }
    bool get = method == bhttp::verb::get || method == bhttp::verb::head;
    // The single-page UI answers its own routes with index.html.
    if (get && (r.path == "/" || r.path == "/search" || r.path.starts_with("/view/"))) {
      co_return co_await serve_index(req, r);
    }
    // The API reference (Mailpit serves its API docs here), rendered from swagger.json.
    if (get && (r.path == "/api/v1/" || r.path == "/api/v1")) {
      co_return co_await serve_index(req, r, "api-docs.html");
    }
    if (get && !known && r.path != "/" && st_->ui) {
      auto rel = percent_decode(std::string_view(r.path).substr(1), false);
      if (rel && safe_relative_path(*rel) && *rel != "index.html" && *rel != "api-docs.html") {
        auto ui = st_->ui;
        std::string name = *rel;
        auto f = co_await sluice::offload(st_->host, [ui, name] {
          auto found = ui->lookup(name);
          // Browsers ask for /favicon.ico on pages that name no icon (a /view/ page opened
          // on its own, JSON in a tab): the UI's SVG icon answers, with its own type.
          if (!found && name == "favicon.ico") found = ui->lookup("favicon.svg");
          return found;
        });
        if (f) co_return serve_file(req, *f);
      }
    }
    if (known) {
      auto res = text_response(req, bhttp::status::method_not_allowed, "Method Not Allowed\n");
      std::string allow;
      for (auto v : {bhttp::verb::get, bhttp::verb::head, bhttp::verb::post, bhttp::verb::put,
                     bhttp::verb::patch, bhttp::verb::delete_, bhttp::verb::options}) {
        std::vector<std::string> p;
        bool k = false;
        bhttp::verb probe = v == bhttp::verb::head ? bhttp::verb::get : v;
        if (st_->routes.match(probe, r.path, p, k)) {
          allow += (allow.empty() ? "" : ", ") + std::string(bhttp::to_string(v));
        }
      }
      res.set(bhttp::field::allow, allow);
      co_return res;
    }
    co_return not_found(req);
  }

  response serve_file(const request& req, const static_file& f, std::string_view etag_override = {},
                      const std::string* body_override = nullptr) {
    bool gz = f.gzip && !st_->cfg.disable_compression && !body_override &&
              accepts_gzip(req[bhttp::field::accept_encoding]);
    std::string etag = etag_override.empty() ? f.etag : std::string(etag_override);
    std::string gz_etag = etag.substr(0, etag.size() - 1) + "-gz\"";
    std::string sent_etag = gz ? gz_etag : etag;
    auto headers = [&](response& res) {
      res.set(bhttp::field::etag, sent_etag);
      res.set(bhttp::field::cache_control, "no-cache");
      if (!body_override) res.set(bhttp::field::last_modified, f.last_modified);
      if (f.gzip) res.set(bhttp::field::vary, "Accept-Encoding");
    };
    bool not_modified = false;
    if (auto inm = req.find(bhttp::field::if_none_match); inm != req.end()) {
      not_modified = etag_matches(inm->value(), etag, gz_etag);
    } else if (auto ims = req.find(bhttp::field::if_modified_since);
               ims != req.end() && !body_override) {
      auto t = parse_http_date(ims->value());
      not_modified = t && f.mtime_s <= *t;
    }
    if (not_modified) {
      response res{bhttp::status::not_modified, req.version()};
      res.keep_alive(req.keep_alive());
      headers(res);
      return res;
    }
    response res{bhttp::status::ok, req.version()};
    res.keep_alive(req.keep_alive());
    res.set(bhttp::field::content_type, f.content_type);
    headers(res);
    if (gz) {
      res.set(bhttp::field::content_encoding, "gzip");
      res.body() = *f.gzip;
    } else {
      res.body() = body_override ? *body_override : f.data;
    }
    return res;
  }

  // index.html (or another page of the UI that is a template, as api-docs.html) with its
  // placeholders filled in.
  awaitable<response> serve_index(const request& req, routed& r, std::string name = "index.html") {
    std::shared_ptr<const static_file> f;
    if (st_->ui) {
      auto ui = st_->ui;
      f = co_await sluice::offload(st_->host, [ui, name] { return ui->lookup(name); });
    }
    if (!f) co_return not_found(req);
    nonce_ = random_nonce();
    std::string page = f->data;
    replace_all(page, "{{webroot}}", html_escape(st_->cfg.webroot));
    replace_all(page, "{{base}}", html_escape(r.base));
    replace_all(page, "{{mailbox}}", html_escape(r.mailbox));
    replace_all(page, "{{version}}", html_escape(st_->env.version));
    replace_all(page, "{{label}}", html_escape(st_->cfg.label));
    bool uses_nonce = page.find("{{nonce}}") != std::string::npos;
    replace_all(page, "{{nonce}}", nonce_);
    if (!uses_nonce) nonce_.clear();
    // A page with a nonce differs every time: no validator then.
    std::string etag = uses_nonce ? std::string() : "\"" + content_hash(page) + "\"";
    auto res = serve_file(req, *f, etag.empty() ? f->etag : etag, &page);
    if (uses_nonce) {
      res.erase(bhttp::field::etag);
      res.set(bhttp::field::cache_control, "no-store");
    }
    co_return res;
  }

  // Adds what every response gets, writes it, and says whether to keep the connection.
  awaitable<bool> finish(const request& req, const routed& r, response res, bool keep,
                         std::chrono::steady_clock::time_point started) {
    set_security_headers(res, *st_, nonce_);
    nonce_.clear();
    if (r.cors_headers && !r.origin.empty()) {
      res.set(bhttp::field::access_control_allow_origin, r.origin);
      res.set(bhttp::field::access_control_allow_methods, "GET, POST, DELETE, PUT, OPTIONS");
      res.set(bhttp::field::access_control_allow_headers, "*");
      res.insert(bhttp::field::vary, "Origin");
    }
    res.set(bhttp::field::date, http_date(std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count()));
    auto status = res.result_int();
    bool bodyless = status < 200 || status == 204 || status == 304;
    if (!bodyless && !st_->cfg.disable_compression &&
        res.find(bhttp::field::content_encoding) == res.end() &&
        res.body().size() >= st_->cfg.compress_min_bytes &&
        compressible_type(res[bhttp::field::content_type]) &&
        accepts_gzip(req[bhttp::field::accept_encoding])) {
      std::optional<std::string> gz;
      if (res.body().size() > 256 * 1024) {
        // Large bodies (raw messages) are compressed off the I/O thread.
        auto body = std::make_shared<std::string>(std::move(res.body()));
        gz = co_await sluice::offload(st_->host, [body] { return gzip_compress(*body, 5); });
        if (!gz) res.body() = std::move(*body);
      } else {
        gz = gzip_compress(res.body(), 6);
      }
      if (gz) {
        res.body() = std::move(*gz);
        res.set(bhttp::field::content_encoding, "gzip");
        res.insert(bhttp::field::vary, "Accept-Encoding");
        if (auto et = res.find(bhttp::field::etag); et != res.end()) {
          std::string v(et->value());
          if (v.size() >= 2 && v.back() == '"')
            res.set(bhttp::field::etag, v.substr(0, v.size() - 1) + "-gz\"");
        }
      }
    }
    keep = keep && !r.close && req.keep_alive() && res.keep_alive() && !draining_ &&
           !st_->stopping.load(std::memory_order_relaxed);
    res.keep_alive(keep);
    if (!bodyless) {
      res.prepare_payload();
    } else {
      res.erase(bhttp::field::content_length);
      res.body().clear();
    }
    boost::system::error_code ec;
    beast::get_lowest_layer(stream_).expires_after(st_->cfg.limits.write_timeout);
    if (req.method() == bhttp::verb::head) {
      bhttp::response_serializer<bhttp::string_body> sr(res);
      sr.split(true);
      co_await bhttp::async_write_header(stream_, sr,
                                         asio::redirect_error(asio::use_awaitable, ec));
    } else {
      co_await bhttp::async_write(stream_, res, asio::redirect_error(asio::use_awaitable, ec));
    }
    count(status, started);
    if (st_->log.enabled(log_level::debug)) {
      st_->log.debug("request", {{"peer", peer_.address},
                                 {"method", std::string(req.method_string())},
                                 {"path", r.path},
                                 {"mailbox", r.mailbox},
                                 {"status", status},
                                 {"bytes", static_cast<std::uint64_t>(res.body().size())}});
    }
    if (ec) {
      if (ec == beast::error::timeout) {
        // The client does not read (or reads too slowly): drop it, nothing else waits on it.
        if (st_->metrics.timeouts) st_->metrics.timeouts->inc();
        st_->log.info("write timeout, closing the connection",
                      {{"peer", peer_.address}, {"path", r.path}});
      }
      co_return false;
    }
    co_return keep;
  }

  awaitable<void> send_error(bhttp::status s, std::string body) {
    response res{s, 11};
    res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    res.set(bhttp::field::connection, "close");
    res.body() = std::move(body);
    set_security_headers(res, *st_);
    res.prepare_payload();
    boost::system::error_code ec;
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
    co_await bhttp::async_write(stream_, res, asio::redirect_error(asio::use_awaitable, ec));
    count(static_cast<unsigned>(s), std::chrono::steady_clock::now());
  }

  void count(unsigned status, std::chrono::steady_clock::time_point started) {
    auto& m = st_->metrics;
    unsigned cls = status / 100;
    if (counter* c = m.requests[cls >= 1 && cls <= 5 ? cls : 0]) c->inc();
    if (m.duration) {
      m.duration->observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
  }

  std::shared_ptr<server_state> st_;
  Stream stream_;
  peer_info peer_;
  beast::flat_buffer buf_;
  gate::holder holder_;
  std::uint64_t drain_token_ = 0;
  std::string nonce_;
  bool idle_ = false;
  bool draining_ = false;
  bool upgraded_ = false;
};

template <class Stream>
void spawn(std::shared_ptr<server_state> st, Stream stream, peer_info peer) {
  auto ex = stream.get_executor();
  st->connections.fetch_add(1);
  if (st->metrics.connections_active) st->metrics.connections_active->add(1);
  auto c = std::make_shared<connection<Stream>>(std::move(st), std::move(stream), std::move(peer));
  asio::co_spawn(ex, c->run(), asio::detached);
}

}  // namespace

void start_session(std::shared_ptr<server_state> st, asio::ip::tcp::socket sock, peer_info peer) {
  if (st->tls) {
    auto ctx = st->tls;
    spawn(std::move(st), tls_stream(tcp_stream(std::move(sock)), *ctx), std::move(peer));
  } else {
    spawn(std::move(st), tcp_stream(std::move(sock)), std::move(peer));
  }
}

void start_session(std::shared_ptr<server_state> st, asio::local::stream_protocol::socket sock,
                   peer_info peer) {
  spawn(std::move(st), unix_stream(std::move(sock)), std::move(peer));
}

}  // namespace sluice::http
