// regex.hpp — a compiled PCRE2 pattern with a checked replacement template.
//
// Why PCRE2 and not std::regex: the subjects here (addresses, header values) come from
// senders. libstdc++'s std::regex backtracks by recursion and can exhaust the stack on a
// long input; PCRE2 bounds every match (match and depth limits, set below), compiles once
// with its JIT, reports a bad pattern with the offset of the error, and has Perl syntax
// (named groups, lookaround, (?i)) that users know from Postfix's pcre tables.
//
// A pattern is compiled at load (startup code: errors throw std::invalid_argument with
// PCRE2's message and offset); matching and substitution never throw: a pattern that hits
// its match limit counts as "no match" and is reported by `status`.
//
// Threading: a compiled pattern is immutable and shared between threads; every call makes
// its own match data.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::rewrite {

class regex {
 public:
  enum class status : std::uint8_t {
    matched,
    no_match,
    limit,  // the match or depth limit was hit: treated as no match
    error,  // any other PCRE2 run-time error: treated as no match
  };

  // Compiles `pattern` (UTF-8 mode). Throws std::invalid_argument("<message> at offset N").
  explicit regex(std::string_view pattern, bool caseless);
  ~regex();
  regex(regex&&) noexcept;
  regex& operator=(regex&&) noexcept;

  // Checks a replacement template against this pattern: $$, $N, ${N}, ${name}; N must be a
  // group of the pattern, names must exist. Throws std::invalid_argument saying what is
  // wrong.
  void check_replacement(std::string_view replacement) const;

  status search(std::string_view subject) const;
  // Replaces the first match in `subject` with `replacement` (groups unset in the match
  // give the empty string), as sed's s///. std::nullopt when nothing matched; `why` says
  // whether a limit or an error was the cause.
  std::optional<std::string> replace(std::string_view subject, std::string_view replacement,
                                     status* why = nullptr) const;

  const std::string& pattern() const { return pattern_; }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::string pattern_;
};

}  // namespace sluice::rewrite
