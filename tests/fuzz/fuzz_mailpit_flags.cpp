// fuzz_mailpit_flags.cpp — libFuzzer target for the Mailpit facade (kernel/src/mailpit_flags).
// The input is lines: "MP_NAME=value" lines become the environment, every other line one
// command-line word. translate() may refuse with flag_error or config_error only; whatever it
// accepts must be YAML the kernel's loader reads without any error (quoting, `$` escaping),
// and no scalar may need a variable other than the MP_* credentials it refers to.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernel_config.hpp"
#include "mailpit_flags.hpp"
#include "sluice/config.hpp"

namespace {

void walk(const sluice::config_node& n, int depth) {
  if (depth > 32) return;
  if (n.is_map()) {
    for (auto& [k, v] : n.entries())
      walk(v, depth + 1);
  } else if (n.is_sequence()) {
    for (auto& v : n.items())
      walk(v, depth + 1);
  } else if (n.is_scalar()) {
    try {
      (void)n.as_string();
    } catch (const sluice::config_error& e) {
      // Only references to the facade's own MP_* variables may be unset.
      if (std::string_view(e.what()).find("environment variable MP_") == std::string_view::npos)
        __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 4096) return 0;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> args;
  sluice::kernel::mailpit::env_map env;
  while (!in.empty()) {
    auto nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    // Files named by flags are read; keep the fuzzer away from the file system.
    if (line.find("config") != std::string_view::npos) return 0;
    auto eq = line.find('=');
    if (line.starts_with("MP_") && eq != std::string_view::npos)
      env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    else
      args.emplace_back(line);
  }
  sluice::kernel::mailpit::facade f;
  try {
    f = sluice::kernel::mailpit::translate(args, env, "/nonexistent/sluice-fuzz");
  } catch (const sluice::kernel::mailpit::flag_error&) {
    return 0;
  } catch (const sluice::config_error&) {
    return 0;
  }
  try {
    auto cfg = sluice::kernel::parse_kernel_config(f.yaml, "mailpit-flags", "/nonexistent");
    for (const auto& doc : cfg.documents)
      walk(doc, 0);
  } catch (const sluice::config_error&) {
    __builtin_trap();  // accepted flags must give a configuration the loader reads
  }
  return 0;
}
