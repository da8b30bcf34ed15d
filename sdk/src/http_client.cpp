// http_client.cpp — see http_client.hpp.
#include "sluice/http_client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>

#include "sluice/address_class.hpp"
#include "sluice/base64.hpp"

namespace sluice {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::uint32_t header_limit = 16 * 1024;

std::string describe(const error_code& ec, std::chrono::milliseconds limit) {
  if (ec == beast::error::timeout || ec == asio::error::operation_aborted) {
    return "timed out after " + std::to_string(limit.count()) + " ms";
  }
  return ec.message();
}

template <class Stream>
asio::awaitable<void> exchange(Stream& s, http::request<http::string_body>& req, http_result& res,
                               const client_options& opt) {
  error_code ec;
  co_await http::async_write(s, req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    res.error = "sending the request failed: " + describe(ec, opt.total_timeout);
    co_return;
  }
  beast::flat_buffer buf;
  http::response_parser<http::string_body> p;
  if (req.method() == http::verb::head) p.skip(true);
  p.header_limit(header_limit);
  p.body_limit(opt.max_response);
  co_await http::async_read(s, buf, p, asio::redirect_error(asio::use_awaitable, ec));
  if (ec && !p.is_header_done()) {
    res.error = "no response: " + describe(ec, opt.total_timeout);
    co_return;
  }
  const auto& msg = p.get();
  res.responded = true;
  res.status = static_cast<int>(msg.result_int());
  res.reason = std::string(msg.reason());
  if (auto it = msg.find(http::field::retry_after); it != msg.end()) {
    res.retry_after = std::string(it->value());
  }
  if (auto it = msg.find(http::field::location); it != msg.end()) {
    res.location = std::string(it->value());
  }
  res.body = msg.body();
  // The status line and header arrived; a body over the limit (or cut short) does not
  // change what the server decided.
  if (ec) res.body_truncated = true;
  if (res.body.size() > opt.max_response) res.body.resize(opt.max_response);
}

}  // namespace

std::shared_ptr<asio::ssl::context> make_client_tls(const std::string& ca_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_compression);
  error_code ec;
  if (ca_file.empty()) {
    ctx->set_default_verify_paths(ec);
    if (ec) throw std::runtime_error("cannot load the system CA store: " + ec.message());
  } else {
    ctx->load_verify_file(ca_file, ec);
    if (ec) throw std::runtime_error("cannot load CA file " + ca_file + ": " + ec.message());
  }
  return ctx;
}

std::string redact_url(const std::string& url) {
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u) return "(invalid URL)";
  std::string out = std::string(u->scheme()) + "://" + std::string(u->encoded_host());
  if (u->has_port()) out += ":" + std::string(u->port());
  out += u->encoded_path().empty() ? std::string("/") : std::string(u->encoded_path());
  return out;
}

std::string url_origin(const std::string& url) {
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u) return "(invalid URL)";
  std::string out = std::string(u->scheme()) + "://" + std::string(u->encoded_host());
  if (u->has_port()) out += ":" + std::string(u->port());
  return out;
}

asio::awaitable<http_result> send_request(asio::any_io_executor io, http_request req,
                                          client_options opt) {
  const auto start = std::chrono::steady_clock::now();
  http_result res;
  auto elapsed = [&start] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  };
  auto done = [&]() -> http_result {
    res.duration = elapsed();
    return std::move(res);
  };

  auto parsed = boost::urls::parse_absolute_uri(req.url);
  if (!parsed || (parsed->scheme() != "http" && parsed->scheme() != "https")) {
    res.error = "not an http(s) URL";
    co_return done();
  }
  const http::verb method = http::string_to_verb(req.method);
  if (method == http::verb::unknown) {
    res.error = "unknown HTTP method " + req.method;
    co_return done();
  }
  const boost::urls::url_view u = *parsed;
  const bool https = u.scheme() == "https";
  std::string host;
  bool ip_literal = true;
  switch (u.host_type()) {
    case boost::urls::host_type::ipv4:
      host = u.host_ipv4_address().to_string();
      break;
    case boost::urls::host_type::ipv6:
      host = u.host_ipv6_address().to_string();
      break;
    default:
      host = u.host();
      ip_literal = false;
      for (char& c : host)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      break;
  }
  if (host.empty()) {
    res.error = "the URL has no host";
    co_return done();
  }
  const std::uint16_t port = u.has_port() ? u.port_number() : (https ? 443 : 80);
  if (port == 0) {
    res.error = "the URL's port is invalid";
    co_return done();
  }
  if (https && !opt.tls) {
    res.error = "no TLS context for an https URL";
    co_return done();
  }

  // Resolve, then check every address; the connection goes only to checked ones.
  std::vector<tcp::endpoint> candidates;
  error_code ec;
  if (ip_literal) {
    candidates.emplace_back(asio::ip::make_address(host, ec), port);
  } else {
    tcp::resolver resolver(io);
    asio::steady_timer limit(io);
    limit.expires_after(opt.connect_timeout);
    limit.async_wait([&resolver](error_code e) {
      if (!e) resolver.cancel();
    });
    auto results = co_await resolver.async_resolve(host, std::to_string(port),
                                                   asio::redirect_error(asio::use_awaitable, ec));
    limit.cancel();
    if (ec) {
      res.error = "cannot resolve " + host + ": " + describe(ec, opt.connect_timeout);
      co_return done();
    }
    for (const auto& e : results)
      candidates.push_back(e.endpoint());
  }
  std::vector<tcp::endpoint> allowed;
  std::string refused;
  for (const auto& e : candidates) {
    if (!opt.ssrf_guard || permitted(e.address(), opt.allow_private)) {
      allowed.push_back(e);
    } else if (refused.empty()) {
      refused =
          e.address().to_string() + " (" + std::string(to_string(classify(e.address()))) + ")";
    }
  }
  if (allowed.empty()) {
    res.guard_refused = true;
    // "::1 is ::1 (loopback)" says nothing twice: an IP literal is named once.
    std::string_view bare = host;
    if (bare.size() > 2 && bare.front() == '[' && bare.back() == ']')
      bare = bare.substr(1, bare.size() - 2);
    const std::string what =
        refused.starts_with(std::string(bare) + " (") ? refused : host + " is " + refused;
    res.error = "refused to connect: " + what;
    if (!opt.guard_hint.empty()) res.error += ", " + opt.guard_hint;
    co_return done();
  }

  beast::tcp_stream stream(io);
  stream.expires_after(opt.connect_timeout);
  const tcp::endpoint ep =
      co_await stream.async_connect(allowed, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    res.error = "cannot connect to " + host + " port " + std::to_string(port) + ": " +
                describe(ec, opt.connect_timeout);
    co_return done();
  }
  res.address =
      (ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string()) +
      ":" + std::to_string(ep.port());
  const auto remaining = opt.total_timeout - elapsed();
  if (remaining <= std::chrono::milliseconds::zero()) {
    res.error = "timed out after " + std::to_string(opt.total_timeout.count()) + " ms";
    co_return done();
  }
  stream.expires_after(remaining);

  http::request<http::string_body> r;
  r.method(method);
  std::string target(u.encoded_path());
  if (target.empty()) target = "/";
  if (u.has_query()) target += "?" + std::string(u.encoded_query());
  r.target(target);
  r.version(11);
  r.set(http::field::host, u.has_port()
                               ? std::string(u.encoded_host()) + ":" + std::string(u.port())
                               : std::string(u.encoded_host()));
  if (u.has_userinfo()) {
    r.set(http::field::authorization, "Basic " + sluice::base64_encode(std::string(u.user()) + ":" +
                                                                       std::string(u.password())));
  }
  for (const auto& [name, value] : req.headers)
    r.set(name, value);
  r.set(http::field::connection, "close");
  r.body() = std::move(req.body);
  r.prepare_payload();

  if (!https) {
    co_await exchange(stream, r, res, opt);
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    co_return done();
  }

  beast::ssl_stream<beast::tcp_stream> tls(std::move(stream), *opt.tls);
  // SNI carries host names only (RFC 6066 §3).
  if (!ip_literal && !SSL_set_tlsext_host_name(tls.native_handle(), host.c_str())) {
    res.error = "cannot set the TLS server name";
    co_return done();
  }
  if (opt.tls_verify) {
    tls.set_verify_mode(asio::ssl::verify_peer);
    // OpenSSL's own RFC 6125 check during the handshake: subjectAltName DNS names (no
    // partial wildcards) or, for an IP URL, IP addresses. A mismatch fails verification
    // with X509_V_ERR_HOSTNAME_MISMATCH / X509_V_ERR_IP_ADDRESS_MISMATCH.
    X509_VERIFY_PARAM* param = SSL_get0_param(tls.native_handle());
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int set = ip_literal ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                               : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (set != 1) {
      res.error = "cannot set the expected TLS peer name";
      co_return done();
    }
  } else {
    tls.set_verify_mode(asio::ssl::verify_none);
  }
  co_await tls.async_handshake(asio::ssl::stream_base::client,
                               asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    std::string why = describe(ec, opt.total_timeout);
    const long vr = SSL_get_verify_result(tls.native_handle());
    if (opt.tls_verify && vr != X509_V_OK) {
      why = std::string("certificate verification failed: ") + X509_verify_cert_error_string(vr);
    }
    res.error = "TLS handshake with " + host + " failed: " + why;
    co_return done();
  }
  co_await exchange(tls, r, res, opt);
  beast::get_lowest_layer(tls).socket().shutdown(tcp::socket::shutdown_both, ec);
  co_return done();
}

}  // namespace sluice
