// bad_key_plugin.cpp — a plugin built "elsewhere": its descriptor names another build
// key. The loader must refuse it without calling its register function.
#include <cstdlib>

#include "sluice/plugin.hpp"

namespace {
void register_fn(sluice::registrar&) {
  std::abort();
}  // must never run
}  // namespace

extern "C" __attribute__((visibility("default")))
const sluice::plugin_descriptor sluice_plugin_descriptor = {
    SLUICE_SDK_ABI,
    "clang-99;libc++-1;boost-107000;sdk-abi-1",
    "bad_key",
    "1.0",
    "refused on purpose",
    register_fn};
