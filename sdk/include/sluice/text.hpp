// sluice/text.hpp — small ASCII helpers for protocol text (header names, keywords, hex).
// Locale-independent on purpose: protocol keywords are ASCII (RFC 5321, RFC 5322).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice {

// Case-insensitive equality of ASCII letters; other bytes compare exactly.
bool iequals(std::string_view a, std::string_view b) noexcept;
std::string to_lower_ascii(std::string_view s);
// Without leading and trailing spaces, tabs, CR and LF.
std::string_view trim(std::string_view s) noexcept;

// Two lower-case hex digits per byte of [data, data + n): digests, MACs, nonces.
std::string to_hex(const void* data, std::size_t n);
// Appends the two hex digits of `byte`: upper case by default, as percent-encoding
// (RFC 3986 §2.1) and Q-encoding (RFC 2047 §4.2) recommend; lower case when `upper` is false.
void append_hex(std::string& out, unsigned char byte, bool upper = true);

}  // namespace sluice
