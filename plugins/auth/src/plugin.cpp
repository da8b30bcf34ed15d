// plugin.cpp — the auth plugin: the `spf` stage (RFC 7208 checks of the MAIL FROM and HELO
// identities) and the `auth_results` stage (one Authentication-Results field, RFC 8601, from
// the "auth" attribute).
//
// Threading: stages are stateless after construction (options only) and safe for concurrent
// calls; each check is one coroutine using the resolver service, which never blocks the I/O
// thread; the MAIL FROM and HELO checks of one message run concurrently (parallel_group).
// Ownership: the stage holds the resolver service alive (shared_ptr) so a
// cancelled check's frame may outlive the call safely.
//
// Failure: DNS and policy problems are SPF results (temperror/permerror), recorded, not
// thrown. A missing resolver service is a config_error at startup. The verdict is
// "continue" unless `on_fail` / `on_temperror` ask for a reject or tempfail.
#include <unistd.h>

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "auth_results.hpp"
#include "dkim.hpp"
#include "dkim_stages.hpp"
#include "sluice/plugin.hpp"
#include "sluice/resolver.hpp"
#include "sluice/text.hpp"
#include "spf.hpp"

namespace sluice::auth {
namespace {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

enum class spf_action { tag, reject, tempfail };

spf_action parse_action(const config_node& cfg, std::string_view key, std::string_view fallback,
                        bool allow_reject) {
  std::string v = cfg.get_string(key, fallback);
  if (v == "tag") return spf_action::tag;
  if (v == "reject" && allow_reject) return spf_action::reject;
  if (v == "tempfail") return spf_action::tempfail;
  cfg.at(key).fail(allow_reject ? "must be tag, reject or tempfail" : "must be tag or tempfail");
}

struct spf_options {
  std::string resolver_name;
  std::string receiver;
  bool check_helo = true;
  bool received_spf = true;
  spf_action on_fail = spf_action::tag;
  spf_action on_softfail = spf_action::tag;
  spf_action on_permerror = spf_action::tag;
  spf_action on_temperror = spf_action::tag;
  spf::limits limits;
};

spf_options parse_spf_options(const config_node& cfg) {
  spf_options o;
  o.resolver_name = cfg.get_string("resolver", "");
  o.receiver = cfg.get_string("receiver", "");
  if (o.receiver.empty()) o.receiver = host_name();
  o.check_helo = cfg.get_bool("helo", true);
  o.received_spf = cfg.get_bool("received_spf", true);
  o.on_fail = parse_action(cfg, "on_fail", "tag", true);
  o.on_softfail = parse_action(cfg, "on_softfail", "tag", true);
  o.on_permerror = parse_action(cfg, "on_permerror", "tag", true);
  o.on_temperror = parse_action(cfg, "on_temperror", "tag", false);
  auto bounded = [&](std::string_view key, unsigned fallback, unsigned lo, unsigned hi) {
    std::int64_t v = cfg.get_int(key, fallback);
    if (v < lo || v > hi) {
      cfg.at(key).fail("must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    }
    return static_cast<unsigned>(v);
  };
  o.limits.dns_mechanisms = bounded("max_dns_lookups", 10, 1, 100);
  o.limits.void_lookups = bounded("max_void_lookups", 2, 0, 100);
  return o;
}

boost::json::object to_json(const spf::outcome& o) {
  boost::json::object j;
  j["result"] = spf::to_string(o.res);
  j["reason"] = o.reason;
  j["domain"] = o.domain;
  if (!o.explanation.empty()) j["explanation"] = o.explanation;
  j["dns_lookups"] = o.dns_lookups;
  j["void_lookups"] = o.void_lookups;
  return j;
}

// RFC 7208 §9.1 Received-SPF field value.
std::string received_spf(const spf::outcome& o, const std::string& identity, const std::string& ip,
                         const std::string& envelope_from, const std::string& helo,
                         const std::string& receiver) {
  std::string comment = receiver + ": " + o.reason;
  for (char& c : comment)
    if (c == '(' || c == ')' || c == '\\') c = ' ';
  std::string v = std::string(spf::to_string(o.res)) + " (" + comment + ")";
  v += " client-ip=" + ip + ";";
  v += " envelope-from=\"" + envelope_from + "\";";
  if (!helo.empty() && helo.find_first_of(" ;\"") == std::string::npos) v += " helo=" + helo + ";";
  v += " receiver=" + receiver + ";";
  v += " identity=" + identity;
  return v;
}

class spf_stage final : public stage {
 public:
  spf_stage(std::shared_ptr<resolver> dns, spf_options o)
      : dns_(std::move(dns)), options_(std::move(o)) {}

  boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                          const stage_call& call) override {
    auto dns = dns_;  // the frame owns what it uses (it may outlive a timed-out call)
    const spf_options opt = options_;  // copied: the frame may outlive the stage call
    const envelope& env = msg->envelope;
    boost::json::object rec;
    if (env.client_address.empty()) {
      rec["result"] = "none";
      rec["reason"] = "no client IP address (local connection)";
      rec["identity"] = "mailfrom";
      store(*msg, std::move(rec));
      co_return verdict::next();
    }
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(env.received_at.time_since_epoch())
            .count();
    // The MAIL FROM and HELO checks run concurrently: two independent check_host()
    // evaluations, each with its own state and its own §4.6.4 lookup limits; only the wait
    // is shared, so a slow DNS server costs one round of lookups instead of two.
    spf::outcome from;
    std::optional<spf::outcome> helo;
    if (opt.check_helo && !env.helo.empty()) {
      auto ex = co_await boost::asio::this_coro::executor;
      auto [order, from_error, from_result, helo_error, helo_result] =
          co_await boost::asio::experimental::make_parallel_group(
              boost::asio::co_spawn(ex,
                                    spf::check_mail_from(dns, env.client_address, env.mail_from,
                                                         env.helo, opt.receiver, now, opt.limits),
                                    boost::asio::deferred),
              boost::asio::co_spawn(
                  ex,
                  spf::check_helo(dns, env.client_address, env.helo, opt.receiver, now, opt.limits),
                  boost::asio::deferred))
              .async_wait(boost::asio::experimental::wait_for_all(), boost::asio::use_awaitable);
      // The checks never throw for DNS or record problems: an exception is a bug or memory
      // exhaustion, and reaches the kernel's on_error as before.
      if (from_error) std::rethrow_exception(from_error);
      if (helo_error) std::rethrow_exception(helo_error);
      from = std::move(from_result);
      helo = std::move(helo_result);
    } else {
      from = co_await spf::check_mail_from(dns, env.client_address, env.mail_from, env.helo,
                                           opt.receiver, now, opt.limits);
    }
    rec = to_json(from);
    rec["identity"] = "mailfrom";
    rec["client_ip"] = env.client_address;
    rec["mailfrom"] = env.mail_from.empty() ? "postmaster@" + env.helo : env.mail_from;
    rec["helo_name"] = env.helo;
    if (helo) rec["helo"] = to_json(*helo);
    if (opt.received_spf) {
      msg->prepend_header(
          "Received-SPF",
          received_spf(from, "mailfrom", env.client_address,
                       env.mail_from.empty() ? "postmaster@" + env.helo : env.mail_from, env.helo,
                       opt.receiver));
    }
    store(*msg, std::move(rec));
    call.log.debug("spf checked", {{"result", std::string(spf::to_string(from.res))},
                                   {"domain", from.domain},
                                   {"reason", from.reason}});

    spf_action action = spf_action::tag;
    switch (from.res) {
      case spf::result::fail:
        action = opt.on_fail;
        break;
      case spf::result::softfail:
        action = opt.on_softfail;
        break;
      case spf::result::permerror:
        action = opt.on_permerror;
        break;
      case spf::result::temperror:
        action = opt.on_temperror;
        break;
      default:
        break;
    }
    if (action == spf_action::reject) {
      std::string text = "SPF " + std::string(spf::to_string(from.res)) + " for " + from.domain;
      if (!from.explanation.empty()) text += ": " + sanitize(from.explanation);
      // RFC 7372: X.7.23 SPF validation failed, X.7.24 SPF validation error.
      co_return verdict::reject(550, from.res == spf::result::permerror ? "5.7.24" : "5.7.23",
                                text);
    }
    if (action == spf_action::tempfail) {
      co_return verdict::tempfail(451, "4.7.24",
                                  "SPF " + std::string(spf::to_string(from.res)) + " for " +
                                      from.domain + ", try again later");
    }
    co_return verdict::next();
  }

 private:
  static void store(message& msg, boost::json::object rec) {
    boost::json::value& auth = msg.attributes["auth"];
    if (!auth.is_object()) auth = boost::json::object();
    auth.as_object()["spf"] = std::move(rec);
  }
  // The explanation comes from DNS: keep it printable ASCII and bounded for the reply.
  static std::string sanitize(std::string s) {
    for (char& c : s)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = ' ';
    if (s.size() > 400) s.resize(400);
    return s;
  }

  std::shared_ptr<resolver> dns_;
  const spf_options options_;
};

std::shared_ptr<stage> make_spf_stage(instance_context& ctx) {
  spf_options o = parse_spf_options(ctx.config);
  auto dns = ctx.host.services().get<resolver>(o.resolver_name);
  if (!dns && !(ctx.check_only && ctx.host.services().declared(resolver::kind, o.resolver_name))) {
    const auto at = ctx.config.find("resolver");
    (at ? *at : ctx.config)
        .fail("spf: no resolver service" +
              (o.resolver_name.empty() ? std::string() : " named \"" + o.resolver_name + "\"") +
              " (add a service with plugin: resolver)");
  }
  return std::make_shared<spf_stage>(std::move(dns), std::move(o));
}

class auth_results_stage final : public stage {
 public:
  explicit auth_results_stage(std::string authserv_id) : authserv_id_(std::move(authserv_id)) {}
  boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                          const stage_call&) override {
    const boost::json::value* auth = msg->attributes.if_contains("auth");
    static const boost::json::object empty;
    const boost::json::object& a = auth && auth->is_object() ? auth->as_object() : empty;
    // RFC 8601 §5: a field that claims to be ours but came with the message is forged;
    // it is removed (other authserv-ids' fields stay: they are not ours to judge).
    std::vector<std::size_t> forged;
    std::size_t seen = 0;
    for (const auto& f : dkim::split_header(msg->output_headers())) {
      if (!iequals(f.name, "Authentication-Results")) continue;
      auto colon = f.text.find(':');
      if (colon != std::string::npos &&
          claims_authserv_id(std::string_view(f.text).substr(colon + 1), authserv_id_)) {
        forged.push_back(seen);
      }
      ++seen;
    }
    // From the last, so the indexes of the ones before stay valid.
    for (auto it = forged.rbegin(); it != forged.rend(); ++it) {
      msg->remove_nth_header("Authentication-Results", *it);
    }
    // Prepended, above the trace fields added so far, like a Received field.
    msg->prepend_header("Authentication-Results", authentication_results(authserv_id_, a));
    co_return verdict::next();
  }

 private:
  const std::string authserv_id_;
};

std::shared_ptr<stage> make_auth_results_stage(instance_context& ctx) {
  std::string id = ctx.config.get_string("authserv_id", "");
  if (id.empty()) id = host_name();
  if (id.find_first_of(" \t\r\n;()\"") != std::string::npos) {
    ctx.config.at("authserv_id").fail("must be a plain token (a host name)");
  }
  return std::make_shared<auth_results_stage>(std::move(id));
}

void register_auth(registrar& r) {
  r.add_stage("spf", make_spf_stage);
  r.add_stage("auth_results", make_auth_results_stage);
  r.add_stage("dkim", make_dkim_stage);
  r.add_stage("dmarc", make_dmarc_stage);
  r.add_stage("dkim_sign", make_dkim_sign_stage);
  r.add_command("dkim", "DKIM key tools: sluice dkim keygen --selector S --domain D --out FILE",
                [](std::span<const std::string> args) { return dkim_command(args); });
}

}  // namespace
}  // namespace sluice::auth

SLUICE_PLUGIN("auth", "0.1.0",
              "Mail authentication: SPF, DKIM, DMARC, DKIM signing and Authentication-Results",
              ::sluice::auth::register_auth);
