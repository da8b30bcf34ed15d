// dkim_stages.cpp — the `dkim` (verify), `dmarc` and `dkim_sign` stages and the
// `sluice dkim keygen` command of the auth plugin.
//
// Threading: every stage is immutable after construction (options, a loaded key, the public
// suffix list) and safe for concurrent calls; checks are coroutines on the resolver service;
// body hashing of a file-backed body runs on the host's worker pool. Ownership: each call's
// frame holds shared_ptrs to what it uses, so a timed-out call may outlive it safely.
//
// Failure: DNS and record problems are results (recorded in the "auth" attribute), not
// exceptions; only the configured actions turn them into verdicts. Config problems (bad key
// file, bad option) are config_error with the key's file:line:col.
#include "dkim_stages.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include <boost/json/array.hpp>

#include "dkim.hpp"
#include "dmarc.hpp"
#include "sluice/resolver.hpp"
#include "sluice/text.hpp"

namespace sluice::auth {
namespace {

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  if (t == std::chrono::system_clock::time_point{}) t = std::chrono::system_clock::now();
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

boost::json::object& auth_of(message& msg) {
  boost::json::value& auth = msg.attributes["auth"];
  if (!auth.is_object()) auth = boost::json::object();
  return auth.as_object();
}

std::shared_ptr<resolver> find_resolver(instance_context& ctx, const std::string& stage,
                                        const std::string& name) {
  auto dns = ctx.host.services().get<resolver>(name);
  if (!dns && !(ctx.check_only && ctx.host.services().declared(resolver::kind, name))) {
    const auto at = ctx.config.find("resolver");
    (at ? *at : ctx.config)
        .fail(stage + ": no resolver service" +
              (name.empty() ? std::string() : " named \"" + name + "\"") +
              " (add a service with plugin: resolver)");
  }
  return dns;
}

unsigned bounded(const config_node& cfg, std::string_view key, unsigned fallback, unsigned lo,
                 unsigned hi) {
  std::int64_t v = cfg.get_int(key, fallback);
  if (v < lo || v > hi) {
    cfg.at(key).fail("must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  return static_cast<unsigned>(v);
}

// ------------------------------------------------------------------------------ dkim

boost::json::object to_json(const dkim::signature_result& s) {
  boost::json::object j;
  j["result"] = dkim::to_string(s.res);
  j["reason"] = s.reason;
  j["domain"] = s.domain;
  j["selector"] = s.selector;
  if (!s.identity.empty()) j["identity"] = s.identity;
  if (!s.algorithm.empty()) j["algorithm"] = s.algorithm;
  if (!s.canonicalization.empty()) j["canonicalization"] = s.canonicalization;
  if (!s.headers.empty()) j["headers"] = s.headers;
  if (!s.b_prefix.empty()) j["b"] = s.b_prefix;
  if (s.body_length) j["body_length"] = *s.body_length;
  if (s.timestamp) j["timestamp"] = *s.timestamp;
  if (s.expiration) j["expiration"] = *s.expiration;
  if (s.key_bits) j["key_bits"] = s.key_bits;
  j["testing"] = s.testing;
  return j;
}

class dkim_stage final : public stage {
 public:
  dkim_stage(host& h, std::shared_ptr<resolver> dns, dkim::verify_options o)
      : host_(h), dns_(std::move(dns)), options_(o) {}

  boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                          const stage_call& call) override {
    auto dns = dns_;
    dkim::verify_options opt = options_;
    opt.now = unix_seconds(msg->envelope.received_at);
    std::shared_ptr<const message_body> raw = msg->raw;  // as received, never the edits
    dkim::verification v = co_await dkim::verify(dns, raw, opt, &host_.workers());
    auto cs = co_await boost::asio::this_coro::cancellation_state;
    if (cs.cancelled() != boost::asio::cancellation_type::none) co_return verdict::next();
    boost::json::array sigs;
    for (const auto& s : v.signatures)
      sigs.push_back(to_json(s));
    if (sigs.empty()) {
      boost::json::object none;
      none["result"] = "none";
      none["reason"] = "message not signed";
      sigs.push_back(std::move(none));
    }
    auto& auth = auth_of(*msg);
    auth["dkim"] = std::move(sigs);
    if (v.skipped) auth["dkim_skipped"] = v.skipped;
    for (const auto& s : v.signatures) {
      call.log.debug("dkim checked", {{"result", std::string(dkim::to_string(s.res))},
                                      {"domain", s.domain},
                                      {"selector", s.selector},
                                      {"reason", s.reason}});
    }
    if (v.skipped) {
      call.log.info("dkim: signatures over the limit were not evaluated",
                    {{"skipped", static_cast<std::int64_t>(v.skipped)}});
    }
    co_return verdict::next();
  }

  // The key records process() will ask for (at most max_signatures names): started now, so
  // that they are on the way while earlier stages (spf) wait for their own lookups.
  void prefetch(const message& msg) override {
    if (!dns_ || !msg.raw) return;
    dkim::verify_options opt = options_;
    opt.now = unix_seconds(msg.envelope.received_at);
    for (auto& name : dkim::key_names(*msg.raw, opt))
      dns_->prefetch_txt(std::move(name));
  }

 private:
  host& host_;
  std::shared_ptr<resolver> dns_;
  const dkim::verify_options options_;
};

// ------------------------------------------------------------------------------ dmarc

enum class action { tag, policy, quarantine, reject, tempfail };

action parse_action(const config_node& cfg, std::string_view key,
                    std::initializer_list<std::pair<const char*, action>> allowed) {
  std::string v = cfg.get_string(key, "tag");
  std::string names;
  for (const auto& [n, a] : allowed) {
    if (v == n) return a;
    names += (names.empty() ? "" : ", ") + std::string(n);
  }
  cfg.at(key).fail("must be one of " + names);
}

struct dmarc_options {
  std::string resolver_name;
  action on_fail = action::tag;
  action on_permerror = action::tag;
  action on_temperror = action::tag;
  std::uint64_t seed = 0;
};

// pct= sampling: a deterministic function of the seed and the message id, so a retried
// message gets the same decision and tests can pick a seed.
unsigned sample_of(std::uint64_t seed, const std::string& id) {
  std::uint64_t h = 1469598103934665603ull ^ seed;
  for (char c : id) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  h ^= h >> 33;  // splitmix finalizer: spread the FNV bits before the modulo
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return static_cast<unsigned>(h % 100);
}

class dmarc_stage final : public stage {
 public:
  dmarc_stage(std::shared_ptr<resolver> dns, std::shared_ptr<const dmarc::suffix_list> psl,
              dmarc_options o)
      : dns_(std::move(dns)), psl_(std::move(psl)), options_(o) {}

  boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                          const stage_call& call) override {
    auto dns = dns_;
    auto psl = psl_;
    const dmarc_options opt = options_;
    std::vector<std::string> from = from_fields(*msg);
    boost::json::object auth = auth_of(*msg);
    dmarc::outcome o = co_await dmarc::evaluate(dns, psl, std::move(from), std::move(auth),
                                                sample_of(opt.seed, msg->id));
    auto cs = co_await boost::asio::this_coro::cancellation_state;
    if (cs.cancelled() != boost::asio::cancellation_type::none) co_return verdict::next();
    auth_of(*msg)["dmarc"] = o.to_json();
    call.log.debug("dmarc checked", {{"result", std::string(dmarc::to_string(o.res))},
                                     {"domain", o.from_domain},
                                     {"reason", o.reason}});
    action a = action::tag;
    if (o.res == dmarc::result::fail) a = opt.on_fail;
    if (o.res == dmarc::result::permerror) a = opt.on_permerror;
    if (o.res == dmarc::result::temperror) a = opt.on_temperror;
    if (a == action::policy) {
      a = o.applied == dmarc::policy::reject       ? action::reject
          : o.applied == dmarc::policy::quarantine ? action::quarantine
                                                   : action::tag;
    }
    // The domain comes from the message: keep the reply one printable ASCII line.
    for (char& c : o.from_domain)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    const std::string what = "DMARC " + std::string(dmarc::to_string(o.res)) +
                             (o.from_domain.empty() ? "" : " for " + o.from_domain);
    switch (a) {
      case action::reject:
        // RFC 7489 §6.7 / RFC 7372: 5.7.1 for a policy rejection.
        co_return verdict::reject(
            550, "5.7.1",
            o.res == dmarc::result::fail
                ? "Unauthenticated mail from " + o.from_domain + " is refused by its DMARC policy"
                : what);
      case action::tempfail:
        co_return verdict::tempfail(451, "4.7.1", what + ", try again later");
      case action::quarantine:
        // Flagged, not stopped: the remaining stages (Authentication-Results) still run
        // and the store keeps it as quarantined.
        msg->quarantined = true;
        break;
      default:
        break;
    }
    co_return verdict::next();
  }

  // The author domains' policy records (_dmarc.<From domain>, at most kPrefetchDomains):
  // started now, while earlier stages wait for their own lookups.
  void prefetch(const message& msg) override {
    if (!dns_) return;
    for (auto& name : dmarc::policy_names(from_fields(msg), kPrefetchDomains))
      dns_->prefetch_txt(std::move(name));
  }

 private:
  static constexpr std::size_t kPrefetchDomains = 4;

  // The values of the From fields as received.
  static std::vector<std::string> from_fields(const message& msg) {
    std::vector<std::string> from;
    if (msg.raw) {
      for (const auto& f : dkim::split_header(msg.raw->header_block())) {
        if (iequals(f.name, "From")) from.push_back(f.text.substr(f.text.find(':') + 1));
      }
    }
    return from;
  }

  std::shared_ptr<resolver> dns_;
  std::shared_ptr<const dmarc::suffix_list> psl_;
  const dmarc_options options_;
};

// ------------------------------------------------------------------------------ dkim_sign

class dkim_sign_stage final : public stage {
 public:
  dkim_sign_stage(host& h, std::shared_ptr<const dkim::signer> s)
      : host_(h), signer_(std::move(s)) {}

  boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                          const stage_call& call) override {
    // Signs the message as it will leave: the received bytes with every edit so far. A copy
    // of just those, so that a worker never reads the message a later stage may edit.
    auto probe = std::make_shared<message>();
    probe->raw = msg->raw;
    probe->edits = msg->edits;
    auto signer = signer_;
    const std::int64_t now = unix_seconds(std::chrono::system_clock::now());
    using outcome = std::pair<std::optional<dkim::signer::signed_field>, std::string>;
    auto work = [probe, signer, now] {
      std::string error;
      auto sig = signer->sign(*probe, now, error);
      return outcome(std::move(sig), std::move(error));
    };
    outcome r;
    if (probe->raw && !probe->raw->memory()) {
      r = co_await offload(host_.workers(), work);  // a file-backed body: hash off the I/O thread
      auto cs = co_await boost::asio::this_coro::cancellation_state;
      if (cs.cancelled() != boost::asio::cancellation_type::none) co_return verdict::next();
    } else {
      r = work();
    }
    auto& [sig, error] = r;
    boost::json::object rec;
    rec["domain"] = signer_->options().domain;
    rec["selector"] = signer_->options().selector;
    rec["algorithm"] = std::string(signer_->algorithm());
    if (!sig) {
      rec["result"] = "skipped";
      rec["reason"] = error;
      call.log.warn("dkim_sign: message not signed", {{"reason", error}});
    } else {
      rec["result"] = "signed";
      rec["headers"] = sig->h;
      msg->prepend_header("DKIM-Signature", sig->value);
    }
    auth_of(*msg)["dkim_sign"] = std::move(rec);
    co_return verdict::next();
  }

 private:
  host& host_;
  std::shared_ptr<const dkim::signer> signer_;
};

std::optional<dkim::canon> canon_of(std::string_view s) {
  if (s == "simple") return dkim::canon::simple;
  if (s == "relaxed") return dkim::canon::relaxed;
  return std::nullopt;
}

bool domain_like(const std::string& s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) {
      return false;
    }
  return s.find("..") == std::string::npos;
}

std::string read_key_file(const std::filesystem::path& p, std::string& error) {
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    error = "cannot read " + p.string();
    return {};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > 64 * 1024) {
    error = p.string() + " is too large for a key file";
    return {};
  }
  return s;
}

// ------------------------------------------------------------------------------ keygen

int keygen_usage(std::ostream& out, int status) {
  out << "usage: sluice dkim keygen [--type rsa|ed25519] [--bits N] --selector S --domain D"
         " --out FILE [--force]\n"
         "  writes the private key (PEM, mode 0600) to FILE and prints the DNS TXT record\n"
         "  to publish at S._domainkey.D; RSA keys have 2048 bits unless --bits says more.\n";
  return status;
}

}  // namespace

std::shared_ptr<stage> make_dkim_stage(instance_context& ctx) {
  const config_node& cfg = ctx.config;
  std::string name = cfg.get_string("resolver", "");
  dkim::verify_options o;
  o.max_signatures = bounded(cfg, "max_signatures", 8, 1, 64);
  auto skew = cfg.get_duration("clock_skew", std::chrono::minutes(5));
  if (skew.count() < 0 || skew > std::chrono::hours(24)) {
    cfg.at("clock_skew").fail("must be between 0s and 24h");
  }
  o.clock_skew = std::chrono::duration_cast<std::chrono::seconds>(skew).count();
  o.min_rsa_bits = bounded(cfg, "min_rsa_bits", 1024, 1024, 4096);
  auto dns = find_resolver(ctx, "dkim", name);
  return std::make_shared<dkim_stage>(ctx.host, std::move(dns), o);
}

std::shared_ptr<stage> make_dmarc_stage(instance_context& ctx) {
  const config_node& cfg = ctx.config;
  dmarc_options o;
  o.resolver_name = cfg.get_string("resolver", "");
  o.on_fail = parse_action(cfg, "on_fail",
                           {{"tag", action::tag},
                            {"policy", action::policy},
                            {"quarantine", action::quarantine},
                            {"reject", action::reject},
                            {"tempfail", action::tempfail}});
  o.on_permerror = parse_action(cfg, "on_permerror",
                                {{"tag", action::tag},
                                 {"quarantine", action::quarantine},
                                 {"reject", action::reject},
                                 {"tempfail", action::tempfail}});
  o.on_temperror =
      parse_action(cfg, "on_temperror", {{"tag", action::tag}, {"tempfail", action::tempfail}});
  if (cfg.has("pct_seed")) {
    o.seed = static_cast<std::uint64_t>(cfg.get_int("pct_seed", 0));
  } else {
    o.seed = (static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }
  auto dns = find_resolver(ctx, "dmarc", o.resolver_name);
  return std::make_shared<dmarc_stage>(std::move(dns), std::make_shared<dmarc::suffix_list>(), o);
}

std::shared_ptr<stage> make_dkim_sign_stage(instance_context& ctx) {
  const config_node& cfg = ctx.config;
  dkim::sign_options o;
  o.domain = cfg.at("domain").as_string();
  for (char& c : o.domain)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!domain_like(o.domain)) cfg.at("domain").fail("must be a domain name");
  o.selector = cfg.at("selector").as_string();
  if (!domain_like(o.selector)) cfg.at("selector").fail("must be a selector (a DNS label)");
  o.identity = cfg.get_string("identity", "");
  if (!o.identity.empty()) {
    std::size_t at = o.identity.rfind('@');
    std::string d = at == std::string::npos ? std::string() : o.identity.substr(at + 1);
    for (char& c : d)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (at == std::string::npos ||
        !(d == o.domain || (d.size() > o.domain.size() && d.ends_with("." + o.domain))) ||
        o.identity.find_first_of(" ;\t") != std::string::npos) {
      cfg.at("identity").fail("must be [local]@" + o.domain + " or @ a subdomain of it");
    }
  }
  o.headers = cfg.get_string_list(
      "headers", {"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID", "In-Reply-To",
                  "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
                  "Content-Disposition", "List-Id", "List-Unsubscribe", "List-Unsubscribe-Post"});
  o.oversign = cfg.get_string_list(
      "oversign", {"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID"});
  for (const char* key : {"headers", "oversign"}) {
    for (const auto& n : key == std::string("headers") ? o.headers : o.oversign) {
      if (n.empty() || n.find_first_of(": \t;") != std::string::npos ||
          iequals(n, "DKIM-Signature")) {
        cfg.at(key).fail("\"" + n + "\" is not a header name that can be signed");
      }
    }
  }
  std::string c = cfg.get_string("canonicalization", "relaxed/relaxed");
  std::size_t slash = c.find('/');
  auto hc = canon_of(c.substr(0, slash));
  auto bc = slash == std::string::npos ? std::optional<dkim::canon>(dkim::canon::simple)
                                       : canon_of(c.substr(slash + 1));
  if (!hc || !bc) {
    cfg.at("canonicalization")
        .fail("must be simple or relaxed, or header/body like relaxed/simple");
  }
  o.header_canon = *hc;
  o.body_canon = *bc;
  o.body_length = cfg.get_bool("body_length", false);
  o.timestamp = cfg.get_bool("timestamp", true);
  if (cfg.has("expire")) {
    auto e = cfg.get_duration("expire", std::chrono::seconds(0));
    if (e < std::chrono::seconds(60)) cfg.at("expire").fail("must be at least 60s");
    o.expire_after = std::chrono::duration_cast<std::chrono::seconds>(e).count();
  }
  const config_node key = cfg.at("key");
  std::filesystem::path path = key.as_string();
  if (path.is_relative()) path = ctx.host.config_dir() / path;
  std::string error;
  std::string pem = read_key_file(path, error);
  if (!error.empty()) key.fail(error);
  try {
    // Loaded once here: a bad key is a startup error, never a per-message failure.
    auto s = std::make_shared<const dkim::signer>(pem, std::move(o));
    OPENSSL_cleanse(pem.data(), pem.size());
    return std::make_shared<dkim_sign_stage>(ctx.host, std::move(s));
  } catch (const std::runtime_error& e) {
    OPENSSL_cleanse(pem.data(), pem.size());
    key.fail(path.string() + ": " + e.what());
  }
}

int dkim_command(std::span<const std::string> args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") return keygen_usage(std::cout, 0);
  if (args[0] != "keygen") {
    std::cerr << "sluice dkim: unknown subcommand \"" << args[0] << "\"\n";
    return keygen_usage(std::cerr, 2);
  }
  std::string type = "rsa", selector, domain, out;
  int bits = 2048;
  bool force = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument(a + " needs a value");
      return args[++i];
    };
    try {
      if (a == "--type") {
        type = value();
      } else if (a == "--bits") {
        std::string v = value();
        std::size_t used = 0;
        bits = std::stoi(v, &used);
        if (used != v.size()) throw std::invalid_argument("--bits must be a number");
      } else if (a == "--selector") {
        selector = value();
      } else if (a == "--domain") {
        domain = value();
      } else if (a == "--out") {
        out = value();
      } else if (a == "--force") {
        force = true;
      } else if (a == "--help" || a == "-h") {
        return keygen_usage(std::cout, 0);
      } else {
        throw std::invalid_argument("unknown option " + a);
      }
    } catch (const std::exception& e) {
      std::cerr << "sluice dkim keygen: " << e.what() << "\n";
      return keygen_usage(std::cerr, 2);
    }
  }
  if (selector.empty() || domain.empty() || out.empty()) {
    std::cerr << "sluice dkim keygen: --selector, --domain and --out are required\n";
    return keygen_usage(std::cerr, 2);
  }
  if (!domain_like(domain) || !domain_like(selector)) {
    std::cerr << "sluice dkim keygen: invalid domain or selector\n";
    return 2;
  }
  if (type != "rsa" && type != "ed25519") {
    std::cerr << "sluice dkim keygen: --type must be rsa or ed25519\n";
    return 2;
  }
  if (type == "rsa" && (bits < 2048 || bits > 8192)) {
    std::cerr << "sluice dkim keygen: --bits must be between 2048 and 8192\n";
    return 2;
  }
  EVP_PKEY* pkey = nullptr;
  EVP_PKEY_CTX* kctx =
      EVP_PKEY_CTX_new_id(type == "rsa" ? EVP_PKEY_RSA : EVP_PKEY_ED25519, nullptr);
  bool ok = kctx && EVP_PKEY_keygen_init(kctx) == 1 &&
            (type != "rsa" || EVP_PKEY_CTX_set_rsa_keygen_bits(kctx, bits) == 1) &&
            EVP_PKEY_keygen(kctx, &pkey) == 1;
  EVP_PKEY_CTX_free(kctx);
  if (!ok) {
    std::cerr << "sluice dkim keygen: key generation failed\n";
    EVP_PKEY_free(pkey);
    return 1;
  }
  BIO* mem = BIO_new(BIO_s_mem());
  ok = mem && PEM_write_bio_PrivateKey(mem, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  EVP_PKEY_free(pkey);
  std::string pem;
  if (ok) {
    char* data = nullptr;
    long n = BIO_get_mem_data(mem, &data);
    pem.assign(data, static_cast<std::size_t>(n));
  }
  BIO_free(mem);
  if (!ok) {
    std::cerr << "sluice dkim keygen: cannot encode the key\n";
    return 1;
  }
  // The private key never exists with wider permissions: created 0600, not chmod-ed after.
  int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), 0600);
  if (fd < 0) {
    std::cerr << "sluice dkim keygen: cannot create " << out << ": " << std::strerror(errno)
              << (errno == EEXIST ? " (use --force to overwrite)" : "") << "\n";
    OPENSSL_cleanse(pem.data(), pem.size());
    return 1;
  }
  ::fchmod(fd, 0600);
  std::size_t done = 0;
  while (done < pem.size()) {
    ssize_t n = ::write(fd, pem.data() + done, pem.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  bool written = done == pem.size() && ::fsync(fd) == 0;
  ::close(fd);
  std::string record;
  try {
    record = dkim::dns_record_for(pem);
  } catch (const std::exception& e) {
    written = false;
  }
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!written) {
    std::cerr << "sluice dkim keygen: writing " << out << " failed\n";
    return 1;
  }
  // A TXT record's character-strings hold at most 255 bytes: split the value.
  std::string strings;
  for (std::size_t i = 0; i < record.size(); i += 255)
    strings += (i ? "\n\t" : "") + std::string("\"") + record.substr(i, 255) + "\"";
  std::cout << "; private key written to " << out << ", mode 0600\n"
            << "; publish this TXT record:\n"
            << selector << "._domainkey." << domain << ". IN TXT ( " << strings << " )\n"
            << "; and sign with:\n"
            << ";   - {plugin: dkim_sign, domain: " << domain << ", selector: " << selector
            << ", key: " << out << "}\n";
  return 0;
}

}  // namespace sluice::auth
