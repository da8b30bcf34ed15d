// server.hpp — the running kernel: host services, plugins, pipelines, listeners, signals.
//
// Lifecycle: build() loads plugins and builds everything from the config (throws
// config_error); run() starts listeners, writes the ready file, and runs the io_context
// on one thread per core until a drain completes. SIGTERM/SIGINT: close the drain gate
// (sessions answer 421 4.3.2 and close; messages in flight finish), stop listeners, stop
// the spool, then stop the io_context (forced after shutdown_timeout). SIGHUP: reload
// pipelines from the config file and swap them in atomically; listeners and services keep
// running; a bad config is logged and the old pipelines stay. From build() on the three
// signals are blocked in every thread but run()'s own, so a signal during the teardown
// after run() is ignored instead of killing the process half-way (sdk/README.md, Signals).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kernel_config.hpp"
#include "plugin_loader.hpp"

namespace sluice::kernel {

struct server_options {
  std::filesystem::path config_file;
  // When set, the configuration is this text (the Mailpit facade) instead of config_file;
  // `config_name` names it in errors and relative paths resolve against the current directory.
  std::string config_text;
  std::string config_name;
  std::vector<std::filesystem::path> plugin_dirs;
  std::filesystem::path ready_file;  // JSON with pid and bound endpoints, once listening
  bool check_only = false;
};

class server {
 public:
  explicit server(server_options opts);
  ~server();
  // Loads config and plugins and builds services, pipelines and listeners.
  void build();
  // Runs until drained; returns the process exit status.
  int run();
  const plugin_loader& plugins() const;
  const kernel_config& config() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace sluice::kernel
