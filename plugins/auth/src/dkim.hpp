// dkim.hpp — DKIM (RFC 6376, with RFC 8301 and RFC 8463): canonicalization, tag lists,
// verification of every DKIM-Signature of a message and signing.
//
// Pure code over the abstract sluice::resolver (key records are TXT lookups at
// <selector>._domainkey.<domain>), so the unit tests run against in-memory zones and the stage
// runs the same code against the resolver service. Hashes and signatures with OpenSSL EVP.
//
// Threading: one verification is one coroutine with its own state; the body hash may run on
// a worker pool (given to verify()) so a large file-backed body never occupies an I/O thread.
// A signer is immutable after construction and may sign concurrently from any thread.
//
// Failure: DNS, record and signature problems are results (temperror, permerror, fail, …)
// with a reason; nothing throws for them. signer's constructor throws std::runtime_error for
// an unusable key (the stage turns it into a config error at the key's location).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "sluice/message.hpp"
#include "sluice/resolver.hpp"

namespace sluice::auth::dkim {

// RFC 8601 §2.7.1 results for one signature.
enum class result {
  none,       // the message carries no DKIM-Signature (only as an overall result)
  pass,       // the signature verified with a valid key
  fail,       // body hash or signature mismatch: the message was altered or forged
  neutral,    // the signature could not be processed: unsupported algorithm, expired, future
  policy,     // verified but not acceptable: rsa-sha1 (RFC 8301 §3.1)
  temperror,  // the key could not be fetched now (DNS SERVFAIL, timeout): retry later
  permerror,  // unrecoverable: malformed signature or key record, no key, revoked, weak key
};
std::string_view to_string(result r) noexcept;

// ---------------------------------------------------------------- building blocks

// A tag=value list (RFC 6376 §3.2): tag names are case-sensitive, whitespace (FWS) around
// tags and values is dropped, an empty last entry (trailing ';') is allowed. Returns
// std::nullopt on a syntax error or a duplicated tag.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_tag_list(
    std::string_view text);

enum class canon { simple, relaxed };

// One header field as it appears in the header block: `text` is the whole field including
// its folds and its final line end.
struct header_field {
  std::string name;
  std::string text;
};
// Splits a header block (up to and including the empty line, or without it) into fields.
std::vector<header_field> split_header(std::string_view block);

// The canonical form of one header field (§3.4.1, §3.4.2), ending in CRLF. Bare LF line
// ends are read as CRLF.
std::string canon_header(const header_field& f, canon c);

// Streaming body canonicalization (§3.4.3, §3.4.4) with an optional length limit (l=).
// feed() any number of chunks, then finish(); the sink receives the canonical bytes (at most
// `limit` of them). Bare LF line ends are read as CRLF.
class body_canonicalizer {
 public:
  body_canonicalizer(canon c, std::function<void(std::string_view)> sink,
                     std::optional<std::uint64_t> limit = std::nullopt);
  void feed(std::string_view chunk);
  void finish();
  // Canonical bytes produced in total (including those past the limit, which were not sent).
  std::uint64_t length() const noexcept { return produced_; }

 private:
  void emit(std::string_view s);
  void content(char c);
  void line_end();
  void flush_out();

  canon c_;
  std::function<void(std::string_view)> sink_;
  std::optional<std::uint64_t> limit_;
  std::uint64_t produced_ = 0;
  std::uint64_t pending_crlf_ = 0;
  bool pending_wsp_ = false;
  bool saw_cr_ = false;
  std::string out_;
};

// The canonical body of a whole string, for tests and small bodies.
std::string canon_body(std::string_view body, canon c);

// ---------------------------------------------------------------- verification

struct verify_options {
  unsigned max_signatures = 8;       // signatures evaluated; the rest are counted as skipped
  std::int64_t now = 0;              // seconds since the epoch (t=/x= checks)
  std::int64_t clock_skew = 300;     // allowance for t= in the future and x= in the past
  unsigned min_rsa_bits = 1024;      // RFC 8301 §3.2: smaller keys are permerror
  std::size_t max_header = 1 << 20;  // header block bytes read from the message
};

struct signature_result {
  result res = result::permerror;
  std::string reason;                        // why: "signature verified", "body hash mismatch", …
  std::string domain;                        // d=
  std::string selector;                      // s=
  std::string identity;                      // i= (or "@d" by default)
  std::string algorithm;                     // a=
  std::string canonicalization;              // c= as "header/body"
  std::string headers;                       // h= as signed
  std::string b_prefix;                      // the first 12 characters of b= (RFC 6008 header.b)
  std::optional<std::uint64_t> body_length;  // l=
  std::optional<std::int64_t> timestamp;     // t=
  std::optional<std::int64_t> expiration;    // x=
  bool testing = false;                      // the key record has t=y
  unsigned key_bits = 0;                     // RSA modulus bits, 256 for Ed25519
};

struct verification {
  std::vector<signature_result> signatures;  // in header order, top first
  unsigned skipped = 0;                      // signatures past max_signatures, not evaluated
};

// Verifies every DKIM-Signature of the message as received (`raw`, never the edited output).
// With `pool`, the body hash runs there (one pass over the body for all signatures).
boost::asio::awaitable<verification> verify(std::shared_ptr<resolver> dns,
                                            std::shared_ptr<const message_body> raw,
                                            verify_options opt,
                                            boost::asio::thread_pool* pool = nullptr);

// The key record names (<s>._domainkey.<d>, each once) that verify() with the same options
// will look up for this message: those of the signatures it evaluates that pass validation.
// For a prefetch; reads only the header block.
std::vector<std::string> key_names(const message_body& raw, const verify_options& opt);

// ---------------------------------------------------------------- signing

struct sign_options {
  std::string domain;    // d=
  std::string selector;  // s=
  std::string identity;  // i= (empty: omitted)
  // Header names to sign: each instance present is signed; names in `oversign` get one
  // more entry so that adding an instance later breaks the signature (§8.15).
  std::vector<std::string> headers;
  std::vector<std::string> oversign;
  canon header_canon = canon::relaxed;
  canon body_canon = canon::relaxed;
  bool body_length = false;                  // add l=
  bool timestamp = true;                     // add t=
  std::optional<std::int64_t> expire_after;  // x = t + this many seconds
};

class signer {
 public:
  // Reads a PEM private key (PKCS#8 or traditional): RSA of at least `min_rsa_bits`, or
  // Ed25519. Throws std::runtime_error saying what is wrong.
  signer(const std::string& pem, sign_options opt, unsigned min_rsa_bits = 2048);
  ~signer();
  signer(const signer&) = delete;
  signer& operator=(const signer&) = delete;

  std::string_view algorithm() const noexcept;  // "rsa-sha256" or "ed25519-sha256"
  const sign_options& options() const noexcept { return opt_; }

  struct signed_field {
    std::string value;  // the DKIM-Signature field value, to prepend
    std::string h;      // the h= list
  };
  // Signs the message as it will leave (raw bytes with msg.edits applied). Fails (empty
  // optional, `error` set) when the message has no From field or the body cannot be read.
  std::optional<signed_field> sign(const message& msg, std::int64_t now, std::string& error) const;

 private:
  struct key;
  std::unique_ptr<key> key_;
  sign_options opt_;
};

// The public key of a PEM private key as a DNS TXT record value ("v=DKIM1; k=…; p=…").
std::string dns_record_for(const std::string& pem);

}  // namespace sluice::auth::dkim
