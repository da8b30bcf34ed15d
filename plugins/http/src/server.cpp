// plugins/http/src/server.cpp — the listener: startup (settings, TLS, credentials, services,
// routes, metrics), binding, accept loops, stop; the core routes (probes, metrics,
// api/events). See server.hpp.
#include "server.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <chrono>
#include <fstream>
#include <system_error>

#include <boost/asio/write.hpp>

#include "html_check.hpp"
#include "session.hpp"
#include "sluice/acceptor.hpp"
#include "sluice/version.hpp"
#include "websocket.hpp"

namespace sluice::http {
namespace asio = boost::asio;
using asio::awaitable;

std::filesystem::path default_ui_dir() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&default_ui_dir), &info) == 0 || !info.dli_fname) {
    return {};
  }
  std::error_code ec;
  auto so = std::filesystem::weakly_canonical(info.dli_fname, ec);
  if (ec) so = info.dli_fname;
  // <prefix>/lib/sluice/plugins/http.so -> <prefix>/share/sluice/webui
  return (so.parent_path() / ".." / ".." / ".." / "share" / "sluice" / "webui").lexically_normal();
}

std::filesystem::path default_html_check_data() {
  // <prefix>/share/sluice/webui -> <prefix>/share/sluice/caniemail.json
  auto ui = default_ui_dir();
  return ui.empty() ? ui : ui.parent_path() / "caniemail.json";
}

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The SDK's TLS server context, announcing HTTP/1.1 only in ALPN, so clients never try h2
// on this port.
std::shared_ptr<asio::ssl::context> make_tls_context(const config_node& tls, const settings& s) {
  auto ctx = make_tls_server_context(tls, s.tls_cert, s.tls_key);
  SSL_CTX_set_alpn_select_cb(
      ctx->native_handle(),
      [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
         unsigned int inlen, void*) -> int {
        static const unsigned char h11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
        unsigned char* selected = nullptr;
        if (SSL_select_next_proto(&selected, outlen, h11, sizeof h11, in, inlen) !=
            OPENSSL_NPN_NEGOTIATED) {
          return SSL_TLSEXT_ERR_NOACK;
        }
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
      },
      nullptr);
  return ctx;
}

void register_metrics(server_state& st) {
  auto m = st.env.metrics;
  if (!m) return;
  metric_labels l{{"listener", st.name}};
  auto& mm = st.metrics;
  mm.connections = &m->get_counter("sluice_http_connections_total", "HTTP connections accepted", l);
  mm.connections_refused = &m->get_counter("sluice_http_connections_refused_total",
                                           "HTTP connections refused (limit)", l);
  mm.connections_active =
      &m->get_gauge("sluice_http_connections_active", "HTTP connections open", l);
  static const char* classes[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (int i = 0; i < 6; ++i) {
    metric_labels lc = l;
    lc.emplace_back("code", classes[i]);
    mm.requests[i] = &m->get_counter("sluice_http_requests_total",
                                     "HTTP requests answered, by status class", lc);
  }
  mm.duration = &m->get_histogram(
      "sluice_http_request_duration_seconds", "Time from request header to response written", l,
      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
  mm.auth_failures =
      &m->get_counter("sluice_http_auth_failures_total", "Requests refused with 401", l);
  mm.cors_refused =
      &m->get_counter("sluice_http_cors_refused_total", "Requests refused for their Origin", l);
  mm.timeouts =
      &m->get_counter("sluice_http_timeouts_total", "HTTP reads and writes that timed out", l);
  mm.websockets_active =
      &m->get_gauge("sluice_http_websockets_active", "WebSocket event clients connected", l);
  mm.websocket_frames =
      &m->get_counter("sluice_http_websocket_frames_total", "WebSocket frames sent", l);
  mm.websocket_slow_disconnects =
      &m->get_counter("sluice_http_websocket_slow_disconnects_total",
                      "WebSocket clients dropped because their queue was full", l);
}

// Over max_connections: a short 503 instead of a silent close, then the socket goes.
template <class Socket>
void refuse(server_state& st, Socket sock) {
  if (st.metrics.connections_refused) st.metrics.connections_refused->inc();
  auto s = std::make_shared<Socket>(std::move(sock));
  static const std::string reply =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
      "Content-Length: 20\r\nConnection: close\r\n\r\ntoo many connections";
  asio::async_write(*s, asio::buffer(reply), [s](boost::system::error_code, std::size_t) {
    boost::system::error_code ec;
    s->shutdown(asio::socket_base::shutdown_both, ec);
    s->close(ec);
  });
}

class http_listener final : public listener {
 public:
  explicit http_listener(std::shared_ptr<server_state> st)
      : st_(std::move(st)), acceptors_(st_->host.io(), st_->log) {}

  void start() override {
    acceptors_.bind(st_->cfg.listen);
    auto st = st_;
    acceptors_.start({
        .tcp =
            [st](acceptor_set::tcp_socket sock, connection_peer peer) {
              if (admit(*st, sock))
                start_session(st, std::move(sock), {format_endpoint(peer.address, peer.port)});
            },
        .unix_socket =
            [st](acceptor_set::unix_stream sock, connection_peer) {
              if (admit(*st, sock)) start_session(st, std::move(sock), peer_info{"unix"});
            },
    });
    st_->hub->start();
    st_->ready = true;
    st_->log.info("listening", {{"endpoints", acceptors_.endpoints_text()},
                                {"tls", st_->tls != nullptr},
                                {"webroot", st_->cfg.webroot},
                                {"auth", st_->ui_auth != nullptr},
                                {"ui_dir", st_->ui ? st_->ui->root().string() : ""}});
  }

  std::vector<std::string> endpoints() const override { return acceptors_.endpoints(); }

  void stop() override {
    st_->ready = false;
    st_->stopping = true;
    acceptors_.stop();
    st_->hub->stop();
  }

  std::vector<std::string> pipelines_used() const override {
    if (st_->cfg.release_pipeline.empty()) return {};
    return {st_->cfg.release_pipeline};
  }

 private:
  // Counts the connection; over max_connections it is refused (503) and false returned.
  template <class Socket>
  static bool admit(server_state& st, Socket& sock) {
    if (st.metrics.connections) st.metrics.connections->inc();
    if (st.connections.load() < st.cfg.limits.max_connections) return true;
    refuse(st, std::move(sock));
    return false;
  }

  std::shared_ptr<server_state> st_;
  acceptor_set acceptors_;
};

// ---- /metrics ----

// Sums the samples of `name` in a Prometheus text page whose label set contains every
// `want` pair.
double sum_samples(std::string_view page, std::string_view name,
                   std::initializer_list<std::string_view> want) {
  double total = 0;
  std::size_t pos = 0;
  while (pos < page.size()) {
    auto eol = page.find('\n', pos);
    if (eol == std::string_view::npos) eol = page.size();
    std::string_view line = page.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.starts_with(name) || line.size() <= name.size()) continue;
    char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    std::string_view labels;
    if (next == '{') {
      auto close = line.find('}');
      if (close == std::string_view::npos) continue;
      labels = line.substr(name.size() + 1, close - name.size() - 1);
    }
    bool ok = true;
    for (auto w : want)
      ok = ok && labels.find(w) != std::string_view::npos;
    if (!ok) continue;
    auto sp = line.rfind(' ');
    total += std::strtod(std::string(line.substr(sp + 1)).c_str(), nullptr);
  }
  return total;
}

std::string number(double v) {
  if (v == static_cast<double>(static_cast<std::int64_t>(v))) {
    return std::to_string(static_cast<std::int64_t>(v));
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

std::uint64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace

awaitable<std::string> render_metrics(const server_state& st, std::string mailbox) {
  std::string page = st.env.metrics ? st.env.metrics->render_prometheus() : std::string();
  auto stats = co_await st.env.store->stats(mailbox);
  auto info = co_await st.env.store->info();
  auto [accepted_n, accepted_bytes] = st.hub->accepted(mailbox);
  std::string out = page;
  auto metric = [&](std::string_view name, std::string_view type, std::string_view help,
                    const std::string& value) {
    out += "# HELP " + std::string(name) + " " + std::string(help) + "\n# TYPE " +
           std::string(name) + " " + std::string(type) + "\n" + std::string(name) + " " + value +
           "\n";
  };
  // Mailpit's names (its integrated /metrics), for dashboards written against Mailpit.
  metric("mailpit_messages", "gauge", "Total number of messages in the mailbox",
         std::to_string(stats.total));
  metric("mailpit_messages_unread", "gauge", "Number of unread messages in the mailbox",
         std::to_string(stats.unread));
  metric("mailpit_messages_deleted_total", "counter", "Messages deleted since start",
         std::to_string(info.deleted_total));
  metric("mailpit_smtp_accepted_total", "counter", "SMTP messages accepted",
         number(sum_samples(page, "sluice_smtp_messages_total", {"result=\"accepted\""})));
  metric("mailpit_smtp_rejected_total", "counter", "SMTP messages rejected (5xx and 4xx)",
         number(sum_samples(page, "sluice_smtp_messages_total", {"result=\"rejected\""}) +
                sum_samples(page, "sluice_smtp_messages_total", {"result=\"tempfail\""}) +
                sum_samples(page, "sluice_smtp_messages_total", {"result=\"too_big\""})));
  metric("mailpit_smtp_ignored_total", "counter", "Messages accepted but dropped (discard)",
         number(sum_samples(page, "sluice_stage_verdicts_total", {"verdict=\"discard\""})));
  metric("mailpit_smtp_accepted_size_bytes_total", "counter",
         "Total size of messages stored in the mailbox since start",
         std::to_string(accepted_bytes));
  (void)accepted_n;
  metric("mailpit_database_size_bytes", "gauge", "Size of the store",
         std::to_string(info.size_bytes));
  metric("mailpit_uptime_seconds", "gauge", "Seconds since start",
         std::to_string((now_ms() - st.env.started_ms) / 1000));
  metric("mailpit_memory_usage_bytes", "gauge", "Resident memory of the process",
         std::to_string(resident_bytes()));
  out +=
      "# HELP mailpit_tag_messages Number of messages per tag\n# TYPE mailpit_tag_messages "
      "gauge\n";
  for (const auto& [tag, n] : stats.tags) {
    out += "mailpit_tag_messages{tag=\"" + label_value(tag) + "\"} " + std::to_string(n) + "\n";
  }
  co_return out;
}

void add_core_routes(std::shared_ptr<server_state> sp) {
  // Handlers hold a plain pointer: the state owns the router, and a request only runs
  // while its connection holds the state.
  server_state* st = sp.get();
  st->routes.add(bhttp::verb::get, "/livez",
                 [](request_context& c) -> awaitable<response> { co_return ok_response(c.req); });
  st->routes.add(bhttp::verb::get, "/readyz", [st](request_context& c) -> awaitable<response> {
    if (!st->ready.load()) {
      co_return text_response(c.req, bhttp::status::service_unavailable, "Service Unavailable\n");
    }
    try {
      (void)co_await st->env.store->info();
    } catch (const std::exception& e) {
      st->log.warn("readyz: store unreachable", {{"error", e.what()}});
      co_return text_response(c.req, bhttp::status::service_unavailable, "Service Unavailable\n");
    }
    co_return ok_response(c.req);
  });
  st->routes.add(bhttp::verb::get, "/metrics", [st](request_context& c) -> awaitable<response> {
    std::string page = co_await render_metrics(*st, c.mailbox);
    auto res = text_response(c.req, bhttp::status::ok, std::move(page));
    res.set(bhttp::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    co_return res;
  });
  // The upgrade itself is taken over before routing; a plain GET is a client error.
  st->routes.add(bhttp::verb::get, "/api/events", [](request_context& c) -> awaitable<response> {
    co_return text_response(c.req, bhttp::status::bad_request,
                            "Bad Request: WebSocket upgrade expected\n");
  });
}

std::shared_ptr<listener> make_listener(instance_context& ctx, listener_context& lctx) {
  auto st = std::make_shared<server_state>(ctx.host, lctx);
  st->name = ctx.name;
  st->log = ctx.log;
  st->cfg = load_settings(ctx.config, ctx.host.config_dir());
  // The certificate and key are loaded under check-config too (serve would refuse them).
  if (!st->cfg.tls_cert.empty()) st->tls = make_tls_context(ctx.config.at("tls"), st->cfg);
  // The HTML check: a configured data file must load (under check-config too); the default
  // one may be missing.
  {
    auto file = st->cfg.html_check_data ? *st->cfg.html_check_data : default_html_check_data();
    std::error_code ec;
    if (st->cfg.html_check_data || std::filesystem::exists(file, ec)) {
      try {
        st->env.html_check = load_html_check_data(file);
      } catch (const std::exception& e) {
        if (st->cfg.html_check_data) ctx.config.at("html_check_data").fail(e.what());
        st->log.warn("HTML check data unusable; html-check answers 404", {{"error", e.what()}});
      }
    } else {
      st->log.info(
          "no HTML check data; html-check answers 404 (scripts/install-deps.sh fetches it)",
          {{"html_check_data", file.string()}});
    }
  }
  auto& services = ctx.host.services();
  st->env.store = services.get<mailbox_service>(st->cfg.store);
  // check-config builds no services; the store has declared the one it would register.
  if (!st->env.store &&
      !(ctx.check_only && services.declared(mailbox_service::kind, st->cfg.store))) {
    auto where = ctx.config.has("store") ? ctx.config.at("store") : ctx.config;
    where.fail(st->cfg.store.empty()
                   ? "no mailbox service: add a store service (services: - plugin: store)"
                   : "no mailbox service named \"" + st->cfg.store + "\"");
  }
  if (!st->cfg.release_pipeline.empty()) {
    // The kernel builds the pipelines before the listeners, also for check-config.
    auto pipelines = services.get<pipeline_service>();
    if (!pipelines || !pipelines->has(st->cfg.release_pipeline)) {
      std::string known;
      if (pipelines) {
        for (const auto& n : pipelines->names())
          known += (known.empty() ? "" : ", ") + n;
      }
      ctx.config.at("release_pipeline")
          .fail("no pipeline named \"" + st->cfg.release_pipeline +
                "\" (configured: " + (known.empty() ? std::string("none") : known) + ")");
    }
    st->env.pipelines = std::move(pipelines);
  }
  if (ctx.check_only) return std::make_shared<http_listener>(std::move(st));
  st->env.host = &ctx.host;
  st->env.log = ctx.log;
  st->env.events = services.get<sluice::events>();
  st->env.metrics = services.get<sluice::metrics>();
  if (!services.names(chaos_service::kind).empty()) {
    st->env.chaos = services.get<chaos_service>();
  }
  st->env.submit = lctx.pipeline().empty() ? nullptr : &lctx;
  if (!st->cfg.release_pipeline.empty()) {
    st->env.release_pipeline = st->cfg.release_pipeline;
    st->env.release_sender = st->cfg.release_sender;
    st->env.release_preserve_message_ids = st->cfg.release_preserve_message_ids;
  }
  st->env.default_mailbox = st->cfg.default_mailbox;
  st->env.label = st->cfg.label;
  st->env.block_remote_css_and_fonts = st->cfg.block_remote_css_and_fonts;
  {
    auto lc = std::make_shared<link_checker>();
    lc->settings = st->cfg.link_check;
    if (lc->settings.cache) lc->cache = std::make_shared<link_cache>();
    lc->user_agent = "Sluice/" SLUICE_SDK_VERSION_STRING;
    st->env.links = std::move(lc);
    if (st->cfg.link_check.allow_private) {
      st->log.warn(
          "link_check.allow_private is set: a message's links can make this server request "
          "loopback and private addresses");
    }
    if (!st->cfg.link_check.tls_verify) st->log.warn("link_check.tls_verify is off");
  }
  st->env.max_send_bytes = st->cfg.max_send_bytes;
  st->env.version = SLUICE_SDK_VERSION_STRING;
  st->env.started_ms = now_ms();

  st->ui_auth = credential_set::load(st->cfg.auth_file, st->cfg.auth_pairs, st->cfg.auth_cache_ttl);
  st->send_auth =
      credential_set::load(st->cfg.send_auth_file, st->cfg.send_auth_pairs, st->cfg.auth_cache_ttl);
  auto ui_dir = st->cfg.ui_dir ? *st->cfg.ui_dir : default_ui_dir();
  st->ui = std::make_shared<static_files>(ui_dir);
  if (!st->ui->available()) {
    st->log.warn("web UI directory not found; only the API is served",
                 {{"ui_dir", ui_dir.string()}});
  }
  add_api_routes(st->routes);
  add_core_routes(st);
  st->hub = std::make_shared<ws_hub>(ctx.host, st->env, st->cfg.limits.max_ws_clients);
  register_metrics(*st);
  return std::make_shared<http_listener>(std::move(st));
}

}  // namespace sluice::http
