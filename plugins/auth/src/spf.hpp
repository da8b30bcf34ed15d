// spf.hpp — the SPF evaluator (RFC 7208): check_host() over an abstract asynchronous DNS.
//
// Pure code: the only I/O is through the sluice::resolver interface it is given, so the
// same evaluator runs against the real resolver service (c-ares) in the stage and against
// in-memory zone data in the unit tests (the OpenSPF suite runs both ways).
//
// Threading: one evaluation is one coroutine; it keeps its state in its own frame and
// touches nothing shared except the resolver (which is thread-safe by contract). Any
// number of evaluations may run concurrently.
//
// Failure: never throws for DNS or record problems; they become temperror / permerror
// with a reason. Exceptions only mean memory exhaustion or a resolver bug.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "sluice/resolver.hpp"

namespace sluice::auth::spf {

enum class result { none, neutral, pass, fail, softfail, temperror, permerror };

// "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" (RFC 7208 §2.6).
std::string_view to_string(result r) noexcept;

// The processing limits of RFC 7208 §4.6.4 (the defaults are the RFC's).
struct limits {
  unsigned dns_mechanisms = 10;   // include, a, mx, ptr, exists, redirect
  unsigned void_lookups = 2;      // lookups answering NXDOMAIN or NODATA
  unsigned mx_names = 10;         // MX records per "mx" mechanism (more: permerror)
  unsigned ptr_names = 10;        // PTR names per "ptr" mechanism / %{p} (the rest ignored)
  std::size_t max_record = 4096;  // bytes of one SPF record (longer: permerror)
};

struct request {
  std::string ip;      // client address literal (IPv4, IPv6, or IPv4-mapped IPv6)
  std::string sender;  // <sender> of check_host: "local@domain" (or a bare domain for HELO)
  std::string helo;    // HELO/EHLO argument, for %{h}
  std::string receiver = "unknown";  // %{r}: the receiving host's domain
  std::int64_t now = 0;              // %{t}: seconds since the epoch
};

struct outcome {
  result res = result::none;
  // Why: the matching directive ("ip4:192.0.2.0/24"), "default" (no match, neutral), or
  // the error ("too many DNS lookups", "no SPF record", "DNS servfail for …").
  std::string reason;
  // fail only: the expanded exp= text, or empty when there is none (then the caller
  // uses its default explanation).
  std::string explanation;
  std::string domain;  // the domain checked (the identity's domain)
  unsigned dns_lookups = 0;
  unsigned void_lookups = 0;
};

// check_host(<ip>, <domain>, <sender>) of RFC 7208 §4 for the domain of req.sender.
boost::asio::awaitable<outcome> check_host(std::shared_ptr<resolver> dns, request req,
                                           limits lim = {});

// The MAIL FROM identity (§2.4): an empty reverse-path checks postmaster@<helo>; a sender
// without a local part is postmaster@domain. Domains that are not FQDNs, and address
// literals, give "none" (§4.3).
boost::asio::awaitable<outcome> check_mail_from(std::shared_ptr<resolver> dns, std::string ip,
                                                std::string mail_from, std::string helo,
                                                std::string receiver, std::int64_t now,
                                                limits lim = {});

// The HELO identity (§2.3): sender postmaster@<helo>.
boost::asio::awaitable<outcome> check_helo(std::shared_ptr<resolver> dns, std::string ip,
                                           std::string helo, std::string receiver, std::int64_t now,
                                           limits lim = {});

}  // namespace sluice::auth::spf
