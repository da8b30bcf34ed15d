// plugin.cpp — the webhook plugin: the `webhook` stage, an HTTP POST per message.
//
// Deferred by default: the kernel runs it from the durable spool after the message was
// accepted, and a tempfail verdict makes the kernel try again with exponential backoff
// (the stage's `retry:` policy) until the lifetime expires, across restarts. So an event
// is never dropped: a down receiver, a 5xx, a 408/429, a rate limit that cannot wait are
// all retries. A permanent answer (another 4xx, a redirect, an address the SSRF guard
// refuses) is a reject: recorded, not retried.
//
// Each attempt leaves `delivery_report` in the message attributes (URL without
// credentials or query, status, response excerpt, duration, attempt), which the kernel
// publishes as the attempt's delivery event. A Retry-After is remembered under the
// attribute `webhook` (per stage instance) and honoured by the attempts that follow.
//
// Threading: process() may run concurrently for different messages; the stage holds
// immutable settings and a thread-safe token bucket, both by shared_ptr, so a coroutine
// frame that outlives a timed-out call keeps them alive. No exception crosses process():
// a request failure is a verdict.
#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include "fields.hpp"
#include "retry_after.hpp"
#include "settings.hpp"
#include "signature.hpp"
#include "sluice/http_client.hpp"
#include "sluice/mailbox.hpp"
#include "sluice/mailpit_json.hpp"
#include "sluice/plugin.hpp"
#include "token_bucket.hpp"

namespace sluice::webhook {
namespace {
namespace json = boost::json;

constexpr std::size_t report_excerpt = 1024;  // bytes of the response kept in the report
constexpr std::size_t reply_excerpt = 200;    // bytes of the response in the verdict text

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool retryable_status(int status) {
  return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

class webhook_stage final : public stage {
 public:
  webhook_stage(sluice::host& host, std::string name, std::shared_ptr<const settings> s)
      : host_(host), name_(std::move(name)), settings_(std::move(s)) {
    if (settings_->rate) {
      bucket_ = std::make_shared<token_bucket>(settings_->rate->per_second, settings_->rate->burst);
    }
  }

  boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                          const stage_call& call) override {
    // Copies: this frame may outlive the call (kernel timeout), so it owns what it uses.
    const std::shared_ptr<const settings> cfg = settings_;
    const std::shared_ptr<token_bucket> bucket = bucket_;
    const std::string name = name_;
    sluice::host& host = host_;  // outlives every plugin object
    boost::asio::io_context& io = host.io();
    const sluice::logger log = call.log;
    const unsigned attempt = call.attempt;
    if (cfg->disabled) co_return verdict::next();

    json::object summary;
    if (!cfg->mailbox.empty()) summary = co_await stored_summary(host, *cfg, msg->id, log);
    if (summary.empty()) summary = message_summary(*msg);
    const field_map fields = message_fields(*msg, summary);
    http_request req;
    req.method = cfg->method;
    try {
      req.url = cfg->url.render(fields);
      req.body = cfg->body ? cfg->body->render(fields) : json::serialize(summary);
    } catch (const std::exception& e) {
      // Placeholders were validated at load; this is a bug, not a receiver problem.
      log.error("webhook template failed", {{"error", e.what()}});
      co_return verdict::local_error();
    }
    json::object report{{"stage", name},
                        {"url", redact_url(req.url)},
                        {"attempt", static_cast<std::int64_t>(attempt)},
                        {"status", 0},
                        {"response", ""},
                        {"duration_ms", 0}};
    auto finish = [&](std::string result, verdict v) {
      report["result"] = std::move(result);
      msg->attributes["delivery_report"] = report;
      return v;
    };

    // A Retry-After from an earlier attempt: no request before that time.
    const std::int64_t not_before = stored_not_before(*msg, name);
    if (not_before > now_ms()) {
      report["error"] =
          "waiting for the receiver's Retry-After until " + mailpit::rfc3339(not_before);
      co_return finish("retry", verdict::tempfail(451, "4.4.5",
                                                  "Webhook receiver asked to retry after " +
                                                      mailpit::rfc3339(not_before)));
    }

    if (bucket) {
      auto wait = bucket->reserve();
      if (wait > cfg->rate->max_wait) {
        // Waiting here would hold a spool slot too long: the spool retries it later.
        bucket->cancel();
        report["error"] = "rate limit: no delivery slot within rate_max_wait";
        co_return finish("retry", verdict::tempfail(451, "4.4.5", "Webhook rate limit reached"));
      }
      if (wait > token_bucket::clock::duration::zero()) {
        boost::asio::steady_timer t(io);
        t.expires_after(wait);
        boost::system::error_code ec;
        co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
        if (ec) co_return finish("retry", verdict::local_error());
      }
    }

    req.headers.emplace_back("Content-Type", "application/json");
    req.headers.emplace_back("User-Agent", "Sluice/" SLUICE_SDK_VERSION_STRING);
    req.headers.emplace_back("X-Sluice-Message-Id", msg->id);
    req.headers.emplace_back("X-Sluice-Attempt", std::to_string(attempt));
    for (const auto& h : cfg->headers)
      req.headers.push_back(h);
    if (!cfg->secret.empty()) {
      const std::int64_t t = now_ms() / 1000;
      req.headers.emplace_back(cfg->signature_header, sign(cfg->secret, t, req.body));
    }

    client_options opt;
    opt.connect_timeout = cfg->connect_timeout;
    opt.total_timeout = cfg->request_timeout;
    opt.max_response = cfg->max_response;
    opt.ssrf_guard = cfg->url.templated();
    opt.allow_private = cfg->allow_private;
    opt.guard_hint =
        "and the URL is templated from message content (set allow_private: true to permit "
        "private and loopback addresses)";
    opt.tls = cfg->tls;
    opt.tls_verify = cfg->tls_verify;
    const std::string req_url = req.url;
    const http_result r = co_await send_request(io.get_executor(), std::move(req), std::move(opt));

    report["duration_ms"] = static_cast<std::int64_t>(r.duration.count());
    if (!r.address.empty()) report["address"] = r.address;
    // Logs and verdict texts name the origin only: a path may carry a token.
    const std::string where = url_origin(req_url);
    if (!r.responded) {
      report["error"] = r.error;
      if (r.guard_refused) {
        log.warn("webhook refused by the SSRF guard", {{"url", where}, {"error", r.error}});
        co_return finish("failed", verdict::reject(554, "5.7.1", "Webhook " + r.error));
      }
      log.info("webhook delivery failed", {{"url", where}, {"error", r.error}});
      co_return finish("retry",
                       verdict::tempfail(451, "4.4.1", "Webhook " + where + ": " + r.error));
    }
    report["status"] = r.status;
    report["response"] = one_line_excerpt(r.body, report_excerpt);
    if (r.body_truncated) report["response_truncated"] = true;
    const std::string answered = "Webhook " + where + " answered " + std::to_string(r.status) +
                                 (r.reason.empty() ? "" : " " + one_line_excerpt(r.reason, 64));
    const std::string body_text = one_line_excerpt(r.body, reply_excerpt);
    if (r.status >= 200 && r.status <= 299) {
      log.debug("webhook delivered", {{"url", where}, {"status", r.status}});
      co_return finish("delivered", verdict::next());
    }
    if (retryable_status(r.status)) {
      if (!r.retry_after.empty()) {
        if (auto d = parse_retry_after(r.retry_after, now_ms() / 1000, cfg->retry_after_max)) {
          const std::int64_t until = now_ms() + std::chrono::milliseconds(*d).count();
          remember_not_before(*msg, name, until);
          report["retry_after_s"] = static_cast<std::int64_t>(d->count());
        }
      }
      co_return finish(
          "retry",
          verdict::tempfail(451, "4.4.0", answered + (body_text.empty() ? "" : ": " + body_text)));
    }
    const std::string why =
        r.status >= 300 && r.status <= 399 ? " (redirects are not followed)" : "";
    log.warn("webhook rejected", {{"url", where}, {"status", r.status}});
    co_return finish("failed",
                     verdict::reject(554, "5.0.0",
                                     answered + why + (body_text.empty() ? "" : ": " + body_text)));
  }

 private:
  // The summary as the store keeps it (tags included), or an empty object when the
  // message is not (or no longer) in that mailbox.
  static boost::asio::awaitable<json::object> stored_summary(sluice::host& host,
                                                             const settings& cfg,
                                                             const std::string& id,
                                                             const sluice::logger& log) {
    auto mb = host.services().get<mailbox_service>(cfg.store);
    if (!mb) {
      log.warn("webhook: no mailbox service; the summary is built from the message",
               {{"store", cfg.store}});
      co_return json::object{};
    }
    try {
      auto m = co_await mb->get(cfg.mailbox, id);
      if (m) co_return mailpit::summary_json(*m);
    } catch (const std::exception& e) {
      log.warn(
          "webhook: reading the stored message failed; the summary is built from the "
          "message",
          {{"error", e.what()}});
    }
    co_return json::object{};
  }

  static std::int64_t stored_not_before(const message& m, const std::string& name) {
    const auto* w = m.attributes.if_contains("webhook");
    if (!w || !w->is_object()) return 0;
    const auto* s = w->as_object().if_contains(name);
    if (!s || !s->is_object()) return 0;
    const auto* n = s->as_object().if_contains("not_before_ms");
    return n && n->is_int64() ? n->as_int64() : 0;
  }

  static void remember_not_before(message& m, const std::string& name, std::int64_t until) {
    json::value& w = m.attributes["webhook"];
    if (!w.is_object()) w = json::object{};
    w.as_object()[name] = json::object{{"not_before_ms", until}};
  }

  sluice::host& host_;
  const std::string name_;
  const std::shared_ptr<const settings> settings_;
  std::shared_ptr<token_bucket> bucket_;
};

void register_plugin(registrar& r) {
  r.add_stage(
      "webhook",
      [](instance_context& ctx) -> std::shared_ptr<stage> {
        auto s = std::make_shared<const settings>(
            parse_settings(ctx.config, ctx.host.config_dir().string()));
        if (s->disabled) {
          ctx.log.warn("webhook disabled: url is empty; messages pass without a request");
        }
        if (s->url.templated() && s->allow_private) {
          ctx.log.warn(
              "webhook URL is templated from message content and allow_private is set: "
              "senders can make requests to private and loopback addresses");
        }
        if (!s->tls_verify) ctx.log.warn("webhook TLS certificate verification is disabled");
        if (!s->mailbox.empty()) {
          // The summary is read from this store: a missing one is a config error now, not
          // a warning at each delivery.
          auto& services = ctx.host.services();
          const bool found = ctx.check_only ? services.declared(mailbox_service::kind, s->store)
                                            : services.get<mailbox_service>(s->store) != nullptr;
          if (!found) {
            const auto at = ctx.config.find("store");
            (at ? *at : ctx.config.at("mailbox"))
                .fail(s->store.empty()
                          ? "mailbox: no store service to read it from (add one under services: "
                            "with plugin: store)"
                          : "no store service named \"" + s->store + "\"");
          }
        }
        return std::make_shared<webhook_stage>(ctx.host, ctx.name, std::move(s));
      },
      stage_traits{false, phase::deferred});
}

}  // namespace
}  // namespace sluice::webhook

SLUICE_PLUGIN("webhook", "0.1.0",
              "HTTP webhooks per message (Mailpit's MessageSummary or a template), signed, retried "
              "from the spool",
              sluice::webhook::register_plugin);
