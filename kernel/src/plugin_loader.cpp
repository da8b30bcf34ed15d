// plugin_loader.cpp — Boost.DLL based loading (see plugin_loader.hpp).
#include "plugin_loader.hpp"

#include <dlfcn.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>

namespace sluice::kernel {

class registrar_impl final : public registrar {
 public:
  registrar_impl(plugin_loader& l, plugin_info& info) : loader_(l), info_(info) {}

  void add_stage(std::string_view name, stage_factory f, stage_traits traits) override {
    claim("stage", name, loader_.stages_.count(std::string(name)) != 0);
    loader_.stages_.emplace(std::string(name), stage_type{info_.name, std::move(f), traits});
  }
  void add_listener(std::string_view name, listener_factory f) override {
    claim("listener", name, loader_.listeners_.count(std::string(name)) != 0);
    loader_.listeners_.emplace(std::string(name), listener_type{info_.name, std::move(f)});
  }
  void add_service(std::string_view name, service_factory f) override {
    claim("service", name, loader_.services_.count(std::string(name)) != 0);
    loader_.services_.emplace(std::string(name), service_type{info_.name, std::move(f)});
  }
  void add_command(std::string_view name, std::string_view summary, command_fn f) override {
    claim("command", name, loader_.commands_.count(std::string(name)) != 0);
    loader_.commands_.emplace(std::string(name),
                              command_type{info_.name, std::string(summary), std::move(f)});
  }

 private:
  void claim(std::string_view kind, std::string_view name, bool taken) {
    if (taken) {
      throw std::invalid_argument(std::string(kind) + " \"" + std::string(name) +
                                  "\" is already provided by another plugin");
    }
    info_.provides.push_back(std::string(kind) + " " + std::string(name));
  }
  plugin_loader& loader_;
  plugin_info& info_;
};

bool plugin_loader::load(const std::filesystem::path& path) {
  plugin_info info;
  info.path = path;
  namespace dll = boost::dll;
  // RTLD_NODELETE: the library stays mapped even if a handle is ever closed.
  auto mode = static_cast<dll::load_mode::type>(RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  // Handles live as long as the process (see the header); with RTLD_NODELETE even the
  // dlclose at exit leaves the code mapped for objects destroyed after it.
  static std::mutex handles_mu;
  static std::vector<std::unique_ptr<dll::shared_library>> handles;
  dll::shared_library* lib;
  {
    std::lock_guard lock(handles_mu);
    lib = handles.emplace_back(std::make_unique<dll::shared_library>()).get();
  }
  boost::system::error_code ec;
  lib->load(boost::dll::fs::path(path.string()), mode, ec);
  if (ec) {
    const char* why = dlerror();
    info.refusal = "cannot load: " + (why ? std::string(why) : ec.message());
    plugins_.push_back(std::move(info));
    return false;
  }
  if (!lib->has(SLUICE_PLUGIN_SYMBOL)) {
    info.refusal = "not a Sluice plugin (no " SLUICE_PLUGIN_SYMBOL " symbol)";
    plugins_.push_back(std::move(info));
    return false;
  }
  const auto& d = lib->get<const plugin_descriptor>(SLUICE_PLUGIN_SYMBOL);
  info.build_key = d.build_key ? d.build_key : "";
  if (d.abi != SLUICE_SDK_ABI || info.build_key != SLUICE_BUILD_KEY) {
    info.refusal = "build key mismatch: plugin has \"" + info.build_key + "\" (SDK ABI " +
                   std::to_string(d.abi) + "), kernel has \"" SLUICE_BUILD_KEY "\" (SDK ABI " +
                   std::to_string(SLUICE_SDK_ABI) + "); rebuild the plugin against this SDK";
    plugins_.push_back(std::move(info));
    return false;
  }
  info.name = d.name ? d.name : "";
  info.version = d.version ? d.version : "";
  info.summary = d.summary ? d.summary : "";
  for (const auto& p : plugins_) {
    if (p.loaded && p.name == info.name) {
      info.refusal =
          "duplicate: plugin \"" + info.name + "\" was already loaded from " + p.path.string();
      plugins_.push_back(std::move(info));
      return false;
    }
  }
  plugins_.push_back(std::move(info));
  auto& stored = plugins_.back();
  registrar_impl reg(*this, stored);
  try {
    if (d.register_fn) d.register_fn(reg);
  } catch (const std::exception& e) {
    stored.refusal = std::string("registration failed: ") + e.what();
    return false;
  }
  stored.loaded = true;
  return true;
}

void plugin_loader::load_dirs(const std::vector<std::filesystem::path>& dirs) {
  std::set<std::filesystem::path> seen_dirs;
  for (const auto& dir : dirs) {
    std::error_code ec;
    auto canon = std::filesystem::weakly_canonical(dir, ec);
    if (!std::filesystem::is_directory(canon, ec) || !seen_dirs.insert(canon).second) continue;
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(canon, ec)) {
      if (entry.is_regular_file() && entry.path().extension() == ".so")
        files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& f : files)
      load(f);
  }
}

const stage_type* plugin_loader::find_stage(const std::string& name) const {
  auto it = stages_.find(name);
  return it == stages_.end() ? nullptr : &it->second;
}
const listener_type* plugin_loader::find_listener(const std::string& name) const {
  auto it = listeners_.find(name);
  return it == listeners_.end() ? nullptr : &it->second;
}
const service_type* plugin_loader::find_service(const std::string& name) const {
  auto it = services_.find(name);
  return it == services_.end() ? nullptr : &it->second;
}
const command_type* plugin_loader::find_command(const std::string& name) const {
  auto it = commands_.find(name);
  return it == commands_.end() ? nullptr : &it->second;
}

template <class M>
static std::string join_keys(const M& m) {
  std::string out;
  for (const auto& [k, v] : m) {
    if (!out.empty()) out += ", ";
    out += k;
  }
  return out.empty() ? "none" : out;
}
std::string plugin_loader::known_stages() const {
  return join_keys(stages_);
}
std::string plugin_loader::known_listeners() const {
  return join_keys(listeners_);
}
std::string plugin_loader::known_services() const {
  return join_keys(services_);
}

std::vector<std::filesystem::path> plugin_search_path(
    const std::vector<std::filesystem::path>& cli_dirs,
    const std::vector<std::filesystem::path>& config_dirs) {
  std::vector<std::filesystem::path> dirs = cli_dirs;
  if (const char* env = std::getenv("SLUICE_PLUGIN_PATH")) {
    std::string_view s = env;
    while (!s.empty()) {
      auto colon = s.find(':');
      auto part = s.substr(0, colon);
      if (!part.empty()) dirs.emplace_back(std::string(part));
      if (colon == std::string_view::npos) break;
      s.remove_prefix(colon + 1);
    }
  }
  dirs.insert(dirs.end(), config_dirs.begin(), config_dirs.end());
  auto exe = boost::dll::program_location();
  dirs.push_back(std::filesystem::path(exe.parent_path().string()) / ".." / "lib" / "sluice" /
                 "plugins");
  return dirs;
}

}  // namespace sluice::kernel
