// link_check.cpp — see link_check.hpp.
#include "link_check.hpp"

#include <algorithm>
#include <unordered_set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include "sluice/http_client.hpp"

namespace sluice::http {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

constexpr std::size_t kMaxUrlBytes = 4096;
constexpr std::size_t kMaxInFlight = 4;
constexpr int kMaxPerHost = 2;

char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f';
}
bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (ascii_lower(s[i]) != prefix[i]) return false;
  return true;
}

// "http://x" or "https://x" (any case) with something after the "//".
bool is_http_url(std::string_view v) {
  if (istarts_with(v, "http://")) return v.size() > 7;
  if (istarts_with(v, "https://")) return v.size() > 8;
  return false;
}

std::size_t ifind(std::string_view h, std::string_view needle, std::size_t from) {
  for (std::size_t i = from; i + needle.size() <= h.size(); ++i)
    if (istarts_with(h.substr(i), needle)) return i;
  return std::string_view::npos;
}

void append_utf8(std::string& out, unsigned long cp) {
  if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

// Character references in an attribute value: the named ones URLs use, and numeric ones.
std::string decode_references(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '&') {
      out.push_back(v[i]);
      continue;
    }
    const std::size_t semi = v.find(';', i + 1);
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back('&');
      continue;
    }
    const std::string_view name = v.substr(i + 1, semi - i - 1);
    unsigned long cp = 0;
    bool ok = true;
    if (name == "amp") {
      cp = '&';
    } else if (name == "quot") {
      cp = '"';
    } else if (name == "apos") {
      cp = '\'';
    } else if (name == "lt") {
      cp = '<';
    } else if (name == "gt") {
      cp = '>';
    } else if (name == "nbsp") {
      cp = 0xa0;
    } else if (name.size() > 1 && name[0] == '#') {
      const bool hex = name[1] == 'x' || name[1] == 'X';
      const std::string_view digits = name.substr(hex ? 2 : 1);
      ok = !digits.empty();
      for (char c : digits) {
        int d = -1;
        if (c >= '0' && c <= '9') d = c - '0';
        if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
        if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
        if (d < 0 || cp > 0x10ffff) {
          ok = false;
          break;
        }
        cp = cp * (hex ? 16 : 10) + static_cast<unsigned long>(d);
      }
    } else {
      ok = false;
    }
    if (!ok) {
      out.push_back('&');
      continue;
    }
    append_utf8(out, cp);
    i = semi;
  }
  return out;
}

std::string_view trim_space(std::string_view v) {
  while (!v.empty() && is_space(v.front()))
    v.remove_prefix(1);
  while (!v.empty() && is_space(v.back()))
    v.remove_suffix(1);
  return v;
}

// Whether a rel attribute's space-separated tokens include "stylesheet".
bool has_stylesheet_token(std::string_view rel) {
  std::size_t i = 0;
  while (i < rel.size()) {
    while (i < rel.size() && is_space(rel[i]))
      ++i;
    std::size_t j = i;
    while (j < rel.size() && !is_space(rel[j]))
      ++j;
    std::string_view tok = rel.substr(i, j - i);
    if (tok.size() == 10 && istarts_with(tok, "stylesheet")) return true;
    i = j;
  }
  return false;
}

// A tokenizer for the start tags of HTML (WHATWG §13.2.5, the parts that find attributes):
// comments, end tags, doctypes and processing instructions are skipped; the contents of
// raw-text elements (script, style, textarea, title, xmp, noembed, noframes) are not
// markup. `found` gets the URL attribute values that matter here.
template <class F>
void scan_html(std::string_view h, F&& found) {
  std::size_t i = 0;
  while ((i = h.find('<', i)) != std::string_view::npos) {
    if (h.substr(i, 4) == "<!--") {
      const std::size_t e = h.find("-->", i + 4);
      if (e == std::string_view::npos) return;
      i = e + 3;
      continue;
    }
    std::size_t j = i + 1;
    const std::size_t n0 = j;
    while (j < h.size() && (is_alnum(h[j]) || h[j] == '-'))
      ++j;
    if (j == n0 || !((h[n0] >= 'a' && h[n0] <= 'z') || (h[n0] >= 'A' && h[n0] <= 'Z'))) {
      i = i + 1;  // "</x", "<!x", "<?x", "< " or a lone '<'
      continue;
    }
    std::string name;
    for (std::size_t k = n0; k < j; ++k)
      name.push_back(ascii_lower(h[k]));
    std::string href, src, rel;
    while (j < h.size() && h[j] != '>') {
      if (is_space(h[j]) || h[j] == '/') {
        ++j;
        continue;
      }
      const std::size_t a0 = j;
      while (j < h.size() && !is_space(h[j]) && h[j] != '=' && h[j] != '>' && h[j] != '/')
        ++j;
      std::string attr;
      for (std::size_t k = a0; k < j; ++k)
        attr.push_back(ascii_lower(h[k]));
      if (attr.empty()) {  // "=" where a name should start: part of the next name
        ++j;
        continue;
      }
      std::size_t k = j;
      while (k < h.size() && is_space(h[k]))
        ++k;
      std::string_view value;
      if (k < h.size() && h[k] == '=') {
        ++k;
        while (k < h.size() && is_space(h[k]))
          ++k;
        if (k < h.size() && (h[k] == '"' || h[k] == '\'')) {
          const std::size_t close = h.find(h[k], k + 1);
          if (close == std::string_view::npos) return;  // the rest is one unterminated value
          value = h.substr(k + 1, close - k - 1);
          j = close + 1;
        } else {
          const std::size_t v0 = k;
          while (k < h.size() && !is_space(h[k]) && h[k] != '>')
            ++k;
          value = h.substr(v0, k - v0);
          j = k;
        }
      }
      // The first occurrence of an attribute counts (a duplicate is a parse error, ignored).
      if (attr == "href" && href.empty()) href = decode_references(value);
      if (attr == "src" && src.empty()) src = decode_references(value);
      if (attr == "rel" && rel.empty()) rel = decode_references(value);
    }
    i = j;
    if (name == "a") {
      found(href);
    } else if (name == "img") {
      found(src);
    } else if (name == "link" && has_stylesheet_token(rel)) {
      found(href);
    } else if (name == "script" || name == "style" || name == "textarea" || name == "title" ||
               name == "xmp" || name == "noembed" || name == "noframes") {
      const std::size_t e = ifind(h, "</" + name, i);
      if (e == std::string_view::npos) return;
      i = e + 2;
    }
  }
}

// The characters Mailpit's text link pattern takes after "http(s)://".
bool url_char(char c) {
  if (is_alnum(c)) return true;
  switch (c) {
    case '-':
    case '_':
    case '@':
    case ':':
    case '%':
    case '+':
    case '\'':
    case '!':
    case '.':
    case '~':
    case '#':
    case '?':
    case ',':
    case '&':
    case '/':
    case '=':
    case ';':
      return true;
    default:
      return false;
  }
}

template <class F>
void scan_text(std::string_view t, F&& found) {
  std::size_t i = 0;
  while ((i = ifind(t, "http", i)) != std::string_view::npos) {
    const std::string_view rest = t.substr(i);
    const std::size_t scheme = istarts_with(rest, "https://")  ? 8
                               : istarts_with(rest, "http://") ? 7
                                                               : 0;
    if (scheme == 0 || (i > 0 && (is_alnum(t[i - 1]) || t[i - 1] == '_'))) {
      i += 4;
      continue;
    }
    // <URL>: the URL may be broken over lines; its white space is not part of it.
    if (i > 0 && t[i - 1] == '<') {
      const std::size_t close = t.find('>', i);
      if (close != std::string_view::npos && close - i <= kMaxUrlBytes) {
        std::string url;
        for (char c : t.substr(i, close - i))
          if (!is_space(c)) url.push_back(c);
        if (url.size() > scheme) found(url);
        i = close + 1;
        continue;
      }
    }
    std::size_t j = i + scheme;
    while (j < t.size() && url_char(t[j]))
      ++j;
    std::string_view url = t.substr(i, j - i);
    // Sentence punctuation after a URL is not part of it.
    while (url.size() > scheme &&
           std::string_view(".,;:!?'").find(url.back()) != std::string_view::npos)
      url.remove_suffix(1);
    if (url.size() > scheme) found(std::string(url));
    i = j;
  }
}

std::string host_of(const std::string& url) {
  auto u = boost::urls::parse_absolute_uri(url);
  if (!u) return {};
  std::string h(u->encoded_host());
  for (auto& c : h)
    c = ascii_lower(c);
  return h;
}

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// The standard reason phrase of a status (RFC 9110 §15), empty for a code without one, as
// Mailpit's http.StatusText.
std::string reason_of(int status) {
  const std::string_view r =
      boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
  return r == "<unknown-status>" ? std::string() : std::string(r);
}

// One link: HEAD (GET after a 405 or 501), following redirects when asked, within the
// per-link timeout.
awaitable<link_status> check_one(asio::any_io_executor ex, std::string url, bool follow,
                                 link_check_settings s, std::shared_ptr<asio::ssl::context> tls,
                                 std::string tls_error, std::string user_agent) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + s.timeout;
  link_status out;
  out.url = url;
  std::string current = url;
  std::string method = "HEAD";
  for (int hop = 0;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (left <= std::chrono::milliseconds::zero()) {
      out.status = 0;
      out.reason = "timed out after " + std::to_string(s.timeout.count()) + " ms";
      co_return out;
    }
    if (istarts_with(current, "https://") && !tls) {
      out.status = 0;
      out.reason = tls_error.empty() ? "no TLS client context" : tls_error;
      co_return out;
    }
    sluice::http_request req;
    req.url = current;
    req.method = method;
    req.body.clear();
    req.headers.emplace_back("User-Agent", user_agent);
    req.headers.emplace_back("Accept", "*/*");
    sluice::client_options opt;
    opt.connect_timeout = left;
    opt.total_timeout = left;
    opt.max_response = 64 * 1024;
    opt.ssrf_guard = true;
    opt.allow_private = s.allow_private;
    opt.tls = tls;
    opt.tls_verify = s.tls_verify;
    const sluice::http_result r = co_await sluice::send_request(ex, std::move(req), std::move(opt));
    if (!r.responded) {
      if (r.guard_refused) {
        std::string why = r.error;
        if (why.starts_with("refused to connect: ")) why.erase(0, 20);
        out.status = 451;
        out.reason = "Blocked private/reserved address: " + why;
      } else {
        out.status = 0;
        out.reason = r.error;
      }
      co_return out;
    }
    if (method == "HEAD" && (r.status == 405 || r.status == 501)) {
      method = "GET";  // a server that does not do HEAD: ask for the resource itself
      continue;
    }
    if (follow && is_redirect(r.status) && !r.location.empty()) {
      if (hop == s.max_redirects) {
        out.status = 0;
        out.reason = "stopped after " + std::to_string(s.max_redirects) + " redirects";
        co_return out;
      }
      auto base = boost::urls::parse_absolute_uri(current);
      auto ref = boost::urls::parse_uri_reference(r.location);
      boost::urls::url next;
      if (!base || !ref || !boost::urls::resolve(*base, *ref, next)) {
        out.status = r.status;
        out.reason = reason_of(r.status) + " (to an invalid Location)";
        co_return out;
      }
      next.remove_fragment();
      current = std::string(next.buffer());
      if (!is_http_url(current)) {
        out.status = 0;
        out.reason = "redirected to a URL that is not http(s)";
        co_return out;
      }
      ++hop;
      method = "HEAD";
      continue;
    }
    out.status = r.status;
    out.reason = reason_of(r.status);
    co_return out;
  }
}

struct check_state {
  explicit check_state(asio::any_io_executor ex) : wake(ex), finished(ex) {}
  std::vector<std::string> links;
  std::vector<std::string> hosts;
  std::vector<link_status> results;
  std::vector<char> started;
  std::unordered_map<std::string, int> in_flight;
  std::size_t done = 0;
  bool over = false;
  asio::steady_timer wake;      // cancelled when a link finishes (a host may be free)
  asio::steady_timer finished;  // cancelled when every link is done or time ran out
};

}  // namespace

std::vector<std::string> extract_links(std::string_view html, std::string_view text,
                                       std::size_t max_links) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  auto add = [&](std::string url) {
    if (out.size() >= max_links) return;
    const std::string_view v = trim_space(url);
    if (v.size() > kMaxUrlBytes || !is_http_url(v)) return;
    std::string u(v);
    if (seen.insert(u).second) out.push_back(std::move(u));
  };
  scan_html(html, add);
  scan_text(text, add);
  return out;
}

bool link_cache::find(const std::string& key, link_status& out) {
  std::lock_guard lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return false;
  if (it->second.expires <= std::chrono::steady_clock::now()) {
    map_.erase(it);
    return false;
  }
  out = it->second.value;
  return true;
}

void link_cache::store(const std::string& key, const link_status& s) {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (map_.size() >= max_entries_) {
    std::erase_if(map_, [now](const auto& kv) { return kv.second.expires <= now; });
    if (map_.size() >= max_entries_) map_.clear();
  }
  map_[key] = entry{s, now + ttl_};
}

std::shared_ptr<asio::ssl::context> link_checker::tls(std::string& error) const {
  std::lock_guard lock(tls_mu_);
  if (!tls_ && tls_error_.empty()) {
    try {
      tls_ = sluice::make_client_tls("");
    } catch (const std::exception& e) {
      tls_error_ = e.what();
    }
  }
  error = tls_error_;
  return tls_;
}

awaitable<std::vector<link_status>> link_checker::check(asio::any_io_executor ex,
                                                        std::vector<std::string> links,
                                                        bool follow) const {
  const std::size_t n = links.size();
  if (n == 0) co_return std::vector<link_status>{};
  std::string tls_error;
  std::shared_ptr<asio::ssl::context> tls_ctx;
  if (std::any_of(links.begin(), links.end(),
                  [](const std::string& l) { return istarts_with(l, "https://"); })) {
    tls_ctx = tls(tls_error);
  }

  // Everything below runs on one strand: the workers share `st` without locks.
  auto strand = asio::make_strand(ex);
  auto st = std::make_shared<check_state>(strand);
  st->links = std::move(links);
  st->results.resize(n);
  st->started.assign(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    st->results[i].url = st->links[i];
    st->hosts.push_back(host_of(st->links[i]));
  }
  const link_check_settings s = settings;
  const std::shared_ptr<link_cache> cache = this->cache;
  const std::string ua = user_agent;

  auto worker = [st, s, cache, tls_ctx, tls_error, ua, follow, strand]() -> awaitable<void> {
    const std::size_t count = st->links.size();
    while (!st->over) {
      std::size_t pick = count;
      bool pending = false;
      for (std::size_t i = 0; i < count; ++i) {
        if (st->started[i]) continue;
        pending = true;
        if (cache && st->in_flight[st->hosts[i]] >= kMaxPerHost) continue;
        pick = i;
        break;
      }
      if (!pending) break;
      if (pick == count) {  // every pending link's host is busy: wait for one to finish
        st->wake.expires_at(std::chrono::steady_clock::time_point::max());
        boost::system::error_code ec;
        co_await st->wake.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      st->started[pick] = 1;
      ++st->in_flight[st->hosts[pick]];
      link_status r;
      const std::string key = (follow ? "F " : "N ") + st->links[pick];
      if (!cache || !cache->find(key, r)) {
        try {
          r = co_await check_one(strand, st->links[pick], follow, s, tls_ctx, tls_error, ua);
          if (cache) cache->store(key, r);
        } catch (const std::exception& e) {  // the client reports failures; this is a bug
          r = link_status{st->links[pick], 0, std::string("internal error: ") + e.what()};
        }
      }
      --st->in_flight[st->hosts[pick]];
      if (!st->over) st->results[pick] = std::move(r);
      ++st->done;
      st->wake.cancel();
      if (st->done == count) st->finished.cancel();
    }
  };

  auto run = [st, worker, n, total = s.total_timeout, strand]() -> awaitable<void> {
    for (std::size_t w = 0; w < std::min(n, kMaxInFlight); ++w)
      asio::co_spawn(strand, worker, asio::detached);
    st->finished.expires_after(total);
    boost::system::error_code ec;
    if (st->done < n) {
      co_await st->finished.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    st->over = true;
    st->wake.cancel();
  };
  co_await asio::co_spawn(strand, run, asio::use_awaitable);

  std::vector<link_status> out = st->results;
  for (std::size_t i = 0; i < n; ++i) {
    if (out[i].status == 0 && out[i].reason.empty()) {
      out[i].reason = "not checked: the link check's time limit (" +
                      std::to_string(s.total_timeout.count() / 1000) + " s) ran out";
    }
  }
  co_return out;
}

}  // namespace sluice::http
