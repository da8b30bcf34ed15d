// regex.cpp — PCRE2 (8-bit, UTF mode) behind sluice::rewrite::regex.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "regex.hpp"

#include <pcre2.h>

#include <stdexcept>

namespace sluice::rewrite {
namespace {

// Bounds on one match: subjects are at most a few KB (an address, a header value), so
// these only stop pathological patterns (nested quantifiers) from running away.
constexpr std::uint32_t kMatchLimit = 200000;
constexpr std::uint32_t kDepthLimit = 10000;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof buf);
  if (n < 0) return "PCRE2 error " + std::to_string(code);
  return std::string(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
}

regex::status status_of(int rc) {
  if (rc == PCRE2_ERROR_NOMATCH) return regex::status::no_match;
  if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT) return regex::status::limit;
  return regex::status::error;
}

}  // namespace

struct regex::impl {
  pcre2_code* code = nullptr;
  pcre2_match_context* mctx = nullptr;
  ~impl() {
    if (mctx) pcre2_match_context_free(mctx);
    if (code) pcre2_code_free(code);
  }
};

regex::regex(std::string_view pattern, bool caseless)
    : impl_(std::make_unique<impl>()), pattern_(pattern) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  // MATCH_INVALID_UTF: header values may hold raw 8-bit bytes; they then simply do not
  // match a UTF-8 character instead of failing the whole match.
  std::uint32_t options = PCRE2_UTF | PCRE2_MATCH_INVALID_UTF;
  if (caseless) options |= PCRE2_CASELESS;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                              &err, &offset, nullptr);
  if (!impl_->code) {
    throw std::invalid_argument(pcre2_message(err) + " at offset " + std::to_string(offset));
  }
  // The JIT is an optimisation: when the platform lacks it the interpreter is used.
  (void)pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);
  impl_->mctx = pcre2_match_context_create(nullptr);
  if (!impl_->mctx) throw std::bad_alloc();
  pcre2_set_match_limit(impl_->mctx, kMatchLimit);
  pcre2_set_depth_limit(impl_->mctx, kDepthLimit);
}

regex::~regex() = default;
regex::regex(regex&&) noexcept = default;
regex& regex::operator=(regex&&) noexcept = default;

void regex::check_replacement(std::string_view r) const {
  std::uint32_t groups = 0;
  pcre2_pattern_info(impl_->code, PCRE2_INFO_CAPTURECOUNT, &groups);
  auto check_number = [&](std::string_view digits) {
    unsigned long n = 0;
    for (char c : digits) {
      n = n * 10 + static_cast<unsigned>(c - '0');
      if (n > 65535) break;
    }
    if (n > groups) {
      throw std::invalid_argument("replacement refers to group $" + std::string(digits) +
                                  " but the pattern has " + std::to_string(groups) +
                                  (groups == 1 ? " group" : " groups"));
    }
  };
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  for (std::size_t i = 0; i < r.size(); ++i) {
    if (r[i] != '$') continue;
    if (i + 1 >= r.size()) throw std::invalid_argument("replacement ends with a lone $ (write $$)");
    char c = r[i + 1];
    if (c == '$') {
      ++i;
    } else if (is_digit(c)) {
      std::size_t j = i + 1;
      while (j < r.size() && is_digit(r[j]))
        ++j;
      check_number(r.substr(i + 1, j - i - 1));
      i = j - 1;
    } else if (c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) {
      std::size_t j = i + 1;
      while (j < r.size() && (r[j] == '_' || is_digit(r[j]) || (r[j] >= 'A' && r[j] <= 'Z') ||
                              (r[j] >= 'a' && r[j] <= 'z')))
        ++j;
      std::string name(r.substr(i + 1, j - i - 1));
      if (pcre2_substring_number_from_name(impl_->code,
                                           reinterpret_cast<PCRE2_SPTR>(name.c_str())) < 0) {
        throw std::invalid_argument("replacement refers to $" + name +
                                    " but the pattern has no group of that name");
      }
      i = j - 1;
    } else if (c == '{') {
      std::size_t close = r.find('}', i + 2);
      if (close == std::string_view::npos) {
        throw std::invalid_argument("replacement has ${ without a closing }");
      }
      std::string_view ref = r.substr(i + 2, close - i - 2);
      if (ref.empty()) throw std::invalid_argument("replacement has an empty ${}");
      bool numeric = true;
      for (char d : ref)
        numeric = numeric && is_digit(d);
      if (numeric) {
        check_number(ref);
      } else {
        std::string name(ref);
        if (pcre2_substring_number_from_name(impl_->code,
                                             reinterpret_cast<PCRE2_SPTR>(name.c_str())) < 0) {
          throw std::invalid_argument("replacement refers to ${" + name +
                                      "} but the pattern has no group of that name");
        }
      }
      i = close;
    } else {
      throw std::invalid_argument(std::string("replacement has $ followed by '") + c +
                                  "' (use $N, ${N}, $name, ${name} or $$)");
    }
  }
}

regex::status regex::search(std::string_view subject) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
  if (!md) return status::error;
  int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0,
                       0, md, impl_->mctx);
  pcre2_match_data_free(md);
  return rc >= 0 ? status::matched : status_of(rc);
}

std::optional<std::string> regex::replace(std::string_view subject, std::string_view replacement,
                                          status* why) const {
  if (why) *why = status::matched;
  // First a match, so that "no match" is told apart from an empty result.
  status s = search(subject);
  if (s != status::matched) {
    if (why) *why = s;
    return std::nullopt;
  }
  std::string out(subject.size() + replacement.size() + 64, '\0');
  const std::uint32_t options = PCRE2_SUBSTITUTE_UNSET_EMPTY | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH;
  for (int attempt = 0; attempt < 2; ++attempt) {
    PCRE2_SIZE len = out.size();
    int rc = pcre2_substitute(impl_->code, reinterpret_cast<PCRE2_SPTR>(subject.data()),
                              subject.size(), 0, options, nullptr, impl_->mctx,
                              reinterpret_cast<PCRE2_SPTR>(replacement.data()), replacement.size(),
                              reinterpret_cast<PCRE2_UCHAR*>(out.data()), &len);
    if (rc == PCRE2_ERROR_NOMEMORY && attempt == 0) {
      out.resize(len);  // OVERFLOW_LENGTH: len is the size needed (with the terminator)
      continue;
    }
    if (rc < 0) {
      if (why) *why = status_of(rc);
      return std::nullopt;
    }
    if (rc == 0) {
      if (why) *why = status::no_match;
      return std::nullopt;
    }
    out.resize(len);
    return out;
  }
  if (why) *why = status::error;
  return std::nullopt;
}

}  // namespace sluice::rewrite
