// main.cpp — the sluice command line.
//
//   sluice [serve] [-c FILE] [--plugin-dir DIR]... [--ready-file FILE]
//   sluice check-config [-c FILE] [--plugin-dir DIR]...
//   sluice plugins [--plugin-dir DIR]...
//   sluice <command> ...        a command contributed by a plugin (e.g. sendmail)
//   sluice --help | --version
//
// Invoked through a symlink whose name is a plugin command (sendmail → sluice), that
// command runs with every argument.
#include <boost/dll/runtime_symbol_info.hpp>
#include <cstdlib>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "plugin_loader.hpp"
#include "server.hpp"
#include "sluice/version.hpp"

namespace {

using sluice::kernel::plugin_loader;

constexpr const char* usage_text =
    "Usage: sluice [COMMAND] [OPTIONS]\n"
    "\n"
    "A mail processor: a small kernel runs each message through a YAML-configured chain\n"
    "of plugins.\n"
    "\n"
    "Commands:\n"
    "  serve          run the server (the default)\n"
    "  check-config   validate the configuration and exit (0 when valid)\n"
    "  plugins        list the plugins found, their versions, and why any was refused\n"
    "%COMMANDS%"
    "\n"
    "Options:\n"
    "  -c, --config FILE    configuration file (default: $SLUICE_CONFIG, else\n"
    "                       <prefix>/etc/sluice/sluice.yaml)\n"
    "  --plugin-dir DIR     search DIR for plugins first (repeatable; also\n"
    "                       SLUICE_PLUGIN_PATH, colon-separated)\n"
    "  --ready-file FILE    serve: write {pid, listeners} as JSON once listening\n"
    "  -h, --help           this text; `sluice COMMAND --help` for a command\n"
    "  -V, --version        version and build key\n";

std::filesystem::path default_config() {
  if (const char* env = std::getenv("SLUICE_CONFIG"); env && *env) return env;
  auto exe = boost::dll::program_location();
  return std::filesystem::path(exe.parent_path().string()) / ".." / "etc" / "sluice" /
         "sluice.yaml";
}

struct options {
  std::string command = "serve";
  sluice::kernel::server_options server;
  bool help = false;
  bool version = false;
};

int version() {
  std::cout << "sluice " SLUICE_SDK_VERSION_STRING "\nbuild key: " SLUICE_BUILD_KEY "\n";
  return 0;
}

std::string plugin_commands_text(const plugin_loader& loader) {
  std::string out;
  for (const auto& [name, c] : loader.commands()) {
    std::string pad = name.size() < 13 ? std::string(13 - name.size(), ' ') : " ";
    out += "  " + name + pad + "  " + c.summary + " (plugin " + c.plugin + ")\n";
  }
  return out;
}

int usage(const plugin_loader& loader, std::ostream& out, int status) {
  std::string text = usage_text;
  text.replace(text.find("%COMMANDS%"), 10, plugin_commands_text(loader));
  out << text;
  return status;
}

int list_plugins(const plugin_loader& loader) {
  int refused = 0;
  for (const auto& p : loader.plugins()) {
    if (p.loaded) {
      std::cout << p.name << " " << p.version << "  " << p.path.string() << "\n";
      if (!p.summary.empty()) std::cout << "    " << p.summary << "\n";
      for (const auto& what : p.provides)
        std::cout << "    provides " << what << "\n";
    } else {
      ++refused;
      std::cout << "REFUSED  " << p.path.string() << "\n    " << p.refusal << "\n";
    }
  }
  if (loader.plugins().empty()) std::cout << "no plugins found\n";
  return refused ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string self = std::filesystem::path(argc > 0 ? argv[0] : "sluice").filename().string();

  // Plugin commands are found by loading plugins from the search path without a config.
  auto load_plugins = [](const std::vector<std::filesystem::path>& dirs) {
    plugin_loader loader;
    loader.load_dirs(sluice::kernel::plugin_search_path(dirs, {}));
    return loader;
  };

  if (self != "sluice" && !self.starts_with("sluice")) {
    auto loader = load_plugins({});
    if (const auto* cmd = loader.find_command(self)) return cmd->fn(args);
  }

  options opt;
  std::vector<std::string> rest;
  std::size_t i = 0;
  if (!args.empty() && !args[0].starts_with("-")) {
    opt.command = args[0];
    i = 1;
  }
  const bool builtin = opt.command == "serve" || opt.command == "check-config" ||
                       opt.command == "plugins" || opt.command == "help";
  if (!builtin) {
    // Plugin commands parse their own arguments; only --plugin-dir is taken first.
    std::vector<std::filesystem::path> dirs;
    std::vector<std::string> cmd_args;
    for (std::size_t j = i; j < args.size(); ++j) {
      if (args[j] == "--plugin-dir" && j + 1 < args.size()) {
        dirs.emplace_back(args[++j]);
      } else {
        cmd_args.push_back(args[j]);
      }
    }
    auto loader = load_plugins(dirs);
    if (const auto* cmd = loader.find_command(opt.command)) return cmd->fn(cmd_args);
    std::cerr << "sluice: unknown command \"" << opt.command << "\"\n";
    return usage(loader, std::cerr, 64);
  }
  for (; i < args.size(); ++i) {
    const auto& a = args[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= args.size()) {
        std::cerr << "sluice: " << name << " needs a value\n";
        std::exit(64);
      }
      return args[++i];
    };
    if (a == "-c" || a == "--config") {
      opt.server.config_file = value("--config");
    } else if (a.starts_with("--config=")) {
      opt.server.config_file = a.substr(9);
    } else if (a == "--plugin-dir") {
      opt.server.plugin_dirs.emplace_back(value("--plugin-dir"));
    } else if (a == "--ready-file") {
      opt.server.ready_file = value("--ready-file");
    } else if (a == "-h" || a == "--help") {
      opt.help = true;
    } else if (a == "-V" || a == "--version") {
      opt.version = true;
    } else {
      std::cerr << "sluice: unknown option \"" << a << "\" (see sluice --help)\n";
      return 64;
    }
  }
  if (opt.version) return version();
  if (opt.help || opt.command == "help") {
    return usage(load_plugins(opt.server.plugin_dirs), std::cout, 0);
  }
  if (opt.command == "plugins") {
    std::vector<std::filesystem::path> cfg_dirs;
    return list_plugins(load_plugins(opt.server.plugin_dirs));
  }
  if (opt.server.config_file.empty()) opt.server.config_file = default_config();
  opt.server.check_only = opt.command == "check-config";
  try {
    sluice::kernel::server srv(opt.server);
    srv.build();
    if (opt.server.check_only) {
      std::cout << opt.server.config_file.string() << ": configuration is valid\n";
      return 0;
    }
    return srv.run();
  } catch (const sluice::config_error& e) {
    std::cerr << "sluice: configuration error: " << e.what() << "\n";
    return 78;  // EX_CONFIG
  } catch (const std::system_error& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return 71;  // EX_OSERR
  } catch (const std::exception& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return 70;  // EX_SOFTWARE
  }
}
