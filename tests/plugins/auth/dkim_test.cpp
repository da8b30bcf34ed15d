// dkim_test.cpp — unit tests of the DKIM verifier and signer and of DMARC, in-process against
// in-memory zones (no sockets): RFC 6376 §3.4.6 canonicalization examples, tag lists, and
// every result path of a signature (pass fail neutral policy temperror permerror none) and of
// DMARC (pass fail none temperror permerror, alignment, discovery, sp=, pct=).
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <fstream>
#include <map>
#include <sstream>

#include "dkim.hpp"
#include "dmarc.hpp"
#include "sluice_test.hpp"

namespace {

using namespace sluice;
using namespace sluice::auth;

// TXT answers by name; anything else is NXDOMAIN.
class map_resolver final : public resolver {
 public:
  std::map<std::string, dns_answer> answers;
  unsigned queries = 0;
  void txt_record(const std::string& name, std::vector<std::string> recs) {
    dns_answer a;
    a.status = dns_status::ok;
    a.records = std::move(recs);
    a.ttl = 300;
    answers[name] = a;
  }
  void status(const std::string& name, dns_status s) {
    dns_answer a;
    a.status = s;
    a.error = std::string(to_string(s));
    answers[name] = a;
  }
  boost::asio::awaitable<dns_answer> txt(std::string name) override {
    ++queries;
    auto it = answers.find(name);
    if (it != answers.end()) co_return it->second;
    dns_answer a;
    a.status = dns_status::nxdomain;
    co_return a;
  }
  boost::asio::awaitable<dns_answer> a(std::string) override { co_return dns_answer{}; }
  boost::asio::awaitable<dns_answer> aaaa(std::string) override { co_return dns_answer{}; }
  boost::asio::awaitable<dns_answer> ptr(std::string) override { co_return dns_answer{}; }
  boost::asio::awaitable<std::pair<dns_answer, std::vector<mx_record>>> mx(std::string) override {
    co_return std::make_pair(dns_answer{}, std::vector<mx_record>{});
  }
};

template <class T>
T run(boost::asio::awaitable<T> op) {
  boost::asio::io_context io;
  auto f = boost::asio::co_spawn(io, std::move(op), boost::asio::use_future);
  io.run();
  return f.get();
}

std::string make_key(int type, int bits = 2048) {
  EVP_PKEY* k = nullptr;
  EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_id(type, nullptr);
  EVP_PKEY_keygen_init(c);
  if (type == EVP_PKEY_RSA) EVP_PKEY_CTX_set_rsa_keygen_bits(c, bits);
  EVP_PKEY_keygen(c, &k);
  EVP_PKEY_CTX_free(c);
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* d = nullptr;
  long n = BIO_get_mem_data(b, &d);
  std::string pem(d, static_cast<std::size_t>(n));
  BIO_free(b);
  EVP_PKEY_free(k);
  return pem;
}

const std::string& rsa_key() {
  static const std::string k = make_key(EVP_PKEY_RSA);
  return k;
}
const std::string& ed_key() {
  static const std::string k = make_key(EVP_PKEY_ED25519);
  return k;
}

const char* kMessage =
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.net\r\n"
    "Subject: Hello   there\r\n"
    "Date: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
    "Message-ID: <1@example.com>\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    "  this is a test.  \r\n"
    "\r\n"
    "\r\n";

constexpr std::int64_t kNow = 1800000000;

dkim::sign_options sopts(dkim::canon h = dkim::canon::relaxed,
                         dkim::canon b = dkim::canon::relaxed) {
  dkim::sign_options o;
  o.domain = "example.com";
  o.selector = "s1";
  o.headers = {"From", "To", "Subject", "Date", "Message-ID"};
  o.oversign = {"From", "Subject"};
  o.header_canon = h;
  o.body_canon = b;
  return o;
}

// Signs `text` and returns the whole signed message.
std::string sign(const std::string& text, const dkim::signer& s, std::int64_t now = kNow) {
  message m;
  m.raw = message_body::from_string(text);
  std::string error;
  auto f = s.sign(m, now, error);
  EXPECT_TRUE(f) << error;
  if (!f) return text;
  m.prepend_header("DKIM-Signature", f->value);
  return m.output();
}

dkim::verification verify(map_resolver& dns, const std::string& text, std::int64_t now = kNow,
                          unsigned max_sigs = 8) {
  auto shared = std::shared_ptr<map_resolver>(&dns, [](map_resolver*) {});
  dkim::verify_options o;
  o.now = now;
  o.max_signatures = max_sigs;
  return run(dkim::verify(shared, message_body::from_string(text), o));
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  std::size_t p = s.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  if (p != std::string::npos) s.replace(p, from.size(), to);
  return s;
}

// ------------------------------------------------------------------ canonicalization

TEST(dkim_canon, rfc6376_3_4_6_example) {
  const std::string head = "A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n";
  auto fields = dkim::split_header(head);
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(dkim::canon_header(fields[0], dkim::canon::relaxed) +
                dkim::canon_header(fields[1], dkim::canon::relaxed),
            "a:X\r\nb:Y Z\r\n");
  EXPECT_EQ(dkim::canon_header(fields[0], dkim::canon::simple) +
                dkim::canon_header(fields[1], dkim::canon::simple),
            "A: X\r\nB : Y\t\r\n\tZ  \r\n");
  const std::string body = " C \r\nD \t E\r\n\r\n\r\n";
  EXPECT_EQ(dkim::canon_body(body, dkim::canon::relaxed), " C\r\nD E\r\n");
  EXPECT_EQ(dkim::canon_body(body, dkim::canon::simple), " C \r\nD \t E\r\n");
}

TEST(dkim_canon, body_edge_cases) {
  // §3.4.3: an empty body is one CRLF in simple; §3.4.4: empty in relaxed.
  EXPECT_EQ(dkim::canon_body("", dkim::canon::simple), "\r\n");
  EXPECT_EQ(dkim::canon_body("", dkim::canon::relaxed), "");
  EXPECT_EQ(dkim::canon_body("\r\n\r\n", dkim::canon::simple), "\r\n");
  EXPECT_EQ(dkim::canon_body("\r\n  \r\n", dkim::canon::relaxed), "");
  // A missing final CRLF is added.
  EXPECT_EQ(dkim::canon_body("abc", dkim::canon::simple), "abc\r\n");
  EXPECT_EQ(dkim::canon_body("abc  ", dkim::canon::relaxed), "abc\r\n");
  // Empty lines inside stay; bare LF reads as CRLF; a lone CR is content.
  EXPECT_EQ(dkim::canon_body("a\n\nb\n", dkim::canon::simple), "a\r\n\r\nb\r\n");
  EXPECT_EQ(dkim::canon_body("a\rb\r\n", dkim::canon::relaxed), "a\rb\r\n");
}

TEST(dkim_canon, streaming_in_any_chunks_equals_whole_and_honours_limit) {
  const std::string body = " C \r\nD \t E\r\n\r\nlast line \t\r\n\r\n\r\n";
  for (auto c : {dkim::canon::simple, dkim::canon::relaxed}) {
    std::string whole = dkim::canon_body(body, c);
    std::string bytewise;
    dkim::body_canonicalizer bc(c, [&](std::string_view s) { bytewise.append(s); });
    for (char ch : body)
      bc.feed(std::string_view(&ch, 1));
    bc.finish();
    EXPECT_EQ(bytewise, whole);
    EXPECT_EQ(bc.length(), whole.size());
    std::string limited;
    dkim::body_canonicalizer lc(
        c, [&](std::string_view s) { limited.append(s); }, 5);
    lc.feed(body);
    lc.finish();
    EXPECT_EQ(limited, whole.substr(0, 5));
    EXPECT_EQ(lc.length(), whole.size());
  }
}

TEST(dkim_tags, parse_tag_list) {
  auto t = dkim::parse_tag_list(" v=1; a = rsa-sha256 ;\r\n\tb= abc\r\n def ; p=;");
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 4u);
  EXPECT_EQ((*t)[1], (std::pair<std::string, std::string>("a", "rsa-sha256")));
  EXPECT_EQ((*t)[2].second, "abc\r\n def");
  EXPECT_EQ((*t)[3].second, "");
  EXPECT_FALSE(dkim::parse_tag_list("v=1; v=1"));     // duplicate
  EXPECT_FALSE(dkim::parse_tag_list("v=1;; a=b"));    // empty entry inside
  EXPECT_FALSE(dkim::parse_tag_list("1v=1"));         // bad tag name
  EXPECT_FALSE(dkim::parse_tag_list("v"));            // no '='
  EXPECT_FALSE(dkim::parse_tag_list("v=1; x=\x01"));  // control character
  EXPECT_FALSE(dkim::parse_tag_list(""));
}

TEST(dkim_canon, empty_body_hashes_are_the_known_constants) {
  // SHA-256 of "\r\n" (simple) and of "" (relaxed), as every implementation computes them.
  message m;
  m.raw = message_body::from_string("From: a@example.com\r\n\r\n");
  for (auto [c, bh] :
       {std::pair{dkim::canon::simple, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY="},
        std::pair{dkim::canon::relaxed, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}}) {
    dkim::signer s(ed_key(), sopts(dkim::canon::relaxed, c));
    std::string error;
    auto f = s.sign(m, kNow, error);
    ASSERT_TRUE(f) << error;
    EXPECT_NE(f->value.find(std::string("bh=") + bh + ";"), std::string::npos) << f->value;
  }
}

// ------------------------------------------------------------------ sign and verify

// RFC 8463 Appendix A: the example message signed with Ed25519 and RSA, and the A.2 keys.
TEST(dkim_verify, rfc8463_appendix_a_vectors) {
  std::ifstream in(sluice::test::test_data_dir() + "/auth/rfc8463-a3.eml", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string m = ss.str();
  ASSERT_FALSE(m.empty());
  map_resolver dns;
  dns.txt_record("brisbane._domainkey.football.example.com",
                 {"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="});
  dns.txt_record("test._domainkey.football.example.com",
                 {"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
                  "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
                  "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
                  "Ip3G+2kryOTIKT+l/K4w3QIDAQAB"});
  auto v = verify(dns, m);
  ASSERT_EQ(v.signatures.size(), 2u);
  EXPECT_EQ(v.signatures[0].res, dkim::result::pass) << v.signatures[0].reason;
  EXPECT_EQ(v.signatures[0].algorithm, "ed25519-sha256");
  EXPECT_EQ(v.signatures[0].identity, "@football.example.com");
  EXPECT_EQ(v.signatures[1].res, dkim::result::pass) << v.signatures[1].reason;
  EXPECT_EQ(v.signatures[1].key_bits, 1024u);
  EXPECT_EQ(v.signatures[1].headers, "from:to:subject:date:message-id:from:subject:date");
  auto t = verify(dns, replace(m, "We lost", "We won"));
  EXPECT_EQ(t.signatures[0].res, dkim::result::fail);
  EXPECT_EQ(t.signatures[1].res, dkim::result::fail);
}

struct combo {
  bool ed;
  dkim::canon h, b;
};

TEST(dkim_verify, sluice_signatures_pass_for_every_algorithm_and_canonicalization) {
  for (combo c : {combo{false, dkim::canon::simple, dkim::canon::simple},
                  combo{false, dkim::canon::simple, dkim::canon::relaxed},
                  combo{false, dkim::canon::relaxed, dkim::canon::simple},
                  combo{false, dkim::canon::relaxed, dkim::canon::relaxed},
                  combo{true, dkim::canon::simple, dkim::canon::simple},
                  combo{true, dkim::canon::relaxed, dkim::canon::relaxed}}) {
    const std::string& pem = c.ed ? ed_key() : rsa_key();
    dkim::signer s(pem, sopts(c.h, c.b));
    map_resolver dns;
    dns.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(pem)});
    std::string signed_msg = sign(kMessage, s);
    auto v = verify(dns, signed_msg);
    ASSERT_EQ(v.signatures.size(), 1u);
    const auto& r = v.signatures[0];
    EXPECT_EQ(r.res, dkim::result::pass) << r.reason << "\n" << signed_msg;
    EXPECT_EQ(r.domain, "example.com");
    EXPECT_EQ(r.selector, "s1");
    EXPECT_EQ(r.algorithm, c.ed ? "ed25519-sha256" : "rsa-sha256");
    EXPECT_EQ(r.key_bits, c.ed ? 256u : 2048u);
    // Body tampering fails every combination.
    auto t = verify(dns, replace(signed_msg, "Hello Bob", "Hello Eve"));
    EXPECT_EQ(t.signatures.at(0).res, dkim::result::fail);
    EXPECT_EQ(t.signatures.at(0).reason, "body hash mismatch");
    // Header tampering too.
    auto h = verify(dns, replace(signed_msg, "Subject: Hello", "Subject: Jello"));
    EXPECT_EQ(h.signatures.at(0).res, dkim::result::fail);
    EXPECT_EQ(h.signatures.at(0).reason, "signature did not verify");
    // Whitespace changes: relaxed survives them, simple does not.
    auto w = verify(dns, replace(signed_msg, "Subject: Hello   there", "Subject:  Hello there"));
    EXPECT_EQ(w.signatures.at(0).res,
              c.h == dkim::canon::relaxed ? dkim::result::pass : dkim::result::fail);
    auto bw = verify(dns, replace(signed_msg, "this is a test.  \r\n", "this is a test.\r\n"));
    EXPECT_EQ(bw.signatures.at(0).res,
              c.b == dkim::canon::relaxed ? dkim::result::pass : dkim::result::fail);
  }
}

TEST(dkim_verify, unsigned_message_has_no_signatures) {
  map_resolver dns;
  auto v = verify(dns, kMessage);
  EXPECT_TRUE(v.signatures.empty());
  EXPECT_EQ(dns.queries, 0u);
}

TEST(dkim_verify, over_signing_detects_an_added_header) {
  map_resolver dns;
  dns.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(rsa_key())});
  dkim::signer over(rsa_key(), sopts());
  auto o = sopts();
  o.oversign.clear();
  dkim::signer plain(rsa_key(), o);
  // An extra Subject added above the signed one (the bottom-up selection takes the signed one
  // first; the over-signed empty slot now matches the new one).
  const std::string added = "Subject: injected\r\n";
  std::string so = sign(kMessage, over);
  std::string sp = sign(kMessage, plain);
  EXPECT_NE(so.find("h=From:From:To:Subject:Subject:"), std::string::npos) << so;
  EXPECT_EQ(verify(dns, so).signatures.at(0).res, dkim::result::pass);
  EXPECT_EQ(verify(dns, added + so).signatures.at(0).res, dkim::result::fail);
  EXPECT_EQ(verify(dns, added + sp).signatures.at(0).res, dkim::result::pass);
  // Adding an unsigned header never matters.
  EXPECT_EQ(verify(dns, "X-Extra: 1\r\n" + so).signatures.at(0).res, dkim::result::pass);
}

TEST(dkim_verify, body_length_limit) {
  map_resolver dns;
  dns.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(ed_key())});
  auto o = sopts();
  o.body_length = true;
  dkim::signer s(ed_key(), o);
  std::string m = sign(kMessage, s);
  auto v = verify(dns, m);
  ASSERT_TRUE(v.signatures.at(0).body_length);
  EXPECT_EQ(v.signatures.at(0).res, dkim::result::pass);
  // Content appended after l= bytes is not covered.
  EXPECT_EQ(verify(dns, m + "appended\r\n").signatures.at(0).res, dkim::result::pass);
  // A body shorter than l=.
  auto t = verify(dns, replace(m, "  this is a test.  \r\n", ""));
  EXPECT_EQ(t.signatures.at(0).res, dkim::result::fail);
  EXPECT_EQ(t.signatures.at(0).reason, "l= is longer than the body");
}

TEST(dkim_verify, timestamps_and_expiry_with_clock_skew) {
  map_resolver dns;
  dns.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(rsa_key())});
  auto o = sopts();
  o.expire_after = 3600;
  dkim::signer s(rsa_key(), o);
  std::string m = sign(kMessage, s, kNow);
  EXPECT_EQ(verify(dns, m, kNow + 3600 + 200).signatures.at(0).res, dkim::result::pass);
  auto e = verify(dns, m, kNow + 3600 + 400).signatures.at(0);
  EXPECT_EQ(e.res, dkim::result::neutral);
  EXPECT_EQ(e.reason, "signature expired (x=)");
  EXPECT_EQ(verify(dns, m, kNow - 200).signatures.at(0).res, dkim::result::pass);
  auto f = verify(dns, m, kNow - 400).signatures.at(0);
  EXPECT_EQ(f.res, dkim::result::neutral);
  EXPECT_EQ(f.timestamp, kNow);
  EXPECT_EQ(f.expiration, kNow + 3600);
  // x= before t= is malformed.
  auto x =
      verify(dns, replace(m, "x=" + std::to_string(kNow + 3600), "x=" + std::to_string(kNow - 1)));
  EXPECT_EQ(x.signatures.at(0).res, dkim::result::permerror);
}

TEST(dkim_verify, key_record_paths) {
  dkim::signer s(rsa_key(), sopts());
  std::string m = sign(kMessage, s);
  const std::string rec = dkim::dns_record_for(rsa_key());
  const std::string p = rec.substr(rec.find("p="));
  struct kcase {
    std::string record;
    dkim::result res;
    std::string reason_part;
  };
  for (const kcase& k : {
           kcase{"v=DKIM1; k=rsa; " + p, dkim::result::pass, "verified"},
           kcase{p, dkim::result::pass, "verified"},  // every other tag is optional
           kcase{"v=DKIM1; h=sha256; s=email; " + p, dkim::result::pass, "verified"},
           kcase{"v=DKIM1; s=*; n=notes; t=x; " + p, dkim::result::pass, "verified"},
           kcase{"v=DKIM1; p=", dkim::result::permerror, "revoked"},
           kcase{"v=DKIM1; k=rsa", dkim::result::permerror, "no p="},
           kcase{"v=DKIM1; h=sha1; " + p, dkim::result::permerror, "h="},
           kcase{"v=DKIM1; k=ed25519; " + p, dkim::result::permerror, "does not match"},
           kcase{"v=DKIM1; k=dsa; " + p, dkim::result::permerror, "unknown key type"},
           kcase{"v=DKIM1; s=tlsrpt; " + p, dkim::result::permerror, "service"},
           kcase{"v=DKIM2; " + p, dkim::result::permerror, "DKIM1"},
           kcase{"k=rsa; v=DKIM1; " + p, dkim::result::permerror, "first tag"},
           kcase{"v=DKIM1; p=!!!", dkim::result::permerror, "malformed"},
           kcase{"v=DKIM1; p=AAAA", dkim::result::permerror, "malformed RSA"},
           kcase{"this is not a key", dkim::result::permerror, "malformed key record"},
       }) {
    map_resolver dns;
    dns.txt_record("s1._domainkey.example.com", {k.record});
    auto r = verify(dns, m).signatures.at(0);
    EXPECT_EQ(r.res, k.res) << k.record << ": " << r.reason;
    EXPECT_NE(r.reason.find(k.reason_part), std::string::npos) << k.record << ": " << r.reason;
  }
  // Testing flag recorded; a pass stays a pass.
  map_resolver dns;
  dns.txt_record("s1._domainkey.example.com", {"v=DKIM1; t=y; " + p});
  auto r = verify(dns, m).signatures.at(0);
  EXPECT_EQ(r.res, dkim::result::pass);
  EXPECT_TRUE(r.testing);
  // Several records: a non-key TXT beside the key is skipped.
  map_resolver two;
  two.txt_record("s1._domainkey.example.com", {"google-site-verification=x", rec});
  EXPECT_EQ(verify(two, m).signatures.at(0).res, dkim::result::pass);
}

TEST(dkim_verify, t_s_flag_refuses_subdomain_identities) {
  auto o = sopts();
  o.identity = "alice@mail.example.com";
  dkim::signer s(rsa_key(), o);
  std::string m = sign(kMessage, s);
  const std::string rec = dkim::dns_record_for(rsa_key());
  map_resolver dns;
  dns.txt_record("s1._domainkey.example.com", {rec});
  EXPECT_EQ(verify(dns, m).signatures.at(0).res, dkim::result::pass);
  EXPECT_EQ(verify(dns, m).signatures.at(0).identity, "alice@mail.example.com");
  map_resolver strict;
  strict.txt_record("s1._domainkey.example.com", {"v=DKIM1; t=s; " + rec.substr(rec.find("p="))});
  auto r = verify(strict, m).signatures.at(0);
  EXPECT_EQ(r.res, dkim::result::permerror);
  EXPECT_NE(r.reason.find("t=s"), std::string::npos);
}

TEST(dkim_verify, dns_failures) {
  dkim::signer s(rsa_key(), sopts());
  std::string m = sign(kMessage, s);
  map_resolver none;  // NXDOMAIN
  auto r = verify(none, m).signatures.at(0);
  EXPECT_EQ(r.res, dkim::result::permerror);
  EXPECT_NE(r.reason.find("no key"), std::string::npos);
  map_resolver nodata;
  nodata.status("s1._domainkey.example.com", dns_status::nodata);
  EXPECT_EQ(verify(nodata, m).signatures.at(0).res, dkim::result::permerror);
  for (auto st : {dns_status::servfail, dns_status::timeout, dns_status::refused}) {
    map_resolver bad;
    bad.status("s1._domainkey.example.com", st);
    auto t = verify(bad, m).signatures.at(0);
    EXPECT_EQ(t.res, dkim::result::temperror) << to_string(st);
    EXPECT_NE(t.reason.find(std::string(to_string(st))), std::string::npos);
  }
}

TEST(dkim_verify, small_rsa_keys_are_permerror) {
  const std::string small = make_key(EVP_PKEY_RSA, 1024);
  const std::string tiny = make_key(EVP_PKEY_RSA, 768);
  dkim::signer s1024(small, sopts(), 512);
  dkim::signer s768(tiny, sopts(), 512);
  map_resolver dns;
  dns.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(small)});
  EXPECT_EQ(verify(dns, sign(kMessage, s1024)).signatures.at(0).res, dkim::result::pass);
  map_resolver dns2;
  dns2.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(tiny)});
  auto r = verify(dns2, sign(kMessage, s768)).signatures.at(0);
  EXPECT_EQ(r.res, dkim::result::permerror);
  EXPECT_NE(r.reason.find("RFC 8301"), std::string::npos);
  // And the signer refuses them by default (RSA 2048+).
  EXPECT_THROW(dkim::signer(small, sopts()), std::runtime_error);
  EXPECT_THROW(dkim::signer("not a key", sopts()), std::runtime_error);
}

TEST(dkim_verify, malformed_and_unsupported_signatures) {
  map_resolver dns;
  dns.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(rsa_key())});
  dkim::signer s(rsa_key(), sopts());
  const std::string m = sign(kMessage, s);
  struct mcase {
    std::string from, to;
    dkim::result res;
    std::string reason_part;
  };
  for (const mcase& c : {
           mcase{"a=rsa-sha256", "a=rsa-sha512", dkim::result::neutral, "unsupported algorithm"},
           mcase{"c=relaxed/relaxed", "c=relaxed/fancy", dkim::result::neutral, "canonicalization"},
           mcase{"v=1;", "v=2;", dkim::result::neutral, "version"},
           mcase{"v=1;", "v=1; q=http/well-known;", dkim::result::neutral, "query method"},
           // q=dns/txt is accepted (the change itself then breaks the signature)
           mcase{"v=1;", "v=1; q=dns/txt;", dkim::result::fail, "did not verify"},
           mcase{"v=1;", "", dkim::result::permerror, "missing tag v="},
           mcase{"bh=", "xh=", dkim::result::permerror, "missing tag bh="},
           mcase{"h=From:", "h=", dkim::result::fail, "did not verify"},  // From still there
           mcase{"h=From:From:", "h=", dkim::result::permerror, "From is not signed"},
           mcase{"v=1;", "v=1; i=@other.example;", dkim::result::permerror, "i= domain"},
           mcase{"v=1;", "v=1; i=alice@example.com;", dkim::result::fail, "did not verify"},
           mcase{"v=1;", "v=1; l=x;", dkim::result::permerror, "l="},
           mcase{"v=1;", "v=1; v=1;", dkim::result::permerror, "tag list"},
           mcase{"bh=", "bh=%%%", dkim::result::permerror, "bh="},
           mcase{"d=example.com", "d=exa mple.com", dkim::result::permerror, "d="},
       }) {
    auto r = verify(dns, replace(m, c.from, c.to)).signatures.at(0);
    EXPECT_EQ(r.res, c.res) << c.from << " → " << c.to << ": " << r.reason;
    EXPECT_NE(r.reason.find(c.reason_part), std::string::npos) << c.to << ": " << r.reason;
  }
}

TEST(dkim_verify, several_signatures_each_reported_and_limited) {
  map_resolver dns;
  dns.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(rsa_key())});
  dns.txt_record("ed._domainkey.example.org", {dkim::dns_record_for(ed_key())});
  dkim::signer rsa(rsa_key(), sopts());
  auto eo = sopts(dkim::canon::simple, dkim::canon::simple);
  eo.domain = "example.org";
  eo.selector = "ed";
  dkim::signer ed(ed_key(), eo);
  // The second signer signs the message carrying the first signature (as a relay would).
  std::string once = sign(kMessage, rsa);
  std::string twice = sign(once, ed);
  auto v = verify(dns, twice);
  ASSERT_EQ(v.signatures.size(), 2u);
  EXPECT_EQ(v.signatures[0].domain, "example.org");
  EXPECT_EQ(v.signatures[0].res, dkim::result::pass) << v.signatures[0].reason;
  EXPECT_EQ(v.signatures[1].domain, "example.com");
  EXPECT_EQ(v.signatures[1].res, dkim::result::pass) << v.signatures[1].reason;
  // One bad key: each signature keeps its own result.
  map_resolver half;
  half.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(rsa_key())});
  half.status("ed._domainkey.example.org", dns_status::servfail);
  auto h = verify(half, twice);
  EXPECT_EQ(h.signatures[0].res, dkim::result::temperror);
  EXPECT_EQ(h.signatures[1].res, dkim::result::pass);
  // The limit: only the first (topmost) is evaluated.
  auto l = verify(dns, twice, kNow, 1);
  EXPECT_EQ(l.signatures.size(), 1u);
  EXPECT_EQ(l.skipped, 1u);
}

// Answers after a short timer, counting how many lookups are in flight at once.
class slow_resolver final : public resolver {
 public:
  explicit slow_resolver(map_resolver& z) : zone_(z) {}
  int in_flight = 0, max_in_flight = 0;
  boost::asio::awaitable<dns_answer> txt(std::string name) override {
    max_in_flight = std::max(max_in_flight, ++in_flight);
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor,
                                std::chrono::milliseconds(20));
    co_await t.async_wait(boost::asio::use_awaitable);
    --in_flight;
    co_return co_await zone_.txt(std::move(name));
  }
  boost::asio::awaitable<dns_answer> a(std::string) override { co_return dns_answer{}; }
  boost::asio::awaitable<dns_answer> aaaa(std::string) override { co_return dns_answer{}; }
  boost::asio::awaitable<dns_answer> ptr(std::string) override { co_return dns_answer{}; }
  boost::asio::awaitable<std::pair<dns_answer, std::vector<mx_record>>> mx(std::string) override {
    co_return std::make_pair(dns_answer{}, std::vector<mx_record>{});
  }

 private:
  map_resolver& zone_;
};

TEST(dkim_verify, key_lookups_of_several_signatures_run_concurrently) {
  map_resolver zone;
  zone.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(rsa_key())});
  zone.txt_record("ed._domainkey.example.org", {dkim::dns_record_for(ed_key())});
  dkim::signer rsa(rsa_key(), sopts());
  auto eo = sopts();
  eo.domain = "example.org";
  eo.selector = "ed";
  dkim::signer ed(ed_key(), eo);
  std::string m = sign(sign(kMessage, rsa), ed);
  auto slow = std::make_shared<slow_resolver>(zone);
  dkim::verify_options o;
  o.now = kNow;
  auto v = run(dkim::verify(slow, message_body::from_string(m), o));
  ASSERT_EQ(v.signatures.size(), 2u);
  EXPECT_EQ(v.signatures[0].res, dkim::result::pass);
  EXPECT_EQ(v.signatures[1].res, dkim::result::pass);
  EXPECT_EQ(slow->max_in_flight, 2);
}

// Answers from a zone and records every name asked.
class recording_resolver final : public resolver {
 public:
  explicit recording_resolver(map_resolver& z) : zone_(z) {}
  std::vector<std::string> asked;
  boost::asio::awaitable<dns_answer> txt(std::string name) override {
    asked.push_back(name);
    co_return co_await zone_.txt(std::move(name));
  }
  boost::asio::awaitable<dns_answer> a(std::string) override { co_return dns_answer{}; }
  boost::asio::awaitable<dns_answer> aaaa(std::string) override { co_return dns_answer{}; }
  boost::asio::awaitable<dns_answer> ptr(std::string) override { co_return dns_answer{}; }
  boost::asio::awaitable<std::pair<dns_answer, std::vector<mx_record>>> mx(std::string) override {
    co_return std::make_pair(dns_answer{}, std::vector<mx_record>{});
  }

 private:
  map_resolver& zone_;
};

TEST(dkim_verify, key_names_are_the_lookups_verify_makes) {
  map_resolver zone;
  zone.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(rsa_key())});
  zone.txt_record("ed._domainkey.example.org", {dkim::dns_record_for(ed_key())});
  dkim::signer rsa(rsa_key(), sopts());
  auto eo = sopts();
  eo.domain = "example.org";
  eo.selector = "ed";
  dkim::signer ed(ed_key(), eo);
  // Top first: a malformed signature (no key lookup), the Ed25519 one, the RSA one; and an
  // expired signature at the bottom (neutral without a lookup).
  std::string m =
      "DKIM-Signature: v=1; a=rsa-sha256; d=bad.example\r\n" + sign(sign(kMessage, rsa), ed);
  m.insert(m.find("\r\n\r\n") + 2,
           "DKIM-Signature: v=1; a=rsa-sha256; d=old.example; s=s1; h=from; bh=AAAA; b=AAAA;"
           " t=1000; x=2000\r\n");
  auto body = message_body::from_string(m);
  using names = std::vector<std::string>;
  for (unsigned max : {1u, 2u, 3u, 8u}) {
    dkim::verify_options o;
    o.now = kNow;
    o.max_signatures = max;
    auto rec = std::make_shared<recording_resolver>(zone);
    auto v = run(dkim::verify(rec, body, o));
    names expected = dkim::key_names(*body, o);
    names asked = rec->asked;
    std::sort(expected.begin(), expected.end());
    std::sort(asked.begin(), asked.end());
    EXPECT_EQ(expected, asked) << "max_signatures " << max;
    if (max == 8) {
      EXPECT_EQ(dkim::key_names(*body, o),
                (names{"ed._domainkey.example.org", "s1._domainkey.example.com"}));
      ASSERT_EQ(v.signatures.size(), 4u);
      EXPECT_EQ(v.signatures[3].res, dkim::result::neutral) << v.signatures[3].reason;
    }
  }
}

TEST(dkim_sign, signs_the_output_with_edits_applied) {
  dkim::signer s(rsa_key(), sopts());
  message m;
  m.raw = message_body::from_string(kMessage);
  m.set_header("Subject", "rewritten by a stage");
  m.append_header("Cc", "carol@example.net");
  std::string error;
  auto f = s.sign(m, kNow, error);
  ASSERT_TRUE(f) << error;
  EXPECT_EQ(f->h, "From:From:To:Subject:Subject:Date:Message-ID");  // Cc is not listed
  m.prepend_header("DKIM-Signature", f->value);
  map_resolver dns;
  dns.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(rsa_key())});
  std::string out = m.output();
  EXPECT_EQ(verify(dns, out).signatures.at(0).res, dkim::result::pass) << out;
  // A message without From is not signed.
  message nofrom;
  nofrom.raw = message_body::from_string("Subject: x\r\n\r\nbody\r\n");
  EXPECT_FALSE(s.sign(nofrom, kNow, error));
  EXPECT_NE(error.find("From"), std::string::npos);
}

TEST(dkim_sign, long_header_lists_fold_and_still_verify_simple) {
  auto o = sopts(dkim::canon::simple, dkim::canon::simple);
  o.headers = {"From",
               "To",
               "Subject",
               "Date",
               "Message-ID",
               "X-Long-Header-Name-One",
               "X-Long-Header-Name-Two",
               "X-Long-Header-Name-Three",
               "X-Long-Header-Name-Four"};
  o.oversign = o.headers;
  o.expire_after = 86400;
  o.body_length = true;
  o.identity = "@example.com";
  for (const std::string* key : {&rsa_key(), &ed_key()}) {
    dkim::signer s(*key, o);
    map_resolver dns;
    dns.txt_record("s1._domainkey.example.com", {dkim::dns_record_for(*key)});
    std::string m = sign(kMessage, s);
    // The kernel folded the field (before a space that is there, RFC 5322 §2.2.3).
    const auto field = m.find("DKIM-Signature:");
    ASSERT_NE(field, std::string::npos) << m;
    EXPECT_EQ(m.at(m.find("\r\n", field) + 2), ' ') << m;
    EXPECT_EQ(verify(dns, m).signatures.at(0).res, dkim::result::pass) << m;
  }
}

// ------------------------------------------------------------------ DMARC

boost::json::object auth_json(const std::string& text) {
  return boost::json::parse(text).as_object();
}

dmarc::outcome evaluate(map_resolver& dns, std::vector<std::string> from, const std::string& auth,
                        unsigned sample = 0) {
  static auto psl = std::make_shared<const dmarc::suffix_list>();
  auto shared = std::shared_ptr<map_resolver>(&dns, [](map_resolver*) {});
  return run(dmarc::evaluate(shared, psl, std::move(from), auth_json(auth), sample));
}

TEST(dmarc, organizational_domains_from_the_public_suffix_list) {
  dmarc::suffix_list psl;
  EXPECT_EQ(psl.organizational_domain("mail.example.com"), "example.com");
  EXPECT_EQ(psl.organizational_domain("a.b.example.co.uk"), "example.co.uk");
  EXPECT_EQ(psl.organizational_domain("Example.COM."), "example.com");
  EXPECT_EQ(psl.organizational_domain("co.uk"), "co.uk");
}

TEST(dmarc, record_parsing) {
  std::string err;
  auto r = dmarc::parse_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=20", err);
  ASSERT_TRUE(r) << err;
  EXPECT_EQ(r->p, dmarc::policy::reject);
  EXPECT_EQ(r->sp, dmarc::policy::quarantine);
  EXPECT_TRUE(r->strict_dkim);
  EXPECT_FALSE(r->strict_spf);
  EXPECT_EQ(r->pct, 20u);
  // Bad optional values fall back to defaults.
  r = dmarc::parse_record("v=DMARC1; p=none; adkim=x; pct=500; sp=bogus", err);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->strict_dkim);
  EXPECT_EQ(r->pct, 100u);
  EXPECT_FALSE(r->sp);
  // No valid p=: an error, unless rua= is there (then p=none).
  EXPECT_FALSE(dmarc::parse_record("v=DMARC1; p=bogus", err));
  r = dmarc::parse_record("v=DMARC1; rua=mailto:d@example.com", err);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->p, dmarc::policy::none);
  EXPECT_FALSE(dmarc::parse_record("p=reject; v=DMARC1", err));
}

TEST(dmarc, from_domains) {
  using v = std::vector<std::string>;
  EXPECT_EQ(dmarc::from_domains(" Alice <alice@Example.COM>"), v{"example.com"});
  EXPECT_EQ(dmarc::from_domains(" alice@example.com (Alice <x@evil.example>)"), v{"example.com"});
  EXPECT_EQ(dmarc::from_domains(" \"Bob, <b@evil.example>\" <bob@example.org>"), v{"example.org"});
  EXPECT_EQ(dmarc::from_domains(" a@one.example, B <b@two.example>"),
            (v{"one.example", "two.example"}));
  EXPECT_EQ(dmarc::from_domains(" team: a@one.example, b@two.example;"),
            (v{"one.example", "two.example"}));
  EXPECT_EQ(dmarc::from_domains(" \"quoted@local\"@example.net"), v{"example.net"});
  EXPECT_TRUE(dmarc::from_domains(" undisclosed").empty());
  EXPECT_TRUE(dmarc::from_domains(" a@[192.0.2.1]").empty());
  EXPECT_TRUE(dmarc::from_domains(" a@exa\r\n mple.com").empty());
  EXPECT_EQ(dmarc::from_domains(" Alice\r\n <alice@example.com>"), v{"example.com"});
  // RFC 8616: an internationalized domain by its A-labels (lower case, UTS #46 mapping).
  EXPECT_EQ(dmarc::from_domains(" =?utf-8?q?x?= <x@p\xc3\xbc.test>"), v{"xn--p-eha.test"});
  EXPECT_EQ(dmarc::from_domains(" x@B\xc3\xbc"
                                "CHER.example"),
            v{"xn--bcher-kva.example"});
  EXPECT_TRUE(dmarc::from_domains(" x@\xff\xfe"
                                  ".example")
                  .empty());  // not UTF-8
}

TEST(dmarc, policy_names_for_prefetch_are_the_first_lookups) {
  using v = std::vector<std::string>;
  EXPECT_EQ(dmarc::policy_names({" a@One.example, b@two.example, c@one.example"}, 4),
            (v{"_dmarc.one.example", "_dmarc.two.example"}));
  EXPECT_EQ(dmarc::policy_names({" a@one.example, b@two.example"}, 1), v{"_dmarc.one.example"});
  EXPECT_TRUE(dmarc::policy_names({}, 4).empty());
  EXPECT_TRUE(dmarc::policy_names({" a@one.example", " b@two.example"}, 4).empty());
  EXPECT_TRUE(dmarc::policy_names({" undisclosed"}, 4).empty());
}

const char* kSpfPass = R"({"spf":{"result":"pass","domain":"bounce.example.com"}})";
const char* kDkimPass = R"({"dkim":[{"result":"pass","domain":"mail.example.com"}]})";
const char* kNothing = R"({"spf":{"result":"fail","domain":"example.com"},
                           "dkim":[{"result":"fail","domain":"example.com"}]})";

TEST(dmarc, alignment_relaxed_and_strict) {
  map_resolver dns;
  dns.txt_record("_dmarc.example.com", {"v=DMARC1; p=reject"});
  auto o = evaluate(dns, {" a@example.com"}, kDkimPass);
  EXPECT_EQ(o.res, dmarc::result::pass) << o.reason;
  EXPECT_TRUE(o.dkim_aligned);
  EXPECT_EQ(o.dkim_domain, "mail.example.com");
  o = evaluate(dns, {" a@example.com"}, kSpfPass);
  EXPECT_EQ(o.res, dmarc::result::pass);
  EXPECT_TRUE(o.spf_aligned);
  map_resolver strict;
  strict.txt_record("_dmarc.example.com", {"v=DMARC1; p=reject; adkim=s; aspf=s"});
  o = evaluate(strict, {" a@example.com"}, kDkimPass);
  EXPECT_EQ(o.res, dmarc::result::fail);
  EXPECT_EQ(o.applied, dmarc::policy::reject);
  EXPECT_EQ(evaluate(strict, {" a@example.com"}, kSpfPass).res, dmarc::result::fail);
  EXPECT_EQ(evaluate(strict, {" a@mail.example.com"}, kDkimPass).res, dmarc::result::pass);
  // A pass of an unrelated domain does not align.
  EXPECT_EQ(
      evaluate(dns, {" a@example.com"}, R"({"dkim":[{"result":"pass","domain":"example.net"}]})")
          .res,
      dmarc::result::fail);
  o = evaluate(dns, {" a@example.com"}, kNothing);
  EXPECT_EQ(o.res, dmarc::result::fail);
  EXPECT_NE(o.reason.find("p=reject dis=reject"), std::string::npos) << o.reason;
}

TEST(dmarc, discovery_at_the_organizational_domain_and_sp) {
  map_resolver dns;
  dns.txt_record("_dmarc.example.com", {"v=DMARC1; p=none; sp=reject"});
  auto o = evaluate(dns, {" a@news.example.com"}, kNothing);
  EXPECT_EQ(o.res, dmarc::result::fail);
  EXPECT_EQ(o.record_domain, "example.com");
  EXPECT_EQ(o.requested, dmarc::policy::reject);  // sp= for a subdomain
  o = evaluate(dns, {" a@example.com"}, kNothing);
  EXPECT_EQ(o.requested, dmarc::policy::none);  // p= at the domain itself
  // A record at the subdomain itself wins over the organizational one.
  dns.txt_record("_dmarc.news.example.com", {"v=DMARC1; p=quarantine"});
  o = evaluate(dns, {" a@news.example.com"}, kNothing);
  EXPECT_EQ(o.record_domain, "news.example.com");
  EXPECT_EQ(o.requested, dmarc::policy::quarantine);
}

TEST(dmarc, none_temperror_permerror) {
  map_resolver empty;
  auto o = evaluate(empty, {" a@example.com"}, kDkimPass);
  EXPECT_EQ(o.res, dmarc::result::none);
  EXPECT_EQ(empty.queries, 1u);  // example.com is its own organizational domain
  map_resolver other;
  other.txt_record("_dmarc.example.com", {"v=spf1 -all", "something else"});
  EXPECT_EQ(evaluate(other, {" a@example.com"}, kDkimPass).res, dmarc::result::none);
  map_resolver two;
  two.txt_record("_dmarc.example.com", {"v=DMARC1; p=reject", "v=DMARC1; p=none"});
  o = evaluate(two, {" a@example.com"}, kNothing);
  EXPECT_EQ(o.res, dmarc::result::none);
  EXPECT_NE(o.reason.find("several"), std::string::npos);
  map_resolver fail;
  fail.status("_dmarc.example.com", dns_status::servfail);
  EXPECT_EQ(evaluate(fail, {" a@example.com"}, kDkimPass).res, dmarc::result::temperror);
  map_resolver sub_fail;  // the organizational lookup failing is a temperror too
  sub_fail.status("_dmarc.example.com", dns_status::timeout);
  EXPECT_EQ(evaluate(sub_fail, {" a@x.example.com"}, kDkimPass).res, dmarc::result::temperror);
  map_resolver bad;
  bad.txt_record("_dmarc.example.com", {"v=DMARC1; p=sometimes"});
  EXPECT_EQ(evaluate(bad, {" a@example.com"}, kDkimPass).res, dmarc::result::permerror);
  map_resolver dns;
  dns.txt_record("_dmarc.example.com", {"v=DMARC1; p=reject"});
  EXPECT_EQ(evaluate(dns, {}, kDkimPass).res, dmarc::result::permerror);
  o = evaluate(dns, {" a@example.com", " b@example.com"}, kDkimPass);
  EXPECT_EQ(o.res, dmarc::result::permerror);
  EXPECT_EQ(o.reason, "several From fields");
  EXPECT_EQ(evaluate(dns, {" undisclosed-recipients:;"}, kDkimPass).res, dmarc::result::permerror);
}

TEST(dmarc, several_addresses_take_the_strictest_failure) {
  map_resolver dns;
  dns.txt_record("_dmarc.example.com", {"v=DMARC1; p=quarantine"});
  dns.txt_record("_dmarc.example.org", {"v=DMARC1; p=reject"});
  auto o = evaluate(dns, {" a@example.com, b@example.org"}, kDkimPass);
  EXPECT_EQ(o.res, dmarc::result::fail);  // example.com passes, example.org fails
  EXPECT_EQ(o.from_domain, "example.org");
  EXPECT_EQ(o.applied, dmarc::policy::reject);
  EXPECT_EQ(o.domains.size(), 2u);
  // Same domain twice: evaluated once.
  o = evaluate(dns, {" a@example.com, b@example.com"}, kDkimPass);
  EXPECT_EQ(o.res, dmarc::result::pass);
  EXPECT_EQ(o.domains.size(), 1u);
}

TEST(dmarc, pct_sampling) {
  map_resolver dns;
  dns.txt_record("_dmarc.example.com", {"v=DMARC1; p=reject; pct=30"});
  unsigned applied = 0;
  for (unsigned sample = 0; sample < 100; ++sample) {
    auto o = evaluate(dns, {" a@example.com"}, kNothing, sample);
    ASSERT_EQ(o.res, dmarc::result::fail);
    if (o.applied == dmarc::policy::reject) {
      ++applied;
      EXPECT_FALSE(o.sampled_out);
    } else {
      EXPECT_EQ(o.applied, dmarc::policy::quarantine);  // the next weaker policy
      EXPECT_TRUE(o.sampled_out);
    }
  }
  EXPECT_EQ(applied, 30u);
  map_resolver q;
  q.txt_record("_dmarc.example.com", {"v=DMARC1; p=quarantine; pct=0"});
  EXPECT_EQ(evaluate(q, {" a@example.com"}, kNothing, 0).applied, dmarc::policy::none);
}

}  // namespace
