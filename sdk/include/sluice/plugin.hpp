// sluice/plugin.hpp — how a plugin introduces itself to the kernel.
//
// Each plugin .so defines exactly one descriptor with SLUICE_PLUGIN. The kernel loads the
// library with RTLD_NOW|RTLD_LOCAL|RTLD_NODELETE, reads the descriptor, refuses it when
// its ABI or build key differs from the kernel's (naming both), and then calls
// register_fn, which adds the plugin's factories by name. Libraries are never unloaded.
//
// Nothing may throw across this boundary at run time; factories run at startup (and on
// reload) and may throw config_error for bad configuration.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "sluice/command.hpp"
#include "sluice/host.hpp"
#include "sluice/listener.hpp"
#include "sluice/services.hpp"
#include "sluice/stage.hpp"
#include "sluice/version.hpp"

namespace sluice {

using stage_factory = std::function<std::shared_ptr<stage>(instance_context&)>;
using listener_factory =
    std::function<std::shared_ptr<listener>(instance_context&, listener_context&)>;
// A service factory creates the object and registers it (and anything else it offers)
// in ctx.host.services().
using service_factory = std::function<std::shared_ptr<service>(instance_context&)>;

class registrar {
 public:
  virtual ~registrar() = default;
  virtual void add_stage(std::string_view name, stage_factory f, stage_traits traits = {}) = 0;
  virtual void add_listener(std::string_view name, listener_factory f) = 0;
  virtual void add_service(std::string_view name, service_factory f) = 0;
  virtual void add_command(std::string_view name, std::string_view summary, command_fn f) = 0;
};

// The layout of the first two members never changes, so that any kernel can read them
// from any plugin and refuse a mismatch without calling into it.
struct plugin_descriptor {
  unsigned abi;
  const char* build_key;
  const char* name;
  const char* version;
  const char* summary;
  void (*register_fn)(registrar&);
};

}  // namespace sluice

#define SLUICE_PLUGIN_SYMBOL "sluice_plugin_descriptor"

// Defines the plugin's descriptor. Use once per plugin, at namespace scope.
#define SLUICE_PLUGIN(NAME, VERSION, SUMMARY, REGISTER_FN)       \
  extern "C" __attribute__((visibility("default")))              \
  const ::sluice::plugin_descriptor sluice_plugin_descriptor = { \
      SLUICE_SDK_ABI, SLUICE_BUILD_KEY, NAME, VERSION, SUMMARY, REGISTER_FN}
