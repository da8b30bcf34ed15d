// fuzz_config.cpp — libFuzzer target for sluice::config_node (YAML → validated view).
// Parses the input as "fuzz.yaml", then walks every node calling every accessor, then
// runs the kernel's configuration loader over the same text. Only
// sluice::config_error may be thrown; anything else (or a crash) is a finding. The walk is
// depth-bounded so the harness itself cannot overflow the stack.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "kernel_config.hpp"
#include "sluice/config.hpp"

namespace {

template <class F>
void quietly(F&& f) {
  try {
    f();
  } catch (const sluice::config_error& e) {
    if (std::string_view(e.what()).empty()) __builtin_trap();
  }
}

void walk(const sluice::config_node& n, int depth) {
  if (depth > 64) return;
  (void)n.where();
  (void)n.path();
  const int kinds = int(n.is_map()) + int(n.is_sequence()) + int(n.is_scalar());
  if (kinds > 1) __builtin_trap();
  if (n.is_map()) {
    quietly([&] {
      for (const auto& [key, child] : n.entries()) {
        if (!n.has(key)) __builtin_trap();
        walk(child, depth + 1);
      }
    });
    quietly([&] { (void)n.at("listeners"); });
    quietly([&] { (void)n.get_string("name", "x"); });
    quietly([&] { (void)n.get_int("port", 1); });
    quietly([&] { (void)n.get_bool("enabled", true); });
    quietly([&] { (void)n.get_duration("timeout", std::chrono::seconds(1)); });
    quietly([&] { (void)n.get_size("max", 1); });
    quietly([&] { (void)n.get_string_list("listen"); });
    quietly([&] { n.check_unknown_keys(); });
  } else if (n.is_sequence()) {
    quietly([&] {
      for (const auto& child : n.items())
        walk(child, depth + 1);
    });
  }
  quietly([&] { (void)n.as_string(); });
  quietly([&] { (void)n.as_int(); });
  quietly([&] { (void)n.as_double(); });
  quietly([&] { (void)n.as_bool(); });
  quietly([&] { (void)n.as_duration(); });
  quietly([&] { (void)n.as_size(); });
  quietly([&] { (void)n.as_string_list(); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto root = sluice::config_node::parse(text, "fuzz.yaml");
    walk(root, 0);
  } catch (const sluice::config_error& e) {
    if (std::string_view(e.what()).empty()) __builtin_trap();
  }
  // The kernel's loader on the same text: its keys, names, cross references. Includes
  // resolve under a directory that does not exist, so no file outside is read.
  try {
    const auto cfg =
        sluice::kernel::parse_kernel_config(text, "fuzz.yaml", "/nonexistent-sluice-fuzz");
    // Listener addresses that clash (IP literals compared as addresses).
    sluice::kernel::check_listen_conflicts(cfg);
  } catch (const sluice::config_error& e) {
    if (std::string_view(e.what()).empty()) __builtin_trap();
  }
  return 0;
}
