// plugins/smtp/src/session.cpp — see session.hpp for the contract.
#include "session.hpp"

#include <algorithm>
#include <charconv>
#include <unordered_set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <boost/json/object.hpp>

#include "chaos.hpp"
#include "data_decoder.hpp"
#include "headers.hpp"
#include "proxy_protocol.hpp"
#include "sasl.hpp"
#include "sluice/host.hpp"
#include "xclient.hpp"

namespace sluice::smtp {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

constexpr std::size_t read_chunk_size = 64 * 1024;

void inc(counter* c, double v = 1) {
  if (c) c->inc(v);
}

std::string sanitize_reply_text(std::string_view t) {
  std::string out;
  for (char c : t)
    out += (c == '\r' || c == '\n') ? ' ' : c;
  return out;
}

std::string upper_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

bool is_unavailable(std::string_view v) {
  return v == "[UNAVAILABLE]" || v == "[TEMPUNAVAIL]";
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
      log_(st_->log.with({"session", id_})) {
  client_ip_ = trust_ip_ = peer_.address;
  client_unix_ = trust_unix_ = peer_.unix_socket;
  client_port_ = peer_.port;
}

session::~session() = default;

awaitable<void> session::run() {
  auto self = shared_from_this();  // keeps the session alive until the coroutine ends
  co_await run_logging_failure(run_inner(), log_);
  co_await life_.end_tls();
  finish();
}

awaitable<void> session::run_inner() {
  using admission = session_lifecycle::admission;
  switch (life_.begin({shared_from_this(), &life_}, log_, client_address_text())) {
    case admission::admitted:
      break;
    case admission::draining:
      reply(421, "4.3.2", "Service shutting down");
      co_await flush();
      co_return;
    case admission::too_many:
      reply(421, "4.7.0", cfg_.hostname + " Too many connections, try again later");
      co_await flush();
      co_return;
  }

  if (cfg_.proxy_protocol) {
    if (!co_await read_proxy_header()) co_return;
  }
  log_.info(
      "session open",
      {{"client", client_address_text()}, {"local", peer_.local_address}, {"listener", st_->name}});

  if (cfg_.tls == tls_mode::implicit) {
    if (!co_await life_.start_tls(*st_->tls, log_)) co_return;
  }
  greet();

  std::string line;
  while (!closing_) {
    if (life_.draining()) {
      // Only reached between commands: a message in DATA or submit finished first.
      reply(421, "4.3.2", "Service shutting down");
      break;
    }
    line_status ls = take_line(line);
    if (ls == line_status::too_long) {
      reply(500, "5.5.2", "Line too long");
      if (count_error()) break;
      continue;
    }
    if (ls == line_status::need_more) {
      life_.set_idle(true);
      bool ok = co_await read_more();
      life_.set_idle(false);
      if (!ok) {
        co_await on_read_failure();
        co_return;
      }
      continue;
    }
    if (cfg_.transcript) log_.info("C: " + line);
    co_await dispatch(line);
  }
  co_await flush();
}

void session::finish() {
  if (!life_.close()) return;
  log_.info("session close",
            {{"messages", messages_}, {"errors", errors_}, {"duration_ms", life_.elapsed_ms()}});
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
  // here, before blocking (on_drain runs on this session's executor, so this check and the
  // read below cannot interleave with it).
  if (life_.draining() && life_.idle()) co_return false;
  char* room = in_.prepare(read_chunk_size);
  life_.arm();
  boost::system::error_code ec;
  std::size_t n = co_await t_->read_some(asio::buffer(room, read_chunk_size), ec);
  in_.commit(n);
  if (n > 0) inc(st_->metrics.bytes_received, static_cast<double>(n));
  if (ec && n == 0) co_return false;
  co_return true;
}

awaitable<void> session::flush() {
  if (out_.empty() || life_.closed()) co_return;
  if (cfg_.transcript) {
    std::string_view o = out_;
    while (!o.empty()) {
      auto nl = o.find("\r\n");
      log_.info("S: " + std::string(o.substr(0, nl)));
      if (nl == std::string_view::npos) break;
      o.remove_prefix(nl + 2);
    }
  }
  life_.arm();
  boost::system::error_code ec;
  std::string out = std::move(out_);
  out_.clear();
  co_await t_->write(asio::buffer(out), ec);
  if (ec) closing_ = true;
}

awaitable<void> session::on_read_failure() {
  closing_ = true;
  out_.clear();
  if (life_.timed_out()) {
    bool total = life_.session_time_exceeded();
    log_.info(total ? "session time limit exceeded" : "idle timeout");
    reply(421, "4.4.2",
          cfg_.hostname +
              (total ? " Error: session time limit exceeded" : " Error: timeout exceeded"));
    co_await flush();
  } else if (life_.draining()) {
    reply(421, "4.3.2", "Service shutting down");
    co_await flush();
  }
}

session::line_status session::take_line(std::string& line, std::size_t limit) {
  if (limit == 0) limit = cfg_.max_line_length;
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
      if (avail.size() > limit) {
        in_pos_ = in_.size();
        skipping_long_line_ = true;
        return line_status::too_long;
      }
      return line_status::need_more;
    }
    in_pos_ += nl + 1;
    if (nl + 1 > limit) return line_status::too_long;
    std::string_view l = avail.substr(0, nl);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    line.assign(l);
    return line_status::got;
  }
}

void session::reply(int code, std::string_view enhanced, std::string_view text) {
  const std::size_t begin = out_.size();
  out_ += std::to_string(code);
  out_ += ' ';
  if (!enhanced.empty()) {
    out_ += enhanced;
    out_ += ' ';
  }
  out_ += text;
  if (code >= 400 && st_->events) {
    // Mailpit's WebSocket `error` event (the UI shows it as a toast).
    boost::json::object data{{"Level", code >= 500 ? "error" : "warning"},
                             {"Type", cfg_.lmtp ? "lmtpd" : "smtpd"},
                             {"IP", client_address_text()},
                             {"Message", std::string_view(out_).substr(begin)}};
    st_->events->publish(event{"error", "", std::move(data)});
  }
  out_ += "\r\n";
}

bool session::chaos_fired(chaos_service::point p) {
  if (!st_->chaos) return false;
  const int code = st_->chaos->roll(p);
  if (code == 0) return false;
  reply(code, chaos_enhanced(code, p), chaos_text(p));
  return true;
}

void session::reply_lines(int code, const std::vector<std::string>& lines) {
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out_ += std::to_string(code);
    out_ += (i + 1 == lines.size()) ? ' ' : '-';
    out_ += lines[i];
    out_ += "\r\n";
  }
}

void session::greet() {
  // The label (printable ASCII, bounded: settings.cpp) as Mailpit shows it: "Mailpit (label)".
  reply(220, "",
        cfg_.hostname + (cfg_.lmtp ? " LMTP" : " ESMTP") + " Sluice" +
            (cfg_.label.empty() ? std::string() : " (" + cfg_.label + ")") + " ready");
}

void session::refuse(int code, std::string_view enhanced, std::string_view text) {
  reply(code, enhanced, text);
  count_error();
}

bool session::count_error() {
  ++errors_;
  if (errors_ >= cfg_.max_errors) {
    reply(421, "4.7.0", cfg_.hostname + " Error: too many errors");
    closing_ = true;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------- PROXY

awaitable<bool> session::read_proxy_header() {
  if (!cfg_.proxy_trusted.contains(peer_.address, peer_.unix_socket)) {
    log_.warn("PROXY header expected from an untrusted peer: closing",
              {{"peer", client_address_text()}});
    co_return false;
  }
  auto limit = std::chrono::steady_clock::now() + cfg_.proxy_timeout;
  life_.limit_session_end(limit);  // restored below once the header is in
  while (true) {
    proxy_header h;
    std::size_t consumed = 0;
    std::string error;
    std::string_view avail(in_.data() + in_pos_, in_.size() - in_pos_);
    parse_status ps = parse_proxy(avail, h, consumed, error);
    if (ps == parse_status::complete) {
      in_pos_ += consumed;
      life_.restore_session_end();
      if (!h.local) {
        boost::system::error_code ec;
        auto addr = asio::ip::make_address(h.src_addr, ec);
        if (!ec) {
          // A dual-stack proxy names an IPv4 client ::ffff:a.b.c.d: it is that IPv4 client.
          // (The TCP listeners are v6-only, so a direct client never arrives mapped.)
          client_ip_ = trust_ip_ = unmap_v4(addr);
          client_unix_ = trust_unix_ = false;
          client_port_ = h.src_port;
        } else if (h.src_port == 0 && h.dst_port == 0) {
          // PROXY v2 AF_UNIX: the source is a socket path, not an address; the client is
          // local to the proxy.
          client_unix_ = trust_unix_ = true;
          client_port_ = 0;
        } else {
          log_.warn("PROXY header with a bad source address: closing");
          co_return false;
        }
      }
      co_return true;
    }
    if (ps == parse_status::invalid) {
      log_.warn("bad PROXY header: closing", {{"error", error}});
      co_return false;
    }
    if (avail.size() > 4096) {
      log_.warn("PROXY header too long: closing");
      co_return false;
    }
    if (!co_await read_more()) {
      log_.info("no PROXY header before timeout or close");
      co_return false;
    }
  }
}

// ---------------------------------------------------------------------------- commands

bool session::tls_required_now() const {
  return cfg_.tls == tls_mode::starttls_required && !t_->is_tls();
}

bool session::starttls_offered() const {
  return (cfg_.tls == tls_mode::starttls || cfg_.tls == tls_mode::starttls_required) &&
         !t_->is_tls();
}

void session::reset_transaction() {
  mail_from_.reset();
  mail_params_.clear();
  rcpts_.clear();
  dropped_rcpts_ = 0;
  smtputf8_ = false;
  bdat_body_.reset();
  bdat_started_ = false;
  bdat_too_big_ = false;
  bdat_failed_ = {};
}

void session::reset_session() {
  reset_transaction();
  helo_.clear();
  hello_done_ = false;
  esmtp_ = false;
  auth_user_.clear();
}

std::string session::protocol() const {
  bool esmtp = esmtp_;
  if (xclient_proto_) esmtp = iequals(*xclient_proto_, "ESMTP");
  bool tls = t_->is_tls();
  bool auth = !auth_user_.empty();
  std::string p;
  if (cfg_.lmtp)
    p = smtputf8_ ? "UTF8LMTP" : "LMTP";  // RFC 6531 §3.7.3 registers the UTF8 variants
  else if (!esmtp)
    return "SMTP";  // RFC 3848 has no S/A variants for plain SMTP
  else
    p = smtputf8_ ? "UTF8SMTP" : "ESMTP";
  if (tls) p += 'S';
  if (auth) p += 'A';
  return p;
}

std::string session::client_address_text() const {
  if (client_unix_) return "unix:" + peer_.local_address;
  std::string a = client_ip_.to_string();
  return (client_ip_.is_v6() ? "[" + a + "]" : a) + ":" + std::to_string(client_port_);
}

std::vector<std::string> session::auth_mechanisms() const {
  std::vector<std::string> m;
  if (cfg_.auth == auth_mode::off) return m;
  // Before STARTTLS on a listener that requires it, AUTH is refused (530), so it is not
  // offered: EHLO lists what the client can use now.
  if (tls_required_now()) return m;
  bool clear_ok = t_->is_tls() || cfg_.allow_insecure;
  if (cfg_.mech_plain && clear_ok) m.emplace_back("PLAIN");
  if (cfg_.mech_login && clear_ok) m.emplace_back("LOGIN");
  if (cfg_.mech_cram_md5) m.emplace_back("CRAM-MD5");
  return m;
}

bool session::xclient_allowed() const {
  return !cfg_.xclient_trusted.empty() && cfg_.xclient_trusted.contains(trust_ip_, trust_unix_);
}

awaitable<void> session::dispatch(const std::string& line) {
  command c = parse_command(line);
  verb v = c.verb;
  // Verbs of the other protocol are unknown here (RFC 2033 §4.1: LMTP has no HELO/EHLO).
  if (cfg_.lmtp && (v == verb::helo || v == verb::ehlo)) v = verb::unknown;
  if (!cfg_.lmtp && v == verb::lhlo) v = verb::unknown;

  if (tls_required_now()) {
    switch (v) {
      case verb::helo:
      case verb::ehlo:
      case verb::lhlo:
      case verb::noop:
      case verb::quit:
      case verb::starttls:
      case verb::rset:
      case verb::unknown:
        break;
      case verb::bdat:
        break;  // answered with 530 in cmd_bdat, after its chunk was read
      default:
        refuse(530, "5.7.0", "Must issue a STARTTLS command first");
        co_return;
    }
  }

  switch (v) {
    case verb::helo:
    case verb::ehlo:
    case verb::lhlo:
      cmd_hello(c);
      break;
    case verb::mail:
      cmd_mail(c);
      break;
    case verb::rcpt:
      cmd_rcpt(c);
      break;
    case verb::data:
      co_await cmd_data(c);
      break;
    case verb::bdat:
      co_await cmd_bdat(c);
      break;
    case verb::rset:
      if (!c.args.empty()) {
        refuse(501, "5.5.4", "Syntax: RSET");
        break;
      }
      reset_transaction();
      reply(250, "2.0.0", "Ok");
      break;
    case verb::noop:
      reply(250, "2.0.0", "Ok");
      break;
    case verb::quit:
      if (!c.args.empty()) {  // RFC 5321 §4.1.1.10: quit = "QUIT" CRLF
        refuse(501, "5.5.4", "Syntax: QUIT");
        break;
      }
      reply(221, "2.0.0", "Bye");
      closing_ = true;
      break;
    case verb::vrfy:
      if (c.args.empty()) {
        refuse(501, "5.5.4", "Syntax: VRFY address");
        break;
      }
      reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery");
      break;
    case verb::expn:
      reply(502, "5.5.1", "EXPN is disabled: it would expose mailing-list members");
      break;
    case verb::help: {
      // Only what this listener would accept (RFC 5321 §4.1.1.8 leaves the text free).
      std::string text = cfg_.lmtp ? "Commands: LHLO" : "Commands: EHLO HELO";
      text += " MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP";
      if (starttls_offered()) text += " STARTTLS";
      if (!auth_mechanisms().empty()) text += " AUTH";
      if (xclient_allowed()) text += " XCLIENT";
      reply(214, "2.0.0", text);
      break;
    }
    case verb::starttls:
      co_await cmd_starttls(c);
      break;
    case verb::auth:
      co_await cmd_auth(c);
      break;
    case verb::xclient:
      cmd_xclient(c);
      break;
    case verb::unknown:
      refuse(500, "5.5.1", "Error: command not recognized");
      break;
  }
}

void session::cmd_hello(const command& c) {
  // The argument goes into the reply and the Received field: a domain or an address literal
  // only (RFC 5321 §4.1.1.1), so no client can put control characters, a second word or a
  // "; date" there.
  if (!valid_helo_argument(c.args)) {
    const char* name = c.verb == verb::helo ? "HELO" : c.verb == verb::lhlo ? "LHLO" : "EHLO";
    refuse(501, "5.5.4", std::string("Syntax: ") + name + " domain or address literal");
    return;
  }
  reset_transaction();
  helo_ = std::string(c.args);
  hello_done_ = true;
  esmtp_ = c.verb != verb::helo;
  if (!esmtp_) {
    reply(250, "", cfg_.hostname);
    return;
  }
  std::vector<std::string> lines;
  // Reply text is US-ASCII (RFC 5321 §4.2): a UTF-8 name is not echoed.
  const bool ascii = std::all_of(helo_.begin(), helo_.end(),
                                 [](char ch) { return static_cast<unsigned char>(ch) < 0x80; });
  lines.push_back(cfg_.hostname + " greets " + (ascii ? helo_ : std::string("you")));
  lines.emplace_back("PIPELINING");
  lines.push_back("SIZE " + std::to_string(cfg_.max_message_size));
  lines.emplace_back("8BITMIME");
  lines.emplace_back("SMTPUTF8");
  lines.emplace_back("CHUNKING");
  lines.emplace_back("ENHANCEDSTATUSCODES");
  if (starttls_offered()) lines.emplace_back("STARTTLS");
  if (auto mechs = auth_mechanisms(); !mechs.empty() && auth_user_.empty()) {
    std::string a = "AUTH";
    for (const auto& m : mechs)
      a += " " + m;
    lines.push_back(std::move(a));
  }
  if (xclient_allowed()) lines.emplace_back("XCLIENT ADDR PORT HELO NAME PROTO LOGIN");
  reply_lines(250, lines);
}

bool session::take_path(const command& c, bool mail, path_args& pa) {
  switch (parse_path(c.args, mail ? "FROM" : "TO", pa)) {
    case path_status::ok:
      return true;
    case path_status::missing_keyword:
      refuse(501, "5.5.4", mail ? "Syntax: MAIL FROM:<address>" : "Syntax: RCPT TO:<address>");
      break;
    case path_status::bad_address:
      refuse_path_address(mail);
      break;
    case path_status::bad_params:
    case path_status::too_many_params:
      refuse(501, "5.5.4", mail ? "Bad MAIL parameters" : "Bad RCPT parameters");
      break;
  }
  return false;
}

void session::refuse_path_address(bool mail) {
  if (mail)
    refuse(501, "5.1.7", "Bad sender address syntax");
  else
    refuse(501, "5.1.3", "Bad recipient address syntax");
}

void session::cmd_mail(const command& c) {
  if (!hello_done_) {
    refuse(503, "5.5.1", cfg_.lmtp ? "Error: send LHLO first" : "Error: send HELO/EHLO first");
    return;
  }
  if (in_transaction()) {
    refuse(503, "5.5.1", "Error: nested MAIL command");
    return;
  }
  if (cfg_.auth == auth_mode::required && auth_user_.empty()) {
    refuse(530, "5.7.0", "Authentication required");
    return;
  }
  path_args pa;
  if (!take_path(c, true, pa)) return;
  bool utf8 = false;
  std::vector<std::pair<std::string, std::string>> params;
  for (std::size_t i = 0; i < pa.param_count; ++i) {
    const esmtp_param& p = pa.params[i];
    if (!esmtp_) {
      refuse(555, "5.5.4", "MAIL parameters need EHLO");
      return;
    }
    // Each extension defines its parameter once per command (RFC 1870 §6, RFC 6152 §3,
    // RFC 6531 §3.4, RFC 4954 §5); a repeat is a syntax error, as in Dovecot.
    if (std::any_of(params.begin(), params.end(),
                    [&](const auto& seen) { return iequals(seen.first, p.keyword); })) {
      refuse(501, "5.5.4", "Duplicate " + upper_ascii(p.keyword) + " parameter");
      return;
    }
    if (iequals(p.keyword, "SIZE")) {
      std::uint64_t size = 0;
      auto [ptr, ec] = std::from_chars(p.value.data(), p.value.data() + p.value.size(), size);
      if (!p.has_value || ec != std::errc() || ptr != p.value.data() + p.value.size()) {
        refuse(501, "5.5.4", "Bad SIZE parameter");
        return;
      }
      if (size > cfg_.max_message_size) {
        reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
        return;
      }
    } else if (iequals(p.keyword, "BODY")) {
      if (!iequals(p.value, "7BIT") && !iequals(p.value, "8BITMIME")) {
        refuse(501, "5.5.4", "Unsupported BODY type");
        return;
      }
    } else if (iequals(p.keyword, "SMTPUTF8")) {
      if (p.has_value) {
        refuse(501, "5.5.4", "SMTPUTF8 takes no value");
        return;
      }
      utf8 = true;
    } else if (iequals(p.keyword, "AUTH") && cfg_.auth != auth_mode::off) {
      // RFC 4954 §5: AUTH=<> or an xtext mailbox (RFC 3461 §4); checked, then kept with
      // the envelope but never trusted or passed on.
      std::string mailbox;
      if (!p.has_value || !decode_xtext(p.value, mailbox)) {
        refuse(501, "5.5.4", "Bad AUTH parameter");
        return;
      }
    } else {
      refuse(555, "5.5.4", "Unsupported option: " + std::string(p.keyword));
      return;
    }
    params.emplace_back(std::string(p.keyword), std::string(p.value));
  }
  if (pa.has_8bit && !utf8) {
    refuse(553, "5.6.7", "Non-ASCII sender address needs SMTPUTF8");
    return;
  }
  if (!pa.null_path && !valid_mailbox(pa.address, false)) {
    refuse_path_address(true);
    return;
  }
  if (chaos_fired(chaos_service::point::sender)) return;
  mail_from_ = std::string(pa.address);
  mail_params_ = std::move(params);
  smtputf8_ = utf8;
  reply(250, "2.1.0", "Ok");
}

void session::cmd_rcpt(const command& c) {
  if (!in_transaction()) {
    refuse(503, "5.5.1", "Error: need MAIL command");
    return;
  }
  if (bdat_started_) {
    refuse(503, "5.5.1", "Error: RCPT after BDAT");
    return;
  }
  path_args pa;
  if (!take_path(c, false, pa)) return;
  if (pa.null_path || !valid_mailbox(pa.address, true)) {
    refuse_path_address(false);
    return;
  }
  if (pa.param_count > 0) {
    refuse(555, "5.5.4", "Unsupported option: " + std::string(pa.params[0].keyword));
    return;
  }
  if (pa.has_8bit && !smtputf8_) {
    refuse(553, "5.6.7", "Non-ASCII recipient address needs SMTPUTF8");
    return;
  }
  if (!cfg_.allowed_recipients.empty() &&
      std::none_of(cfg_.allowed_recipients.begin(), cfg_.allowed_recipients.end(),
                   [&](const std::regex& re) {
                     return std::regex_search(pa.address.begin(), pa.address.end(), re);
                   })) {
    if (cfg_.ignore_rejected_recipients) {
      // Mailpit's --smtp-ignore-rejected-recipients: 250, and the recipient is dropped. The
      // dropped ones count towards max_recipients, so a transaction stays bounded.
      if (rcpts_.size() + dropped_rcpts_ >= cfg_.max_recipients) {
        reply(452, "4.5.3", "Too many recipients");
        return;
      }
      ++dropped_rcpts_;
      log_.debug("rejected recipient ignored", {{"recipient", std::string(pa.address)}});
      reply(250, "2.1.5", "Ok");
      return;
    }
    // Mailpit's reply for a recipient outside --smtp-allowed-recipients.
    reply(550, "5.1.0", "Requested action not taken: mailbox unavailable");
    return;
  }
  if (rcpts_.size() + dropped_rcpts_ >= cfg_.max_recipients) {  // dropped ones count too
    reply(452, "4.5.3", "Too many recipients");
    return;
  }
  if (chaos_fired(chaos_service::point::recipient)) return;
  recipient r;
  r.address = std::string(pa.address);
  rcpts_.push_back(std::move(r));
  reply(250, "2.1.5", "Ok");
}

// The end of the data gets one reply in SMTP, one per accepted recipient in LMTP
// (RFC 2033 §4.2), also when the message is refused as a whole.
void session::reply_to_data(int code, std::string_view enhanced, std::string_view text) {
  const std::size_t n = cfg_.lmtp ? std::max<std::size_t>(rcpts_.size(), 1) : 1;
  for (std::size_t i = 0; i < n; ++i)
    reply(code, enhanced, text);
}

void session::reply_message_too_big() {
  inc(st_->metrics.messages_too_big);
  log_.info("message rejected", {{"reason", "too big"}, {"limit", cfg_.max_message_size}});
  reply_to_data(552, "5.3.4", "Message size exceeds fixed maximum message size");
}

awaitable<void> session::cmd_data(const command& c) {
  if (!c.args.empty()) {
    refuse(501, "5.5.4", "Syntax: DATA");
    co_return;
  }
  if (!in_transaction()) {
    refuse(503, "5.5.1", "Error: need MAIL command");
    co_return;
  }
  if (bdat_started_) {
    refuse(503, "5.5.1", "Error: DATA after BDAT");
    co_return;
  }
  if (rcpts_.empty() && dropped_rcpts_ == 0) {
    refuse(503, "5.5.1", "Error: need RCPT command");
    co_return;
  }
  reply(354, "", "End data with <CR><LF>.<CR><LF>");

  body_builder body(st_->host.spool_dir(), st_->host.spill_threshold());
  data_decoder dec(cfg_.max_data_line_length);
  bool too_big = false;
  std::error_code write_ec;
  auto sink = [&](std::string_view bytes) {
    if (too_big || write_ec) return;
    if (body.size() + bytes.size() > cfg_.max_message_size) {
      // Keep reading to the end (the client is still sending), keep nothing.
      too_big = true;
      body.reset();
      return;
    }
    write_ec = body.append(bytes);
  };
  while (true) {
    std::string_view avail(in_.data() + in_pos_, in_.size() - in_pos_);
    auto r = dec.feed(avail, sink);
    in_pos_ += r.consumed;
    if (r.done) break;
    if (!co_await read_more()) {  // also flushes the 354
      co_await on_read_failure();
      co_return;
    }
  }

  if (too_big) {
    reply_message_too_big();
  } else if (dec.line_too_long()) {
    log_.info("message rejected", {{"reason", "line too long"}});
    reply_to_data(500, "5.5.2", "Line too long in message data");
  } else if (write_ec) {
    log_.error("spooling the message body failed", {{"error", write_ec.message()}});
    reply_write_failed(write_ec);
  } else {
    std::error_code ec;
    auto raw = body.finish(ec);
    if (ec || !raw) {
      log_.error("finishing the message body failed", {{"error", ec.message()}});
      reply_to_data(451, "4.3.0", "Requested action aborted: local error in processing");
    } else {
      co_await deliver(std::move(raw));
    }
  }
  reset_transaction();
}

awaitable<bool> session::read_chunk(std::uint64_t n, bool keep) {
  std::uint64_t left = n;
  while (left > 0) {
    std::size_t avail = in_.size() - in_pos_;
    if (avail == 0) {
      if (!co_await read_more()) co_return false;
      continue;
    }
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(avail, left));
    std::string_view bytes(in_.data() + in_pos_, take);
    in_pos_ += take;
    left -= take;
    if (!keep || bdat_too_big_ || bdat_failed_ || !bdat_body_) continue;
    if (bdat_body_->size() + bytes.size() > cfg_.max_message_size) {
      bdat_too_big_ = true;
      bdat_body_->reset();
      continue;
    }
    if (auto ec = bdat_body_->append(bytes)) {
      log_.error("spooling the message body failed", {{"error", ec.message()}});
      bdat_failed_ = ec;
    }
  }
  co_return true;
}

void session::reply_write_failed(std::error_code ec) {
  const auto v = is_disk_full(ec) ? verdict::insufficient_storage() : verdict::local_error();
  reply_to_data(v.reply.code, v.reply.enhanced, v.reply.text);
}

awaitable<void> session::cmd_bdat(const command& c) {
  bdat_args ba;
  if (!parse_bdat(c.args, ba)) {
    // Without a size we cannot find the end of the chunk; what follows is read as commands.
    refuse(501, "5.5.4", "Syntax: BDAT size [LAST]");
    co_return;
  }
  // Every refusal below still consumes the chunk (RFC 3030 §4.2), so the stream stays in step.
  auto skip_and_refuse = [&](int code, std::string_view enh,
                             std::string_view text) -> awaitable<void> {
    if (!co_await read_chunk(ba.size, false)) {
      co_await on_read_failure();
      co_return;
    }
    refuse(code, enh, text);
  };
  if (tls_required_now()) {
    co_await skip_and_refuse(530, "5.7.0", "Must issue a STARTTLS command first");
    co_return;
  }
  if (hello_done_ && !esmtp_) {  // CHUNKING is an ESMTP extension (RFC 3030 §2)
    co_await skip_and_refuse(503, "5.5.1", "Error: send EHLO first");
    co_return;
  }
  if (!in_transaction()) {
    co_await skip_and_refuse(503, "5.5.1", "Error: need MAIL command");
    co_return;
  }
  if (rcpts_.empty() && dropped_rcpts_ == 0) {
    co_await skip_and_refuse(503, "5.5.1", "Error: need RCPT command");
    co_return;
  }
  if (!bdat_started_) {
    bdat_started_ = true;
    bdat_body_ = std::make_unique<body_builder>(st_->host.spool_dir(), st_->host.spill_threshold());
  }
  if (!co_await read_chunk(ba.size, true)) {
    co_await on_read_failure();
    co_return;
  }
  if (!ba.last) {
    if (bdat_too_big_) {
      reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
    } else {
      reply(250, "2.0.0", "Ok: " + std::to_string(ba.size) + " octets received");
    }
    co_return;
  }
  if (bdat_too_big_) {
    reply_message_too_big();
  } else if (bdat_failed_) {
    reply_write_failed(bdat_failed_);
  } else {
    std::error_code ec;
    auto raw = bdat_body_->finish(ec);
    if (ec || !raw) {
      log_.error("finishing the message body failed", {{"error", ec.message()}});
      reply_to_data(451, "4.3.0", "Requested action aborted: local error in processing");
    } else {
      co_await deliver(std::move(raw));
    }
  }
  reset_transaction();
}

awaitable<void> session::cmd_starttls(const command& c) {
  if (cfg_.tls != tls_mode::starttls && cfg_.tls != tls_mode::starttls_required) {
    refuse(502, "5.5.1", "STARTTLS not available");
    co_return;
  }
  if (t_->is_tls()) {
    refuse(503, "5.5.1", "TLS already active");
    co_return;
  }
  if (!c.args.empty()) {
    refuse(501, "5.5.4", "Syntax: STARTTLS");
    co_return;
  }
  if (in_transaction()) {  // as Postfix: the TLS session would forget it anyway
    refuse(503, "5.5.1", "Error: MAIL transaction in progress");
    co_return;
  }
  reply(220, "2.0.0", "Ready to start TLS");
  co_await flush();
  if (closing_) co_return;
  // INVARIANT (STARTTLS command injection, CVE-2011-0411 class): whatever the client sent
  // after STARTTLS in plaintext must never be read as a command of the TLS session.
  in_.clear();
  in_pos_ = 0;
  skipping_long_line_ = false;
  if (!co_await life_.start_tls(*st_->tls, log_)) {
    closing_ = true;
    co_return;
  }
  // RFC 3207 §4.2: forget everything learnt before TLS, the client starts with EHLO again.
  reset_session();
  log_.debug("TLS established", {{"version", t_->tls_version()}, {"cipher", t_->tls_cipher()}});
}

awaitable<bool> session::read_auth_response(std::string& decoded, bool& cancelled) {
  cancelled = false;
  std::string line;
  // RFC 4954 §4: a response line is bounded by what the mechanisms need, not by the command
  // line limit; RFC 4616 allows 3 × 255 octets for PLAIN (1,026 in base64 with CRLF), and
  // 12,288 is the RFC's (and Postfix's smtpd_sasl_response_limit) figure.
  constexpr std::size_t kSaslResponseLimit = 12'288;
  while (true) {
    line_status ls = take_line(line, std::max(cfg_.max_line_length, kSaslResponseLimit));
    if (ls == line_status::got) break;
    if (ls == line_status::too_long) {
      reply(500, "5.5.6", "Authentication Exchange line is too long");
      cancelled = true;
      co_return true;
    }
    if (!co_await read_more()) {
      co_await on_read_failure();  // 421 for a timeout or a drain, as between commands
      co_return false;
    }
  }
  if (cfg_.transcript) log_.info("C: <auth response redacted>");
  if (line == "*") {
    reply(501, "5.7.0", "Authentication cancelled");
    cancelled = true;
    co_return true;
  }
  auto d = base64_decode(line, base64_padding::optional);
  if (!d) {
    reply(501, "5.5.2", "Cannot decode response");
    cancelled = true;
    co_return true;
  }
  decoded = std::move(*d);
  co_return true;
}

namespace {
// A plain coroutine function (not a capturing lambda): its parameters live in its own
// frame, which stays valid while it runs on the worker pool.
awaitable<bool> verify_on_worker(std::shared_ptr<const htpasswd> users, std::string user,
                                 std::string password) {
  co_return users->verify(user, password);
}
}  // namespace

awaitable<bool> session::check_password(std::string user, std::string password) {
  if (cfg_.auth == auth_mode::accept_any) co_return true;
  if (!st_->users) co_return false;
  // Hash checks are slow on purpose (bcrypt): never on an I/O thread. Resumes on our strand.
  co_return co_await asio::co_spawn(
      st_->host.workers(), verify_on_worker(st_->users, std::move(user), std::move(password)),
      asio::use_awaitable);
}

void session::auth_succeeded(std::string user, std::string_view mech) {
  auth_user_ = std::move(user);
  inc(st_->metrics.auth_success);
  log_.info("authenticated", {{"user", auth_user_}, {"mechanism", mech}});
  reply(235, "2.7.0", "Authentication successful");
}

void session::auth_failed(std::string_view mech) {
  inc(st_->metrics.auth_failure);
  // The user name is logged, never what was offered as a password.
  log_.info("authentication failed", {{"mechanism", mech}});
  refuse(535, "5.7.8", "Authentication credentials invalid");
}

awaitable<void> session::cmd_auth(const command& c) {
  if (cfg_.auth == auth_mode::off) {
    refuse(502, "5.5.1", "AUTH not available");
    co_return;
  }
  if (!hello_done_ || !esmtp_) {
    refuse(503, "5.5.1", "Error: send EHLO first");
    co_return;
  }
  if (!auth_user_.empty()) {
    refuse(503, "5.5.1", "Error: already authenticated");
    co_return;
  }
  if (in_transaction()) {
    refuse(503, "5.5.1", "Error: AUTH not permitted during a mail transaction");
    co_return;
  }
  if (chaos_fired(chaos_service::point::authentication)) co_return;
  std::string_view args = c.args;
  std::string_view mech = args.substr(0, args.find(' '));
  if (mech.empty()) {
    refuse(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
    co_return;
  }
  std::string_view initial;
  bool has_initial = false;
  if (mech.size() < args.size()) {
    initial = args.substr(mech.size() + 1);
    while (!initial.empty() && initial.front() == ' ')
      initial.remove_prefix(1);
    has_initial = !initial.empty();
  }
  bool clear_ok = t_->is_tls() || cfg_.allow_insecure;
  enum class m { plain, login, cram } which;
  if (iequals(mech, "PLAIN") && cfg_.mech_plain)
    which = m::plain;
  else if (iequals(mech, "LOGIN") && cfg_.mech_login)
    which = m::login;
  else if (iequals(mech, "CRAM-MD5") && cfg_.mech_cram_md5)
    which = m::cram;
  else {
    refuse(504, "5.5.4", "Unrecognized authentication mechanism");
    co_return;
  }
  if (which != m::cram && !clear_ok) {
    refuse(538, "5.7.11", "Encryption required for requested authentication mechanism");
    co_return;
  }
  if (which == m::cram && has_initial) {
    refuse(501, "5.5.4", "CRAM-MD5 takes no initial response");
    co_return;
  }
  std::string initial_decoded;
  bool initial_present = false;
  if (has_initial) {
    if (initial == "=") {
      initial_present = true;  // RFC 4954 §4: "=" is an empty initial response
    } else if (initial == "*") {
      reply(501, "5.7.0", "Authentication cancelled");
      co_return;
    } else {
      auto d = base64_decode(initial, base64_padding::optional);
      if (!d) {
        refuse(501, "5.5.2", "Cannot decode response");
        co_return;
      }
      initial_decoded = std::move(*d);
      initial_present = true;
    }
  }

  auth_exchange_ = true;
  struct exchange_guard {
    bool& flag;
    ~exchange_guard() { flag = false; }
  } guard{auth_exchange_};
  bool cancelled = false;

  if (which == m::plain) {
    std::string msg = std::move(initial_decoded);
    if (!initial_present) {
      reply(334, "", "");
      if (!co_await read_auth_response(msg, cancelled)) {
        closing_ = true;
        co_return;
      }
      if (cancelled) co_return;
    }
    auto creds = parse_plain(msg);
    if (!creds || (!creds->authzid.empty() && creds->authzid != creds->authcid)) {
      auth_failed("PLAIN");
      co_return;
    }
    if (co_await check_password(creds->authcid, std::move(creds->password))) {
      auth_succeeded(std::move(creds->authcid), "PLAIN");
    } else {
      auth_failed("PLAIN");
    }
    co_return;
  }

  if (which == m::login) {
    std::string user = std::move(initial_decoded);
    if (!initial_present) {
      reply(334, "", base64_encode("Username:"));
      if (!co_await read_auth_response(user, cancelled)) {
        closing_ = true;
        co_return;
      }
      if (cancelled) co_return;
    }
    std::string password;
    reply(334, "", base64_encode("Password:"));
    if (!co_await read_auth_response(password, cancelled)) {
      closing_ = true;
      co_return;
    }
    if (cancelled) co_return;
    if (user.empty()) {
      auth_failed("LOGIN");
      co_return;
    }
    if (co_await check_password(user, std::move(password))) {
      auth_succeeded(std::move(user), "LOGIN");
    } else {
      auth_failed("LOGIN");
    }
    co_return;
  }

  // CRAM-MD5 (RFC 2195): needs the shared secret, so only plain-text htpasswd entries work.
  std::string challenge = cram_md5_challenge(cfg_.hostname);
  reply(334, "", base64_encode(challenge));
  std::string response;
  if (!co_await read_auth_response(response, cancelled)) {
    closing_ = true;
    co_return;
  }
  if (cancelled) co_return;
  std::string user, digest;
  if (!parse_cram_md5(response, user, digest)) {
    auth_failed("CRAM-MD5");
    co_return;
  }
  bool ok = false;
  if (cfg_.auth == auth_mode::accept_any) {
    ok = true;
  } else if (st_->users) {
    if (auto secret = st_->users->plain_secret(user)) {
      ok = sasl::cram_md5_verify(*secret, challenge, digest);
    }
  }
  if (ok)
    auth_succeeded(std::move(user), "CRAM-MD5");
  else
    auth_failed("CRAM-MD5");
}

void session::cmd_xclient(const command& c) {
  if (!xclient_allowed()) {
    refuse(550, "5.7.0", "Error: insufficient authorization");
    return;
  }
  if (in_transaction()) {
    refuse(503, "5.5.1", "Error: MAIL transaction in progress");
    return;
  }
  xclient_attrs attrs;
  std::string error;
  if (!parse_xclient(c.args, attrs, error)) {
    refuse(501, "5.5.4", "Bad XCLIENT syntax: " + sanitize_reply_text(error));
    return;
  }
  if (attrs.addr) {
    if (is_unavailable(*attrs.addr)) {
      client_ip_ = asio::ip::address();
    } else {
      std::string a = *attrs.addr;
      if (istarts_with(a, "IPV6:")) a = a.substr(5);
      boost::system::error_code ec;
      auto ip = asio::ip::make_address(a, ec);
      if (ec) {
        refuse(501, "5.5.4", "Bad XCLIENT ADDR");
        return;
      }
      client_ip_ = unmap_v4(ip);
    }
    client_unix_ = false;
  }
  if (attrs.port) client_port_ = *attrs.port;
  if (attrs.name) client_name_ = is_unavailable(*attrs.name) ? std::string() : *attrs.name;
  if (attrs.helo) {
    if (is_unavailable(*attrs.helo))
      xclient_helo_.reset();
    else
      xclient_helo_ = *attrs.helo;
  }
  if (attrs.proto) {
    if (is_unavailable(*attrs.proto))
      xclient_proto_.reset();
    else
      xclient_proto_ = *attrs.proto;
  }
  std::optional<std::string> login = attrs.login;
  // Postfix: the session starts over as if the (real) client had just connected.
  reset_session();
  if (login && !is_unavailable(*login)) auth_user_ = *login;
  log_.info("XCLIENT", {{"client", client_address_text()}});
  greet();
}

awaitable<void> session::deliver(std::shared_ptr<const message_body> body) {
  if (rcpts_.empty()) {
    // Only with ignore_rejected_recipients: every recipient was dropped. Mailpit answers
    // "250 2.0.0 Ok: queued" and keeps nothing; so does this, without a pipeline run.
    inc(st_->metrics.messages_discarded);
    log_.info("message dropped", {{"reason", "every recipient rejected"},
                                  {"from", mail_from_.value_or("")},
                                  {"ignored_recipients", dropped_rcpts_},
                                  {"size", body->size()}});
    reply(250, "2.0.0", "Ok: queued");
    co_return;
  }
  auto msg = std::make_shared<message>();
  msg->id = make_message_id();
  envelope& env = msg->envelope;
  env.mail_from = mail_from_.value_or("");
  env.mail_params = mail_params_;
  env.recipients = rcpts_;
  env.listener = st_->name;
  env.protocol = protocol();
  env.session_id = id_;
  env.helo = xclient_helo_.value_or(helo_);
  if (!client_unix_ && !client_ip_.is_unspecified()) env.client_address = client_ip_.to_string();
  env.client_port = client_unix_ ? 0 : client_port_;
  env.client_name = client_name_;
  env.local_address = peer_.local_address;
  env.auth_user = auth_user_;
  env.tls_version = t_->tls_version();
  env.tls_cipher = t_->tls_cipher();
  env.received_at = std::chrono::system_clock::now();
  msg->raw = body;

  std::string head = body->header_block();
  // header_block() allocates for its 1 MiB limit; `head` lives in this frame until the
  // pipeline has finished, so keep only the block's bytes (1 MiB per concurrent message).
  head.shrink_to_fit();
  received_info ri;
  ri.helo = env.helo;
  ri.client_name = env.client_name;
  ri.client_address = env.client_address;
  ri.hostname = cfg_.hostname;
  ri.protocol = env.protocol;
  ri.tls_version = env.tls_version;
  ri.tls_cipher = env.tls_cipher;
  ri.id = msg->id;
  if (rcpts_.size() == 1) ri.for_recipient = rcpts_.front().address;
  ri.when = env.received_at;
  msg->prepend_header("Received", received_value(ri));
  // Prepended last so that it is the topmost field, as a final delivery writes it.
  msg->prepend_header("Return-Path", "<" + env.mail_from + ">");
  if (header_values(head, "Message-ID").empty()) {
    msg->append_header("Message-ID", "<" + msg->id + "@" + cfg_.hostname + ">");
  }
  // Like Mailpit: envelope recipients that no To/Cc/Bcc names go into Bcc, so a capture
  // shows who got the message. Unlike Mailpit, an existing Bcc keeps its addresses.
  {
    std::unordered_set<std::string> present;
    for (std::string_view name : {"To", "Cc", "Bcc"}) {
      for (const auto& v : header_values(head, name)) {
        for (const auto& a : header_address_list(v))
          present.insert(ascii_lower(a));
      }
    }
    std::string missing;
    for (const auto& r : rcpts_) {
      if (present.insert(ascii_lower(r.address)).second) {
        if (!missing.empty()) missing += ", ";
        missing += r.address;
      }
    }
    if (!missing.empty()) {
      auto existing = header_values(head, "Bcc");
      std::string joined;
      for (const auto& v : existing) {
        if (v.empty()) continue;
        if (!joined.empty()) joined += ", ";
        joined += v;
      }
      if (existing.empty()) {
        msg->append_header("Bcc", missing);
      } else {
        msg->remove_header("Bcc");
        msg->append_header("Bcc", joined.empty() ? missing : joined + ", " + missing);
      }
    }
  }

  const std::uint64_t size = body->size();
  const std::size_t nrcpt = rcpts_.size();
  submit_result res;
  if (cfg_.reject_bare_cr_in_headers && has_bare_cr(head)) {
    res.kind = verdict_kind::reject;
    res.reply = {550, "5.6.0", "Message header has a CR not followed by LF"};
  } else {
    res = co_await st_->lctx.submit(msg);
  }
  ++messages_;
  std::string id = res.id.empty() ? msg->id : res.id;
  int code;
  std::string enhanced, text;
  switch (res.kind) {
    case verdict_kind::reject:
    case verdict_kind::tempfail: {
      bool temp = res.kind == verdict_kind::tempfail;
      code = res.reply.code;
      if (temp && (code < 400 || code > 499)) code = 451;
      if (!temp && (code < 500 || code > 599)) code = 554;
      enhanced = res.reply.enhanced;
      text = sanitize_reply_text(res.reply.text);
      if (text.empty()) text = temp ? "Try again later" : "Message rejected";
      inc(temp ? st_->metrics.messages_tempfail : st_->metrics.messages_rejected);
      log_.info(temp ? "message deferred" : "message rejected",
                {{"id", msg->id},
                 {"from", env.mail_from},
                 {"recipients", nrcpt},
                 {"size", size},
                 {"reply", std::to_string(code) + " " + enhanced + " " + text}});
      break;
    }
    default:
      code = 250;
      enhanced = "2.0.0";
      text = "Ok: queued as " + id;
      if (res.kind == verdict_kind::discard) {
        inc(st_->metrics.messages_discarded);
      } else {
        inc(st_->metrics.messages_accepted);
        if (st_->metrics.accepted_bytes)
          st_->metrics.accepted_bytes->inc(static_cast<double>(size));
      }
      log_.info("message accepted", {{"id", id},
                                     {"from", env.mail_from},
                                     {"recipients", nrcpt},
                                     {"size", size},
                                     {"verdict", to_string(res.kind)},
                                     {"protocol", env.protocol}});
      break;
  }
  // LMTP (RFC 2033 §4.2): one reply per accepted recipient, in RCPT order.
  std::size_t n = cfg_.lmtp ? nrcpt : 1;
  for (std::size_t i = 0; i < n; ++i)
    reply(code, enhanced, text);
}

}  // namespace sluice::smtp
