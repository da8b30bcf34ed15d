// stage.cpp — the spam stage and service; see stage.hpp.
#include "stage.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <boost/asio/this_coro.hpp>
#include <boost/json/value.hpp>

#include "external.hpp"
#include "sluice/listen.hpp"

namespace sluice::spam {
namespace {

enum class action_kind : std::uint8_t { none, tag, quarantine, tempfail, reject };

std::string_view to_string(action_kind a) {
  switch (a) {
    case action_kind::none:
      return "none";
    case action_kind::tag:
      return "tag";
    case action_kind::quarantine:
      return "quarantine";
    case action_kind::tempfail:
      return "tempfail";
    case action_kind::reject:
      return "reject";
  }
  return "none";
}

struct action_step {
  double score = 0;
  action_kind action = action_kind::tag;
  reply rep;
};

enum class engine_kind : std::uint8_t { native, spamassassin, rspamd };

struct stage_options {
  engine_kind engine = engine_kind::native;
  native_engine native;
  spamd_options spamd;
  rspamd_options rspamd;
  std::vector<action_step> actions;  // sorted by score, ascending
  bool headers = true;
  std::string subject_prefix;
  std::uint64_t max_size = 512 * 1024;  // external engines: larger messages are not sent
  reply reject_reply{550, "5.7.1", "Message rejected as spam"};
  reply tempfail_reply{451, "4.7.1", "Message deferred as possible spam, try again later"};
};

// "550 5.7.1 text" → reply; the code must be of the class the action needs.
reply parse_reply(const config_node& n, char klass) {
  std::string s = n.as_string();
  reply r;
  int code = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + std::min<std::size_t>(3, s.size()), code);
  if (ec != std::errc() || p != s.data() + 3 || s.size() < 5 || s[3] != ' ' || s[0] != klass) {
    n.fail(std::string("expected \"") + klass + "NN X.Y.Z text\", e.g. \"" +
           (klass == '5' ? "550 5.7.1 Message rejected as spam" : "451 4.7.1 Try again later") +
           "\"");
  }
  r.code = code;
  std::string rest = s.substr(4);
  if (rest.size() > 4 && rest[0] == klass && rest[1] == '.') {
    auto sp = rest.find(' ');
    r.enhanced = rest.substr(0, sp);
    rest = sp == std::string::npos ? "" : rest.substr(sp + 1);
  }
  if (rest.empty() || rest.find_first_of("\r\n") != std::string::npos || rest.size() > 400) {
    n.fail("the reply text must be one line of at most 400 characters");
  }
  r.text = rest;
  return r;
}

action_kind parse_action(const config_node& n) {
  std::string v = n.as_string();
  if (v == "tag") return action_kind::tag;
  if (v == "quarantine") return action_kind::quarantine;
  if (v == "tempfail") return action_kind::tempfail;
  if (v == "reject") return action_kind::reject;
  n.fail("must be tag, quarantine, tempfail or reject");
}

std::string format_score(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::uint64_t bounded_size(const config_node& cfg, std::string_view key, std::uint64_t fallback,
                           std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t v = cfg.get_size(key, fallback);
  if (v < lo || v > hi) cfg.at(key).fail("out of range");
  return v;
}

void store_attribute(message& msg, const scan_result& r) {
  msg.attributes["spam"] = to_json(r);
}

class spam_stage final : public stage {
 public:
  spam_stage(host& h, std::shared_ptr<const stage_options> o) : host_(h), options_(std::move(o)) {}

  boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                          const stage_call& call) override {
    auto opt = options_;  // the frame owns what it uses (it may outlive a timed-out call)
    scan_result r;
    if (opt->engine == engine_kind::native) {
      // Rules, tokens and the SQLite reads all run on a worker, never on the I/O thread.
      r = co_await offload(host_, [opt, msg] {
        return opt->native.scan(make_scan_input(*msg, opt->native.limits));
      });
    } else {
      const std::uint64_t size = msg->raw ? msg->raw->size() : 0;
      if (size > opt->max_size) {
        // As spamc does: too big to send; recorded, not scored.
        r.engine = opt->engine == engine_kind::spamassassin ? "spamassassin" : "rspamd";
        r.error = "message of " + std::to_string(size) + " bytes is larger than max_size (" +
                  std::to_string(opt->max_size) + "), not scanned";
        store_attribute(*msg, r);
        co_return verdict::next();
      }
      auto ex = co_await boost::asio::this_coro::executor;
      try {
        if (opt->engine == engine_kind::spamassassin) {
          r = co_await spamd_check(ex, opt->spamd, msg->output());
        } else {
          r = co_await rspamd_check(ex, opt->rspamd, msg->output(), msg->envelope, msg->id);
        }
      } catch (const engine_error& e) {
        scan_result failed;
        failed.engine = opt->engine == engine_kind::spamassassin ? "spamassassin" : "rspamd";
        failed.error = e.what();
        store_attribute(*msg, failed);
        call.log.warn("spam engine failed", {{"error", std::string(e.what())}});
        throw;  // the kernel applies this stage's on_error
      }
    }
    co_return apply(*opt, *msg, std::move(r), call);
  }

 private:
  static verdict apply(const stage_options& opt, message& msg, scan_result r,
                       const stage_call& call) {
    action_kind act = r.is_spam ? action_kind::tag : action_kind::none;
    const action_step* step = nullptr;
    for (const auto& s : opt.actions) {
      if (r.score >= s.score && s.action >= act) {
        act = s.action;
        step = &s;
      }
    }
    if (r.engine == "rspamd") {
      // rspamd decides with its own thresholds; its action counts when it is more severe.
      action_kind eng = action_kind::none;
      if (r.engine_action == "reject")
        eng = action_kind::reject;
      else if (r.engine_action == "soft reject" || r.engine_action == "greylist")
        eng = action_kind::tempfail;
      else if (r.engine_action == "add header" || r.engine_action == "rewrite subject")
        eng = action_kind::tag;
      if (eng > act) {
        act = eng;
        step = nullptr;
      }
    }
    if (act >= action_kind::tag) r.is_spam = true;
    r.action = std::string(to_string(act));
    if (opt.headers) {
      std::string tests;
      for (const auto& h : r.rules)
        tests += (tests.empty() ? "" : ",") + h.name;
      if (tests.empty()) tests = "none";
      msg.set_header("X-Spam-Status", std::string(r.is_spam ? "Yes" : "No") +
                                          ", score=" + format_score(r.score) +
                                          " required=" + format_score(r.threshold) +
                                          " tests=" + tests + " engine=" + r.engine);
      msg.set_header("X-Spam-Score", format_score(r.score));
      if (r.is_spam)
        msg.set_header("X-Spam-Flag", "YES");
      else
        msg.remove_header("X-Spam-Flag");  // never pass on a sender's own flag
    }
    if (r.is_spam && (!opt.subject_prefix.empty() || !r.rewrite_subject.empty())) {
      auto fields = split_headers(msg.output_headers(), 1 << 20);
      std::string subject;
      for (const auto& [n, v] : fields) {
        if (n.size() == 7 && std::equal(n.begin(), n.end(), "subject", [](char a, char b) {
              return std::tolower(static_cast<unsigned char>(a)) == b;
            })) {
          subject = v;
          break;
        }
      }
      if (!r.rewrite_subject.empty() && r.engine_action == "rewrite subject") {
        msg.set_header("Subject", r.rewrite_subject);
      } else if (!opt.subject_prefix.empty() && !subject.starts_with(opt.subject_prefix)) {
        msg.set_header("Subject", opt.subject_prefix + subject);
      }
    }
    store_attribute(msg, r);
    call.log.debug("spam scanned",
                   {{"engine", r.engine}, {"score", format_score(r.score)}, {"action", r.action}});
    switch (act) {
      case action_kind::quarantine:
        msg.quarantined = true;
        return verdict::quarantine();
      case action_kind::tempfail: {
        const reply& rep = step && step->rep.code ? step->rep : opt.tempfail_reply;
        return verdict::tempfail(rep.code, rep.enhanced, rep.text);
      }
      case action_kind::reject: {
        const reply& rep = step && step->rep.code ? step->rep : opt.reject_reply;
        return verdict::reject(rep.code, rep.enhanced, rep.text);
      }
      default:
        return verdict::next();
    }
  }

  host& host_;
  std::shared_ptr<const stage_options> options_;
};

void plugin_anchor() {}

}  // namespace

std::string default_rules_path() {
  if (const char* env = std::getenv("SLUICE_SPAM_DEFAULT_RULES"); env && *env) return env;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&plugin_anchor), &info) && info.dli_fname) {
    auto dir = std::filesystem::path(info.dli_fname).parent_path();
    return (dir / "spam" / "rules" / "default.yaml").string();
  }
  return "spam/rules/default.yaml";
}

scan_result native_engine::scan(const scan_input& in) const {
  scan_result r;
  r.engine = "native";
  r.threshold = threshold;
  std::optional<double> p;
  if (bayes && rules->has_bayes_rules()) p = bayes->classify(tokenize(in, tok));
  r.bayes = p;
  r.rules = rules->evaluate(in, p);
  double score = 0;
  for (const auto& h : r.rules)
    score += h.score;
  r.score = std::round(score * 1000.0) / 1000.0;
  r.is_spam = r.score >= threshold;
  return r;
}

boost::asio::awaitable<spam_train_result> bayes_service::train(std::string headers,
                                                               parsed_message view,
                                                               spam_label label) {
  auto db = db_;
  auto tok = tok_;
  auto limits = limits_;
  co_return co_await offload(host_, [db, tok, limits, headers = std::move(headers),
                                     view = std::move(view), label]() mutable {
    scan_input in = make_scan_input(headers, std::move(view), 0, limits);
    in.have_view = true;
    return db->learn(tokenize(in, tok), label);
  });
}

std::shared_ptr<service> make_bayes_service(instance_context& ctx) {
  const config_node& cfg = ctx.config;
  bayes_options o;
  o.path = resolve_config_path(ctx.host.config_dir(), cfg.get_string("path", "spam-bayes.db"));
  o.min_spam = static_cast<std::uint64_t>(cfg.get_int("min_spam", 200));
  o.min_ham = static_cast<std::uint64_t>(cfg.get_int("min_ham", 200));
  o.read_connections =
      static_cast<unsigned>(std::clamp<std::int64_t>(cfg.get_int("read_connections", 4), 1, 64));
  o.full_sync = ctx.host.durability_full();
  tokenizer_options tok;
  std::int64_t max_tokens = cfg.get_int("max_tokens", 1000);
  if (max_tokens < 10 || max_tokens > 100000)
    cfg.at("max_tokens").fail("must be between 10 and 100000");
  tok.max_tokens = static_cast<std::size_t>(max_tokens);
  if (ctx.check_only) {  // declared for the spam stages' `bayes:` check; nothing opened
    ctx.host.services().declare(spam_trainer::kind, ctx.name);
    ctx.host.services().declare(bayes_service::classifier_kind, ctx.name);
    return nullptr;
  }
  std::shared_ptr<token_db> db;
  try {
    db = std::make_shared<token_db>(o);
  } catch (const std::runtime_error& e) {
    throw config_error(cfg.where() + ": " + cfg.path() + ": " + e.what());
  }
  auto svc = std::make_shared<bayes_service>(ctx.host, std::move(db), tok, scan_limits{});
  ctx.host.services().add(spam_trainer::kind, ctx.name, svc);
  ctx.host.services().add(bayes_service::classifier_kind, ctx.name, svc);
  ctx.log.info("spam token database open", {{"path", o.path.string()}});
  return svc;
}

std::shared_ptr<stage> make_spam_stage(instance_context& ctx) {
  const config_node& cfg = ctx.config;
  auto o = std::make_shared<stage_options>();
  std::string engine = cfg.get_string("engine", "native");
  if (engine == "native")
    o->engine = engine_kind::native;
  else if (engine == "spamassassin")
    o->engine = engine_kind::spamassassin;
  else if (engine == "rspamd")
    o->engine = engine_kind::rspamd;
  else
    cfg.at("engine").fail("must be native, spamassassin or rspamd");

  o->headers = cfg.get_bool("headers", true);
  o->subject_prefix = cfg.get_string("subject_prefix", "");
  if (o->subject_prefix.find_first_of("\r\n") != std::string::npos)
    cfg.at("subject_prefix").fail("must be one line");
  o->max_size = bounded_size(cfg, "max_size", 512 * 1024, 1024, 64ull << 20);
  if (auto r = cfg.find("reject_reply")) o->reject_reply = parse_reply(*r, '5');
  if (auto r = cfg.find("tempfail_reply")) o->tempfail_reply = parse_reply(*r, '4');
  if (auto list = cfg.find("actions")) {
    if (!list->is_sequence()) list->fail("expected a sequence of {score, action[, reply]}");
    for (const config_node& item : list->items()) {
      if (!item.is_map()) item.fail("expected {score, action[, reply]}");
      action_step s;
      s.score = item.at("score").as_double();
      s.action = parse_action(item.at("action"));
      if (auto rep = item.find("reply")) {
        if (s.action == action_kind::reject)
          s.rep = parse_reply(*rep, '5');
        else if (s.action == action_kind::tempfail)
          s.rep = parse_reply(*rep, '4');
        else
          rep->fail("a reply goes with reject or tempfail");
      } else {
        s.rep.code = 0;
      }
      o->actions.push_back(std::move(s));
    }
    std::sort(o->actions.begin(), o->actions.end(),
              [](const action_step& a, const action_step& b) { return a.score < b.score; });
  }

  auto timeout = [&](const config_node& n) {
    auto t = n.get_duration("timeout", std::chrono::seconds(30));
    if (t.count() <= 0) n.at("timeout").fail("must be positive");
    return t;
  };
  auto endpoint = [&](const config_node& n, std::string_view fallback) {
    engine_endpoint ep;
    std::string text = n.get_string("address", fallback);
    if (!parse_engine_endpoint(text, ep)) {
      (n.has("address") ? n.at("address") : n).fail("expected host:port, [v6]:port or unix:/path");
    }
    if (ep.unix_socket && std::filesystem::path(ep.path).is_relative()) {
      ep.path = (ctx.host.config_dir() / ep.path).string();
    }
    return ep;
  };

  if (o->engine == engine_kind::native) {
    // Native-only keys are read here only, so that with an external engine (which has its
    // own threshold and rules) they are reported as unknown keys instead of being ignored.
    o->native.threshold = cfg.has("threshold") ? cfg.at("threshold").as_double() : 5.0;
    if (!std::isfinite(o->native.threshold)) cfg.at("threshold").fail("must be a number");
    auto rules = std::make_shared<rule_set>();
    if (cfg.get_bool("default_rules", true)) {
      std::string path = default_rules_path();
      if (!std::filesystem::exists(path)) {
        cfg.fail("the default rule file " + path +
                 " is missing (set default_rules: false, or SLUICE_SPAM_DEFAULT_RULES)");
      }
      rules->load_file(path);
    }
    for (const std::string& f : cfg.get_string_list("rules")) {
      std::filesystem::path p = f;
      if (p.is_relative()) p = ctx.host.config_dir() / p;
      if (!std::filesystem::exists(p)) cfg.at("rules").fail("no such rule file: " + p.string());
      rules->load_file(p.string());
    }
    std::string bayes = cfg.get_string("bayes", "");
    if (bayes != "none") {
      auto svc = std::static_pointer_cast<bayes_service>(
          ctx.host.services().find(bayes_service::classifier_kind, bayes));
      if (svc) {
        o->native.bayes = svc->db();
        o->native.tok = svc->tokenizer();
      } else if (!bayes.empty() &&
                 !(ctx.check_only &&
                   ctx.host.services().declared(bayes_service::classifier_kind, bayes))) {
        cfg.at("bayes").fail("no service of plugin spam named \"" + bayes + "\"");
      }
    }
    o->native.rules = std::move(rules);
    o->native.limits.max_body_bytes =
        bounded_size(cfg, "max_body_bytes", 256 * 1024, 1024, 64ull << 20);
  } else if (o->engine == engine_kind::spamassassin) {
    config_node sa = cfg.at("spamassassin");
    if (!sa.is_map()) sa.fail("expected a map with address (and user, command, timeout)");
    o->spamd.endpoint = endpoint(sa, "127.0.0.1:783");
    o->spamd.user = sa.get_string("user", "");
    if (o->spamd.user.find_first_of("\r\n ") != std::string::npos)
      sa.at("user").fail("a user name");
    std::string command = sa.get_string("command", "report");
    if (command == "report")
      o->spamd.report = true;
    else if (command == "symbols")
      o->spamd.report = false;
    else
      sa.at("command").fail("must be report or symbols");
    o->spamd.timeout = timeout(sa);
  } else {
    config_node rs = cfg.at("rspamd");
    if (!rs.is_map()) rs.fail("expected a map with address (and path, password, timeout)");
    o->rspamd.endpoint = endpoint(rs, "127.0.0.1:11333");
    o->rspamd.path = rs.get_string("path", "/checkv2");
    if (!o->rspamd.path.starts_with("/") ||
        o->rspamd.path.find_first_of(" \r\n") != std::string::npos)
      rs.at("path").fail("an absolute request path");
    o->rspamd.password = rs.get_string("password", "");
    o->rspamd.timeout = timeout(rs);
  }
  return std::make_shared<spam_stage>(ctx.host, std::move(o));
}

}  // namespace sluice::spam
