// fuzz_sasl.cpp — libFuzzer target for what an unauthenticated client's AUTH response meets
// first (SMTP RFC 4954, POP3 RFC 5034): the SDK's base64 decoders (sluice/base64.hpp) and the
// SASL PLAIN and CRAM-MD5 parsers (sluice/sasl.hpp). Besides crashes and sanitizer reports it
// checks the documented contracts, aborting on a violation:
// - strict decoding never accepts what a stricter mode refuses, and what it accepts
//   round-trips through base64_encode;
// - the lenient MIME decoder agrees with the strict one on well-formed input and appends;
// - parse_plain's ok means two NULs, non-empty user and password, at most 255 octets each,
//   and looser plain_rules accept the same message with the same fields;
// - parse_cram_md5's ok means 32 lower-case hex digits and a non-empty user.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "sluice/base64.hpp"
#include "sluice/sasl.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void fuzz_base64(std::string_view in) {
  using sluice::base64_padding;
  auto req = sluice::base64_decode(in, base64_padding::required);
  auto opt = sluice::base64_decode(in, base64_padding::optional);
  auto unc = sluice::base64_decode(in, base64_padding::unchecked);
  // Each mode accepts a superset of the one before it, with the same bytes.
  if (req) check(opt && *opt == *req);
  if (opt) check(unc && *unc == *opt);
  // Padded input is as long as its canonical encoding (non-zero pad bits are accepted, so
  // the text itself may differ).
  if (req) check(sluice::base64_encode(*req).size() == in.size());
  if (unc) {
    check(unc->size() <= in.size() * 3 / 4 + 2);
    const std::string again = sluice::base64_encode(*unc);
    check(sluice::base64_decode(again) == *unc);
    // The lenient decoder reads well-formed input the same way, appending to what is there.
    std::string out = "x";
    const std::size_t skipped = sluice::base64_decode_lenient(again, out);
    check(skipped == 0 && out == "x" + *unc);
  }
  std::string lenient;
  sluice::base64_decode_lenient(in, lenient);
  check(lenient.size() <= in.size() * 3 / 4 + 1);
}

void fuzz_plain(std::string_view msg) {
  sluice::sasl::plain_credentials c;
  const auto s = sluice::sasl::parse_plain(msg, c);
  check(!sluice::sasl::describe(s).empty());
  if (s != sluice::sasl::plain_status::ok) return;
  check(!c.authcid.empty() && !c.password.empty());
  for (const std::string* f : {&c.authzid, &c.authcid, &c.password}) {
    check(f->size() <= sluice::sasl::plain_max_field);
    check(f->find('\0') == std::string::npos);
  }
  check(c.authzid + '\0' + c.authcid + '\0' + c.password == msg);
  // Looser rules accept whatever the defaults accept, with the same fields.
  sluice::sasl::plain_credentials l;
  check(sluice::sasl::parse_plain(msg, l, {.max_field = 1 << 20, .allow_empty_password = true}) ==
        sluice::sasl::plain_status::ok);
  check(l.authzid == c.authzid && l.authcid == c.authcid && l.password == c.password);
}

void fuzz_cram(std::string_view msg) {
  sluice::sasl::cram_md5_response r;
  const auto s = sluice::sasl::parse_cram_md5(msg, r);
  check(!sluice::sasl::describe(s).empty());
  if (s != sluice::sasl::cram_md5_status::ok) return;
  check(!r.user.empty() && r.digest_hex.size() == 32);
  for (char ch : r.digest_hex)
    check((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'));
  // The digest over a fixed challenge verifies itself and nothing else.
  const std::string d = sluice::sasl::cram_md5_digest(r.user, "<1.2@fuzz>");
  check(sluice::sasl::cram_md5_verify(r.user, "<1.2@fuzz>", d));
  check(sluice::sasl::cram_md5_verify(r.user, "<1.2@fuzz>", r.digest_hex) == (d == r.digest_hex));
}

}  // namespace

// The input is taken three ways: as base64 text, and (decoded when it is base64, as the
// protocols do, else as it is) as a PLAIN and a CRAM-MD5 response.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  fuzz_base64(in);
  const auto decoded = sluice::base64_decode(in, sluice::base64_padding::optional);
  const std::string_view msg = decoded ? std::string_view(*decoded) : in;
  fuzz_plain(msg);
  fuzz_cram(msg);
  return 0;
}
