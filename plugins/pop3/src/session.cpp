// plugins/pop3/src/session.cpp — see session.hpp for the contract.
#include "session.hpp"

#include <algorithm>
#include <limits>

#include "protocol.hpp"
#include "sluice/host.hpp"
#include "sluice/message.hpp"
#include "sluice/text.hpp"

namespace sluice::pop3 {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

constexpr std::size_t read_chunk_size = 16 * 1024;
constexpr std::size_t write_chunk_size = 64 * 1024;

void inc(counter* c, double v = 1) {
  if (c) c->inc(v);
}

// Commands of each state, to tell "wrong state" from "unknown command".
bool authorization_command(std::string_view k) {
  return k == "USER" || k == "PASS" || k == "APOP" || k == "AUTH" || k == "STLS";
}
bool transaction_command(std::string_view k) {
  return k == "STAT" || k == "LIST" || k == "RETR" || k == "DELE" || k == "NOOP" || k == "RSET" ||
         k == "TOP" || k == "UIDL";
}

std::string to_lower_hex(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

session::session(std::shared_ptr<server_state> st, std::unique_ptr<transport> t,
                 asio::any_io_executor ex, peer_info peer)
    : st_(std::move(st)),
      cfg_(st_->cfg),
      t_(std::move(t)),
      life_(ex, *st_, st_->metrics, *t_,
            {cfg_.idle_timeout, cfg_.session_timeout, cfg_.max_connections}),
      peer_(std::move(peer)),
      id_(make_message_id()),
      log_(st_->log.with({"session", id_})) {}

session::~session() = default;

awaitable<void> session::run() {
  auto self = shared_from_this();  // keeps the session alive until the coroutine ends
  co_await run_logging_failure(run_inner(), log_);
  co_await life_.end_tls();
  finish();
}

awaitable<void> session::run_inner() {
  using admission = session_lifecycle::admission;
  std::string client = peer_.unix_socket ? std::string("unix") : peer_.address.to_string();
  switch (life_.begin({shared_from_this(), &life_}, log_, client)) {
    case admission::admitted:
      break;
    case admission::draining:
      err("[SYS/TEMP] server shutting down");
      co_await flush();
      co_return;
    case admission::too_many:
      err("[SYS/TEMP] too many connections, try again later");
      co_await flush();
      co_return;
  }
  log_.info("session open",
            {{"client", client}, {"local", peer_.local_address}, {"listener", st_->name}});

  if (cfg_.tls == tls_mode::implicit) {
    if (!co_await life_.start_tls(*st_->tls, log_)) co_return;
  }
  if (st_->apop_offered) timestamp_ = apop_timestamp(cfg_.hostname);
  std::string greeting = "Sluice";
  if (!cfg_.label.empty()) greeting += " (" + cfg_.label + ")";  // Mailpit: "Mailpit (label)"
  greeting += " POP3 server ready";
  // The APOP timestamp stays the last word of the line (RFC 1939 §7: clients look for <...>).
  ok(timestamp_.empty() ? greeting : greeting + " " + timestamp_);

  std::string line;
  while (!closing_) {
    if (life_.draining()) {
      // Only reached between commands: a RETR or UPDATE in progress finished first. No
      // UPDATE: marked messages stay in the store.
      err("[SYS/TEMP] server shutting down");
      break;
    }
    line_status ls = take_line(line, cfg_.max_line_length);
    if (ls == line_status::too_long) {
      err("line too long (at most " + std::to_string(cfg_.max_line_length) + " octets)");
      if (count_error()) break;
      continue;
    }
    if (ls == line_status::need_more) {
      life_.set_idle(true);
      bool got = co_await read_more();
      life_.set_idle(false);
      if (!got) {
        co_await on_read_failure();
        co_return;
      }
      continue;
    }
    if (cfg_.transcript) {
      // Never log secrets: PASS and APOP arguments and AUTH initial responses are redacted.
      command_line c = split_command(line);
      if (c.keyword == "PASS" || c.keyword == "APOP" ||
          (c.keyword == "AUTH" && c.args.find(' ') != std::string::npos)) {
        log_.info("C: " + c.keyword + " <redacted>");
      } else {
        log_.info("C: " + line);
      }
    }
    co_await dispatch(line);
  }
  co_await flush();
}

void session::finish() {
  if (!life_.close()) return;
  // Leaving without QUIT (timeout, drain, dropped connection) never enters UPDATE: the
  // marks are forgotten with the snapshot, and the maildrop is unlocked.
  drop_.reset();
  lock_.release();
  log_.info("session close", {{"user", login_user_},
                              {"retrieved", retrieved_},
                              {"deleted", deleted_},
                              {"errors", errors_},
                              {"duration_ms", life_.elapsed_ms()}});
  life_.leave();
}

// ---------------------------------------------------------------------------- I/O

awaitable<bool> session::read_more() {
  if (!out_.empty()) {
    co_await flush();
    if (closing_) co_return false;
  }
  if (in_pos_ > 0) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
  // A drain notice that arrived while we were flushing found no read to cancel: honour it
  // here, before blocking (on_drain runs on this strand, so it cannot interleave).
  if (life_.draining() && life_.idle()) co_return false;
  const std::size_t old = in_.size();
  in_.resize(old + read_chunk_size);
  life_.arm();
  boost::system::error_code ec;
  std::size_t n = co_await t_->read_some(asio::buffer(in_.data() + old, read_chunk_size), ec);
  in_.resize(old + n);
  if (ec && n == 0) co_return false;
  co_return true;
}

awaitable<void> session::flush() {
  if (out_.empty() || life_.closed()) co_return;
  if (cfg_.transcript) {
    std::string_view o = out_;
    // Only the first line of each reply batch: message bodies are not logged.
    log_.info("S: " + std::string(o.substr(0, std::min(o.find("\r\n"), std::size_t{200}))));
  }
  life_.arm();
  boost::system::error_code ec;
  std::string out = std::move(out_);
  out_.clear();
  co_await t_->write(asio::buffer(out), ec);
  inc(st_->metrics.bytes_sent, static_cast<double>(out.size()));
  if (ec) closing_ = true;
}

awaitable<void> session::on_read_failure() {
  closing_ = true;
  out_.clear();
  if (life_.timed_out()) {
    bool total = life_.session_time_exceeded();
    log_.info(total ? "session time limit exceeded" : "idle timeout");
    // RFC 1939 §3: an autologout timer closes the connection without entering UPDATE.
    err(total ? "session time limit exceeded, closing (no messages deleted)"
              : "autologout: idle for too long, closing (no messages deleted)");
    co_await flush();
  } else if (life_.draining()) {
    err("[SYS/TEMP] server shutting down");
    co_await flush();
  }
}

session::line_status session::take_line(std::string& line, std::size_t max_length) {
  while (true) {
    std::string_view avail(in_.data() + in_pos_, in_.size() - in_pos_);
    std::size_t nl = avail.find('\n');
    if (skipping_long_line_) {
      // Discarding the rest of an over-long line we already answered.
      if (nl == std::string_view::npos) {
        in_pos_ = in_.size();
        return line_status::need_more;
      }
      in_pos_ += nl + 1;
      skipping_long_line_ = false;
      continue;
    }
    if (nl == std::string_view::npos) {
      if (avail.size() >= max_length) {
        in_pos_ = in_.size();
        skipping_long_line_ = true;
        return line_status::too_long;
      }
      return line_status::need_more;
    }
    in_pos_ += nl + 1;
    if (nl + 1 > max_length) return line_status::too_long;
    std::string_view l = avail.substr(0, nl);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    line.assign(l);
    return line_status::got;
  }
}

void session::ok(std::string_view text) {
  out_ += "+OK";
  if (!text.empty()) {
    out_ += ' ';
    out_ += text;
  }
  out_ += "\r\n";
}

void session::err(std::string_view text) {
  out_ += "-ERR ";
  out_ += text;
  out_ += "\r\n";
}

void session::refuse(std::string_view text) {
  err(text);
  count_error();
}

bool session::count_error() {
  ++errors_;
  if (errors_ >= cfg_.max_errors) {
    err("too many errors, closing");
    closing_ = true;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------- commands

awaitable<void> session::dispatch(const std::string& line) {
  command_line c = split_command(line);
  const std::string& k = c.keyword;
  // RFC 1939 §7: PASS is valid only right after USER; anything else forgets the name.
  if (k != "PASS") user_.reset();
  if (k.empty()) {
    refuse("empty command");
    co_return;
  }
  if (k == "CAPA") {
    if (!c.args.empty()) {
      refuse("CAPA takes no arguments");
      co_return;
    }
    cmd_capa();
    co_return;
  }
  if (k == "QUIT") {
    if (!c.args.empty()) {
      refuse("QUIT takes no arguments");
      co_return;
    }
    co_await cmd_quit();
    co_return;
  }
  if (state_ == state::authorization) {
    if (k == "USER") {
      cmd_user(c.args);
    } else if (k == "PASS") {
      co_await cmd_pass(c.args);
    } else if (k == "APOP") {
      co_await cmd_apop(c.args);
    } else if (k == "AUTH") {
      co_await cmd_auth(c.args);
    } else if (k == "STLS") {
      co_await cmd_stls(c.args);
    } else if (transaction_command(k)) {
      refuse("command not valid in this state: log in first");
    } else {
      refuse("unknown command");
    }
    co_return;
  }
  // TRANSACTION
  if (k == "STAT" || k == "NOOP" || k == "RSET") {
    if (!c.args.empty()) {
      refuse(k + " takes no arguments");
      co_return;
    }
    if (k == "STAT") {
      co_await cmd_stat();
    } else if (k == "NOOP") {
      ok("");
    } else {
      cmd_rset();
    }
  } else if (k == "LIST") {
    co_await cmd_list(c.args, false);
  } else if (k == "UIDL") {
    co_await cmd_list(c.args, true);
  } else if (k == "RETR") {
    co_await cmd_retr(c.args);
  } else if (k == "TOP") {
    co_await cmd_top(c.args);
  } else if (k == "DELE") {
    cmd_dele(c.args);
  } else if (authorization_command(k)) {
    refuse("command not valid in this state: already logged in");
  } else {
    refuse("unknown command");
  }
}

bool session::cleartext_allowed() const {
  return t_->is_tls() || cfg_.allow_insecure;
}

std::string session::cleartext_refusal() const {
  // RFC 3206 §4: [AUTH] covers a login refused by policy; RFC 2595 §4 sends the client to
  // STLS first.
  if (cfg_.tls == tls_mode::starttls) return "[AUTH] cleartext login refused: use STLS first";
  return st_->apop_offered ? "[AUTH] cleartext login refused on this connection: use APOP"
                           : "[AUTH] cleartext login refused on this connection";
}

void session::cmd_capa() {
  // RFC 2449 §5: what the AUTHORIZATION state offers is announced in both states.
  out_ += "+OK capability list follows\r\n";
  out_ += "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n";
  if (cleartext_allowed()) out_ += "USER\r\nSASL PLAIN\r\n";
  if (cfg_.tls == tls_mode::starttls && !t_->is_tls()) out_ += "STLS\r\n";
  out_ += "IMPLEMENTATION Sluice\r\n.\r\n";
}

void session::cmd_user(std::string_view args) {
  if (!cleartext_allowed()) {
    refuse(cleartext_refusal());
    return;
  }
  if (args.size() > 255) {
    refuse("user name longer than 255 octets");
    return;
  }
  if (args.empty()) {
    refuse("syntax: USER name");
    return;
  }
  user_ = std::string(args);
  // The same answer for every name: whether a user exists is not told before PASS.
  ok("send PASS");
}

awaitable<void> session::cmd_pass(std::string_view args) {
  if (!user_) {
    refuse("PASS must follow USER");
    co_return;
  }
  // USER succeeded, so cleartext logins are allowed on this connection (STLS forgets it).
  std::string user = std::move(*user_);
  user_.reset();
  if (co_await check_password(user, std::string(args))) {
    co_await login(std::move(user), "USER");
  } else {
    auth_failed("USER");
  }
}

awaitable<void> session::cmd_apop(std::string_view args) {
  if (timestamp_.empty()) {
    refuse("APOP not available");
    co_return;
  }
  std::string_view words[2];
  std::size_t n = 0;
  if (!split_args(args, words, 2, n) || n != 2 || !is_md5_hex(words[1]) || words[0].size() > 255) {
    refuse("syntax: APOP name digest");
    co_return;
  }
  std::string user(words[0]);
  std::optional<std::string> secret = st_->users->plain_secret(user);
  // Computed for unknown or hashed users too, so the reply time does not tell them apart.
  std::string expected = apop_digest(timestamp_, secret ? *secret : std::string_view{});
  bool match = constant_time_equal(to_lower_hex(words[1]), expected);
  if (match && secret) {
    co_await login(std::move(user), "APOP");
  } else {
    auth_failed("APOP");
  }
}

awaitable<void> session::cmd_auth(std::string_view args) {
  std::string_view words[2];
  std::size_t n = 0;
  if (!split_args(args, words, 2, n)) {
    refuse("syntax: AUTH mechanism [initial-response]");
    co_return;
  }
  if (n == 0) {
    // RFC 1734 style listing, which some clients still probe with.
    out_ += "+OK supported mechanisms follow\r\n";
    if (cleartext_allowed()) out_ += "PLAIN\r\n";
    out_ += ".\r\n";
    co_return;
  }
  if (!iequals(words[0], "PLAIN")) {
    refuse("unsupported authentication mechanism");
    co_return;
  }
  if (!cleartext_allowed()) {
    refuse(cleartext_refusal());
    co_return;
  }
  std::string response;
  if (n == 2) {
    response = std::string(words[1]);  // "=" is an empty initial response (RFC 5034 §4)
  } else {
    out_ += "+ \r\n";  // an empty challenge
    std::string line;
    while (true) {
      line_status ls = take_line(line, cfg_.max_auth_line);
      if (ls == line_status::got) break;
      if (ls == line_status::too_long) {
        refuse("authentication exchange line too long");
        co_return;
      }
      // The client is expected to answer: idle like between commands, so a drain ends it.
      life_.set_idle(true);
      bool got = co_await read_more();
      life_.set_idle(false);
      if (!got) {
        co_await on_read_failure();
        co_return;
      }
    }
    if (cfg_.transcript) log_.info("C: <AUTH response redacted>");
    response = std::move(line);
  }
  if (response == "*") {
    err("authentication cancelled");  // RFC 5034 §4
    co_return;
  }
  std::optional<std::string> decoded =
      response == "=" ? std::optional<std::string>("")
                      : sluice::base64_decode(response, sluice::base64_padding::optional);
  if (!decoded) {
    auth_failed("PLAIN", "[AUTH] invalid base64 in the authentication exchange");
    co_return;
  }
  auto creds = parse_plain(*decoded);
  if (!creds || (!creds->authzid.empty() && creds->authzid != creds->authcid)) {
    auth_failed("PLAIN");
    co_return;
  }
  if (co_await check_password(creds->authcid, std::move(creds->password))) {
    co_await login(std::move(creds->authcid), "PLAIN");
  } else {
    auth_failed("PLAIN");
  }
}

awaitable<void> session::cmd_stls(std::string_view args) {
  if (t_->is_tls()) {
    refuse("TLS already active");
    co_return;
  }
  if (cfg_.tls != tls_mode::starttls) {
    refuse("STLS not available");
    co_return;
  }
  if (!args.empty()) {
    refuse("STLS takes no arguments");
    co_return;
  }
  ok("begin TLS negotiation");
  co_await flush();
  if (closing_) co_return;
  // INVARIANT (command injection, the CVE-2011-0411 class): whatever the client sent after
  // STLS in plaintext must never be read as a command of the TLS session.
  in_.clear();
  in_pos_ = 0;
  skipping_long_line_ = false;
  if (!co_await life_.start_tls(*st_->tls, log_)) {
    closing_ = true;
    co_return;
  }
  // RFC 2595 §4: forget what the client said before TLS.
  user_.reset();
  log_.debug("TLS established", {{"version", t_->tls_version()}, {"cipher", t_->tls_cipher()}});
}

awaitable<void> session::cmd_quit() {
  closing_ = true;
  if (state_ == state::authorization) {
    ok("Sluice POP3 server signing off");
    co_return;
  }
  // UPDATE state (RFC 1939 §6): only now are the marked messages removed.
  try {
    deleted_ = co_await drop_->expunge();
  } catch (const std::exception& e) {
    log_.error("UPDATE failed: messages not removed", {{"error", e.what()}});
    err("[SYS/TEMP] some deleted messages not removed");
    co_return;
  }
  inc(st_->metrics.messages_deleted, static_cast<double>(deleted_));
  const std::uint64_t left = undeleted_totals().count;
  // Unlock before the reply: a client that has read "+OK" may log in again at once (on
  // another connection) and must not find the maildrop still locked by this one.
  lock_.release();
  ok("Sluice POP3 server signing off (" + std::to_string(deleted_) + " deleted, " +
     std::to_string(left) + " left)");
}

void session::store_failure(std::string_view what, const std::string& error) {
  log_.error(std::string(what) + " failed", {{"error", error}});
  err("[SYS/TEMP] the message store is unavailable, try again later");
}

awaitable<bool> session::fill_sizes(std::string_view what) {
  std::string failure;
  try {
    co_await drop_->fill_sizes();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure.empty()) {
    store_failure(what, failure);
    co_return false;
  }
  co_return true;
}

session::totals session::undeleted_totals() {
  totals t;
  for (const auto& e : drop_->entries()) {
    if (e.deleted) continue;
    ++t.count;
    t.octets += e.size.value_or(0);
  }
  return t;
}

awaitable<void> session::cmd_stat() {
  if (!co_await fill_sizes("STAT")) co_return;
  totals t = undeleted_totals();
  ok(std::to_string(t.count) + " " + std::to_string(t.octets));
}

maildrop_entry* session::message_arg(std::string_view arg, std::uint64_t& n) {
  auto v = parse_number(arg);
  if (!v) {
    refuse("invalid message number");
    return nullptr;
  }
  n = *v;
  maildrop_entry* e = drop_->at(n);
  if (!e) {
    err("no such message, only " + std::to_string(drop_->count()) + " in the maildrop");
    return nullptr;
  }
  if (e->deleted) {
    err("message " + std::to_string(n) + " already deleted");
    return nullptr;
  }
  return e;
}

awaitable<void> session::cmd_list(std::string_view args, bool uidl) {
  std::string_view words[1];
  std::size_t nargs = 0;
  if (!split_args(args, words, 1, nargs)) {
    refuse(std::string("syntax: ") + (uidl ? "UIDL" : "LIST") + " [msg]");
    co_return;
  }
  if (nargs == 1) {
    std::uint64_t n = 0;
    maildrop_entry* e = message_arg(words[0], n);
    if (!e) co_return;
    if (uidl) {
      ok(std::to_string(n) + " " + e->uid);
      co_return;
    }
    std::string failure;
    std::optional<std::uint64_t> size;
    try {
      size = co_await drop_->size_of(n);
    } catch (const std::exception& ex) {
      failure = ex.what();
    }
    if (!failure.empty()) {
      store_failure("LIST", failure);
      co_return;
    }
    ok(std::to_string(n) + " " + std::to_string(size.value_or(0)));
    co_return;
  }
  if (!uidl && !co_await fill_sizes("LIST")) co_return;
  if (uidl) {
    ok("unique-id listing follows");
  } else {
    totals t = undeleted_totals();
    ok(std::to_string(t.count) + " messages (" + std::to_string(t.octets) + " octets)");
  }
  std::uint64_t n = 0;
  for (const auto& e : drop_->entries()) {
    ++n;
    if (e.deleted) continue;
    out_ += std::to_string(n);
    out_ += ' ';
    out_ += uidl ? e.uid : std::to_string(e.size.value_or(0));
    out_ += "\r\n";
    if (out_.size() >= write_chunk_size) co_await flush();
  }
  out_ += ".\r\n";
}

awaitable<void> session::send_multiline(std::string first_line, std::string_view raw) {
  ok(first_line);
  multiline_encoder enc(raw);
  while (enc.next(out_, write_chunk_size)) {
    if (out_.size() >= write_chunk_size) {
      co_await flush();
      if (closing_) co_return;
    }
  }
}

awaitable<std::optional<std::string>> session::fetch_message(std::uint64_t n,
                                                             std::string_view what) {
  std::optional<std::string> raw;
  std::string failure;
  try {
    raw = co_await drop_->fetch(n);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure.empty()) {
    store_failure(what, failure);
    co_return std::nullopt;
  }
  if (!raw) err("message " + std::to_string(n) + " is no longer in the store");
  co_return raw;
}

awaitable<void> session::cmd_retr(std::string_view args) {
  std::string_view words[1];
  std::size_t nargs = 0;
  if (!split_args(args, words, 1, nargs) || nargs != 1) {
    refuse("syntax: RETR msg");
    co_return;
  }
  std::uint64_t n = 0;
  if (!message_arg(words[0], n)) co_return;
  std::optional<std::string> raw = co_await fetch_message(n, "RETR");
  if (!raw) co_return;
  // The octet count is exactly what follows before dot-stuffing (RFC 1939 §11).
  co_await send_multiline(std::to_string(normalized_size(*raw)) + " octets", *raw);
  ++retrieved_;
  inc(st_->metrics.messages_retrieved);
}

awaitable<void> session::cmd_top(std::string_view args) {
  std::string_view words[2];
  std::size_t nargs = 0;
  if (!split_args(args, words, 2, nargs) || nargs != 2) {
    refuse("syntax: TOP msg n");
    co_return;
  }
  auto lines = parse_number(words[1]);
  // RFC 1939: n is any non-negative number; more lines than the body has is the whole body.
  if (!lines && !words[1].empty() &&
      words[1].find_first_not_of("0123456789") == std::string_view::npos) {
    lines = std::numeric_limits<std::uint64_t>::max();
  }
  if (!lines) {
    refuse("invalid number of lines");
    co_return;
  }
  std::uint64_t n = 0;
  if (!message_arg(words[0], n)) co_return;
  std::optional<std::string> raw = co_await fetch_message(n, "TOP");
  if (!raw) co_return;
  std::string top = top_of(*raw, *lines);
  co_await send_multiline("top of message follows", top);
}

void session::cmd_dele(std::string_view args) {
  std::string_view words[1];
  std::size_t nargs = 0;
  if (!split_args(args, words, 1, nargs) || nargs != 1) {
    refuse("syntax: DELE msg");
    return;
  }
  std::uint64_t n = 0;
  maildrop_entry* e = message_arg(words[0], n);
  if (!e) return;
  e->deleted = true;  // removed from the store only at UPDATE (QUIT)
  ok("message " + std::to_string(n) + " deleted");
}

void session::cmd_rset() {
  for (auto& e : drop_->entries())
    e.deleted = false;
  ok("maildrop has " + std::to_string(drop_->count()) + " messages");
}

// ---------------------------------------------------------------------------- login

awaitable<bool> session::check_password(std::string user, std::string password) {
  // Hash checks are slow on purpose (bcrypt): never on an I/O thread. Resumes on our strand.
  std::shared_ptr<const htpasswd> users = st_->users;
  co_return co_await offload(st_->host,
                             [users, user = std::move(user), password = std::move(password)]() {
                               return users->verify(user, password);
                             });
}

void session::auth_failed(std::string_view mechanism, std::string_view reply) {
  inc(st_->metrics.auth_failure);
  ++auth_failures_;
  // The mechanism is logged, never the name or what was offered as a password.
  log_.info("authentication failed", {{"mechanism", mechanism}, {"failures", auth_failures_}});
  if (auth_failures_ >= cfg_.max_auth_failures) {
    err("[AUTH] invalid credentials; too many failures, closing");
    closing_ = true;
    return;
  }
  err(reply);
}

awaitable<void> session::login(std::string user, std::string_view mechanism) {
  std::string box = st_->mailbox_for(user);
  if (!valid_mailbox_name(box)) {
    log_.warn("login refused: the user's mailbox name is not valid", {{"user", user}});
    err("[SYS/PERM] no mailbox for this user");
    co_return;
  }
  auto lock = maildrop_locks::instance().try_lock(st_->mailboxes.get(), box);
  if (!lock) {
    inc(st_->metrics.in_use);
    log_.info("login refused: maildrop in use", {{"user", user}, {"mailbox", box}});
    err("[IN-USE] maildrop already locked by another session");
    co_return;
  }
  maildrop drop(st_->mailboxes, box);
  std::string failure;
  try {
    co_await drop.load(cfg_.max_messages);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (!failure.empty()) {
    log_.error("cannot open the maildrop", {{"mailbox", box}, {"error", failure}});
    err("[SYS/TEMP] cannot open the maildrop, try again later");
    co_return;  // `lock` is released here
  }
  lock_ = std::move(lock);
  drop_.emplace(std::move(drop));
  login_user_ = user;
  state_ = state::transaction;
  inc(st_->metrics.auth_success);
  log_.info("logged in", {{"user", user},
                          {"mechanism", mechanism},
                          {"mailbox", box},
                          {"messages", drop_->count()},
                          {"tls", t_->is_tls()}});
  ok("maildrop locked and ready, " + std::to_string(drop_->count()) + " messages");
}

}  // namespace sluice::pop3
