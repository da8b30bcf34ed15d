// plugin_loader.hpp — finds plugin libraries, checks their descriptor, and keeps the
// factories they register.
//
// Libraries are opened with RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE and never closed:
// objects whose code lives in a plugin (stages, coroutine frames, std::function targets)
// may outlive any pipeline that created them. A library whose ABI or build key differs
// from the kernel's is refused before its register function runs, with both keys named.
//
// Not thread-safe: used at startup and on reload, from one thread.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sluice/plugin.hpp"

namespace sluice::kernel {

struct plugin_info {
  std::filesystem::path path;
  std::string name;
  std::string version;
  std::string summary;
  std::string build_key;
  bool loaded = false;
  std::string refusal;                // why it was not loaded, when !loaded
  std::vector<std::string> provides;  // "stage store", "listener smtp", "command sendmail"…
};

struct stage_type {
  std::string plugin;
  stage_factory factory;
  stage_traits traits;
};
struct listener_type {
  std::string plugin;
  listener_factory factory;
};
struct service_type {
  std::string plugin;
  service_factory factory;
};
struct command_type {
  std::string plugin;
  std::string summary;
  command_fn fn;
};

class plugin_loader {
 public:
  // Loads every *.so in every directory of `dirs` (in order; the first plugin of a name
  // wins, later ones are refused as duplicates). Missing directories are skipped.
  void load_dirs(const std::vector<std::filesystem::path>& dirs);
  // Loads one library; returns false (and records why) if it was refused.
  bool load(const std::filesystem::path& path);

  const std::vector<plugin_info>& plugins() const { return plugins_; }
  const stage_type* find_stage(const std::string& name) const;
  const listener_type* find_listener(const std::string& name) const;
  const service_type* find_service(const std::string& name) const;
  const command_type* find_command(const std::string& name) const;
  const std::map<std::string, command_type>& commands() const { return commands_; }

  // Names of every factory of a kind, for "unknown plugin" errors.
  std::string known_stages() const;
  std::string known_listeners() const;
  std::string known_services() const;

 private:
  friend class registrar_impl;
  std::vector<plugin_info> plugins_;
  std::map<std::string, stage_type> stages_;
  std::map<std::string, listener_type> listeners_;
  std::map<std::string, service_type> services_;
  std::map<std::string, command_type> commands_;
};

// The directories searched, in order: --plugin-dir options, SLUICE_PLUGIN_PATH
// (colon-separated), the config's plugin_path, and <dir of the executable>/../lib/sluice/plugins.
std::vector<std::filesystem::path> plugin_search_path(
    const std::vector<std::filesystem::path>& cli_dirs,
    const std::vector<std::filesystem::path>& config_dirs);

}  // namespace sluice::kernel
