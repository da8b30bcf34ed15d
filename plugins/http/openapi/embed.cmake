# embed.cmake — cmake -DINPUT=<file> -DOUTPUT=<header> -P embed.cmake
# Writes <header> holding the bytes of <file> as sluice::http::embedded::openapi_json.
file(READ ${INPUT} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR size "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUTPUT}
  "// Generated from ${INPUT} by embed.cmake; do not edit.\n"
  "#pragma once\n#include <cstddef>\n"
  "namespace sluice::http::embedded {\n"
  "inline const unsigned char openapi_json[] = {${bytes}0x00};\n"
  "inline constexpr std::size_t openapi_json_size = ${size};\n"
  "}  // namespace sluice::http::embedded\n")
