// plugins/pop3/src/protocol.cpp — see protocol.hpp. MD5, SHA-256 and randomness come from
// OpenSSL, base64 and the PLAIN message split from the SDK (sluice/base64.hpp,
// sluice/sasl.hpp).
#include "protocol.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>

#include "sluice/text.hpp"

namespace sluice::pop3 {
namespace {

std::string digest_hex(const EVP_MD* md, std::string_view a, std::string_view b) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return {};
  bool ok =
      EVP_DigestInit_ex(ctx, md, nullptr) == 1 && EVP_DigestUpdate(ctx, a.data(), a.size()) == 1 &&
      EVP_DigestUpdate(ctx, b.data(), b.size()) == 1 && EVP_DigestFinal_ex(ctx, out, &len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return {};
  return to_hex(out, len);
}

char upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

}  // namespace

command_line split_command(std::string_view line) {
  command_line c;
  std::size_t sp = line.find(' ');
  std::string_view kw = line.substr(0, sp);
  c.keyword.reserve(kw.size());
  for (char ch : kw)
    c.keyword += upper(ch);
  if (sp != std::string_view::npos) c.args = line.substr(sp + 1);
  return c;
}

bool split_args(std::string_view args, std::string_view* out, std::size_t max, std::size_t& count) {
  count = 0;
  std::size_t i = 0;
  while (i < args.size()) {
    while (i < args.size() && args[i] == ' ')
      ++i;
    if (i == args.size()) break;
    std::size_t end = args.find(' ', i);
    if (end == std::string_view::npos) end = args.size();
    if (count == max) return false;
    out[count++] = args.substr(i, end - i);
    i = end;
  }
  return true;
}

std::optional<std::uint64_t> parse_number(std::string_view s) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

std::optional<plain_credentials> parse_plain(std::string_view decoded) {
  plain_credentials c;
  if (sasl::parse_plain(decoded, c) != sasl::plain_status::ok) return std::nullopt;
  return c;
}

std::string apop_digest(std::string_view timestamp, std::string_view secret) {
  return digest_hex(EVP_md5(), timestamp, secret);
}

std::string apop_timestamp(std::string_view hostname) {
  unsigned char r[8] = {};
  if (RAND_bytes(r, sizeof r) != 1) {
    auto t =
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    for (unsigned i = 0; i < sizeof r; ++i)
      r[i] = static_cast<unsigned char>(t >> (8 * i));
  }
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  return "<" + to_hex(r, sizeof r) + "." + std::to_string(now) + "@" + std::string(hostname) + ">";
}

bool is_md5_hex(std::string_view s) {
  if (s.size() != 32) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  return true;
}

std::uint64_t normalized_size(std::string_view raw) {
  std::uint64_t n = raw.size();
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) ++n;  // bare LF -> CRLF
  }
  if (!raw.empty() && raw.back() != '\n') n += 2;  // the last line gets its CRLF
  return n;
}

std::string top_of(std::string_view raw, std::uint64_t lines) {
  std::string out;
  std::size_t pos = 0;
  bool in_body = false;
  std::uint64_t body_lines = 0;
  while (pos < raw.size()) {
    if (in_body && body_lines >= lines) break;
    std::size_t nl = raw.find('\n', pos);
    std::size_t end = nl == std::string_view::npos ? raw.size() : nl;
    std::string_view line = raw.substr(pos, end - pos);
    if (nl != std::string_view::npos && !line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    out += line;
    out += "\r\n";
    if (in_body) {
      ++body_lines;
    } else if (line.empty()) {
      in_body = true;  // the blank line ending the header section is part of what TOP sends
    }
    pos = nl == std::string_view::npos ? raw.size() : nl + 1;
  }
  return out;
}

bool multiline_encoder::next(std::string& out, std::size_t budget) {
  if (done_) return false;
  const std::size_t start = out.size();
  while (pos_ < raw_.size() && out.size() - start < budget) {
    if (at_line_start_ && raw_[pos_] == '.') out += '.';  // RFC 1939 §3 byte-stuffing
    std::size_t nl = raw_.find('\n', pos_);
    std::size_t end = nl == std::string_view::npos ? raw_.size() : nl;
    std::size_t room = std::max<std::size_t>(1, budget - std::min(budget, out.size() - start));
    if (end - pos_ > room) {
      // A line longer than the budget goes out in pieces. The piece never takes a CR
      // right before the LF (that CR is at end - 1 and room < end - pos_).
      out.append(raw_.substr(pos_, room));
      pos_ += room;
      at_line_start_ = false;
      continue;
    }
    std::string_view line = raw_.substr(pos_, end - pos_);
    // Only a CR that ends a line before its LF is part of the line end; a lone CR at the
    // very end of the message stays (normalized_size counts it as content).
    if (nl != std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    out += line;
    out += "\r\n";
    at_line_start_ = true;
    pos_ = nl == std::string_view::npos ? raw_.size() : nl + 1;
  }
  if (pos_ >= raw_.size()) {
    out += ".\r\n";
    done_ = true;
  }
  return true;
}

std::string uid_for(std::string_view id) {
  bool usable = !id.empty() && id.size() <= 64;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) usable = false;
  }
  if (usable) return std::string(id);
  return "x" + digest_hex(EVP_sha256(), id, {});
}

}  // namespace sluice::pop3
