// plugins/http/src/compress.cpp — see compress.hpp.
#include "compress.hpp"

#include <zlib.h>

#include <cstdlib>

#include "sluice/text.hpp"

namespace sluice::http {

bool accepts_gzip(std::string_view v) {
  bool gzip_listed = false, gzip_ok = false, star_ok = false;
  while (!v.empty()) {
    auto comma = v.find(',');
    std::string_view item = trim(v.substr(0, comma));
    v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
    std::string_view coding = trim(item.substr(0, item.find(';')));
    double q = 1.0;
    for (auto semi = item.find(';'); semi != std::string_view::npos;) {
      auto next = item.find(';', semi + 1);
      std::string_view param = trim(item.substr(semi + 1, next - semi - 1));
      if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        std::string num(param.substr(2));
        char* end = nullptr;
        q = std::strtod(num.c_str(), &end);
        if (end == num.c_str()) q = 0;
      }
      semi = next;
    }
    if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
      gzip_listed = true;
      gzip_ok = gzip_ok || q > 0;
    } else if (coding == "*") {
      star_ok = q > 0;
    }
  }
  return gzip_listed ? gzip_ok : star_ok;
}

bool compressible_type(std::string_view ct) {
  std::string t = to_lower_ascii(trim(ct.substr(0, ct.find(';'))));
  if (t.starts_with("text/")) return true;
  static constexpr std::string_view types[] = {
      "application/json",          "application/javascript",
      "application/xml",           "application/xhtml+xml",
      "application/wasm",          "image/svg+xml",
      "application/manifest+json", "font/ttf",
      "application/x-font-ttf",    "image/x-icon",
      "image/vnd.microsoft.icon",  "message/rfc822"};
  for (auto x : types) {
    if (t == x) return true;
  }
  return t.ends_with("+json") || t.ends_with("+xml");
}

std::optional<std::string> gzip_compress(std::string_view data, int level) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip wrapper rather than zlib's.
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return std::nullopt;
  }
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  std::size_t produced = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return std::nullopt;
  out.resize(produced);
  return out;
}

}  // namespace sluice::http
