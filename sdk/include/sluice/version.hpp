// sluice/version.hpp — SDK version, ABI version and the build key.
//
// A plugin is only loaded when its build key equals the kernel's: the same compiler
// family and major version, the same C++ standard library ABI, the same Boost version
// and the same SDK ABI. These are the things that change the layout of the objects that
// cross the plugin boundary (std::string, std::function, Asio's awaitable frames).
#pragma once

#include <boost/version.hpp>

#define SLUICE_SDK_VERSION_MAJOR 0
#define SLUICE_SDK_VERSION_MINOR 1
#define SLUICE_SDK_VERSION_PATCH 0
#define SLUICE_SDK_VERSION_STRING "0.1.0"

// Bumped whenever a type in sdk/include/sluice changes layout or a virtual function is
// added, removed or reordered.
#define SLUICE_SDK_ABI 4

#define SLUICE_DETAIL_STR2(x) #x
#define SLUICE_DETAIL_STR(x) SLUICE_DETAIL_STR2(x)

#if defined(__clang__)
#define SLUICE_DETAIL_COMPILER "clang-" SLUICE_DETAIL_STR(__clang_major__)
#elif defined(__GNUC__)
#define SLUICE_DETAIL_COMPILER "gcc-" SLUICE_DETAIL_STR(__GNUC__)
#else
#define SLUICE_DETAIL_COMPILER "unknown"
#endif

#if defined(_GLIBCXX_USE_CXX11_ABI)
#define SLUICE_DETAIL_STDLIB "libstdc++-cxx11abi" SLUICE_DETAIL_STR(_GLIBCXX_USE_CXX11_ABI)
#elif defined(_LIBCPP_VERSION)
#define SLUICE_DETAIL_STDLIB "libc++-" SLUICE_DETAIL_STR(_LIBCPP_ABI_VERSION)
#else
#define SLUICE_DETAIL_STDLIB "unknown-stdlib"
#endif

// Clang and GCC share libstdc++ and the Itanium ABI on Linux, so the key names the
// standard library, not the compiler's major version, except that a plugin built by a
// different compiler family is still refused: coroutine frame layouts differ.
#define SLUICE_BUILD_KEY   \
  SLUICE_DETAIL_COMPILER   \
  ";" SLUICE_DETAIL_STDLIB \
  ";boost-" SLUICE_DETAIL_STR(BOOST_VERSION) ";sdk-abi-" SLUICE_DETAIL_STR(SLUICE_SDK_ABI)

namespace sluice {

// The build key this translation unit was compiled with.
inline constexpr const char* build_key = SLUICE_BUILD_KEY;
inline constexpr unsigned sdk_abi = SLUICE_SDK_ABI;

}  // namespace sluice
