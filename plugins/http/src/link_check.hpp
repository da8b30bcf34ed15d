// link_check.hpp — GET /api/v1/message/{ID}/link-check: Mailpit's link check.
//
// The links of a message are its HTML's <a href>, <link rel="stylesheet" href> and
// <img src>, and the http(s) URLs of its text part (a URL in angle brackets may span
// lines, RFC 3986 appendix C), unique, in order of first appearance, at most max_links.
// Each is requested with HEAD (GET when the server answers HEAD with 405 or 501, the
// body discarded after 64 KB), with redirects followed only when asked (?follow=true).
// The answer is Mailpit's LinkCheckResponse: {"Errors": n, "Links": [{"URL",
// "StatusCode", "Status"}]}; a link counts as an error when its status is 0 (no
// response: Status says why) or 400 and above.
//
// The requests go where the message says, so the SDK's SSRF guard refuses addresses that
// are not globally routable (loopback, private, link-local, …; status 451, "Blocked
// private/reserved address") unless allow_private is set (Mailpit's
// --allow-internal-http-requests); redirects are checked at every hop, and the connection
// goes only to the addresses checked. At most 4 requests run at once, 2 per host, and a
// result is reused for 60 s (cache: false turns both the per-host limit and the cache
// off, as Mailpit's --disable-link-check-rate-limit).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

namespace sluice::http {

struct link_check_settings {
  bool allow_private = false;  // permit loopback, private, link-local, … addresses
  bool tls_verify = true;      // false: accept any certificate (Mailpit's --allow-untrusted-tls)
  std::chrono::milliseconds timeout{10000};        // per link, redirects included
  std::chrono::milliseconds total_timeout{60000};  // per request to the API
  std::size_t max_links = 100;
  bool cache = true;  // 60 s result cache and 2 requests per host at once
  int max_redirects = 10;
};

struct link_status {
  std::string url;
  int status = 0;      // the final HTTP status; 0: no response
  std::string reason;  // the status's reason phrase, or why there was no response
};

// The links of a message (see the top of this file).
std::vector<std::string> extract_links(std::string_view html, std::string_view text,
                                       std::size_t max_links);

// Results of recent checks, shared by the requests of one listener. Thread-safe.
class link_cache {
 public:
  explicit link_cache(std::chrono::milliseconds ttl = std::chrono::seconds(60),
                      std::size_t max_entries = 4096)
      : ttl_(ttl), max_entries_(max_entries) {}
  bool find(const std::string& key, link_status& out);
  void store(const std::string& key, const link_status& s);

 private:
  struct entry {
    link_status value;
    std::chrono::steady_clock::time_point expires;
  };
  std::mutex mu_;
  std::unordered_map<std::string, entry> map_;
  std::chrono::milliseconds ttl_;
  std::size_t max_entries_;
};

// What a check needs besides its links; built once per listener.
struct link_checker {
  link_check_settings settings;
  std::shared_ptr<link_cache> cache;  // null: no cache
  std::string user_agent;

  // The TLS client context (system trust store), made at the first https link.
  std::shared_ptr<boost::asio::ssl::context> tls(std::string& error) const;

  // Checks every link (at most 4 at once, 2 per host when the cache is on); the results
  // are in the order of `links`.
  boost::asio::awaitable<std::vector<link_status>> check(boost::asio::any_io_executor ex,
                                                         std::vector<std::string> links,
                                                         bool follow) const;

 private:
  mutable std::mutex tls_mu_;
  mutable std::shared_ptr<boost::asio::ssl::context> tls_;
  mutable std::string tls_error_;
};

}  // namespace sluice::http
