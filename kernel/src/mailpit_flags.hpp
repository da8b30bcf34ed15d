// mailpit_flags.hpp — Mailpit's command line as a Sluice configuration.
//
// A Mailpit user switches by changing the binary name: `sluice --smtp 127.0.0.1:1025
// --max 100 --smtp-relay-config relay.yaml` builds the configuration Mailpit's flags and
// MP_* variables describe (mime → store capture pipeline, smtp and http listeners, pop3,
// tags, chaos, webhook, relay), as YAML text that goes through the normal config loader,
// so every check of the kernel and the plugins still applies.
//
// Rules (Mailpit's cmd/root.go): each flag's MP_* twin is read first, the flag overrides
// it; booleans from the environment are true only for 1, true or yes (any case).
// Credentials (MP_UI_AUTH, MP_SMTP_AUTH, MP_POP3_AUTH, MP_SEND_API_AUTH, relay passwords)
// never appear in the text: it refers to them as ${MP_...}, and values that come from a
// file (the relay YAML) are returned in `secrets` for the caller to put in the environment.
//
// Pure apart from reading the files flags name (relay and tags YAML) and making relative
// paths absolute against the current directory. Throws flag_error naming the flag (or the
// variable) and why; a bad relay or tags file throws config_error with file:line:col.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::kernel::mailpit {

// A flag or MP_* variable that is malformed, conflicts with another, or names a Mailpit
// feature Sluice cannot honour. what() names it: "--max-age: expected <n>h or <n>d, got 3w".
class flag_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using env_map = std::map<std::string, std::string, std::less<>>;

struct facade {
  std::string yaml;     // a complete configuration
  env_map secrets;      // variables to set before the YAML is loaded (values read from files)
  bool temporary_data;  // no --database: data lives in the directory temp_dir() gave
};

// How many arguments a command-line word of the facade consumes: -1 when it is no Mailpit
// flag, 0 when it stands alone ("--smtp=x", "-sx", a boolean), 1 when the next word is its
// value ("--smtp x").
int flag_arity(std::string_view arg);
// True when `env` holds a Mailpit variable the facade reads (non-empty).
bool env_selects_facade(const env_map& env);
// Builds the configuration. When --database is not given (Mailpit uses a temporary file
// then, deleted on exit), `temp_dir` is called once for the directory that holds the
// database and spool; it is not called otherwise.
facade translate(const std::vector<std::string>& args, const env_map& env,
                 const std::function<std::filesystem::path()>& temp_dir);
// The same with a fixed directory (tests, check-config).
inline facade translate(const std::vector<std::string>& args, const env_map& env,
                        const std::filesystem::path& temp_dir) {
  return translate(args, env, std::function<std::filesystem::path()>([&] { return temp_dir; }));
}
// The "Mailpit flags" part of `sluice --help`.
std::string help_text();

}  // namespace sluice::kernel::mailpit
