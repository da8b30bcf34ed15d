// dkim.cpp — DKIM verification and signing; see dkim.hpp.
#include "dkim.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <stdexcept>
#include <tuple>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "sluice/base64.hpp"
#include "sluice/host.hpp"
#include "sluice/text.hpp"

namespace sluice::auth::dkim {
namespace {

bool wsp(char c) {
  return c == ' ' || c == '\t';
}
bool fws(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trim_fws(std::string_view s) {
  while (!s.empty() && fws(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && fws(s.back()))
    s.remove_suffix(1);
  return s;
}

std::string strip_fws(std::string_view s) {
  std::string r;
  for (char c : s)
    if (!fws(c)) r += c;
  return r;
}

std::vector<std::string> split_list(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  for (;;) {
    std::size_t e = s.find(sep, pos);
    out.emplace_back(trim_fws(s.substr(pos, e == std::string_view::npos ? s.npos : e - pos)));
    if (e == std::string_view::npos) break;
    pos = e + 1;
  }
  return out;
}

// A base64 tag value (b=, bh=, p=): RFC 6376 §3.5 lets FWS fold it anywhere and its ABNF
// takes zero to two trailing '=' without checking that they fit the data.
std::optional<std::string> decode_tag_base64(std::string_view v) {
  return sluice::base64_decode(strip_fws(v), base64_padding::unchecked);
}

// A DNS name as DKIM uses it for d= and s= (RFC 6376 §3.5: sub-domain; underscores are
// accepted as real-world selectors use them). Lower-cases it.
bool valid_name(std::string& s) {
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s.empty() || s.size() > 253) return false;
  for (const auto& label : split_list(s, '.')) {
    if (label.empty() || label.size() > 63) return false;
    for (char c : label) {
      auto u = static_cast<unsigned char>(c);
      if (!(std::isalnum(u) || c == '-' || c == '_' || u >= 0x80)) return false;
    }
  }
  s = to_lower_ascii(s);
  return true;
}

std::optional<std::uint64_t> parse_decimal(std::string_view s, std::size_t max_digits) {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    // l= may have up to 76 digits: saturate, a length that large never fits a body.
    if (v > (std::numeric_limits<std::uint64_t>::max() - 9) / 10) {
      v = std::numeric_limits<std::uint64_t>::max();
    } else {
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
  }
  return v;
}

struct md_ctx {
  EVP_MD_CTX* p = EVP_MD_CTX_new();
  ~md_ctx() { EVP_MD_CTX_free(p); }
  md_ctx(const md_ctx&) = delete;
  md_ctx& operator=(const md_ctx&) = delete;
  md_ctx() = default;
};

struct pkey_ptr {
  EVP_PKEY* p = nullptr;
  explicit pkey_ptr(EVP_PKEY* k = nullptr) : p(k) {}
  ~pkey_ptr() { EVP_PKEY_free(p); }
  pkey_ptr(pkey_ptr&& o) noexcept : p(std::exchange(o.p, nullptr)) {}
  pkey_ptr& operator=(pkey_ptr&& o) noexcept {
    std::swap(p, o.p);
    return *this;
  }
};

std::string digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), out, &n, md, nullptr);
  return std::string(reinterpret_cast<char*>(out), n);
}

enum class key_type { rsa, ed25519 };
enum class hash_alg { sha1, sha256 };

const EVP_MD* md_of(hash_alg h) {
  return h == hash_alg::sha1 ? EVP_sha1() : EVP_sha256();
}

// Verifies `sig` over `data` (the header hash input) per the algorithm: RSASSA-PKCS1-v1_5
// with the hash, or Ed25519 over the SHA-256 digest of the data (RFC 8463 §3).
bool verify_signature(EVP_PKEY* key, key_type kt, hash_alg h, std::string_view data,
                      std::string_view sig) {
  md_ctx ctx;
  if (!ctx.p) return false;
  const auto* s = reinterpret_cast<const unsigned char*>(sig.data());
  if (kt == key_type::ed25519) {
    std::string d = digest(EVP_sha256(), data);
    if (EVP_DigestVerifyInit(ctx.p, nullptr, nullptr, nullptr, key) != 1) return false;
    return EVP_DigestVerify(ctx.p, s, sig.size(), reinterpret_cast<const unsigned char*>(d.data()),
                            d.size()) == 1;
  }
  if (EVP_DigestVerifyInit(ctx.p, nullptr, md_of(h), nullptr, key) != 1) return false;
  if (EVP_DigestVerifyUpdate(ctx.p, data.data(), data.size()) != 1) return false;
  return EVP_DigestVerifyFinal(ctx.p, s, sig.size()) == 1;
}

// Picks the header instances named by h= bottom-up (§5.4.2); a name with no instance left
// contributes nothing (that is what makes over-signing work). `skip` is the index of the
// signature field itself, never selected.
std::string signed_headers_data(const std::vector<header_field>& fields,
                                const std::vector<std::string>& names, canon c, std::size_t skip) {
  std::string data;
  std::map<std::string, std::size_t> next;  // lower name → fields searched below this index
  for (const auto& n : names) {
    std::string key = to_lower_ascii(n);
    auto it = next.try_emplace(key, fields.size()).first;
    std::size_t i = it->second;
    bool found = false;
    while (i > 0) {
      --i;
      if (i != skip && iequals(fields[i].name, key)) {
        found = true;
        break;
      }
    }
    it->second = found ? i : 0;
    if (found) data += canon_header(fields[i], c);
  }
  return data;
}

// The field text with the value of its b= tag removed (§3.7: "treated as the empty string").
std::string without_b_value(const std::string& text) {
  std::size_t colon = text.find(':');
  if (colon == std::string::npos) return text;
  std::size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;
  if (end > 0 && text[end - 1] == '\r') --end;
  std::size_t pos = colon + 1;
  while (pos < end) {
    std::size_t semi = text.find(';', pos);
    if (semi == std::string::npos || semi > end) semi = end;
    std::size_t eq = text.find('=', pos);
    if (eq != std::string::npos && eq < semi &&
        trim_fws(std::string_view(text).substr(pos, eq - pos)) == "b") {
      return text.substr(0, eq + 1) + text.substr(semi);
    }
    pos = semi + 1;
  }
  return text;
}

struct body_spec {
  canon c;
  hash_alg h;
  std::optional<std::uint64_t> limit;
  bool operator<(const body_spec& o) const {
    return std::tie(c, h, limit) < std::tie(o.c, o.h, o.limit);
  }
};

struct body_outcome {
  std::string hash;
  std::uint64_t length = 0;  // canonical length of the whole body
};

// One pass over the body (after the header block) for every distinct spec.
std::map<body_spec, body_outcome> hash_bodies(const message_body& raw, std::uint64_t body_start,
                                              const std::vector<body_spec>& specs,
                                              std::error_code& ec) {
  struct running {
    md_ctx ctx;
    std::unique_ptr<body_canonicalizer> canon;
  };
  std::map<body_spec, std::unique_ptr<running>> run;
  for (const auto& s : specs) {
    if (run.count(s)) continue;
    auto r = std::make_unique<running>();
    EVP_DigestInit_ex(r->ctx.p, md_of(s.h), nullptr);
    EVP_MD_CTX* ctx = r->ctx.p;
    r->canon = std::make_unique<body_canonicalizer>(
        s.c, [ctx](std::string_view b) { EVP_DigestUpdate(ctx, b.data(), b.size()); }, s.limit);
    run.emplace(s, std::move(r));
  }
  std::uint64_t seen = 0;
  // Streams the stored body: a file-backed body is read in 64 KB chunks, never copied whole.
  ec = raw.for_each_chunk([&](std::string_view chunk) {
    std::uint64_t start = seen;
    seen += chunk.size();
    if (seen <= body_start) return true;
    if (start < body_start) chunk.remove_prefix(static_cast<std::size_t>(body_start - start));
    for (auto& [spec, r] : run)
      r->canon->feed(chunk);
    return true;
  });
  std::map<body_spec, body_outcome> out;
  for (auto& [spec, r] : run) {
    r->canon->finish();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(r->ctx.p, md, &n);
    out[spec] = {std::string(reinterpret_cast<char*>(md), n), r->canon->length()};
  }
  return out;
}

// A parsed DKIM-Signature that is still being evaluated.
struct candidate {
  std::size_t field = 0;
  signature_result out;
  bool done = false;  // out.res is final
  key_type kt = key_type::rsa;
  hash_alg h = hash_alg::sha256;
  canon hc = canon::simple, bc = canon::simple;
  std::vector<std::string> names;
  std::string bh, b;
  pkey_ptr key;
};

void finish(candidate& c, result r, std::string reason) {
  c.out.res = r;
  c.out.reason = std::move(reason);
  c.done = true;
}

std::optional<canon> parse_canon(std::string_view s) {
  if (s == "simple") return canon::simple;
  if (s == "relaxed") return canon::relaxed;
  return std::nullopt;
}

// §6.1.1: validate the signature field; sets c.done on a result.
void parse_signature(candidate& c, const header_field& f, const verify_options& opt) {
  std::size_t colon = f.text.find(':');
  auto tags = parse_tag_list(std::string_view(f.text).substr(colon + 1));
  if (!tags) return finish(c, result::permerror, "malformed signature tag list");
  std::map<std::string, std::string> t(tags->begin(), tags->end());
  auto get = [&](const char* k) -> const std::string* {
    auto it = t.find(k);
    return it == t.end() ? nullptr : &it->second;
  };
  if (auto* d = get("d")) c.out.domain = to_lower_ascii(*d);
  if (auto* s = get("s")) c.out.selector = to_lower_ascii(*s);
  if (auto* a = get("a")) c.out.algorithm = to_lower_ascii(*a);
  if (auto* b = get("b")) c.out.b_prefix = strip_fws(*b).substr(0, 12);
  for (const char* req : {"v", "a", "b", "bh", "d", "h", "s"}) {
    if (!get(req)) return finish(c, result::permerror, std::string("missing tag ") + req + "=");
  }
  if (*get("v") != "1") return finish(c, result::neutral, "unsupported version v=" + *get("v"));
  const std::string& a = c.out.algorithm;
  if (a == "rsa-sha256") {
    c.kt = key_type::rsa, c.h = hash_alg::sha256;
  } else if (a == "rsa-sha1") {
    c.kt = key_type::rsa, c.h = hash_alg::sha1;
  } else if (a == "ed25519-sha256") {
    c.kt = key_type::ed25519, c.h = hash_alg::sha256;
  } else {
    return finish(c, result::neutral, "unsupported algorithm a=" + a);
  }
  std::string cv = to_lower_ascii(get("c") ? strip_fws(*get("c")) : std::string("simple/simple"));
  std::size_t slash = cv.find('/');
  auto hc = parse_canon(cv.substr(0, slash));
  auto bc = slash == std::string::npos ? std::optional<canon>(canon::simple)
                                       : parse_canon(cv.substr(slash + 1));
  if (!hc || !bc) return finish(c, result::neutral, "unsupported canonicalization c=" + cv);
  c.hc = *hc, c.bc = *bc;
  c.out.canonicalization = std::string(c.hc == canon::simple ? "simple" : "relaxed") + "/" +
                           (c.bc == canon::simple ? "simple" : "relaxed");
  if (auto* q = get("q")) {
    bool dns_txt = false;
    for (const auto& m : split_list(*q, ':'))
      if (iequals(m, "dns/txt")) dns_txt = true;
    if (!dns_txt) return finish(c, result::neutral, "unsupported query method q=" + *q);
  }
  if (!valid_name(c.out.domain)) return finish(c, result::permerror, "invalid d= domain");
  if (!valid_name(c.out.selector)) return finish(c, result::permerror, "invalid s= selector");
  if (auto* i = get("i")) {
    std::string id = strip_fws(*i);
    std::size_t at = id.rfind('@');
    if (at == std::string::npos) return finish(c, result::permerror, "i= has no @");
    std::string idom = to_lower_ascii(id.substr(at + 1));
    if (idom != c.out.domain &&
        !(idom.size() > c.out.domain.size() && idom.ends_with("." + c.out.domain))) {
      return finish(c, result::permerror, "i= domain is not d= or a subdomain of it");
    }
    c.out.identity = id;
  } else {
    c.out.identity = "@" + c.out.domain;
  }
  c.names.clear();
  bool from = false;
  for (auto& n : split_list(*get("h"), ':')) {
    if (n.empty()) return finish(c, result::permerror, "empty header name in h=");
    if (iequals(n, "from")) from = true;
    c.names.push_back(n);
  }
  if (!from) return finish(c, result::permerror, "From is not signed (h=)");
  c.out.headers = strip_fws(*get("h"));
  if (auto* l = get("l")) {
    auto v = parse_decimal(*l, 76);
    if (!v) return finish(c, result::permerror, "malformed l=");
    c.out.body_length = *v;
  }
  if (auto* ts = get("t")) {
    auto v = parse_decimal(*ts, 15);
    if (!v) return finish(c, result::permerror, "malformed t=");
    c.out.timestamp = static_cast<std::int64_t>(*v);
  }
  if (auto* xs = get("x")) {
    auto v = parse_decimal(*xs, 15);
    if (!v) return finish(c, result::permerror, "malformed x=");
    c.out.expiration = static_cast<std::int64_t>(*v);
  }
  if (c.out.timestamp && c.out.expiration && *c.out.expiration < *c.out.timestamp) {
    return finish(c, result::permerror, "x= is earlier than t=");
  }
  auto bh = decode_tag_base64(*get("bh"));
  auto b = decode_tag_base64(*get("b"));
  if (!bh || bh->empty()) return finish(c, result::permerror, "malformed bh=");
  if (!b || b->empty()) return finish(c, result::permerror, "malformed b=");
  c.bh = *bh, c.b = *b;
  if (c.out.expiration && *c.out.expiration + opt.clock_skew < opt.now) {
    return finish(c, result::neutral, "signature expired (x=)");
  }
  if (c.out.timestamp && *c.out.timestamp > opt.now + opt.clock_skew) {
    return finish(c, result::neutral, "signature timestamp t= is in the future");
  }
}

// §3.6.1 / §6.1.2: one key record against the signature. Sets c.key or finishes c.
void apply_key_record(candidate& c, const std::string& record, unsigned min_rsa_bits) {
  auto tags = parse_tag_list(record);
  if (!tags) return finish(c, result::permerror, "malformed key record");
  std::map<std::string, std::string> t;
  for (std::size_t i = 0; i < tags->size(); ++i) {
    const auto& [k, v] = (*tags)[i];
    if (k == "v" && (i != 0 || v != "DKIM1")) {
      return finish(c, result::permerror, "key record v= is not DKIM1 as its first tag");
    }
    t[k] = v;
  }
  if (auto it = t.find("h"); it != t.end()) {
    bool ok = false;
    for (const auto& h : split_list(it->second, ':'))
      if (iequals(h, c.h == hash_alg::sha1 ? "sha1" : "sha256")) ok = true;
    if (!ok) return finish(c, result::permerror, "key h= does not allow the signature's hash");
  }
  std::string k = t.count("k") ? to_lower_ascii(strip_fws(t["k"])) : "rsa";
  if (k != "rsa" && k != "ed25519") return finish(c, result::permerror, "unknown key type k=" + k);
  if ((k == "rsa") != (c.kt == key_type::rsa)) {
    return finish(c, result::permerror, "key type k=" + k + " does not match a=");
  }
  if (auto it = t.find("s"); it != t.end()) {
    bool ok = false;
    for (const auto& s : split_list(it->second, ':'))
      if (s == "*" || iequals(s, "email")) ok = true;
    if (!ok) return finish(c, result::permerror, "key service type s= excludes email");
  }
  if (auto it = t.find("t"); it != t.end()) {
    for (const auto& f : split_list(it->second, ':')) {
      if (iequals(f, "y")) c.out.testing = true;
      if (iequals(f, "s")) {
        std::string id = c.out.identity;
        std::string idom = to_lower_ascii(id.substr(id.rfind('@') + 1));
        if (idom != c.out.domain) {
          return finish(c, result::permerror, "key t=s forbids the subdomain in i=");
        }
      }
    }
  }
  auto p = t.find("p");
  if (p == t.end()) return finish(c, result::permerror, "key record has no p=");
  std::string pv = strip_fws(p->second);
  if (pv.empty()) return finish(c, result::permerror, "key revoked (empty p=)");
  auto der = decode_tag_base64(pv);
  if (!der || der->empty()) return finish(c, result::permerror, "malformed key p=");
  const auto* bytes = reinterpret_cast<const unsigned char*>(der->data());
  if (c.kt == key_type::ed25519) {
    if (der->size() != 32) return finish(c, result::permerror, "Ed25519 key is not 32 bytes");
    c.key = pkey_ptr(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes, 32));
    if (!c.key.p) return finish(c, result::permerror, "unusable Ed25519 key");
    c.out.key_bits = 256;
    return;
  }
  const unsigned char* q = bytes;
  c.key = pkey_ptr(d2i_PUBKEY(nullptr, &q, static_cast<long>(der->size())));
  if (!c.key.p) {  // some publish the bare RSAPublicKey (PKCS#1) instead of SPKI
    q = bytes;
    c.key = pkey_ptr(d2i_PublicKey(EVP_PKEY_RSA, nullptr, &q, static_cast<long>(der->size())));
  }
  if (!c.key.p || EVP_PKEY_get_base_id(c.key.p) != EVP_PKEY_RSA) {
    c.key = pkey_ptr();
    return finish(c, result::permerror, "malformed RSA key p=");
  }
  c.out.key_bits = static_cast<unsigned>(EVP_PKEY_get_bits(c.key.p));
  if (c.out.key_bits < min_rsa_bits) {
    c.key = pkey_ptr();
    return finish(c, result::permerror,
                  "RSA key of " + std::to_string(c.out.key_bits) + " bits is too small (RFC 8301)");
  }
}

}  // namespace

std::string_view to_string(result r) noexcept {
  switch (r) {
    case result::none:
      return "none";
    case result::pass:
      return "pass";
    case result::fail:
      return "fail";
    case result::neutral:
      return "neutral";
    case result::policy:
      return "policy";
    case result::temperror:
      return "temperror";
    case result::permerror:
      return "permerror";
  }
  return "permerror";
}

std::optional<std::vector<std::pair<std::string, std::string>>> parse_tag_list(
    std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::string> parts = split_list(text, ';');
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.empty()) {
      if (i + 1 == parts.size() && i > 0) break;  // a trailing ';'
      return std::nullopt;
    }
    std::size_t eq = p.find('=');
    if (eq == std::string::npos) return std::nullopt;
    std::string name(trim_fws(std::string_view(p).substr(0, eq)));
    std::string value(trim_fws(std::string_view(p).substr(eq + 1)));
    if (name.empty() || !std::isalpha(static_cast<unsigned char>(name[0]))) return std::nullopt;
    for (char c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return std::nullopt;
    for (char c : value) {
      auto u = static_cast<unsigned char>(c);
      if (!(fws(c) || (u >= 0x21 && u <= 0x7e))) return std::nullopt;
    }
    for (const auto& [n, v] : out)
      if (n == name) return std::nullopt;  // §3.2: a duplicated tag is an error
    out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

std::vector<header_field> split_header(std::string_view block) {
  std::vector<header_field> fields;
  std::size_t pos = 0;
  while (pos < block.size()) {
    std::size_t eol = block.find('\n', pos);
    std::size_t next = eol == std::string_view::npos ? block.size() : eol + 1;
    std::string_view line = block.substr(pos, next - pos);
    if (line == "\r\n" || line == "\n") break;  // the empty line ending the block
    if ((line[0] == ' ' || line[0] == '\t') && !fields.empty()) {
      fields.back().text.append(line);
    } else {
      std::size_t colon = line.find(':');
      std::string name(colon == std::string_view::npos ? std::string_view{}
                                                       : line.substr(0, colon));
      while (!name.empty() && wsp(name.back()))
        name.pop_back();
      fields.push_back({std::move(name), std::string(line)});
    }
    pos = next;
  }
  return fields;
}

std::string canon_header(const header_field& f, canon c) {
  if (c == canon::simple) {
    std::string r;
    r.reserve(f.text.size() + 4);
    for (std::size_t i = 0; i < f.text.size(); ++i) {
      if (f.text[i] == '\n' && (i == 0 || f.text[i - 1] != '\r')) r += '\r';
      r += f.text[i];
    }
    if (!r.ends_with("\r\n")) r += "\r\n";
    return r;
  }
  std::size_t colon = f.text.find(':');
  std::string r = to_lower_ascii(f.name);
  r += ':';
  std::string_view v =
      colon == std::string::npos ? std::string_view{} : std::string_view(f.text).substr(colon + 1);
  bool space = false;
  bool started = false;
  for (char ch : v) {
    if (ch == '\r' || ch == '\n') continue;  // unfold
    if (wsp(ch)) {
      space = true;
      continue;
    }
    if (space && started) r += ' ';
    space = false;
    started = true;
    r += ch;
  }
  r += "\r\n";
  return r;
}

body_canonicalizer::body_canonicalizer(canon c, std::function<void(std::string_view)> sink,
                                       std::optional<std::uint64_t> limit)
    : c_(c), sink_(std::move(sink)), limit_(limit) {}

void body_canonicalizer::emit(std::string_view s) {
  std::uint64_t before = produced_;
  produced_ += s.size();
  if (limit_) {
    if (before >= *limit_) return;
    if (produced_ > *limit_) s = s.substr(0, static_cast<std::size_t>(*limit_ - before));
  }
  out_.append(s);
  if (out_.size() >= 16 * 1024) flush_out();
}

void body_canonicalizer::flush_out() {
  if (!out_.empty()) sink_(out_);
  out_.clear();
}

void body_canonicalizer::content(char ch) {
  if (c_ == canon::relaxed && wsp(ch)) {
    pending_wsp_ = true;
    return;
  }
  for (; pending_crlf_ > 0; --pending_crlf_)
    emit("\r\n");
  if (pending_wsp_) emit(" ");
  pending_wsp_ = false;
  emit(std::string_view(&ch, 1));
}

void body_canonicalizer::line_end() {
  pending_wsp_ = false;  // relaxed: whitespace at the end of a line is ignored
  ++pending_crlf_;       // empty lines at the end are dropped; others are emitted later
}

void body_canonicalizer::feed(std::string_view chunk) {
  for (char ch : chunk) {
    if (saw_cr_) {
      saw_cr_ = false;
      if (ch == '\n') {
        line_end();
        continue;
      }
      content('\r');
    }
    if (ch == '\r') {
      saw_cr_ = true;
    } else if (ch == '\n') {
      line_end();  // a bare LF is read as CRLF
    } else {
      content(ch);
    }
  }
}

void body_canonicalizer::finish() {
  if (saw_cr_) content('\r');
  saw_cr_ = false;
  // simple: exactly one CRLF ends the body, also an empty one (§3.4.3). relaxed: a CRLF ends
  // a non-empty body; an empty (or all empty lines) body stays empty (§3.4.4).
  if (c_ == canon::simple || produced_ > 0) emit("\r\n");
  flush_out();
}

std::string canon_body(std::string_view body, canon c) {
  std::string out;
  body_canonicalizer bc(c, [&](std::string_view s) { out.append(s); });
  bc.feed(body);
  bc.finish();
  return out;
}

namespace {

// The signatures verify() evaluates (at most max_signatures, top first), each validated;
// `skipped` counts the rest.
std::vector<candidate> candidates(const std::vector<header_field>& fields,
                                  const verify_options& opt, unsigned* skipped) {
  std::vector<candidate> cands;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (!iequals(fields[i].name, "DKIM-Signature")) continue;
    if (cands.size() >= opt.max_signatures) {
      if (skipped) ++*skipped;
      continue;
    }
    candidate c;
    c.field = i;
    parse_signature(c, fields[i], opt);
    cands.push_back(std::move(c));
  }
  return cands;
}

std::string key_name(const candidate& c) {
  return c.out.selector + "._domainkey." + c.out.domain;
}

}  // namespace

std::vector<std::string> key_names(const message_body& raw, const verify_options& opt) {
  const std::vector<header_field> fields = split_header(raw.header_block(opt.max_header));
  std::vector<std::string> names;
  for (const auto& c : candidates(fields, opt, nullptr)) {
    if (c.done) continue;
    std::string n = key_name(c);
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(std::move(n));
  }
  return names;
}

boost::asio::awaitable<verification> verify(std::shared_ptr<resolver> dns,
                                            std::shared_ptr<const message_body> raw,
                                            verify_options opt, boost::asio::thread_pool* pool) {
  verification v;
  if (!raw) co_return v;
  const std::string head = raw->header_block(opt.max_header);
  const std::vector<header_field> fields = split_header(head);
  std::vector<candidate> cands = candidates(fields, opt, &v.skipped);
  // Key records: one TXT lookup per signature, all in flight at once (a slow DNS server costs
  // one round trip, not one per signature); several signatures of one selector share the
  // resolver's cache.
  auto ex = co_await boost::asio::this_coro::executor;
  using lookup_op =
      decltype(boost::asio::co_spawn(ex, dns->txt(std::string()), boost::asio::deferred));
  std::vector<lookup_op> ops;
  std::vector<std::size_t> which;
  for (std::size_t i = 0; i < cands.size(); ++i) {
    if (cands[i].done) continue;
    ops.push_back(boost::asio::co_spawn(ex, dns->txt(key_name(cands[i])), boost::asio::deferred));
    which.push_back(i);
  }
  std::vector<dns_answer> answers;
  std::vector<std::exception_ptr> errors;
  if (!ops.empty()) {
    std::vector<std::size_t> order;
    std::tie(order, errors, answers) =
        co_await boost::asio::experimental::make_parallel_group(std::move(ops))
            .async_wait(boost::asio::experimental::wait_for_all(), boost::asio::use_awaitable);
  }
  for (std::size_t k = 0; k < which.size(); ++k) {
    candidate& c = cands[which[k]];
    if (errors[k]) std::rethrow_exception(errors[k]);  // a resolver bug, not a DNS outcome
    const dns_answer& a = answers[k];
    switch (a.status) {
      case dns_status::ok:
        break;
      case dns_status::nxdomain:
      case dns_status::nodata:
        finish(c, result::permerror,
               "no key for signature (" + std::string(to_string(a.status)) + ")");
        continue;
      default:
        finish(c, result::temperror, "key lookup failed: " + std::string(to_string(a.status)));
        continue;
    }
    // Several records at the name: the first usable key record decides; when none is
    // usable the last one's problem is reported.
    for (const auto& rec : a.records) {
      c.done = false;
      c.out.testing = false;
      c.out.key_bits = 0;
      c.key = pkey_ptr();
      apply_key_record(c, rec, opt.min_rsa_bits);
      if (!c.done) break;
    }
  }
  std::vector<body_spec> specs;
  for (const auto& c : cands)
    if (!c.done) specs.push_back({c.bc, c.h, c.out.body_length});
  std::map<body_spec, body_outcome> bodies;
  std::error_code ec;
  if (!specs.empty()) {
    const std::uint64_t body_start = head.size();
    if (pool && !raw->memory()) {
      std::tie(bodies, ec) = co_await offload(*pool, [raw, body_start, specs] {
        std::error_code e;
        auto b = hash_bodies(*raw, body_start, specs, e);
        return std::make_pair(std::move(b), e);
      });
    } else {
      bodies = hash_bodies(*raw, body_start, specs, ec);
    }
  }
  for (auto& c : cands) {
    if (!c.done) {
      if (ec) {
        finish(c, result::temperror, "cannot read the message body: " + ec.message());
      } else {
        const body_outcome& b = bodies.at({c.bc, c.h, c.out.body_length});
        if (c.out.body_length && *c.out.body_length > b.length) {
          finish(c, result::fail, "l= is longer than the body");
        } else if (b.hash != c.bh) {
          finish(c, result::fail, "body hash mismatch");
        } else {
          std::string data = signed_headers_data(fields, c.names, c.hc, c.field);
          std::string self =
              canon_header({fields[c.field].name, without_b_value(fields[c.field].text)}, c.hc);
          self.resize(self.size() - 2);  // §3.7: the signature field without its CRLF
          data += self;
          if (!verify_signature(c.key.p, c.kt, c.h, data, c.b)) {
            finish(c, result::fail, "signature did not verify");
          } else if (c.h == hash_alg::sha1) {
            finish(c, result::policy, "rsa-sha1 is not acceptable (RFC 8301); it verified");
          } else {
            finish(c, result::pass, "signature verified");
          }
        }
      }
    }
    v.signatures.push_back(std::move(c.out));
  }
  co_return v;
}

// ---------------------------------------------------------------- signing

struct signer::key {
  pkey_ptr pkey;
  key_type kt = key_type::rsa;
  std::size_t sig_len = 0;
};

namespace {

pkey_ptr read_private_key(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) throw std::runtime_error("out of memory");
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!k) throw std::runtime_error("not a PEM private key (RSA or Ed25519)");
  return pkey_ptr(k);
}

}  // namespace

signer::signer(const std::string& pem, sign_options opt, unsigned min_rsa_bits)
    : key_(std::make_unique<key>()), opt_(std::move(opt)) {
  key_->pkey = read_private_key(pem);
  int id = EVP_PKEY_get_base_id(key_->pkey.p);
  if (id == EVP_PKEY_RSA) {
    int bits = EVP_PKEY_get_bits(key_->pkey.p);
    if (bits < static_cast<int>(min_rsa_bits)) {
      throw std::runtime_error("RSA key of " + std::to_string(bits) + " bits; at least " +
                               std::to_string(min_rsa_bits) + " are required");
    }
    key_->kt = key_type::rsa;
    key_->sig_len = static_cast<std::size_t>(EVP_PKEY_get_size(key_->pkey.p));
  } else if (id == EVP_PKEY_ED25519) {
    key_->kt = key_type::ed25519;
    key_->sig_len = 64;
  } else {
    throw std::runtime_error("the key is neither RSA nor Ed25519");
  }
}

signer::~signer() = default;

std::string_view signer::algorithm() const noexcept {
  return key_->kt == key_type::rsa ? "rsa-sha256" : "ed25519-sha256";
}

std::optional<signer::signed_field> signer::sign(const message& msg, std::int64_t now,
                                                 std::string& error) const {
  if (!msg.raw) {
    error = "no message";
    return std::nullopt;
  }
  const std::string head = msg.output_headers();
  const std::vector<header_field> fields = split_header(head);
  auto count = [&](const std::string& n) {
    return std::count_if(fields.begin(), fields.end(),
                         [&](const header_field& f) { return iequals(f.name, n); });
  };
  if (count("From") == 0) {
    error = "the message has no From field";
    return std::nullopt;
  }
  std::vector<std::string> names;
  auto add = [&](const std::string& n, bool over) {
    for (const auto& seen : names)
      if (iequals(seen, n)) return;
    for (long i = 0; i < count(n) + (over ? 1 : 0); ++i)
      names.push_back(n);
  };
  auto oversigned = [&](const std::string& n) {
    return std::any_of(opt_.oversign.begin(), opt_.oversign.end(),
                       [&](const std::string& o) { return iequals(o, n); });
  };
  add("From", oversigned("From"));
  for (const auto& n : opt_.headers)
    add(n, oversigned(n));
  for (const auto& n : opt_.oversign)
    add(n, true);
  std::string h;
  for (const auto& n : names)
    h += (h.empty() ? "" : ":") + n;

  // The body leaves untouched: it is the raw bytes after the received header block.
  const std::uint64_t body_start = msg.raw->header_block().size();
  std::error_code ec;
  auto bodies = hash_bodies(*msg.raw, body_start, {{opt_.body_canon, hash_alg::sha256, {}}}, ec);
  if (ec) {
    error = "cannot read the message body: " + ec.message();
    return std::nullopt;
  }
  const body_outcome& body = bodies.begin()->second;

  auto cname = [](canon c) { return c == canon::simple ? "simple" : "relaxed"; };
  std::string v = "v=1; a=" + std::string(algorithm()) + "; c=" + cname(opt_.header_canon) + "/" +
                  cname(opt_.body_canon) + "; d=" + opt_.domain + "; s=" + opt_.selector + ";";
  if (!opt_.identity.empty()) v += " i=" + opt_.identity + ";";
  if (opt_.timestamp || opt_.expire_after) v += " t=" + std::to_string(now) + ";";
  if (opt_.expire_after) v += " x=" + std::to_string(now + *opt_.expire_after) + ";";
  if (opt_.body_length) v += " l=" + std::to_string(body.length) + ";";
  v += " h=" + h + "; bh=" + base64_encode(body.hash) + "; b=";

  // The signature field is hashed as it will be written out (the kernel folds added fields),
  // with b= empty. A placeholder of the signature's exact base64 length and no spaces folds
  // the same way as the real value, so render it through the same edit path and cut it out.
  const std::string placeholder(4 * ((key_->sig_len + 2) / 3), 'A');
  message probe;
  probe.raw = msg.raw;
  probe.edits = msg.edits;
  probe.prepend_header("DKIM-Signature", v + placeholder);
  const std::vector<header_field> rendered = split_header(probe.output_headers());
  if (rendered.empty() || !iequals(rendered.front().name, "DKIM-Signature")) {
    error = "the signature field did not render first";
    return std::nullopt;
  }
  std::string self_text = rendered.front().text;
  std::size_t ph = self_text.rfind("b=" + placeholder);
  if (ph == std::string::npos) {
    error = "the signature field rendered unexpectedly";
    return std::nullopt;
  }
  self_text.erase(ph + 2, placeholder.size());
  std::string data = signed_headers_data(fields, names, opt_.header_canon, fields.size());
  std::string self = canon_header({"DKIM-Signature", self_text}, opt_.header_canon);
  self.resize(self.size() - 2);
  data += self;

  md_ctx ctx;
  std::string sig(key_->sig_len, '\0');
  std::size_t sig_len = sig.size();
  bool ok = false;
  if (key_->kt == key_type::ed25519) {
    std::string d = digest(EVP_sha256(), data);
    ok = EVP_DigestSignInit(ctx.p, nullptr, nullptr, nullptr, key_->pkey.p) == 1 &&
         EVP_DigestSign(ctx.p, reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                        reinterpret_cast<const unsigned char*>(d.data()), d.size()) == 1;
  } else {
    ok = EVP_DigestSignInit(ctx.p, nullptr, EVP_sha256(), nullptr, key_->pkey.p) == 1 &&
         EVP_DigestSignUpdate(ctx.p, data.data(), data.size()) == 1 &&
         EVP_DigestSignFinal(ctx.p, reinterpret_cast<unsigned char*>(sig.data()), &sig_len) == 1;
  }
  if (!ok || sig_len != key_->sig_len) {
    error = "signing failed";
    return std::nullopt;
  }
  return signed_field{v + base64_encode(sig), h};
}

std::string dns_record_for(const std::string& pem) {
  pkey_ptr k = read_private_key(pem);
  int id = EVP_PKEY_get_base_id(k.p);
  if (id == EVP_PKEY_ED25519) {
    unsigned char pub[32];
    std::size_t n = sizeof pub;
    if (EVP_PKEY_get_raw_public_key(k.p, pub, &n) != 1 || n != 32) {
      throw std::runtime_error("cannot extract the Ed25519 public key");
    }
    return "v=DKIM1; k=ed25519; p=" +
           base64_encode(std::string_view(reinterpret_cast<const char*>(pub), n));
  }
  if (id != EVP_PKEY_RSA) throw std::runtime_error("the key is neither RSA nor Ed25519");
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(k.p, &der);
  if (n <= 0) throw std::runtime_error("cannot encode the RSA public key");
  std::string b64 = base64_encode(
      std::string_view(reinterpret_cast<const char*>(der), static_cast<std::size_t>(n)));
  OPENSSL_free(der);
  return "v=DKIM1; k=rsa; p=" + b64;
}

}  // namespace sluice::auth::dkim
