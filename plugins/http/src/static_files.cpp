// plugins/http/src/static_files.cpp — see static_files.hpp.
#include "static_files.hpp"

#include <openssl/evp.h>
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <fstream>
#include <iterator>

#include "compress.hpp"
#include "sluice/text.hpp"

namespace sluice::http {

bool safe_relative_path(std::string_view rel) {
  if (rel.empty() || rel.front() == '/') return false;
  std::size_t start = 0;
  while (start <= rel.size()) {
    auto end = rel.find('/', start);
    if (end == std::string_view::npos) end = rel.size();
    std::string_view seg = rel.substr(start, end - start);
    if (seg.empty() || seg.front() == '.') return false;  // "", ".", "..", dot-files
    for (char c : seg) {
      if (c == '\0' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
    }
    start = end + 1;
  }
  return true;
}

std::string media_type_for(std::string_view path) {
  auto dot = path.rfind('.');
  std::string ext = dot == std::string_view::npos ? "" : to_lower_ascii(path.substr(dot + 1));
  static const std::map<std::string, std::string, std::less<>> types = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"webmanifest", "application/manifest+json"},
      {"txt", "text/plain; charset=utf-8"},
      {"xml", "application/xml"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"avif", "image/avif"},
      {"ico", "image/x-icon"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"ttf", "font/ttf"},
      {"otf", "font/otf"},
      {"wasm", "application/wasm"},
      {"pdf", "application/pdf"},
  };
  auto it = types.find(ext);
  return it == types.end() ? "application/octet-stream" : it->second;
}

std::string http_date(std::int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::optional<std::int64_t> parse_http_date(std::string_view s) {
  std::string str(trim(s));
  struct tm tm {};
  // IMF-fixdate only; the obsolete RFC 850 and asctime forms are answered without 304.
  const char* end = strptime(str.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (!end || *end != '\0') return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::string content_hash(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return to_hex(md, std::min(len, 8u));
}

static_files::static_files(std::filesystem::path root) : root_(std::move(root)) {
  if (char* real = ::realpath(root_.c_str(), nullptr)) {
    real_root_ = real;
    ::free(real);
    std::error_code ec;
    if (!std::filesystem::is_directory(real_root_, ec)) real_root_.clear();
  }
}

std::shared_ptr<const static_file> static_files::lookup(std::string_view rel) {
  if (real_root_.empty() || !safe_relative_path(rel)) return nullptr;
  std::filesystem::path full = std::filesystem::path(real_root_) / std::string(rel);
  char* real = ::realpath(full.c_str(), nullptr);
  if (!real) return nullptr;
  std::string resolved = real;
  ::free(real);
  // A symlink may point anywhere; only what resolves under the root is served.
  if (resolved.size() <= real_root_.size() || resolved.compare(0, real_root_.size(), real_root_) ||
      resolved[real_root_.size()] != '/') {
    return nullptr;
  }
  std::error_code ec;
  auto st = std::filesystem::status(resolved, ec);
  if (ec || !std::filesystem::is_regular_file(st)) return nullptr;
  auto size = std::filesystem::file_size(resolved, ec);
  if (ec || size > max_file) return nullptr;
  auto mtime = std::filesystem::last_write_time(resolved, ec);
  if (ec) return nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(resolved);
    if (it != cache_.end() && it->second.size == size && it->second.mtime == mtime) {
      return it->second.file;
    }
  }
  std::ifstream in(resolved, std::ios::binary);
  if (!in) return nullptr;
  auto f = std::make_shared<static_file>();
  f->data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) return nullptr;
  f->content_type = media_type_for(resolved);
  auto hash = content_hash(f->data);
  f->etag = "\"" + hash + "\"";
  auto sys = std::chrono::file_clock::to_sys(mtime);
  f->mtime_s = std::chrono::duration_cast<std::chrono::seconds>(sys.time_since_epoch()).count();
  f->last_modified = http_date(f->mtime_s);
  if (f->data.size() >= 256 && compressible_type(f->content_type)) {
    if (auto gz = gzip_compress(f->data, 9); gz && gz->size() < f->data.size()) {
      f->gzip = std::move(*gz);
    }
  }
  if (size <= max_cached_file) {
    std::lock_guard lock(mu_);
    cache_[resolved] = cached{f, size, mtime};
  }
  return f;
}

}  // namespace sluice::http
