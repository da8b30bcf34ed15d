// external.cpp — spamd and rspamd clients; see external.hpp.
#include "external.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace sluice::spam {
namespace asio = boost::asio;

namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return std::string(s);
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<double> to_double(std::string_view s) {
  std::string t = trim(s);
  double v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || p != t.data() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// Keeps engine-provided text printable and bounded before it is shown or stored.
std::string clean(std::string_view s, std::size_t max = 300) {
  std::string out;
  for (char c : s) {
    if (out.size() >= max) break;
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  }
  return trim(out);
}

// Connects, writes `request`, reads until EOF (at most max bytes), with one deadline.
template <class Socket>
asio::awaitable<std::string> exchange_on(std::shared_ptr<Socket> sock, const std::string& request,
                                         std::size_t max) {
  co_await asio::async_write(*sock, asio::buffer(request), asio::use_awaitable);
  std::string reply;
  char buf[16384];
  for (;;) {
    auto [ec, n] =
        co_await sock->async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable));
    reply.append(buf, n);
    if (reply.size() > max)
      throw engine_error("reply larger than " + std::to_string(max) + " bytes");
    if (ec == asio::error::eof) break;
    if (ec) throw boost::system::system_error(ec);
  }
  co_return reply;
}

asio::awaitable<std::string> exchange(asio::any_io_executor ex, const engine_endpoint& ep,
                                      const std::string& request, std::chrono::milliseconds timeout,
                                      std::size_t max) {
  auto timer = std::make_shared<asio::steady_timer>(ex, timeout);
  auto expired = std::make_shared<bool>(false);
  try {
    if (ep.unix_socket) {
      auto sock = std::make_shared<asio::local::stream_protocol::socket>(ex);
      timer->async_wait([sock, expired](boost::system::error_code ec) {
        if (!ec) {
          *expired = true;
          boost::system::error_code ignored;
          sock->close(ignored);
        }
      });
      co_await sock->async_connect(asio::local::stream_protocol::endpoint(ep.path),
                                   asio::use_awaitable);
      std::string r = co_await exchange_on(sock, request, max);
      timer->cancel();
      co_return r;
    }
    auto sock = std::make_shared<asio::ip::tcp::socket>(ex);
    auto resolver = std::make_shared<asio::ip::tcp::resolver>(ex);
    timer->async_wait([sock, resolver, expired](boost::system::error_code ec) {
      if (!ec) {
        *expired = true;
        resolver->cancel();
        boost::system::error_code ignored;
        sock->close(ignored);
      }
    });
    auto results = co_await resolver->async_resolve(ep.host, ep.port, asio::use_awaitable);
    co_await asio::async_connect(*sock, results, asio::use_awaitable);
    sock->set_option(asio::ip::tcp::no_delay(true));
    std::string r = co_await exchange_on(sock, request, max);
    timer->cancel();
    co_return r;
  } catch (const boost::system::system_error& e) {
    timer->cancel();
    if (*expired) {
      throw engine_error(ep.text + ": no answer within " + std::to_string(timeout.count()) + " ms");
    }
    throw engine_error(ep.text + ": " + e.code().message());
  }
}

}  // namespace

bool parse_engine_endpoint(const std::string& text, engine_endpoint& out) {
  out = {};
  out.text = text;
  if (text.starts_with("unix:")) {
    out.unix_socket = true;
    out.path = text.substr(5);
    return !out.path.empty();
  }
  std::string_view t = text;
  if (t.starts_with("[")) {
    auto close = t.find(']');
    if (close == std::string_view::npos || close + 1 >= t.size() || t[close + 1] != ':')
      return false;
    out.host = std::string(t.substr(1, close - 1));
    out.port = std::string(t.substr(close + 2));
  } else {
    auto colon = t.rfind(':');
    if (colon == std::string_view::npos || t.find(':') != colon) return false;
    out.host = std::string(t.substr(0, colon));
    out.port = std::string(t.substr(colon + 1));
  }
  if (out.host.empty() || out.port.empty() ||
      !std::all_of(out.port.begin(), out.port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  int port = std::stoi(out.port.substr(0, 6));
  return port > 0 && port < 65536;
}

scan_result parse_spamd_reply(std::string_view reply, bool report) {
  scan_result r;
  r.engine = "spamassassin";
  auto head_end = reply.find("\r\n\r\n");
  std::size_t sep = 4;
  if (head_end == std::string_view::npos) {
    head_end = reply.find("\n\n");
    sep = 2;
  }
  std::string_view head = reply.substr(0, head_end);
  std::string_view body =
      head_end == std::string_view::npos ? std::string_view() : reply.substr(head_end + sep);
  auto eol = head.find('\n');
  std::string status = trim(head.substr(0, eol));
  // "SPAMD/1.1 0 EX_OK"
  if (!status.starts_with("SPAMD/"))
    throw engine_error("spamd: unexpected reply \"" + clean(status, 80) + "\"");
  auto sp1 = status.find(' ');
  auto sp2 = status.find(' ', sp1 + 1);
  std::string code =
      status.substr(sp1 + 1, sp2 == std::string::npos ? std::string::npos : sp2 - sp1 - 1);
  if (code != "0") throw engine_error("spamd: " + clean(status, 120));
  bool have_spam = false;
  std::string_view rest = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 1);
  while (!rest.empty()) {
    auto e = rest.find('\n');
    std::string line = trim(rest.substr(0, e));
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 1);
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (!iequals(std::string_view(line).substr(0, colon), "Spam")) continue;
    // "True ; 15.0 / 5.0"
    std::string v = line.substr(colon + 1);
    auto semi = v.find(';');
    auto slash = v.find('/');
    if (semi == std::string::npos || slash == std::string::npos || slash < semi) {
      throw engine_error("spamd: bad Spam header \"" + clean(line, 80) + "\"");
    }
    std::string flag = trim(std::string_view(v).substr(0, semi));
    r.is_spam = iequals(flag, "True") || iequals(flag, "Yes");
    auto score = to_double(std::string_view(v).substr(semi + 1, slash - semi - 1));
    auto threshold = to_double(std::string_view(v).substr(slash + 1));
    if (!score || !threshold)
      throw engine_error("spamd: bad Spam header \"" + clean(line, 80) + "\"");
    r.score = *score;
    r.threshold = *threshold;
    have_spam = true;
  }
  if (!have_spam) throw engine_error("spamd: reply without a Spam header");
  if (!report) {
    // SYMBOLS: "RULE_A,RULE_B" (names only).
    std::string list = trim(body);
    std::size_t pos = 0;
    while (pos < list.size() && r.rules.size() < 500) {
      auto comma = list.find(',', pos);
      std::string name = trim(std::string_view(list).substr(
          pos, comma == std::string::npos ? std::string::npos : comma - pos));
      if (!name.empty()) r.rules.push_back({clean(name, 64), 0, ""});
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    return r;
  }
  // REPORT: after the " pts rule name  description" heading and its "---- ----" ruler, one
  // rule per line (" 1.0 MISSING_DATE  Missing Date: header"); a line that starts with
  // blanks and no number continues the previous description.
  auto ruler = body.find("\n----");
  if (ruler == std::string_view::npos) return r;
  std::string_view lines = body.substr(ruler + 1);
  auto first = lines.find('\n');
  lines = first == std::string_view::npos ? std::string_view() : lines.substr(first + 1);
  while (!lines.empty() && r.rules.size() < 500) {
    auto e = lines.find('\n');
    std::string_view raw = lines.substr(0, e);
    lines = e == std::string_view::npos ? std::string_view() : lines.substr(e + 1);
    std::string line = trim(raw);
    if (line.empty()) continue;
    auto sp = line.find_first_of(" \t");
    std::optional<double> pts =
        sp == std::string::npos ? std::nullopt : to_double(line.substr(0, sp));
    if (pts) {
      std::string after = trim(std::string_view(line).substr(sp));
      auto sp2 = after.find_first_of(" \t");
      std::string name = after.substr(0, sp2);
      std::string desc = sp2 == std::string::npos ? "" : trim(std::string_view(after).substr(sp2));
      r.rules.push_back({clean(name, 64), *pts, clean(desc)});
    } else if (!r.rules.empty() && (raw.starts_with(" ") || raw.starts_with("\t"))) {
      auto& d = r.rules.back().description;
      d = clean(d + " " + line);
    }
  }
  return r;
}

scan_result parse_rspamd_reply(std::string_view json_body) {
  scan_result r;
  r.engine = "rspamd";
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(json_body, ec);
  if (ec || !v.is_object()) throw engine_error("rspamd: reply is not a JSON object");
  const auto& o = v.get_object();
  auto num = [&](std::string_view k) -> std::optional<double> {
    const auto* x = o.if_contains(k);
    if (!x) return std::nullopt;
    if (x->is_double()) return x->get_double();
    if (x->is_int64()) return static_cast<double>(x->get_int64());
    if (x->is_uint64()) return static_cast<double>(x->get_uint64());
    return std::nullopt;
  };
  const auto* action = o.if_contains("action");
  auto score = num("score");
  if (!action || !action->is_string() || !score) {
    if (const auto* err = o.if_contains("error"); err && err->is_string())
      throw engine_error("rspamd: " + clean(err->get_string()));
    throw engine_error("rspamd: reply without action and score");
  }
  r.engine_action = clean(action->get_string(), 40);
  r.score = *score;
  r.threshold = num("required_score").value_or(15.0);
  r.is_spam = r.engine_action != "no action" && r.engine_action != "greylist";
  if (const auto* syms = o.if_contains("symbols"); syms && syms->is_object()) {
    for (const auto& [name, sym] : syms->get_object()) {
      if (r.rules.size() >= 500) break;
      rule_hit h{clean(name, 64), 0, ""};
      if (sym.is_object()) {
        const auto& so = sym.get_object();
        if (const auto* s = so.if_contains("score")) {
          if (s->is_double())
            h.score = s->get_double();
          else if (s->is_int64())
            h.score = static_cast<double>(s->get_int64());
        }
        if (const auto* d = so.if_contains("description"); d && d->is_string())
          h.description = clean(d->get_string());
      }
      r.rules.push_back(std::move(h));
    }
  }
  std::sort(r.rules.begin(), r.rules.end(),
            [](const rule_hit& a, const rule_hit& b) { return a.score > b.score; });
  if (const auto* subj = o.if_contains("subject"); subj && subj->is_string()) {
    r.rewrite_subject = clean(subj->get_string(), 998);
  }
  return r;
}

asio::awaitable<scan_result> spamd_check(asio::any_io_executor ex, const spamd_options& opt,
                                         std::string message) {
  std::string req = opt.report ? "REPORT SPAMC/1.5\r\n" : "SYMBOLS SPAMC/1.5\r\n";
  req += "Content-length: " + std::to_string(message.size()) + "\r\n";
  if (!opt.user.empty()) req += "User: " + opt.user + "\r\n";
  req += "\r\n";
  req += message;
  std::string reply = co_await exchange(ex, opt.endpoint, req, opt.timeout, opt.max_reply);
  co_return parse_spamd_reply(reply, opt.report);
}

asio::awaitable<scan_result> rspamd_check(asio::any_io_executor ex, const rspamd_options& opt,
                                          std::string message, const envelope& env,
                                          std::string queue_id) {
  auto safe = [](std::string_view v) { return clean(v, 998); };  // no CR/LF in a header
  std::string req = "POST " + opt.path + " HTTP/1.1\r\n";
  req +=
      "Host: " + (opt.endpoint.unix_socket ? std::string("localhost") : opt.endpoint.host) + "\r\n";
  req += "Connection: close\r\n";
  req += "Content-Length: " + std::to_string(message.size()) + "\r\n";
  if (!opt.password.empty()) req += "Password: " + safe(opt.password) + "\r\n";
  req += "From: " + safe(env.mail_from) + "\r\n";
  for (const auto& r : env.recipients)
    req += "Rcpt: " + safe(r.address) + "\r\n";
  if (!env.client_address.empty()) req += "IP: " + safe(env.client_address) + "\r\n";
  if (!env.helo.empty()) req += "Helo: " + safe(env.helo) + "\r\n";
  if (!env.client_name.empty()) req += "Hostname: " + safe(env.client_name) + "\r\n";
  if (!env.auth_user.empty()) req += "User: " + safe(env.auth_user) + "\r\n";
  if (!queue_id.empty()) req += "Queue-Id: " + safe(queue_id) + "\r\n";
  req += "\r\n";
  req += message;
  std::string reply = co_await exchange(ex, opt.endpoint, req, opt.timeout, opt.max_reply);
  // HTTP/1.x reply, read to EOF (Connection: close): status, headers, body (plain or chunked).
  auto head_end = reply.find("\r\n\r\n");
  if (!reply.starts_with("HTTP/1.") || head_end == std::string::npos) {
    throw engine_error("rspamd: not an HTTP reply");
  }
  std::string_view head = std::string_view(reply).substr(0, head_end);
  std::string_view body = std::string_view(reply).substr(head_end + 4);
  auto sp = head.find(' ');
  int status = 0;
  std::from_chars(head.data() + sp + 1, head.data() + std::min(head.size(), sp + 4), status);
  bool chunked = false;
  std::size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos && pos < head.size()) {
    auto next = head.find("\r\n", pos + 2);
    std::string_view line =
        head.substr(pos + 2, next == std::string_view::npos ? head.npos : next - pos - 2);
    auto colon = line.find(':');
    if (colon != std::string_view::npos && iequals(line.substr(0, colon), "Transfer-Encoding") &&
        trim(line.substr(colon + 1)).find("chunked") != std::string::npos) {
      chunked = true;
    }
    pos = next;
  }
  std::string decoded;
  if (chunked) {
    std::size_t p = 0;
    for (;;) {
      auto e = body.find("\r\n", p);
      if (e == std::string_view::npos) throw engine_error("rspamd: bad chunked reply");
      std::size_t n = 0;
      auto [ptr, ec] = std::from_chars(body.data() + p, body.data() + e, n, 16);
      if (ec != std::errc() || n > body.size()) throw engine_error("rspamd: bad chunked reply");
      if (n == 0) break;
      if (e + 2 + n > body.size()) throw engine_error("rspamd: truncated reply");
      decoded.append(body.substr(e + 2, n));
      p = e + 2 + n + 2;
    }
    body = decoded;
  }
  if (status != 200) {
    throw engine_error("rspamd: HTTP " + std::to_string(status) + " " + clean(body, 120));
  }
  scan_result r = parse_rspamd_reply(body);
  co_return r;
}

}  // namespace sluice::spam
