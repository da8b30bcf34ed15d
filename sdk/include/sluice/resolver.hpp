// sluice/resolver.hpp — the `resolver` service: asynchronous DNS lookups for every plugin.
//
// Offered by the resolver plugin (c-ares on the host's io_context); consumed by SPF, DKIM,
// DMARC and relay MX lookups. Look it up with `ctx.host.services().get<resolver>(name)`.
//
// Threading: every lookup may be called from any thread and any executor; the
// implementation does its work on its own strand and completes on the caller's executor.
// Lookups never throw for DNS outcomes: failures are reported in dns_answer::status (an
// exception means a bug or memory exhaustion). Answers may come from a TTL-bounded cache, and
// identical lookups that are in flight at the same time may share one query.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "sluice/services.hpp"

namespace sluice {

enum class dns_status {
  // The name has records of the asked type; `records` holds them (never empty).
  ok,
  // The name does not exist (RCODE 3). A definitive answer: SPF "none", MX "no such
  // domain" — callers act on it (reject/permanent error), no retry.
  nxdomain,
  // The name exists but has no records of this type (NOERROR, empty answer). Definitive:
  // e.g. no MX means fall back to the A/AAAA of the domain (RFC 5321 §5.1).
  nodata,
  // The server could not answer (RCODE 2), e.g. a broken DNSSEC chain or a dead authority.
  // Temporary: callers tempfail (SPF "temperror", 4xx) and retry later.
  servfail,
  // No server answered within timeout × tries. Temporary: treat like servfail.
  timeout,
  // The server refused the query (RCODE 5), usually a resolver ACL. Temporary from the
  // caller's view (an operator must fix the configuration); treat like servfail.
  refused,
  // Anything else: a malformed name, a malformed answer, no usable server, shutdown.
  // `error` says what. Treat as temporary unless the name itself was invalid.
  error,
};

// A short lowercase name for logs and attributes: "ok", "nxdomain", ...
std::string_view to_string(dns_status s) noexcept;

struct dns_answer {
  dns_status status = dns_status::error;
  // ok: A/AAAA as text literals ("192.0.2.1", "2001:db8::1"), TXT with each record's
  // strings concatenated (RFC 7208 §3.3), PTR host names without the trailing dot,
  // MX exchange host names sorted by preference (see mx()). Empty otherwise.
  std::vector<std::string> records;
  // Seconds this answer may be cached: the smallest TTL in the answer, or for negative
  // answers the RFC 2308 negative TTL. 0 for servfail/timeout/refused/error.
  std::uint32_t ttl = 0;
  // Human-readable detail for anything but ok (empty for ok).
  std::string error;
};

struct mx_record {
  std::uint16_t preference = 0;
  std::string host;  // without the trailing dot; "" for a null MX (RFC 7505)
};

inline std::string_view to_string(dns_status s) noexcept {
  switch (s) {
    case dns_status::ok:
      return "ok";
    case dns_status::nxdomain:
      return "nxdomain";
    case dns_status::nodata:
      return "nodata";
    case dns_status::servfail:
      return "servfail";
    case dns_status::timeout:
      return "timeout";
    case dns_status::refused:
      return "refused";
    case dns_status::error:
      return "error";
  }
  return "error";
}

class resolver : public service {
 public:
  static constexpr std::string_view kind = "resolver";

  // Names are absolute domain names ("example.com", a trailing dot is allowed); no
  // search list is applied. Parameters are taken by value so that callers may pass
  // temporaries safely into the coroutine.

  // TXT records; each record's character-strings concatenated without separators.
  virtual boost::asio::awaitable<dns_answer> txt(std::string name) = 0;
  // IPv4 addresses of the name.
  virtual boost::asio::awaitable<dns_answer> a(std::string name) = 0;
  // IPv6 addresses of the name.
  virtual boost::asio::awaitable<dns_answer> aaaa(std::string name) = 0;
  // Reverse lookup of an IPv4 or IPv6 literal (the .in-addr.arpa / .ip6.arpa name is built
  // here). A string that is not an address literal gives status error.
  virtual boost::asio::awaitable<dns_answer> ptr(std::string address) = 0;
  // MX records sorted by preference (stable for equal preferences); answer.records holds
  // the same hosts in the same order.
  virtual boost::asio::awaitable<std::pair<dns_answer, std::vector<mx_record>>> mx(
      std::string name) = 0;

  // A hint that txt(name) will be asked soon (by a later pipeline stage): starts that lookup
  // now and returns at once, so that its answer is on the way while earlier work goes on.
  // The answer goes only where any answer goes: into the cache under its TTL (a TTL 0 answer
  // is not kept), and to the txt() callers that ask while it is in flight. A prefetch that
  // fails (servfail, timeout, refused, error) is handed to nobody: a caller that waited for
  // it makes its own lookup. Best effort and bounded: an implementation may ignore the hint
  // (the default does). Never throws for DNS outcomes; may be called from any thread.
  virtual void prefetch_txt(std::string name) { (void)name; }
};

}  // namespace sluice
