// sluice/log.hpp — structured logging, as text or JSON lines.
//
// A logger is a cheap value carrying a component name and context fields (session id,
// message id). The sink is process-wide, configured by the kernel from `log:` in the
// config. Thread-safe: lines from different threads never interleave.
// Never log credentials: AUTH arguments, passwords, secrets, Authorization headers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace sluice {

enum class log_level : std::uint8_t { trace, debug, info, warn, error };

struct log_field {
  std::string key;
  std::string value;
  bool quoted = true;  // false for numbers and booleans (JSON output)

  log_field(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  log_field(std::string k, std::string_view v) : key(std::move(k)), value(v) {}
  log_field(std::string k, const char* v) : key(std::move(k)), value(v ? v : "") {}
  log_field(std::string k, bool v)
      : key(std::move(k)), value(v ? "true" : "false"), quoted(false) {}
  template <class I>
  requires std::is_arithmetic_v<I> log_field(std::string k, I v)
      : key(std::move(k)), value(std::to_string(v)), quoted(false) {}
};

class logger {
 public:
  logger() = default;
  explicit logger(std::string component) : component_(std::move(component)) {}

  // A logger that adds `f` to every line.
  logger with(log_field f) const;
  const std::string& component() const noexcept { return component_; }

  bool enabled(log_level l) const noexcept;
  void log(log_level l, std::string_view msg, std::vector<log_field> fields = {}) const;
  void trace(std::string_view m, std::vector<log_field> f = {}) const {
    log(log_level::trace, m, std::move(f));
  }
  void debug(std::string_view m, std::vector<log_field> f = {}) const {
    log(log_level::debug, m, std::move(f));
  }
  void info(std::string_view m, std::vector<log_field> f = {}) const {
    log(log_level::info, m, std::move(f));
  }
  void warn(std::string_view m, std::vector<log_field> f = {}) const {
    log(log_level::warn, m, std::move(f));
  }
  void error(std::string_view m, std::vector<log_field> f = {}) const {
    log(log_level::error, m, std::move(f));
  }

 private:
  std::string component_;
  std::vector<log_field> context_;
};

enum class log_format : std::uint8_t { text, json };

// Process-wide sink settings; the kernel calls this once at start and on reload.
// fd is where lines go (2 = stderr by default).
void configure_logging(log_format format, log_level level, int fd = 2);
bool parse_log_level(std::string_view s, log_level& out);

}  // namespace sluice
