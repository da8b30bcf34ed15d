// listen.cpp — see sluice/listen.hpp.
#include "sluice/listen.hpp"

#include <openssl/ssl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <charconv>
#include <optional>
#include <string_view>
#include <system_error>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "sluice/config.hpp"

#include <algorithm>

namespace sluice {
namespace asio = boost::asio;
using unix_proto = asio::local::stream_protocol;

bool parse_listen_address(const std::string& text, const std::filesystem::path& base_dir,
                          listen_address& out, std::string& why) {
  out = listen_address{};
  out.text = text;
  std::string_view t = text;
  if (t.starts_with("unix:")) {
    t.remove_prefix(5);
    out.unix_socket = true;
    if (auto colon = t.rfind(':'); colon != std::string_view::npos) {
      const std::string_view m = t.substr(colon + 1);
      // Digits after the last ':' are a mode, never part of the path; permission bits only
      // (no setuid, sticky, …).
      if (!m.empty() &&
          std::all_of(m.begin(), m.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        unsigned v = 0;
        const auto [end, ec] = std::from_chars(m.data(), m.data() + m.size(), v, 8);
        if (ec != std::errc() || end != m.data() + m.size() || v > 0777) {
          why = "bad unix socket mode \"" + std::string(m) + "\": expected octal 0 to 777";
          return false;
        }
        out.mode = v;
        t = t.substr(0, colon);
      }
    }
    if (t.empty()) {
      why = "unix socket path is empty";
      return false;
    }
    out.path = resolve_config_path(base_dir, std::string(t));
    if (out.path.native().size() >= 100) {  // sockaddr_un.sun_path is 108 bytes
      why = "unix socket path is too long (max 100 bytes)";
      return false;
    }
    return true;
  }
  std::string_view host;
  std::string_view port;
  if (t.starts_with("[")) {
    auto close = t.find(']');
    if (close == std::string_view::npos || close + 1 >= t.size() || t[close + 1] != ':') {
      why = "expected [ipv6]:port";
      return false;
    }
    host = t.substr(1, close - 1);
    port = t.substr(close + 2);
  } else {
    auto colon = t.rfind(':');
    if (colon == std::string_view::npos) {
      why = "expected host:port or unix:/path[:mode]";
      return false;
    }
    host = t.substr(0, colon);
    port = t.substr(colon + 1);
  }
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p > 65535) {
    why = "bad port \"" + std::string(port) + "\"";
    return false;
  }
  if (host.empty() || host == "*") host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code bec;
  asio::ip::make_address(std::string(host), bec);
  if (bec) {
    why = "not an IP address: \"" + std::string(host) + "\"";
    return false;
  }
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(p);
  return true;
}

void prepare_unix_path(const listen_address& a) {
  std::error_code ec;
  auto status = std::filesystem::symlink_status(a.path, ec);
  if (ec || !std::filesystem::exists(status)) return;
  if (!std::filesystem::is_socket(status)) {
    throw config_error("listen " + a.text + ": " + a.path.string() + " exists and is not a socket");
  }
  asio::io_context probe_io;
  unix_proto::socket probe(probe_io);
  boost::system::error_code bec;
  probe.connect(unix_proto::endpoint(a.path.string()), bec);
  if (!bec) {
    throw config_error("listen " + a.text + ": another server is listening on " + a.path.string());
  }
  std::filesystem::remove(a.path, ec);  // stale: nobody answers
  if (ec) {
    throw std::system_error(ec,
                            "listen " + a.text + ": cannot remove stale socket " + a.path.string());
  }
}

namespace {

struct tls_load_error {
  const char* key;  // "cert" or "key"
  std::string text;
};

std::shared_ptr<asio::ssl::context> load_tls_server_context(const std::filesystem::path& cert,
                                                            const std::filesystem::path& key,
                                                            std::optional<tls_load_error>& err) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  // TLS 1.2: forward secrecy and AEAD only (TLS 1.3's suites are all of that already).
  SSL_CTX_set_cipher_list(ctx->native_handle(),
                          "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                          "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                          "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(cert.string(), ec);
  if (ec) {
    err = tls_load_error{"cert", "cannot load " + cert.string() + ": " + ec.message()};
    return nullptr;
  }
  ctx->use_private_key_file(key.string(), asio::ssl::context::pem, ec);
  if (ec) {
    err = tls_load_error{"key", "cannot load " + key.string() + ": " + ec.message()};
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    err = tls_load_error{"key", "does not match the certificate (" + cert.string() + ")"};
    return nullptr;
  }
  return ctx;
}

}  // namespace

std::shared_ptr<asio::ssl::context> make_tls_server_context(const std::filesystem::path& cert,
                                                            const std::filesystem::path& key) {
  std::optional<tls_load_error> err;
  auto ctx = load_tls_server_context(cert, key, err);
  if (err) throw config_error(std::string("tls.") + err->key + ": " + err->text);
  return ctx;
}

std::shared_ptr<asio::ssl::context> make_tls_server_context(const config_node& tls,
                                                            const std::filesystem::path& cert,
                                                            const std::filesystem::path& key) {
  std::optional<tls_load_error> err;
  auto ctx = load_tls_server_context(cert, key, err);
  if (err) {
    auto at = tls.find(err->key);
    (at ? *at : tls).fail(err->text);
  }
  return ctx;
}

std::vector<listen_address> parse_listen_list(const config_node& cfg,
                                              const std::filesystem::path& config_dir,
                                              std::string_view fallback) {
  std::vector<listen_address> out;
  std::optional<config_node> node = cfg.find("listen");
  std::vector<std::string> items =
      node ? node->as_string_list() : std::vector<std::string>{std::string(fallback)};
  if (items.empty()) (node ? *node : cfg).fail("at least one address is needed");
  for (const auto& item : items) {
    listen_address a;
    std::string why;
    if (!parse_listen_address(item, config_dir, a, why)) {
      (node ? *node : cfg).fail(why + ": \"" + item + "\"");
    }
    out.push_back(std::move(a));
  }
  return out;
}

bool valid_hostname(std::string_view h) noexcept {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string default_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

void ensure_data_directory(const std::filesystem::path& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::path made;
  for (const auto& part : dir) {
    made /= part;
    if (made == made.root_path() || std::filesystem::exists(made, ec)) continue;
    if (::mkdir(made.c_str(), 0700) != 0 && errno != EEXIST) {
      throw std::runtime_error("cannot create " + made.string() + ": " +
                               std::generic_category().message(errno));
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    throw std::runtime_error("cannot use " + dir.string() + ": " +
                             std::generic_category().message(errno));
  }
  if (!S_ISDIR(st.st_mode)) throw std::runtime_error(dir.string() + " is not a directory");
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    throw std::runtime_error(dir.string() + " belongs to another user (uid " +
                             std::to_string(st.st_uid) +
                             "): refusing to keep mail where that user can read or replace it");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0) {
    throw std::runtime_error(dir.string() +
                             " is writable by other users: refusing to keep mail in it "
                             "(chmod go-w, or choose another directory)");
  }
}

std::filesystem::path resolve_config_path(const std::filesystem::path& config_dir,
                                          const std::string& path) {
  std::filesystem::path p(path);
  std::filesystem::path joined = p.is_absolute() ? p : config_dir / p;
  // "." elements say nothing and would show in logs ("/etc/sluice/./s.sock"); ".." stays,
  // as only the file system knows where it leads past a symbolic link.
  std::filesystem::path out;
  for (const auto& part : joined) {
    if (part != ".") out /= part;
  }
  return out.empty() ? joined : out;
}

void parse_tls_files(const config_node& tls, std::string_view mode, bool enabled,
                     const std::filesystem::path& config_dir, std::filesystem::path& cert,
                     std::filesystem::path& key) {
  std::string c = tls.get_string("cert", "");
  std::string k = tls.get_string("key", "");
  if (!enabled) return;
  if (c.empty()) tls.fail("tls.mode " + std::string(mode) + " needs tls.cert");
  if (k.empty()) tls.fail("tls.mode " + std::string(mode) + " needs tls.key");
  cert = resolve_config_path(config_dir, c);
  key = resolve_config_path(config_dir, k);
}

std::size_t parse_tls_block(const config_node& tls, std::initializer_list<std::string_view> modes,
                            const std::filesystem::path& config_dir, std::filesystem::path& cert,
                            std::filesystem::path& key) {
  const std::string_view* first = modes.begin();
  std::string mode = tls.get_string("mode", std::string(*first));
  std::size_t index = 0;
  for (; index < modes.size(); ++index) {
    if (first[index] == mode) break;
  }
  if (index == modes.size()) {
    std::string expected = "expected ";
    for (std::size_t i = 0; i < modes.size(); ++i) {
      if (i > 0) expected += i + 1 == modes.size() ? " or " : ", ";
      expected += first[i];
    }
    tls.at("mode").fail(expected);
  }
  parse_tls_files(tls, mode, index != 0, config_dir, cert, key);
  return index;
}

}  // namespace sluice
