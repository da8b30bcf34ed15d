// kernel_config.hpp — the kernel's view of the configuration file.
//
// The kernel reads only its own keys (log, spool, plugin_path, include, and the name,
// plugin, pipeline, phase, timeout, on_error and retry of each instance). Everything else
// in an instance's map belongs to the plugin, which reads it from `config` in its
// factory; keys nobody read are reported afterwards with their location.
//
// Startup code: throws sluice::config_error with file:line:col and the key path.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/log.hpp"
#include "sluice/stage.hpp"

namespace sluice::kernel {

enum class on_error_policy { tempfail, reject, continue_, accept };

struct retry_policy {
  std::chrono::milliseconds initial{std::chrono::seconds(30)};
  std::chrono::milliseconds max{std::chrono::hours(1)};
  std::chrono::milliseconds lifetime{std::chrono::hours(24 * 5)};
  unsigned concurrency = 16;  // deferred attempts of this stage running at once
};

struct stage_config {
  std::string name;
  std::string plugin;
  std::optional<sluice::phase> phase;  // unset: the stage type's default
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};
  on_error_policy on_error = on_error_policy::tempfail;
  retry_policy retry;
  // Deferred stages only: run once the deferred stage `after` has settled, and only when its
  // outcome is `when` ("done", "failed" — expired included — or "settled", either).
  std::string after;
  std::string when = "settled";
  config_node node;
};

struct pipeline_config {
  std::string name;
  std::vector<stage_config> stages;
  config_node node;
};

struct instance_config {  // a listener or a service
  std::string name;
  std::string plugin;
  std::string pipeline;  // listeners only; empty if none
  config_node node;
};

struct kernel_config {
  std::filesystem::path file;  // the main configuration file
  std::filesystem::path dir;   // relative paths resolve against this
  sluice::log_format log_format = sluice::log_format::text;
  sluice::log_level log_level = sluice::log_level::info;
  std::filesystem::path log_file;  // empty: standard error
  std::filesystem::path spool_dir;
  bool durability_full = false;
  std::size_t spill_threshold = 1024 * 1024;
  // The spool refuses new messages (452 4.3.1) while its file system has less free space.
  std::uint64_t spool_min_free_space = 64ull * 1024 * 1024;
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(30)};
  unsigned io_threads = 0;      // 0: one per core
  unsigned worker_threads = 0;  // 0: one per core, at least 2
  std::vector<std::filesystem::path> plugin_path;
  std::vector<instance_config> services;
  std::vector<instance_config> listeners;
  std::vector<pipeline_config> pipelines;
  // Every document read (main file and includes), for check_unknown_keys.
  std::vector<config_node> documents;
};

// Loads `file` and the files it includes. Checks the kernel's own keys, names (unique,
// well-formed) and cross references between listeners and pipelines; plugin names are
// checked later against the loaded plugins.
kernel_config load_kernel_config(const std::filesystem::path& file);
// Same, from text (tests, fuzzing); includes resolve against `dir`.
kernel_config parse_kernel_config(std::string_view text, const std::string& file_name,
                                  const std::filesystem::path& dir);

// Two listeners (or one twice) on the same address: the second bind would fail at start.
// Compares the `listen` items the listener plugins read (call after their factories ran):
// the same unix socket path, the same host:port, or 0.0.0.0:P with an IPv4 address on P.
// Port 0 (any free port) never conflicts. Throws config_error at the later item.
void check_listen_conflicts(const kernel_config& cfg);

}  // namespace sluice::kernel
