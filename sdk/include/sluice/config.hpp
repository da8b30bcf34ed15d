// sluice/config.hpp — a validated view of one part of the YAML configuration.
//
// Each plugin instance receives the map it was configured with and reads its keys with
// the accessors below. Every key read is recorded; after the factory returns, the kernel
// reports any key nobody read as "unknown key", so plugins get strict validation for
// free. Errors throw config_error with file:line:col and the key path, e.g.
//   sluice.yaml:12:7: listeners[0].max_message_size: expected a size like 25MB, got "big"
// Scalars go through ${ENV} substitution (${VAR} must be set; ${VAR:-default} may not be).
//
// Only startup code uses config_node, so it may throw.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

class config_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class config_node {
 public:
  struct impl;
  config_node();
  explicit config_node(std::shared_ptr<impl> p);
  ~config_node();
  config_node(const config_node&);
  config_node& operator=(const config_node&);

  // "file:line:col" of this node.
  std::string where() const;
  // "listeners[0].tls.cert"
  std::string path() const;

  bool is_map() const;
  bool is_sequence() const;
  bool is_scalar() const;
  bool is_null() const;

  // Map access. `has` does not mark the key as read; `find` and `at` do.
  bool has(std::string_view key) const;
  std::optional<config_node> find(std::string_view key) const;
  config_node at(std::string_view key) const;  // throws "missing required key"

  // Sequence items, or map entries in file order (both mark the children read).
  std::vector<config_node> items() const;
  std::vector<std::pair<std::string, config_node>> entries() const;

  // Scalar conversions; each throws config_error naming the expected form.
  std::string as_string() const;
  std::int64_t as_int() const;
  double as_double() const;
  bool as_bool() const;
  std::chrono::milliseconds as_duration() const;  // 250ms, 30s, 5m, 2h, 1d; bare number = s
  std::uint64_t as_size() const;                  // 512, 64KB, 25MB, 1GiB (KB = 1024)
  // A scalar or a sequence of scalars, as a list of strings.
  std::vector<std::string> as_string_list() const;

  // Convenience for optional keys with defaults.
  std::string get_string(std::string_view key, std::string_view fallback) const;
  std::int64_t get_int(std::string_view key, std::int64_t fallback) const;
  bool get_bool(std::string_view key, bool fallback) const;
  std::chrono::milliseconds get_duration(std::string_view key,
                                         std::chrono::milliseconds fallback) const;
  std::uint64_t get_size(std::string_view key, std::uint64_t fallback) const;
  std::vector<std::string> get_string_list(std::string_view key,
                                           std::vector<std::string> fallback = {}) const;

  // Throws config_error at this node's location: "<where>: <path>: <what>".
  [[noreturn]] void fail(std::string_view what) const;
  // Throws for the first key of this map (recursively) that was never read.
  void check_unknown_keys() const;

  // Parses a YAML document. Throws config_error on a syntax error, with its location.
  static config_node parse(std::string_view text, std::string file);
  // Reads and parses a file: a regular file of at most max_file_bytes, else config_error.
  static config_node load_file(const std::string& path);
  static std::string read_file(const std::string& path);
  static constexpr std::uintmax_t max_file_bytes = 4 * 1024 * 1024;

  impl* get_impl() const { return impl_.get(); }

 private:
  std::shared_ptr<impl> impl_;
};

}  // namespace sluice
