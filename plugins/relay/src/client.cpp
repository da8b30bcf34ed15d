// plugins/relay/src/client.cpp — see client.hpp.
#include "client.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace sluice::relay {

namespace asio = boost::asio;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;
using std::chrono::milliseconds;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kChunk = 64 * 1024;

std::string seconds_text(milliseconds d) {
  return std::to_string((d.count() + 999) / 1000) + " s";
}

bool is_ip_literal(const std::string& h) {
  boost::system::error_code ec;
  asio::ip::make_address(h, ec);
  return !ec;
}

// The reply mentions encryption: the server wants TLS before AUTH.
bool wants_encryption(const smtp_reply& r) {
  if (r.code == 538 || r.enhanced == "5.7.11" || r.enhanced == "4.7.11") return true;
  std::string t = r.text();
  for (char& c : t)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return t.find("encrypt") != std::string::npos || t.find("tls") != std::string::npos ||
         t.find("starttls") != std::string::npos;
}

session_error error_from_reply(smtp_reply r, std::string text, bool try_next) {
  session_error e;
  e.permanent = r.permanent();
  e.text = std::move(text);
  e.reply = std::move(r);
  e.try_next_host = try_next;
  return e;
}

}  // namespace

std::string_view to_string(security s) {
  switch (s) {
    case security::none:
      return "none";
    case security::starttls:
      return "starttls";
    case security::starttls_required:
      return "starttls-required";
    case security::tls:
      return "tls";
  }
  return "none";
}

connection::connection(asio::io_context& io) : sock_(io) {}

connection::~connection() {
  close();
}

void connection::close() {
  boost::system::error_code ec;
  if (sock_.is_open()) {
    sock_.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    sock_.close(ec);
  }
  broken_ = true;
}

session_error connection::lost(std::string_view during) const {
  session_error e;
  e.text = "connection to " + peer_ + " failed during " + std::string(during) +
           (last_error_.empty() ? std::string() : ": " + last_error_);
  return e;
}

awaitable<bool> connection::write(std::string_view data, milliseconds timeout) {
  if (broken_) co_return false;
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  std::variant<std::tuple<boost::system::error_code, std::size_t>,
               std::tuple<boost::system::error_code>>
      r;
  if (tls_) {
    r = co_await (asio::async_write(*tls_, asio::buffer(data.data(), data.size()), use_tuple) ||
                  timer.async_wait(use_tuple));
  } else {
    r = co_await (asio::async_write(sock_, asio::buffer(data.data(), data.size()), use_tuple) ||
                  timer.async_wait(use_tuple));
  }
  if (r.index() == 1) {
    last_error_ = "no progress writing for " + seconds_text(timeout);
    broken_ = true;
    co_return false;
  }
  auto [ec, n] = std::get<0>(r);
  if (ec) {
    last_error_ = ec.message();
    broken_ = true;
    co_return false;
  }
  co_return true;
}

awaitable<smtp_reply> connection::read_reply(milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    smtp_reply r;
    std::string err;
    auto st = parser_.next(r, err);
    if (st == reply_parser::status::complete) co_return r;
    if (st == reply_parser::status::error) {
      last_error_ = err;
      broken_ = true;
      co_return smtp_reply{};
    }
    if (broken_) co_return smtp_reply{};
    asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
    std::variant<std::tuple<boost::system::error_code, std::size_t>,
                 std::tuple<boost::system::error_code>>
        res;
    if (tls_) {
      res = co_await (tls_->async_read_some(asio::buffer(buf), use_tuple) ||
                      timer.async_wait(use_tuple));
    } else {
      res = co_await (sock_.async_read_some(asio::buffer(buf), use_tuple) ||
                      timer.async_wait(use_tuple));
    }
    if (res.index() == 1) {
      last_error_ = "no reply within " + seconds_text(timeout);
      broken_ = true;
      co_return smtp_reply{};
    }
    auto [ec, n] = std::get<0>(res);
    if (ec) {
      last_error_ = ec == asio::error::eof ? "the server closed the connection" : ec.message();
      broken_ = true;
      co_return smtp_reply{};
    }
    parser_.feed(std::string_view(buf, n));
  }
}

awaitable<smtp_reply> connection::command(std::string line, milliseconds timeout) {
  line += "\r\n";
  if (!co_await write(line, timeouts_.command)) co_return smtp_reply{};
  co_return co_await read_reply(timeout);
}

awaitable<std::optional<session_error>> connection::open(session_params p) {
  timeouts_ = p.timeouts;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(p.address, ec);
  peer_ =
      p.host + (p.host == p.address ? "" : " [" + p.address + "]") + ":" + std::to_string(p.port);
  if (ec) {
    session_error e;
    e.text = "not an IP address: " + p.address;
    co_return e;
  }
  {
    asio::steady_timer timer(co_await asio::this_coro::executor, p.timeouts.connect);
    auto r = co_await (sock_.async_connect(asio::ip::tcp::endpoint(addr, p.port), use_tuple) ||
                       timer.async_wait(use_tuple));
    if (r.index() == 1) {
      broken_ = true;
      session_error e;
      e.text =
          "cannot connect to " + peer_ + ": no answer within " + seconds_text(p.timeouts.connect);
      co_return e;
    }
    if (auto [cec] = std::get<0>(r); cec) {
      broken_ = true;
      session_error e;
      e.text = "cannot connect to " + peer_ + ": " + cec.message();
      co_return e;
    }
  }
  sock_.set_option(asio::ip::tcp::no_delay(true), ec);
  if (p.sec == security::tls) {
    if (auto e = co_await handshake(p)) co_return e;
  }
  smtp_reply greeting = co_await read_reply(p.timeouts.greeting);
  if (greeting.code == 0) co_return lost("the greeting");
  if (greeting.code != 220) {
    // RFC 5321 §3.1: a 554 greeting refuses the session; any non-220 is no service here.
    co_return error_from_reply(
        greeting, "server " + peer_ + " refused the session: " + greeting.summary(), true);
  }
  if (auto e = co_await ehlo(p)) co_return e;
  if (!tls_ && (p.sec == security::starttls || p.sec == security::starttls_required)) {
    if (!caps_.has("STARTTLS")) {
      if (p.sec == security::starttls_required) {
        session_error e;
        e.text = "server " + peer_ +
                 " does not offer STARTTLS and security is starttls-required; set security: "
                 "starttls (encrypt when offered) or none (never) to send without TLS, or tls "
                 "if the server expects TLS from the first byte (port 465)";
        co_return e;
      }
    } else {
      smtp_reply r = co_await command("STARTTLS", p.timeouts.command);
      if (r.code == 0) co_return lost("STARTTLS");
      if (r.code != 220) {
        if (p.sec == security::starttls_required) {
          co_return error_from_reply(
              r,
              "server " + peer_ + " refused STARTTLS: " + r.summary() +
                  " (security is starttls-required; set security: starttls or none to send "
                  "without TLS)",
              true);
        }
      } else {
        // RFC 3207 §4.2 (client side of the STARTTLS injection class): nothing the server
        // sent before the handshake may be taken as a reply.
        parser_.clear();
        if (auto e = co_await handshake(p)) co_return e;
        if (auto e = co_await ehlo(p)) co_return e;
      }
    }
  }
  if (p.auth && p.auth->configured()) {
    if (auto e = co_await authenticate(p)) co_return e;
  }
  touch();
  co_return std::nullopt;
}

awaitable<std::optional<session_error>> connection::handshake(const session_params& p) {
  tls_.emplace(sock_, *p.tls_ctx);
  SSL* ssl = tls_->native_handle();
  if (!is_ip_literal(p.host)) SSL_set_tlsext_host_name(ssl, p.host.c_str());
  if (p.verify) {
    tls_->set_verify_mode(asio::ssl::verify_peer);
    const std::string& name = p.verify_name.empty() ? p.host : p.verify_name;
    // OpenSSL checks the name during the handshake (RFC 6125), so a mismatch shows up in
    // SSL_get_verify_result as X509_V_ERR_HOSTNAME_MISMATCH, like any other chain error.
    if (is_ip_literal(name)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    } else {
      SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      SSL_set1_host(ssl, name.c_str());
    }
  } else {
    tls_->set_verify_mode(asio::ssl::verify_none);
  }
  asio::steady_timer timer(co_await asio::this_coro::executor, p.timeouts.command);
  auto r = co_await (tls_->async_handshake(asio::ssl::stream_base::client, use_tuple) ||
                     timer.async_wait(use_tuple));
  session_error e;
  if (r.index() == 1) {
    broken_ = true;
    e.text = "TLS handshake with " + peer_ + " timed out after " + seconds_text(p.timeouts.command);
    co_return e;
  }
  if (auto [ec] = std::get<0>(r); ec) {
    broken_ = true;
    long vr = SSL_get_verify_result(ssl);
    if (p.verify && vr != X509_V_OK) {
      e.text = "TLS certificate verification failed for " + peer_ + ": " +
               X509_verify_cert_error_string(vr) +
               "; set ca_file to the CA that issued the server's certificate, or "
               "allow_insecure: true to skip verification";
    } else {
      e.text = "TLS handshake with " + peer_ + " failed: " + ec.message();
    }
    co_return e;
  }
  tls_verified_ = p.verify;
  tls_version_ = SSL_get_version(ssl);
  tls_cipher_ = SSL_get_cipher_name(ssl);
  co_return std::nullopt;
}

awaitable<std::optional<session_error>> connection::ehlo(const session_params& p) {
  smtp_reply r = co_await command("EHLO " + p.helo, p.timeouts.command);
  if (r.code == 0) co_return lost("EHLO");
  if (r.code == 250) {
    caps_ = parse_ehlo(r);
    co_return std::nullopt;
  }
  if (r.code == 500 || r.code == 502 || r.code == 504 || r.code == 550) {
    // RFC 5321 §3.2: an old server; HELO, and no extensions.
    smtp_reply h = co_await command("HELO " + p.helo, p.timeouts.command);
    if (h.code == 0) co_return lost("HELO");
    if (h.code == 250) {
      caps_ = capabilities{};
      co_return std::nullopt;
    }
    r = h;
  }
  co_return error_from_reply(r, "server " + peer_ + " refused EHLO/HELO: " + r.summary(), true);
}

awaitable<std::optional<session_error>> connection::authenticate(const session_params& p) {
  const auth_config& a = *p.auth;
  if (!tls_ && !p.allow_plaintext_auth) {
    session_error e;
    e.try_next_host = false;
    e.text = "not sending AUTH credentials to " + peer_ +
             " over an unencrypted connection (security is " + std::string(to_string(p.sec)) +
             (p.sec == security::starttls ? " and the server offered no STARTTLS" : "") +
             "); set security: starttls-required or tls to encrypt, or allow_plaintext_auth: "
             "true to send them in clear text";
    co_return e;
  }
  auto offered = caps_.auth_mechanisms();
  if (offered.empty()) {
    session_error e;
    e.try_next_host = false;
    e.text = "server " + peer_ + " offers no AUTH" +
             (tls_ ? std::string()
                   : std::string(" on an unencrypted connection (servers such as Postfix with "
                                 "smtpd_tls_auth_only offer it only after STARTTLS); set "
                                 "security: starttls-required or tls")) +
             (tls_ ? "; remove the auth settings if the server needs no authentication" : "");
    co_return e;
  }
  std::optional<mechanism> m = a.mech;
  if (m) {
    if (std::find(offered.begin(), offered.end(), std::string(to_string(*m))) == offered.end()) {
      session_error e;
      e.try_next_host = false;
      std::string list;
      for (auto& o : offered)
        list += (list.empty() ? "" : " ") + o;
      e.text = "server " + peer_ + " does not offer AUTH " + std::string(to_string(*m)) +
               " (it offers " + list + "); change auth.mechanism or leave it out to choose";
      co_return e;
    }
  } else {
    m = choose_mechanism(offered, !a.token.empty(), !a.password.empty());
    if (!m) {
      session_error e;
      e.try_next_host = false;
      std::string list;
      for (auto& o : offered)
        list += (list.empty() ? "" : " ") + o;
      e.text = "no AUTH mechanism in common with " + peer_ + " (it offers " + list +
               "; Sluice has PLAIN, LOGIN, CRAM-MD5 and, with auth.token, XOAUTH2)";
      co_return e;
    }
  }
  smtp_reply r;
  switch (*m) {
    case mechanism::plain:
      r = co_await command("AUTH PLAIN " + base64_encode(sasl_plain("", a.username, a.password)),
                           p.timeouts.command);
      break;
    case mechanism::xoauth2:
      r = co_await command("AUTH XOAUTH2 " + base64_encode(xoauth2(a.username, a.token)),
                           p.timeouts.command);
      if (r.code == 334) r = co_await command("", p.timeouts.command);  // error detail sent
      break;
    case mechanism::login:
      r = co_await command("AUTH LOGIN", p.timeouts.command);
      if (r.code == 334) r = co_await command(base64_encode(a.username), p.timeouts.command);
      if (r.code == 334) r = co_await command(base64_encode(a.password), p.timeouts.command);
      break;
    case mechanism::cram_md5: {
      r = co_await command("AUTH CRAM-MD5", p.timeouts.command);
      if (r.code == 334) {
        auto challenge =
            base64_decode(r.lines.empty() ? "" : r.lines.front(), base64_padding::optional);
        if (!challenge) {
          co_await command("*", p.timeouts.command);  // RFC 4954 §4: cancel the exchange
          session_error e;
          e.try_next_host = false;
          e.text = "server " + peer_ + " sent a CRAM-MD5 challenge that is not base64";
          co_return e;
        }
        r = co_await command(base64_encode(cram_md5_response(a.username, a.password, *challenge)),
                             p.timeouts.command);
      }
      break;
    }
  }
  if (r.code == 0) co_return lost("AUTH");
  if (r.code == 235) {
    auth_mech_ = std::string(to_string(*m));
    co_return std::nullopt;
  }
  std::string text =
      "server " + peer_ + " refused AUTH " + std::string(to_string(*m)) + ": " + r.summary();
  if (!tls_ && wants_encryption(r)) {
    text +=
        "; the server requires an encrypted connection for AUTH: set security: "
        "starttls-required or tls";
  } else {
    text += "; check auth.username and auth.password (or auth.token)";
  }
  auto e = error_from_reply(r, std::move(text), false);
  // Postfix's smtp_sasl_auth_soft_bounce: a credentials problem keeps the mail queued
  // until an operator fixes the settings, it does not bounce it.
  e.permanent = false;
  co_return e;
}

awaitable<std::optional<session_error>> connection::transact(const std::string& mail_from,
                                                             const std::vector<std::string>& rcpts,
                                                             const message& msg, std::uint64_t size,
                                                             bool eight_bit, bool utf8,
                                                             std::vector<rcpt_outcome>& outcomes,
                                                             bool all_or_nothing) {
  outcomes.clear();
  ++transactions_;
  std::string mail = "MAIL FROM:<" + mail_from + ">";
  if (caps_.has("SIZE")) mail += " SIZE=" + std::to_string(size);
  if (eight_bit && caps_.has("8BITMIME")) mail += " BODY=8BITMIME";
  if (utf8 && caps_.has("SMTPUTF8")) mail += " SMTPUTF8";
  mail += "\r\n";
  const bool pipelining = caps_.has("PIPELINING");
  smtp_reply mail_reply, data_reply;
  std::vector<smtp_reply> rcpt_replies;
  if (pipelining) {
    // RFC 2920 §3.1: MAIL, every RCPT and DATA go in one write; replies come in order.
    std::string batch = mail;
    for (const auto& r : rcpts)
      batch += "RCPT TO:<" + r + ">\r\n";
    batch += "DATA\r\n";
    if (!co_await write(batch, timeouts_.command)) co_return lost("MAIL");
    mail_reply = co_await read_reply(timeouts_.command);
    if (mail_reply.code == 0) co_return lost("MAIL");
    for (std::size_t i = 0; i < rcpts.size(); ++i) {
      rcpt_replies.push_back(co_await read_reply(timeouts_.command));
      if (rcpt_replies.back().code == 0) co_return lost("RCPT");
    }
    data_reply = co_await read_reply(timeouts_.data_init);
    if (data_reply.code == 0) co_return lost("DATA");
  } else {
    if (!co_await write(mail, timeouts_.command)) co_return lost("MAIL");
    mail_reply = co_await read_reply(timeouts_.command);
    if (mail_reply.code == 0) co_return lost("MAIL");
    if (mail_reply.code == 250) {
      for (const auto& r : rcpts) {
        rcpt_replies.push_back(co_await command("RCPT TO:<" + r + ">", timeouts_.command));
        if (rcpt_replies.back().code == 0) co_return lost("RCPT");
      }
    }
  }
  std::size_t accepted = 0;
  for (auto& r : rcpt_replies)
    if (r.code == 250 || r.code == 251) ++accepted;
  if (mail_reply.code != 250) {
    if (pipelining && data_reply.code == 354) {
      // A server that started DATA anyway gets an empty message, which it must refuse.
      if (!co_await write(".\r\n", timeouts_.data_block)) co_return lost("DATA");
      co_await read_reply(timeouts_.data_end);
    }
    co_await reset();
    co_return error_from_reply(
        mail_reply,
        "server " + peer_ + " refused MAIL FROM:<" + mail_from + ">: " + mail_reply.summary(),
        false);
  }
  if (all_or_nothing && accepted > 0 && accepted < rcpts.size()) {
    std::size_t refused = 0;
    while (rcpt_replies[refused].code == 250 || rcpt_replies[refused].code == 251)
      ++refused;
    const smtp_reply& why = rcpt_replies[refused];
    smtp_reply not_sent;
    not_sent.code = why.code;
    not_sent.enhanced = why.enhanced;
    not_sent.lines.push_back((why.enhanced.empty() ? std::string() : why.enhanced + " ") +
                             "not sent to anyone: <" + rcpts[refused] +
                             "> was refused: " + why.summary());
    for (std::size_t i = 0; i < rcpts.size(); ++i) {
      const bool ok = rcpt_replies[i].code == 250 || rcpt_replies[i].code == 251;
      outcomes.push_back({rcpts[i], ok ? not_sent : rcpt_replies[i]});
    }
    if (pipelining && data_reply.code == 354) {
      // Any "." now would deliver an empty message; a connection that ends inside DATA
      // delivers nothing (RFC 5321 §4.1.1.4).
      close();
    } else {
      co_await reset();
    }
    co_return std::nullopt;
  }
  if (!pipelining && accepted > 0) {
    data_reply = co_await command("DATA", timeouts_.data_init);
    if (data_reply.code == 0) co_return lost("DATA");
  }
  if (accepted == 0 || data_reply.code != 354) {
    if (data_reply.code == 354) {
      if (!co_await write(".\r\n", timeouts_.data_block)) co_return lost("DATA");
      co_await read_reply(timeouts_.data_end);
    }
    for (std::size_t i = 0; i < rcpts.size(); ++i) {
      const bool ok = rcpt_replies[i].code == 250 || rcpt_replies[i].code == 251;
      outcomes.push_back({rcpts[i], ok ? data_reply : rcpt_replies[i]});
    }
    co_await reset();
    co_return std::nullopt;
  }
  // The content: the edited header block, then the body straight from the raw message,
  // dot-stuffed chunk by chunk; never a copy of the whole message.
  dot_stuffer stuffer;
  std::string out;
  const std::string original_head = msg.raw ? msg.raw->header_block() : std::string();
  stuffer.encode(msg.output_headers(), out);
  if (msg.raw) {
    const std::uint64_t total = msg.raw->size();
    std::uint64_t off = original_head.size();
    std::string buf(kChunk, '\0');
    while (off < total) {
      std::error_code rec;
      std::size_t n = msg.raw->read(off, std::span<char>(buf.data(), buf.size()), rec);
      if (rec || n == 0) {
        // A local failure mid-DATA: the connection cannot be brought back to a clean
        // state (a "." now would deliver a truncated message), so it is dropped.
        close();
        session_error e;
        e.text = "cannot read the spooled message: " +
                 (rec ? rec.message() : std::string("unexpected end"));
        co_return e;
      }
      off += n;
      stuffer.encode(std::string_view(buf.data(), n), out);
      if (out.size() >= kChunk) {
        if (!co_await write(out, timeouts_.data_block)) co_return lost("DATA");
        out.clear();
      }
    }
  }
  out += stuffer.finish();
  if (!co_await write(out, timeouts_.data_block)) co_return lost("DATA");
  smtp_reply end = co_await read_reply(timeouts_.data_end);
  // RFC 5321 §4.1.1.4 / §6.1: no reply to the final dot leaves the outcome unknown; the
  // message may have been delivered. Retrying risks a duplicate, not a loss.
  if (end.code == 0) co_return lost("the end of DATA");
  for (std::size_t i = 0; i < rcpts.size(); ++i) {
    const bool ok = rcpt_replies[i].code == 250 || rcpt_replies[i].code == 251;
    outcomes.push_back({rcpts[i], ok ? end : rcpt_replies[i]});
  }
  touch();
  co_return std::nullopt;
}

awaitable<bool> connection::reset() {
  if (broken_) co_return false;
  smtp_reply r = co_await command("RSET", timeouts_.command);
  co_return r.code == 250;
}

awaitable<void> connection::quit() {
  if (!broken_) {
    timeouts_.command = std::min(timeouts_.command, milliseconds(5000));
    co_await command("QUIT", milliseconds(5000));
  }
  if (tls_ && !broken_) {
    // The TLS close_notify is a courtesy; the socket goes right after.
    asio::steady_timer timer(co_await asio::this_coro::executor, milliseconds(2000));
    co_await (tls_->async_shutdown(use_tuple) || timer.async_wait(use_tuple));
  }
  close();
}

}  // namespace sluice::relay
