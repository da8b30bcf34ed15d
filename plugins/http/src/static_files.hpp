// plugins/http/src/static_files.hpp — the web UI's files, served from one directory.
//
// lookup() maps a percent-decoded relative path ("dist/app.js") to a file under the root
// and returns its bytes, media type, validators (a strong ETag from a content hash, the
// modification time) and a precompressed gzip copy when the type is worth compressing.
// Nothing is served from outside the root: a path with a "." or ".." segment, a NUL, a
// backslash or a dot-file segment is refused, and the resolved real path (symlinks
// followed) must still lie under the real root. Directories are not listed.
//
// Threading: lookup() does file I/O and must run on the worker pool (sluice::offload);
// it may run concurrently (a mutex guards the cache). Files are re-read when their size
// or modification time changes; entries larger than max_cached_file are never cached.
// Failure: a missing, unreadable or forbidden file is simply "not found".
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::http {

struct static_file {
  std::string data;
  std::optional<std::string> gzip;  // the same bytes, gzip-coded, when worth it
  std::string content_type;
  std::string etag;           // "\"<hash>\""; the gzip variant is "\"<hash>-gz\""
  std::string last_modified;  // IMF-fixdate
  std::int64_t mtime_s = 0;
};

class static_files {
 public:
  // `root` need not exist (then nothing is found; the log says so once at startup).
  explicit static_files(std::filesystem::path root);
  const std::filesystem::path& root() const { return root_; }
  bool available() const { return !real_root_.empty(); }

  std::shared_ptr<const static_file> lookup(std::string_view rel);

 private:
  struct cached {
    std::shared_ptr<const static_file> file;
    std::uintmax_t size = 0;
    std::filesystem::file_time_type mtime;
  };
  static constexpr std::uintmax_t max_file = 64ull << 20;
  static constexpr std::uintmax_t max_cached_file = 8ull << 20;
  std::filesystem::path root_;
  std::string real_root_;  // realpath of root, "" when it does not exist
  std::mutex mu_;
  std::map<std::string, cached, std::less<>> cache_;
};

// True when rel is a safe relative path (see above).
bool safe_relative_path(std::string_view rel);
std::string media_type_for(std::string_view path);
// RFC 9110 §5.6.7 IMF-fixdate for a Unix time, and its parser (nothing when malformed).
std::string http_date(std::int64_t unix_seconds);
std::optional<std::int64_t> parse_http_date(std::string_view s);
// 16 hex digits of SHA-256 over data.
std::string content_hash(std::string_view data);

}  // namespace sluice::http
