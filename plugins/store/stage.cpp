// stage.cpp — the `store` stage (see stage.hpp).
#include "stage.hpp"

#include <algorithm>
#include <exception>
#include <stdexcept>

#include <boost/asio/this_coro.hpp>

#include "async.hpp"
#include "sluice/host.hpp"
#include "sluice/text.hpp"

namespace sluice::store {

mailbox_template::mailbox_template(std::string_view text) {
  std::string literal;
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] != '{') {
      literal.push_back(text[i++]);
      continue;
    }
    const std::size_t close = text.find('}', i);
    if (close == std::string_view::npos) throw std::invalid_argument("unclosed { in mailbox");
    const std::string_view name = text.substr(i + 1, close - i - 1);
    piece p;
    if (name == "auth_user") {
      p = piece::auth_user;
    } else if (name == "rcpt_domain") {
      p = piece::rcpt_domain;
    } else if (name == "rcpt_local") {
      p = piece::rcpt_local;
    } else if (name == "listener") {
      p = piece::listener;
    } else {
      throw std::invalid_argument("unknown placeholder {" + std::string(name) +
                                  "} in mailbox (expected {auth_user}, {rcpt_domain}, "
                                  "{rcpt_local} or {listener})");
    }
    if (!literal.empty()) parts_.emplace_back(piece::text, std::move(literal));
    literal.clear();
    parts_.emplace_back(p, std::string());
    has_fields_ = true;
    per_recipient_ = per_recipient_ || p == piece::rcpt_domain || p == piece::rcpt_local;
    i = close + 1;
  }
  if (!literal.empty()) parts_.emplace_back(piece::text, std::move(literal));
}

std::vector<std::string> mailbox_template::expand(const message& msg,
                                                  const std::string& fallback) const {
  std::vector<std::string> out;
  auto one = [&](std::string_view rcpt) {
    const auto at = rcpt.rfind('@');
    const std::string_view local = rcpt.substr(0, at);
    const std::string_view domain =
        at == std::string_view::npos ? std::string_view() : rcpt.substr(at + 1);
    std::string name;
    bool empty_field = false;
    for (const auto& [p, text] : parts_) {
      std::string_view v;
      switch (p) {
        case piece::text:
          name += text;
          continue;
        case piece::auth_user:
          v = msg.envelope.auth_user;
          break;
        case piece::rcpt_domain:
          name += to_lower_ascii(domain);  // domains are case-insensitive
          empty_field = empty_field || domain.empty();
          continue;
        case piece::rcpt_local:
          v = local;
          break;
        case piece::listener:
          v = msg.envelope.listener;
          break;
      }
      empty_field = empty_field || v.empty();
      name += v;
    }
    // A placeholder with nothing to put in (no AUTH, no recipient) means the fallback.
    if (empty_field || !valid_mailbox_name(name)) name = fallback;
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
  };
  if (per_recipient_ && !msg.envelope.recipients.empty()) {
    for (const auto& r : msg.envelope.recipients)
      one(r.address);
  } else {
    one(std::string_view());
  }
  return out;
}

stage_options parse_stage_options(const config_node& cfg) {
  stage_options o;
  o.mailbox = cfg.get_string("mailbox", "default");
  o.fallback_mailbox = cfg.get_string("fallback_mailbox", "default");
  o.requested_mailbox = cfg.get_bool("requested_mailbox", true);
  if (const std::string d = cfg.get_string("duplicates", "keep"); d == "drop") {
    o.drop_duplicate_ids = true;
  } else if (d != "keep") {
    cfg.at("duplicates").fail("expected keep or drop, got \"" + d + "\"");
  }
  if (const std::string d = cfg.get_string("dates", "arrival"); d == "message") {
    o.message_dates = true;
  } else if (d != "arrival") {
    cfg.at("dates").fail("expected arrival or message, got \"" + d + "\"");
  }
  if (!valid_mailbox_name(o.fallback_mailbox)) {
    cfg.at("fallback_mailbox").fail("expected a mailbox name of 1 to 200 printable characters");
  }
  if (auto t = cfg.find("tags")) {
    if (!t->is_map()) {
      t->fail("expected a map with rules, x_tags, plus_addresses, username, title_case");
    }
    o.tags.x_tags = t->get_bool("x_tags", true);
    o.tags.plus_addresses = t->get_bool("plus_addresses", true);
    o.tags.username = t->get_bool("username", false);
    o.tags.title_case = t->get_bool("title_case", false);
    if (auto rules = t->find("rules")) {
      if (!rules->is_sequence()) rules->fail("expected a list of {match, tags}");
      for (const auto& r : rules->items()) {
        if (!r.is_map()) r.fail("expected {match: <search>, tags: [names]}");
        tag_rule rule;
        const config_node match = r.at("match");
        try {
          rule.query = parse_search(match.as_string(), search_mode::strict);
        } catch (const search_error& e) {
          match.fail(e.what());
        }
        if (rule.query.empty()) match.fail("must not be empty (it would tag every message)");
        const config_node tags = r.at("tags");
        std::vector<std::string> names =
            tags.is_sequence() ? tags.as_string_list() : std::vector<std::string>{};
        if (tags.is_scalar()) {
          // "A, B" as Mailpit's tags config writes it.
          const std::string list = tags.as_string();
          std::string_view rest = list;
          while (!rest.empty()) {
            auto comma = rest.find(',');
            names.emplace_back(trim(rest.substr(0, comma)));
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
          }
        }
        for (const auto& n : names) {
          if (clean_tag(n).empty()) tags.fail("tag \"" + n + "\" is empty after cleaning");
          add_tag(rule.tags, n);
        }
        if (rule.tags.empty()) tags.fail("expected at least one tag");
        o.rules.push_back(std::move(rule));
      }
    }
  }
  return o;
}

store_stage::store_stage(sluice::host& host, std::shared_ptr<sqlite_store> store,
                         stage_options opts)
    : host_(host), store_(std::move(store)), opts_(std::move(opts)), template_(opts_.mailbox) {
  if (template_.fixed()) {
    store_->declare_mailbox(opts_.mailbox);
  } else {
    store_->declare_mailbox(opts_.fallback_mailbox);
  }
  if (opts_.drop_duplicate_ids) store_->require_message_id_index();
}

std::vector<std::string> store_stage::choose_mailboxes(const message& msg) const {
  if (opts_.requested_mailbox) {
    // The mailbox the submitter addressed (the HTTP send API under /mailbox/{name}/).
    if (const auto* m = msg.attributes.if_contains("mailbox");
        m && m->is_string() && valid_mailbox_name(m->get_string())) {
      return {std::string(m->get_string())};
    }
  }
  if (template_.fixed()) return {opts_.mailbox};
  return template_.expand(msg, opts_.fallback_mailbox);
}

verdict verdict_for_failure(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return verdict::insufficient_storage();
    case SQLITE_TOOBIG:
      return verdict::reject(552, "5.3.4", "Message too big for the mail store");
    default:
      return verdict::local_error();
  }
}

bool valid_mailbox_name(std::string_view name) {
  if (name.empty() || name.size() > 200) return false;
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}

boost::asio::awaitable<verdict> store_stage::process(std::shared_ptr<message> msg,
                                                     const stage_call& call) {
  // A timeout's cancellation must not make a co_await throw once the write is committed
  // (that would turn a stored message into a failure, and the client's retry would store it
  // again): it is checked by hand before the write, and a write still queued withdraws
  // itself; either withdrawal is sluice::withdraw().
  co_await boost::asio::this_coro::throw_if_cancelled(false);
  // Copies: this frame may outlive the call (timeout), and must keep what it touches.
  std::shared_ptr<sqlite_store> store = store_;
  const int level = store->options().compression_level;
  std::vector<std::string> mailboxes = choose_mailboxes(*msg);
  const tag_sources sources = opts_.tags;
  prepared_message row;
  try {
    if (prepare_inline_ok(*msg)) {
      row = prepare_message(*msg, mailboxes.front(), level, {}, sources);
    } else {
      // Reading a spooled body and compressing megabytes is blocking work.
      // A large zstd frame is spilled next to the spooled bodies (same file system).
      auto prepare = [msg, mailbox = mailboxes.front(), level, scratch = host_.spool_dir(),
                      sources] { return prepare_message(*msg, mailbox, level, scratch, sources); };
      row = co_await run_blocking(host_.workers().get_executor(), std::move(prepare));
    }
  } catch (const std::exception& e) {
    call.log.warn("store could not read the message", {{"error", e.what()}});
    co_return verdict_for_failure(SQLITE_IOERR);
  }
  row.mailboxes = mailboxes;
  if (opts_.message_dates && row.date_ms) row.meta.created_ms = *row.date_ms;
  const std::string message_id = opts_.drop_duplicate_ids ? row.meta.message_id : std::string();
  if ((co_await boost::asio::this_coro::cancellation_state).cancelled() !=
      boost::asio::cancellation_type::none) {
    call.log.warn("store write not started: the stage was cancelled (timeout)");
    sluice::withdraw();
  }
  const write_result r =
      co_await store->insert(std::move(row), insert_options{opts_.rules, opts_.drop_duplicate_ids});
  if (r.rc == SQLITE_INTERRUPT) {
    // Withdrawn from the writer's queue by the cancellation (the stage's timeout): nothing
    // was written, and the kernel counts the call as timed out.
    call.log.warn("store write withdrawn: the stage was cancelled (timeout)");
    sluice::withdraw();
  }
  if (!r.ok()) {
    call.log.warn("store failed to commit the message",
                  {{"rc", r.rc}, {"error", r.error}, {"store", store->name()}});
    co_return verdict_for_failure(r.rc);
  }
  if (r.n == 0 && r.duplicates > 0) {
    // Every mailbox already holds this Message-ID: acknowledged, not stored (Mailpit's
    // --ignore-duplicate-ids), and nothing after this stage runs for it.
    call.log.info("duplicate Message-ID, not stored",
                  {{"store", store->name()}, {"message_id", message_id}});
    co_return verdict::discard();
  }
  call.log.debug("message stored",
                 {{"store", store->name()}, {"copies", r.n}, {"duplicates", r.duplicates}});
  co_return verdict::next();
}

}  // namespace sluice::store
