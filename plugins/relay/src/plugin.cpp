// plugins/relay/src/plugin.cpp — the relay plugin: the `relay` stage, an SMTP client that
// hands messages to a smarthost or to the recipients' MX hosts (RFC 5321 §5).
//
// Default phase deferred: the kernel spools the message, calls the stage, and retries a
// tempfail with backoff up to retry.lifetime. Inline (a release pipeline) the upstream's
// verdict becomes the caller's reply.
//
// Per attempt: recipients already delivered or permanently failed in an earlier attempt
// (attribute "relay" → {<stage>: {done, failed}}, persisted by the spool) are skipped;
// the rest are filtered by allowed/blocked patterns, grouped by destination (one group
// for a smarthost, one per domain for MX delivery), and each group is tried host by host
// in MX preference order until one takes the transaction. Every attempt leaves a
// "delivery_report" attribute (server, TLS, AUTH, per-recipient replies).
//
// Threading: the stage is immutable after construction except for the connection pool,
// which has its own mutex; process() may run concurrently for different messages. Each
// call holds the stage (shared_from_this) so a call the kernel gave up on may finish.
//
// Failure: network and protocol outcomes are verdicts (4xx tempfail, 5xx reject with the
// server's reply); configuration mistakes are config_error at startup with the location.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "client.hpp"
#include "downgrade.hpp"
#include "protocol.hpp"
#include "sluice/metrics.hpp"
#include "sluice/plugin.hpp"
#include "sluice/resolver.hpp"
#include "sluice/text.hpp"

namespace sluice::relay {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

bool is_ip(const std::string& s) {
  boost::system::error_code ec;
  asio::ip::make_address(s, ec);
  return !ec;
}

struct options {
  std::string name;
  // Smarthost (host empty: MX delivery).
  std::string smarthost_host;
  std::uint16_t smarthost_port = 25;
  std::uint16_t mx_port = 25;
  security sec = security::starttls_required;
  bool allow_insecure = false;
  bool allow_plaintext_auth = false;
  std::string helo;
  auth_config auth;
  std::optional<std::string> return_path;
  recipient_filter filter;
  bool filtering = false;
  bool strip_bcc = true;
  std::string resolver_name;
  std::size_t pool_size = 4;
  std::chrono::milliseconds idle_timeout{30000};
  unsigned max_messages_per_connection = 100;
  unsigned max_hosts = 5;
  relay::timeouts timeouts;
};

std::uint16_t parse_port(const config_node& n, std::string_view text) {
  std::int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || v > 65535) n.fail("expected a port number 1-65535");
    v = v * 10 + (c - '0');
  }
  if (text.empty() || v < 1 || v > 65535) n.fail("expected a port number 1-65535");
  return static_cast<std::uint16_t>(v);
}

options parse_options(const config_node& cfg, const std::string& name) {
  options o;
  o.name = name;
  if (auto n = cfg.find("smarthost")) {
    std::string s = n->as_string();
    std::string host, port = "25";
    if (s.starts_with('[')) {
      auto close = s.find(']');
      if (close == std::string::npos) n->fail("expected host:port, [v6]:port or host");
      host = s.substr(1, close - 1);
      if (close + 1 < s.size()) {
        if (s[close + 1] != ':') n->fail("expected host:port, [v6]:port or host");
        port = s.substr(close + 2);
      }
    } else if (auto colon = s.rfind(':'); colon != std::string::npos) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
    } else {
      host = s;
    }
    if (host.empty() || host.find_first_of(" /@") != std::string::npos)
      n->fail("expected host:port, [v6]:port or host");
    o.smarthost_host = to_lower_ascii(host);
    o.smarthost_port = parse_port(*n, port);
  }
  if (auto n = cfg.find("port")) {
    if (!o.smarthost_host.empty())
      n->fail("port is for MX delivery; give the smarthost as host:port");
    o.mx_port = parse_port(*n, n->as_string());
  }
  const bool smarthost = !o.smarthost_host.empty();
  // A smarthost is a known server that should present a certificate for its name: TLS is
  // required by default (implicit TLS on the submissions port 465, RFC 8314 §3.3).
  // MX delivery is opportunistic STARTTLS (RFC 7435), as every public MTA does.
  o.sec = !smarthost ? security::starttls
                     : (o.smarthost_port == 465 ? security::tls : security::starttls_required);
  if (auto n = cfg.find("security")) {
    auto v = n->as_string();
    if (v == "none") {
      o.sec = security::none;
    } else if (v == "starttls") {
      o.sec = security::starttls;
    } else if (v == "starttls-required") {
      o.sec = security::starttls_required;
    } else if (v == "tls") {
      o.sec = security::tls;
    } else {
      n->fail("must be none, starttls, starttls-required or tls");
    }
  }
  o.allow_insecure = cfg.get_bool("allow_insecure", false);
  o.allow_plaintext_auth = cfg.get_bool("allow_plaintext_auth", false);
  o.helo = cfg.get_string("helo", "");
  if (o.helo.empty()) o.helo = host_name();
  if (o.helo.find_first_of(" \r\n") != std::string::npos) cfg.at("helo").fail("must be one word");
  if (auto a = cfg.find("auth")) {
    if (!a->is_map()) a->fail("expected a map with username and password (or token)");
    if (auto m = a->find("mechanism")) {
      auto v = mechanism_from_string(m->as_string());
      if (!v) m->fail("must be PLAIN, LOGIN, CRAM-MD5 or XOAUTH2");
      o.auth.mech = v;
    }
    o.auth.username = a->get_string("username", "");
    o.auth.password = a->get_string("password", "");
    o.auth.token = a->get_string("token", "");
    if (o.auth.username.empty()) a->fail("auth needs username");
    if (o.auth.password.empty() && o.auth.token.empty())
      a->fail("auth needs password (or token for XOAUTH2)");
    if (o.auth.mech == mechanism::xoauth2 && o.auth.token.empty())
      a->at("mechanism").fail("XOAUTH2 needs auth.token");
    if (o.auth.mech && o.auth.mech != mechanism::xoauth2 && o.auth.password.empty())
      a->at("mechanism").fail("this mechanism needs auth.password");
  }
  if (auto n = cfg.find("return_path")) {
    auto v = n->as_string();
    if (v == "<>") v.clear();
    if (!safe_path(v) || (!v.empty() && v.find('@') == std::string::npos))
      n->fail("expected an address (or <> for the null sender)");
    o.return_path = v;
  }
  auto patterns = [&](std::string_view key) {
    std::vector<std::string> list = cfg.get_string_list(key);
    for (std::size_t i = 0; i < list.size(); ++i) {
      try {
        std::regex re(list[i], std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        cfg.at(key).fail("pattern " + std::to_string(i + 1) + " (\"" + list[i] +
                         "\") is not a valid regular expression: " + e.what());
      }
    }
    return list;
  };
  auto allowed = patterns("allowed_recipients");
  auto blocked = patterns("blocked_recipients");
  o.filtering = !allowed.empty() || !blocked.empty();
  o.filter = recipient_filter(allowed, blocked);
  o.strip_bcc = cfg.get_bool("strip_bcc", true);
  o.resolver_name = cfg.get_string("resolver", "");
  if (auto p = cfg.find("pool")) {
    std::int64_t size = p->get_int("size", 4);
    if (size < 0 || size > 100) p->at("size").fail("must be between 0 and 100");
    o.pool_size = static_cast<std::size_t>(size);
    o.idle_timeout = p->get_duration("idle_timeout", o.idle_timeout);
    std::int64_t per = p->get_int("max_messages", 100);
    if (per < 1 || per > 100000) p->at("max_messages").fail("must be between 1 and 100000");
    o.max_messages_per_connection = static_cast<unsigned>(per);
  }
  std::int64_t hosts = cfg.get_int("max_mx_hosts", 5);
  if (hosts < 1 || hosts > 20) cfg.at("max_mx_hosts").fail("must be between 1 and 20");
  o.max_hosts = static_cast<unsigned>(hosts);
  if (auto t = cfg.find("timeouts")) {
    auto& x = o.timeouts;
    x.connect = t->get_duration("connect", x.connect);
    x.greeting = t->get_duration("greeting", x.greeting);
    x.command = t->get_duration("command", x.command);
    x.data_init = t->get_duration("data_init", x.data_init);
    x.data_block = t->get_duration("data_block", x.data_block);
    x.data_end = t->get_duration("data_end", x.data_end);
  }
  return o;
}

std::shared_ptr<asio::ssl::context> make_client_context(const config_node& cfg,
                                                        const std::filesystem::path& base) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  if (auto n = cfg.find("ca_file")) {
    std::filesystem::path p = n->as_string();
    if (p.is_relative()) p = base / p;
    boost::system::error_code ec;
    ctx->load_verify_file(p.string(), ec);
    if (ec) n->fail("cannot load CA certificates from " + p.string() + ": " + ec.message());
  } else {
    boost::system::error_code ec;
    ctx->set_default_verify_paths(ec);
  }
  return ctx;
}

// One reply as a verdict/report value: code, enhanced code, and the text without the
// enhanced code that is carried separately.
struct outcome {
  int code = 0;
  std::string enhanced;
  std::string text;
  std::string server;
};

outcome from_reply(const smtp_reply& r, const std::string& server) {
  outcome o;
  o.code = r.code;
  o.enhanced = r.enhanced;
  smtp_reply copy = r;
  if (!copy.lines.empty() && !r.enhanced.empty()) {
    auto& first = copy.lines.front();
    first = std::string(trim(std::string_view(first).substr(r.enhanced.size())));
  }
  o.text = copy.text();
  o.server = server;
  return o;
}

outcome local(int code, std::string enhanced, std::string text, std::string server = {}) {
  return outcome{code, std::move(enhanced), std::move(text), std::move(server)};
}

json::object to_json(const std::string& rcpt, const outcome& o, std::string_view status) {
  return json::object{{"rcpt", rcpt},           {"status", status}, {"code", o.code},
                      {"enhanced", o.enhanced}, {"text", o.text},   {"server", o.server}};
}

// An idle connection kept for the next message to the same destination.
class pool {
 public:
  pool(std::size_t per_key, std::chrono::milliseconds idle) : per_key_(per_key), idle_(idle) {}

  std::unique_ptr<connection> take(const std::string& key,
                                   std::vector<std::unique_ptr<connection>>& expired) {
    std::lock_guard lock(mu_);
    sweep_locked(expired);
    auto it = idle_conns_.find(key);
    if (it == idle_conns_.end() || it->second.empty()) return nullptr;
    auto c = std::move(it->second.back());
    it->second.pop_back();
    return c;
  }
  // Returns the connection when the pool has no room for it (the caller closes it).
  std::unique_ptr<connection> put(const std::string& key, std::unique_ptr<connection> c) {
    std::lock_guard lock(mu_);
    auto& list = idle_conns_[key];
    if (list.size() >= per_key_) return c;
    c->touch();
    list.push_back(std::move(c));
    return nullptr;
  }
  void sweep(std::vector<std::unique_ptr<connection>>& expired) {
    std::lock_guard lock(mu_);
    sweep_locked(expired);
  }

 private:
  void sweep_locked(std::vector<std::unique_ptr<connection>>& expired) {
    const auto now = std::chrono::steady_clock::now();
    for (auto it = idle_conns_.begin(); it != idle_conns_.end();) {
      auto& list = it->second;
      for (auto c = list.begin(); c != list.end();) {
        if (now - (*c)->idle_since() >= idle_) {
          expired.push_back(std::move(*c));
          c = list.erase(c);
        } else {
          ++c;
        }
      }
      it = list.empty() ? idle_conns_.erase(it) : std::next(it);
    }
  }

  std::mutex mu_;
  std::size_t per_key_;
  std::chrono::milliseconds idle_;
  std::map<std::string, std::vector<std::unique_ptr<connection>>> idle_conns_;
};

awaitable<void> quit_all(std::vector<std::unique_ptr<connection>> list) {
  for (auto& c : list)
    co_await c->quit();
}

// Where a group of recipients goes: the hosts to try in order.
struct target {
  std::string host;  // name (for TLS and messages)
  std::vector<std::string> addresses;
};

struct route {
  std::vector<target> targets;
  std::optional<outcome> failure;  // the route could not be found (DNS, null MX)
  bool permanent = false;
};

class relay_stage final : public stage, public std::enable_shared_from_this<relay_stage> {
 public:
  relay_stage(host& h, options o, std::shared_ptr<asio::ssl::context> tls,
              std::shared_ptr<resolver> dns, std::shared_ptr<metrics> m)
      : host_(h),
        opt_(std::move(o)),
        tls_(std::move(tls)),
        dns_(std::move(dns)),
        metrics_(std::move(m)),
        pool_(std::make_shared<pool>(opt_.pool_size, opt_.idle_timeout)) {}

  void start_sweeper() {
    if (opt_.pool_size == 0) return;
    asio::co_spawn(host_.io(), sweeper(std::weak_ptr<pool>(pool_), &host_.io(), opt_.idle_timeout),
                   asio::detached);
  }

  awaitable<verdict> process(std::shared_ptr<message> msg, const stage_call& call) override {
    // The frame may outlive a call the kernel gave up on: it owns the stage and a copy of
    // the call (the caller's object may be gone by then).
    auto self = shared_from_this();
    const stage_call own_call = call;
    co_return co_await self->deliver(msg, own_call);
  }

 private:
  static awaitable<void> sweeper(std::weak_ptr<pool> weak, asio::io_context* io,
                                 std::chrono::milliseconds every) {
    asio::steady_timer timer(*io);
    for (;;) {
      timer.expires_after(std::max(every / 2, std::chrono::milliseconds(500)));
      auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      auto p = weak.lock();
      if (!p) co_return;
      std::vector<std::unique_ptr<connection>> expired;
      p->sweep(expired);
      p.reset();
      if (!expired.empty()) co_await quit_all(std::move(expired));
    }
  }

  // The attribute of this stage instance: {"done": [rcpt…], "failed": [{rcpt, code…}]}.
  json::object& state(message& msg) {
    json::value& all = msg.attributes["relay"];
    if (!all.is_object()) all = json::object();
    json::value& mine = all.as_object()[opt_.name];
    if (!mine.is_object()) mine = json::object();
    auto& o = mine.as_object();
    if (!o["done"].is_array()) o["done"] = json::array();
    if (!o["failed"].is_array()) o["failed"] = json::array();
    return o;
  }

  awaitable<route> find_route(std::string domain) {
    route r;
    if (!opt_.smarthost_host.empty()) {
      target t{opt_.smarthost_host, {}};
      co_await addresses(t, r);
      if (!r.failure) r.targets.push_back(std::move(t));
      co_return r;
    }
    if (domain.starts_with('[') && domain.ends_with(']')) {  // address literal (§4.1.3)
      std::string lit = domain.substr(1, domain.size() - 2);
      if (lit.size() > 5 && iequals(lit.substr(0, 5), "IPv6:")) lit = lit.substr(5);
      if (!is_ip(lit)) {
        r.failure = local(550, "5.1.2", "bad address literal " + domain);
        r.permanent = true;
        co_return r;
      }
      r.targets.push_back(target{lit, {lit}});
      co_return r;
    }
    if (domain.empty()) {
      r.failure = local(550, "5.1.3", "recipient address has no domain");
      r.permanent = true;
      co_return r;
    }
    auto [ans, mx] = co_await dns_->mx(domain);
    std::vector<std::string> hosts;
    switch (ans.status) {
      case dns_status::ok:
        // RFC 7505 §3: a single MX of "." (preference 0) says the domain takes no mail.
        if (mx.size() == 1 && mx.front().host.empty()) {
          r.failure = local(556, "5.1.10", "domain " + domain + " does not accept mail (null MX)");
          r.permanent = true;
          co_return r;
        }
        for (auto& m : mx)
          if (!m.host.empty()) hosts.push_back(to_lower_ascii(m.host));
        break;
      case dns_status::nodata:
        hosts.push_back(domain);  // §5.1: the implicit MX
        break;
      case dns_status::nxdomain:
        r.failure = local(550, "5.1.2", "domain " + domain + " does not exist");
        r.permanent = true;
        co_return r;
      default:
        r.failure =
            local(451, "4.4.3",
                  "MX lookup for " + domain + " failed: " + std::string(to_string(ans.status)) +
                      (ans.error.empty() ? "" : " (" + ans.error + ")"));
        co_return r;
    }
    if (hosts.size() > opt_.max_hosts) hosts.resize(opt_.max_hosts);
    std::optional<outcome> last;
    for (auto& h : hosts) {
      target t{h, {}};
      route sub;
      co_await addresses(t, sub);
      if (sub.failure) {
        last = sub.failure;
        continue;
      }
      r.targets.push_back(std::move(t));
    }
    if (r.targets.empty()) {
      r.failure = last ? *last : local(451, "4.4.3", "no address for any MX host of " + domain);
      // Implicit MX with no address: the domain has no mail server (§5.1).
      r.permanent = ans.status == dns_status::nodata && last && last->code >= 500;
    }
    co_return r;
  }

  // A and AAAA of t.host (IPv4 first); an IP literal is its own address.
  awaitable<void> addresses(target& t, route& r) {
    if (is_ip(t.host)) {
      t.addresses = {t.host};
      co_return;
    }
    if (t.host == "localhost") {
      t.addresses = {"127.0.0.1", "::1"};
      co_return;
    }
    if (!dns_) {
      r.failure = local(451, "4.4.3", "no resolver service to look up " + t.host);
      co_return;
    }
    auto a = co_await dns_->a(t.host);
    auto aaaa = co_await dns_->aaaa(t.host);
    for (auto& x : a.records)
      if (a.status == dns_status::ok) t.addresses.push_back(x);
    for (auto& x : aaaa.records)
      if (aaaa.status == dns_status::ok) t.addresses.push_back(x);
    if (t.addresses.size() > 4) t.addresses.resize(4);
    if (t.addresses.empty()) {
      const bool definitive =
          (a.status == dns_status::nxdomain || a.status == dns_status::nodata) &&
          (aaaa.status == dns_status::nxdomain || aaaa.status == dns_status::nodata);
      r.failure = definitive ? local(550, "5.1.2", "host " + t.host + " has no address")
                             : local(451, "4.4.3",
                                     "address lookup for " + t.host +
                                         " failed: " + std::string(to_string(a.status)));
    }
  }

  session_params params_for(const target& t, const std::string& address) const {
    session_params p;
    p.host = t.host;
    p.address = address;
    p.port = opt_.smarthost_host.empty() ? opt_.mx_port : opt_.smarthost_port;
    p.sec = opt_.sec;
    // Opportunistic STARTTLS to an MX encrypts without authenticating (RFC 7435 §4.1,
    // Postfix "may"); every other TLS use verifies the server unless allow_insecure.
    const bool opportunistic = opt_.smarthost_host.empty() && opt_.sec == security::starttls;
    p.verify = !opt_.allow_insecure && !opportunistic;
    p.verify_name = t.host;
    p.tls_ctx = tls_;
    p.helo = opt_.helo;
    p.auth = &opt_.auth;
    p.allow_plaintext_auth = opt_.allow_plaintext_auth;
    p.timeouts = opt_.timeouts;
    return p;
  }

  struct group_result {
    std::map<std::string, outcome> outcomes;  // rcpt → final reply of this attempt
    json::array sessions;
  };

  awaitable<void> deliver_group(const std::string& domain, const std::vector<std::string>& rcpts,
                                const message& msg, const std::string& mail_from,
                                std::uint64_t size, bool eight_bit, bool utf8, bool inline_call,
                                group_result& out, const logger& log) {
    auto fail_all = [&](const outcome& o) {
      for (auto& r : rcpts)
        out.outcomes[r] = o;
    };
    route rt = co_await find_route(domain);
    if (rt.failure) {
      fail_all(*rt.failure);
      co_return;
    }
    std::optional<outcome> last;
    // Every address's failure, in order: "cannot connect" to the last of them must not hide
    // the reason another one gave (no STARTTLS, a refused greeting, AUTH), with its fix.
    std::string failures;
    for (const auto& t : rt.targets) {
      for (const auto& addr : t.addresses) {
        const std::string key = t.host + "|" + addr;
        std::unique_ptr<connection> conn;
        bool reused = false;
        {
          std::vector<std::unique_ptr<connection>> expired;
          conn = pool_->take(key, expired);
          if (!expired.empty())
            asio::co_spawn(host_.io(), quit_all(std::move(expired)), asio::detached);
        }
        if (conn) {
          reused = co_await conn->reset();
          if (!reused) conn.reset();
        }
        if (!conn) {
          conn = std::make_unique<connection>(host_.io());
          if (auto e = co_await conn->open(params_for(t, addr))) {
            log.warn("relay connection failed",
                     {{"server", t.host + " [" + addr + "]"}, {"error", e->text}});
            outcome o =
                e->reply.code ? from_reply(e->reply, t.host) : local(451, "4.4.1", e->text, t.host);
            o.text = e->text;
            if (e->permanent && o.code < 500) o.code = 550;
            if (!e->permanent && o.code >= 500) {
              o.code = 451;
              if (!o.enhanced.empty()) o.enhanced[0] = '4';
            }
            if (failures.find(o.text) == std::string::npos && failures.size() < 2000) {
              failures += (failures.empty() ? "" : "; then ") + o.text;
            }
            last = o;
            last->text = failures;
            conn->close();
            if (!e->try_next_host) {
              fail_all(o);
              co_return;
            }
            continue;
          }
        }
        json::object session{
            {"server", conn->peer()},         {"tls", conn->tls_version()},
            {"cipher", conn->tls_cipher()},   {"tls_verified", conn->tls_verified()},
            {"auth", conn->auth_mechanism()}, {"reused", reused}};
        const std::string server = conn->peer();
        // RFC 1870 §6 and RFC 6531 §3.4: refuse before MAIL what the server cannot take.
        if (auto limit = conn->caps().size_limit(); limit && size > limit) {
          fail_all(local(552, "5.3.4",
                         "message size " + std::to_string(size) + " exceeds the limit of " +
                             std::to_string(limit) + " bytes of " + server,
                         server));
          out.sessions.push_back(std::move(session));
          give_back(key, std::move(conn));
          co_return;
        }
        if (utf8 && !conn->caps().has("SMTPUTF8")) {
          fail_all(local(550, "5.6.7",
                         "the message needs SMTPUTF8 (non-ASCII addresses) and " + server +
                             " does not offer it",
                         server));
          out.sessions.push_back(std::move(session));
          give_back(key, std::move(conn));
          co_return;
        }
        // RFC 6152 §3: 8-bit content goes to a server without 8BITMIME only converted to
        // 7 bits (as Postfix does). The conversion changes the body's bytes, so a DKIM
        // signature made before it no longer verifies.
        const message* content = &msg;
        std::uint64_t content_size = size;
        std::shared_ptr<message> converted;
        if (eight_bit && !conn->caps().has("8BITMIME")) {
          auto d = co_await downgrade(msg);
          if (d.error.starts_with("read error: ")) {
            fail_all(
                local(451, "4.3.0", "cannot read the spooled message (" + d.error + ")", server));
            out.sessions.push_back(std::move(session));
            give_back(key, std::move(conn));
            co_return;
          }
          if (!d.error.empty()) {
            fail_all(local(554, "5.6.3",
                           "the message has 8-bit content, " + server +
                               " does not offer 8BITMIME, and it cannot be converted to 7 "
                               "bits: " +
                               d.error,
                           server));
            out.sessions.push_back(std::move(session));
            give_back(key, std::move(conn));
            co_return;
          }
          // Nothing to convert (8-bit only in header fields, or BODY=8BITMIME declared for
          // 7-bit content): the message goes as it is, just without BODY=8BITMIME.
          if (d.changed) {
            log.info("8-bit content converted to 7 bits for a server without 8BITMIME",
                     {{"server", server}, {"size", d.bytes.size()}});
            session["converted_to_7bit"] = true;
            converted = std::make_shared<message>();
            converted->id = msg.id;
            converted->envelope = msg.envelope;
            content_size = d.bytes.size();
            converted->raw = message_body::from_string(std::move(d.bytes));
            content = converted.get();
            if (auto limit = conn->caps().size_limit(); limit && content_size > limit) {
              fail_all(local(552, "5.3.4",
                             "message size " + std::to_string(content_size) +
                                 " (converted to 7 bits) exceeds the limit of " +
                                 std::to_string(limit) + " bytes of " + server,
                             server));
              out.sessions.push_back(std::move(session));
              give_back(key, std::move(conn));
              co_return;
            }
          }
        }
        std::vector<rcpt_outcome> results;
        // Inline, one reply answers for every recipient (a release, an SMTP client waiting
        // for its 250): the message goes to all of them or to none.
        auto e = co_await conn->transact(mail_from, rcpts, *content, content_size,
                                         eight_bit && !converted, utf8, results, inline_call);
        out.sessions.push_back(std::move(session));
        if (e) {
          outcome o =
              e->reply.code ? from_reply(e->reply, server) : local(451, "4.4.2", e->text, server);
          if (!e->reply.code) o.text = e->text;
          log.warn("relay transaction failed", {{"server", server}, {"error", e->text}});
          fail_all(o);
          if (conn->usable()) give_back(key, std::move(conn));
          co_return;
        }
        for (auto& r : results)
          out.outcomes[r.rcpt] = from_reply(r.reply, server);
        give_back(key, std::move(conn));
        co_return;
      }
    }
    fail_all(last ? *last : local(451, "4.4.1", "no host to connect to"));
  }

  void give_back(const std::string& key, std::unique_ptr<connection> conn) {
    if (!conn || !conn->usable()) return;
    if (opt_.pool_size == 0 || conn->transactions() >= opt_.max_messages_per_connection) {
      asio::co_spawn(host_.io(), close_one(std::move(conn)), asio::detached);
      return;
    }
    if (auto rest = pool_->put(key, std::move(conn)))
      asio::co_spawn(host_.io(), close_one(std::move(rest)), asio::detached);
  }

  static awaitable<void> close_one(std::unique_ptr<connection> c) { co_await c->quit(); }

  // The message as it leaves, converted to 7 bits, on a worker thread (it is parsed whole,
  // in memory: hence the size bound).
  awaitable<downgraded> downgrade(const message& msg) {
    constexpr std::uint64_t kMaxConverted = 32ull * 1024 * 1024;
    if (msg.raw && msg.raw->size() > kMaxConverted) {
      co_return downgraded{{}, false, "it is larger than the 32 MB the relay converts"};
    }
    auto copy = std::make_shared<message>(msg);
    co_return co_await offload(host_, [copy] {
      std::string whole;
      auto ec = copy->write_output([&](std::string_view chunk) {
        whole.append(chunk);
        return true;
      });
      if (ec) return downgraded{{}, false, "read error: " + ec.message()};
      return downgrade_to_7bit(whole);
    });
  }

  static bool has_8bit(const message& msg) {
    if (needs_utf8(msg.output_headers())) return true;
    if (!msg.raw) return false;
    bool found = false;
    msg.raw->for_each_chunk([&](std::string_view c) {
      found = needs_utf8(c);
      return !found;
    });
    return found;
  }

  awaitable<verdict> deliver(std::shared_ptr<message> msg, const stage_call& call) {
    const logger log = call.log;
    json::object& st = state(*msg);
    std::set<std::string> done, failed;
    for (auto& d : st["done"].as_array())
      if (d.is_string()) done.insert(std::string(d.as_string()));
    for (auto& f : st["failed"].as_array())
      if (f.is_object())
        if (auto* r = f.as_object().if_contains("rcpt"); r && r->is_string())
          failed.insert(std::string(r->as_string()));

    json::array report_rcpts;
    std::vector<std::string> pending;
    std::map<std::string, outcome> results;
    for (const auto& r : msg->envelope.recipients) {
      if (done.count(r.address) || failed.count(r.address)) continue;
      if (std::find(pending.begin(), pending.end(), r.address) != pending.end()) continue;
      if (!safe_path(r.address)) {
        results[r.address] = local(553, "5.1.3", "recipient address not usable in SMTP");
        continue;
      }
      if (opt_.filtering) {
        auto c = opt_.filter.check(r.address);
        if (c == recipient_filter::result::blocked) {
          results[r.address] =
              local(550, "5.7.1", "recipient " + r.address + " matches blocked_recipients");
          continue;
        }
        if (c == recipient_filter::result::not_allowed) {
          results[r.address] =
              local(550, "5.7.1", "recipient " + r.address + " does not match allowed_recipients");
          continue;
        }
      }
      pending.push_back(r.address);
    }

    // What goes out: the message with its edits, less the fields a relay must not pass on.
    // Return-Path is added by the final delivery (RFC 5321 §4.4); Bcc would show hidden
    // recipients to everyone (the capture listener even adds one for envelope-only
    // recipients, as Mailpit does).
    auto out = std::make_shared<message>(*msg);
    out->remove_header("Return-Path");
    if (opt_.strip_bcc) out->remove_header("Bcc");
    std::string mail_from = opt_.return_path ? *opt_.return_path : msg->envelope.mail_from;
    bool utf8 = needs_utf8(mail_from);
    bool eight_bit = false;
    for (auto& [k, v] : msg->envelope.mail_params) {
      if (iequals(k, "SMTPUTF8")) utf8 = true;
      if (iequals(k, "BODY") && (iequals(v, "8BITMIME") || iequals(v, "BINARYMIME")))
        eight_bit = true;
    }
    for (auto& r : pending)
      utf8 = utf8 || needs_utf8(r);
    json::array sessions;
    if (!pending.empty()) {
      if (!safe_path(mail_from)) {
        for (auto& r : pending)
          results[r] = local(553, "5.1.7", "sender address not usable in SMTP");
        pending.clear();
      }
    }
    if (!pending.empty()) {
      if (!eight_bit) {
        if (out->raw && !out->raw->memory()) {
          auto m = out;
          eight_bit = co_await offload(host_, [m] { return has_8bit(*m); });
        } else {
          eight_bit = has_8bit(*out);
        }
      }
      const std::uint64_t head_out = out->output_headers().size();
      const std::uint64_t head_in = out->raw ? out->raw->header_block().size() : 0;
      const std::uint64_t size = head_out + (out->raw ? out->raw->size() - head_in : 0);
      // One group for a smarthost, else one per recipient domain.
      std::map<std::string, std::vector<std::string>> groups;
      for (auto& r : pending)
        groups[opt_.smarthost_host.empty() ? domain_of(r) : std::string()].push_back(r);
      for (auto& [domain, rcpts] : groups) {
        group_result g;
        co_await deliver_group(domain, rcpts, *out, mail_from, size, eight_bit, utf8,
                               call.phase == phase::inline_, g, log);
        for (auto& [r, o] : g.outcomes)
          results[r] = o;
        for (auto& s : g.sessions)
          sessions.push_back(s);
      }
    }

    // Record what is settled so the next attempt sends only to the rest.
    std::optional<outcome> first_temp, first_perm;
    std::size_t delivered = 0, deferred = 0, rejected = 0;
    json::object& st2 = state(*msg);
    for (const auto& r : msg->envelope.recipients) {
      auto it = results.find(r.address);
      if (it == results.end()) continue;
      const outcome& o = it->second;
      std::string_view status;
      if (o.code >= 200 && o.code < 300) {
        status = "delivered";
        ++delivered;
        st2["done"].as_array().push_back(json::string(r.address));
      } else if (o.code >= 500) {
        status = "failed";
        ++rejected;
        st2["failed"].as_array().push_back(to_json(r.address, o, "failed"));
        log.warn("relay recipient failed",
                 {{"rcpt", r.address},
                  {"server", o.server},
                  {"reply", std::to_string(o.code) + " " + o.enhanced + " " + o.text}});
        if (!first_perm) first_perm = o;
      } else {
        status = "deferred";
        ++deferred;
        if (!first_temp) first_temp = o;
      }
      report_rcpts.push_back(to_json(r.address, o, status));
      results.erase(it);  // a duplicate recipient is reported once
    }
    if (!first_perm) {
      for (auto& f : st2["failed"].as_array()) {
        auto& fo = f.as_object();
        outcome o;
        if (auto* c = fo.if_contains("code"); c && c->is_int64())
          o.code = static_cast<int>(c->as_int64());
        if (auto* e = fo.if_contains("enhanced"); e && e->is_string()) o.enhanced = e->as_string();
        if (auto* t = fo.if_contains("text"); t && t->is_string()) o.text = t->as_string();
        if (o.code >= 500) {
          first_perm = o;
          break;
        }
      }
    }

    json::object report{{"stage", opt_.name},
                        {"attempt", call.attempt},
                        {"phase", call.phase == phase::inline_ ? "inline" : "deferred"},
                        {"mail_from", mail_from},
                        {"recipients", std::move(report_rcpts)},
                        {"delivered", delivered},
                        {"deferred", deferred},
                        {"failed", rejected}};
    if (!sessions.empty()) {
      const auto& s0 = sessions.front().as_object();
      report["server"] = s0.at("server");
      report["tls"] = s0.at("tls");
      report["auth"] = s0.at("auth");
    }
    report["sessions"] = std::move(sessions);
    msg->attributes["delivery_report"] = std::move(report);

    count("delivered", delivered);
    count("deferred", deferred);
    count("failed", rejected);
    log.info("relay attempt", {{"attempt", call.attempt},
                               {"delivered", delivered},
                               {"deferred", deferred},
                               {"failed", rejected}});
    if (first_temp) {
      int code = first_temp->code == 421 ? 451 : first_temp->code;
      std::string enh = first_temp->enhanced.empty() ? "4.0.0" : first_temp->enhanced;
      log.warn("relay deferred", {{"server", first_temp->server}, {"reply", first_temp->text}});
      co_return verdict::tempfail(code, enh, first_temp->text);
    }
    if (first_perm) {
      std::string enh = first_perm->enhanced.empty() ? "5.0.0" : first_perm->enhanced;
      log.warn("relay failed", {{"server", first_perm->server}, {"reply", first_perm->text}});
      co_return verdict::reject(first_perm->code, enh, first_perm->text);
    }
    co_return verdict::next();
  }

  void count(std::string_view result, std::size_t n) {
    if (!metrics_ || n == 0) return;
    metrics_
        ->get_counter("sluice_relay_recipients_total", "Recipients by relay outcome per attempt",
                      {{"stage", opt_.name}, {"result", std::string(result)}})
        .inc(static_cast<double>(n));
  }

  host& host_;
  options opt_;
  std::shared_ptr<asio::ssl::context> tls_;
  std::shared_ptr<resolver> dns_;
  std::shared_ptr<metrics> metrics_;
  std::shared_ptr<pool> pool_;
};

std::shared_ptr<stage> make_relay(instance_context& ctx) {
  options o = parse_options(ctx.config, ctx.name);
  auto tls = make_client_context(ctx.config, ctx.host.config_dir());
  std::shared_ptr<resolver> dns = ctx.host.services().get<resolver>(o.resolver_name);
  const bool needs_dns = o.smarthost_host.empty() || !o.resolver_name.empty() ||
                         (!is_ip(o.smarthost_host) && o.smarthost_host != "localhost");
  if (!dns && needs_dns &&
      !(ctx.check_only && ctx.host.services().declared(resolver::kind, o.resolver_name))) {
    ctx.config.fail(o.smarthost_host.empty()
                        ? "MX delivery needs a resolver service (add one with plugin: resolver) "
                          "or a smarthost"
                        : (o.resolver_name.empty()
                               ? "smarthost " + o.smarthost_host +
                                     " is a host name: add a resolver service (plugin: resolver) "
                                     "or give an IP address"
                               : "no resolver service named \"" + o.resolver_name + "\""));
  }
  auto m = ctx.host.services().get<metrics>();
  auto s = std::make_shared<relay_stage>(ctx.host, std::move(o), std::move(tls), std::move(dns),
                                         std::move(m));
  if (!ctx.check_only) s->start_sweeper();
  return s;
}

void register_plugin(registrar& r) {
  stage_traits traits;
  traits.default_phase = phase::deferred;
  r.add_stage("relay", make_relay, traits);
}

}  // namespace
}  // namespace sluice::relay

SLUICE_PLUGIN("relay", "1.0.0", "SMTP relay to a smarthost or MX hosts (deferred, with retries)",
              sluice::relay::register_plugin);
