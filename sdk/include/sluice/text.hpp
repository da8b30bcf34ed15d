// sluice/text.hpp — small ASCII helpers for protocol text (header names, keywords).
// Locale-independent on purpose: protocol keywords are ASCII (RFC 5321, RFC 5322).
#pragma once

#include <string>
#include <string_view>

namespace sluice {

// Case-insensitive equality of ASCII letters; other bytes compare exactly.
bool iequals(std::string_view a, std::string_view b) noexcept;
std::string to_lower_ascii(std::string_view s);
// Without leading and trailing spaces, tabs, CR and LF.
std::string_view trim(std::string_view s) noexcept;

}  // namespace sluice
