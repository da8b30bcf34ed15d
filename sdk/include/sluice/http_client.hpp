// http_client.hpp — one outbound HTTP/1.1 request per call (Boost.Beast), over TCP or
// TLS: the webhook stage's deliveries and the HTTP listener's link check.
//
// A call parses the URL, resolves the host with Asio's resolver (getaddrinfo: /etc/hosts,
// then DNS), applies the SSRF guard to every address it got (when asked), and connects
// only to the addresses that passed — the same addresses that were checked, so a second
// DNS answer cannot redirect the connection (no rebinding window). HTTPS verifies the
// certificate chain against the context's trust store and the host name (or IP address)
// of the URL (RFC 6125 via OpenSSL), sends SNI for host names, and requires TLS 1.2 or
// later. User information in the URL becomes HTTP Basic authorization (RFC 7617).
// `Connection: close`: one request per connection. Redirects are not followed: the
// caller gets the status and the Location field and decides.
//
// Bounds: connect_timeout for resolving and connecting, total_timeout for the whole call;
// the response header block is limited to 16 KB and the body to max_response bytes (a
// longer body is cut there and flagged; the status still counts). A HEAD response has no
// body (RFC 9110 §9.3.2), whatever its Content-Length says.
//
// Failures are results, never exceptions: a transport error fills `error`, a refused
// address fills `error` and sets `guard_refused`. The coroutine owns everything it touches
// (the TLS context by shared_ptr), so a cancelled call's frame may outlive the caller.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

namespace sluice {

struct http_request {
  std::string url;              // absolute http:// or https:// URL
  std::string method = "POST";  // any RFC 9110 method token: GET, HEAD, POST, PUT, …
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

struct client_options {
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds total_timeout{10000};
  std::uint64_t max_response = 64 * 1024;
  // Refuse addresses that are not globally routable (classify() in address_class.hpp).
  bool ssrf_guard = false;
  bool allow_private = false;
  // Appended to the guard's refusal text: what the operator can do about it.
  std::string guard_hint;
  // Required for https:// URLs.
  std::shared_ptr<boost::asio::ssl::context> tls;
  bool tls_verify = true;
};

struct http_result {
  // A status line was received; status, reason, headers and body are meaningful.
  bool responded = false;
  int status = 0;
  std::string reason;
  std::string retry_after;  // the Retry-After field, if any
  std::string location;     // the Location field, if any (as sent: may be relative)
  std::string body;         // at most max_response bytes
  bool body_truncated = false;
  // No response: what went wrong ("connection refused", "certificate verify failed", …).
  std::string error;
  // The SSRF guard refused every address of the host.
  bool guard_refused = false;
  std::string address;  // the address connected to, "ip:port"
  std::chrono::milliseconds duration{0};
};

boost::asio::awaitable<http_result> send_request(boost::asio::any_io_executor ex, http_request req,
                                                 client_options opt);

// A TLS client context: TLS 1.2 or later, the system trust store or ca_file (PEM).
// Throws std::runtime_error when ca_file cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_client_tls(const std::string& ca_file);

// The URL without user information, query and fragment, for the delivery report.
std::string redact_url(const std::string& url);

// scheme://host[:port] only, for logs and verdict texts (a path may carry a token, as
// chat webhooks' paths do).
std::string url_origin(const std::string& url);

}  // namespace sluice
