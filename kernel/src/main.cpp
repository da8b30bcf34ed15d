// main.cpp — the sluice command line.
//
//   sluice [serve] [-c FILE] [--plugin-dir DIR]... [--ready-file FILE]
//   sluice [serve|check-config] [MAILPIT FLAGS]...   the Mailpit facade (mailpit_flags.hpp)
//   sluice check-config [-c FILE] [--plugin-dir DIR]... [--print]
//   sluice plugins [--plugin-dir DIR]...
//   sluice <command> ...        a command contributed by a plugin (e.g. sendmail)
//   sluice --help | --version
//
// Invoked through a symlink whose name is a plugin command (sendmail → sluice), that
// command runs with every argument.
#include <sys/stat.h>

#include <stdlib.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mailpit_flags.hpp"
#include "plugin_loader.hpp"
#include "server.hpp"
#include "sluice/mailbox.hpp"
#include "sluice/version.hpp"

namespace {

using sluice::kernel::plugin_loader;

// The -c and --plugin-dir lines of the overview and of `sluice serve --help`.
#define CONFIG_AND_PLUGIN_DIR_OPTIONS                                          \
  "  -c, --config FILE    configuration file (default: $SLUICE_CONFIG, else\n" \
  "                       <prefix>/etc/sluice/sluice.yaml)\n"                  \
  "  --plugin-dir DIR     search DIR for plugins first (repeatable; also\n"    \
  "                       SLUICE_PLUGIN_PATH, colon-separated)\n"

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
    "Options:\n" CONFIG_AND_PLUGIN_DIR_OPTIONS
    "  --ready-file FILE    serve: write {pid, listeners} as JSON once listening\n"
    "  --print              check-config: print the configuration (YAML) on stdout\n"
    "  -h, --help           this text; `sluice COMMAND --help` for a command\n"
    "  -V, --version        version and build key\n"
    "\n"
    "%MAILPIT%";

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
  bool print = false;
  std::vector<std::string> mailpit_args;  // Mailpit flags and their values, in order
};

extern "C" char** environ;

sluice::kernel::mailpit::env_map mailpit_env() {
  sluice::kernel::mailpit::env_map env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos || !kv.starts_with("MP_")) continue;
    env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return env;
}

// A directory only this user can read, for the data of a facade without --database.
std::filesystem::path make_temp_dir() {
  // mkdtemp's template: the name ends in six X that it replaces.
  std::string tmpl =
      (std::filesystem::temp_directory_path() / ("sluice-" + std::string(6, 'X'))).string();
  if (!::mkdtemp(tmpl.data()))
    throw std::system_error(errno, std::generic_category(), "mkdtemp " + tmpl);
  return tmpl;
}

int version() {
  std::cout << "sluice " SLUICE_SDK_VERSION_STRING "\nbuild key: " SLUICE_BUILD_KEY "\n";
  return 0;
}

int command_version(const plugin_loader& loader, const std::string& name,
                    const sluice::kernel::command_type& cmd) {
  std::string plugin_version = "?";
  for (const auto& p : loader.plugins())
    if (p.loaded && p.name == cmd.plugin) plugin_version = p.version;
  std::cout << "sluice " << name << " " << plugin_version << " (plugin " << cmd.plugin
            << "; sluice " SLUICE_SDK_VERSION_STRING ")\nbuild key: " SLUICE_BUILD_KEY "\n";
  return 0;
}

// `sluice COMMAND --help` for the built-in commands.
constexpr const char* serve_help =
    "Usage: sluice [serve] [-c FILE] [--plugin-dir DIR]... [--ready-file FILE] [MAILPIT FLAGS]\n"
    "\n"
    "Runs the server on the configuration until SIGTERM or SIGINT (a graceful drain: open\n"
    "sessions are told 421 4.3.2, messages in flight finish). SIGHUP reloads the\n"
    "configuration: pipelines are swapped atomically; listeners and services keep running\n"
    "and change only on a restart. Files and directories are created with umask 077.\n"
    "\n"
    "Options:\n" CONFIG_AND_PLUGIN_DIR_OPTIONS
    "  --ready-file FILE    write {pid, listeners: {name: [endpoints]}} as JSON once\n"
    "                       listening (written to FILE.tmp, then renamed)\n"
    "  Mailpit's flags (see `sluice --help`) start Sluice as a Mailpit replacement.\n"
    "\n"
    "Exit status: 0 after a drain, 75 when shutdown_timeout or a second signal cut the\n"
    "drain short, 64 for a usage error, 78 for a configuration error, 71 when the\n"
    "system refuses (a port in use, a directory), 74 when a store database cannot be\n"
    "opened, read or written, 70 for other errors.\n";

constexpr const char* check_config_help =
    "Usage: sluice check-config [-c FILE] [--plugin-dir DIR]... [--print] [MAILPIT FLAGS]\n"
    "\n"
    "Validates the configuration as serve would (plugins loaded, every stage, listener and\n"
    "service checked, TLS and key files read) without opening databases or sockets, and\n"
    "without creating files. Errors name file:line:col and the key path.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE    configuration file (default as for serve)\n"
    "  --plugin-dir DIR     search DIR for plugins first (repeatable)\n"
    "  --print              print the configuration file on stdout (with Mailpit flags:\n"
    "                       the configuration they make)\n"
    "\n"
    "Exit status: 0 when valid, 78 for a configuration error.\n";

constexpr const char* plugins_help =
    "Usage: sluice plugins [-c FILE] [--plugin-dir DIR]...\n"
    "\n"
    "Lists the plugins found on the search path (--plugin-dir, SLUICE_PLUGIN_PATH, the\n"
    "configuration's plugin_path, then the install directory): name, version, path, what each\n"
    "provides, and why any was refused (build key, ABI, a duplicate name).\n"
    "\n"
    "Exit status: 0 when every plugin loaded, 1 when one was refused.\n";

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
  text.replace(text.find("%MAILPIT%"), 9, sluice::kernel::mailpit::help_text());
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
  bool named_command = false;  // `sluice --help` is the overview, `sluice serve --help` not
  if (!args.empty() && !args[0].starts_with("-")) {
    opt.command = args[0];
    named_command = true;
    i = 1;
    // `sluice help COMMAND` is `sluice COMMAND --help`.
    if (opt.command == "help" && args.size() > 1 && !args[1].starts_with("-")) {
      opt.command = args[1];
      args.erase(args.begin(), args.begin() + 2);
      args.insert(args.begin(), {opt.command, "--help"});
    }
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
    if (const auto* cmd = loader.find_command(opt.command)) {
      // `sluice COMMAND --version` answers the same way for every plugin command.
      if (cmd_args.size() == 1 && (cmd_args[0] == "--version" || cmd_args[0] == "-V"))
        return command_version(loader, opt.command, *cmd);
      return cmd->fn(cmd_args);
    }
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
    } else if (a == "--print") {
      opt.print = true;
    } else if (a == "-h" || a == "--help") {
      opt.help = true;
    } else if (a == "-V" || a == "--version") {
      opt.version = true;
    } else if (int n = sluice::kernel::mailpit::flag_arity(a); n >= 0) {
      opt.mailpit_args.push_back(a);
      if (n == 1) opt.mailpit_args.push_back(value(a.c_str()));
    } else {
      std::cerr << "sluice: unknown option \"" << a << "\" (see sluice --help)\n";
      return 64;
    }
  }
  if (opt.version) return version();
  if (opt.help && named_command && opt.command != "help") {
    std::cout << (opt.command == "serve"          ? serve_help
                  : opt.command == "check-config" ? check_config_help
                                                  : plugins_help);
    return 0;
  }
  if (opt.help || opt.command == "help") {
    return usage(load_plugins(opt.server.plugin_dirs), std::cout, 0);
  }
  if (opt.command == "plugins") {
    std::vector<std::filesystem::path> cfg_dirs;
    return list_plugins(load_plugins(opt.server.plugin_dirs));
  }
  opt.server.check_only = opt.command == "check-config";
  // Captured mail is private: every file and directory the server creates (database, WAL,
  // spool, spilled message bodies, logs) is for this user only, as Postfix's master does.
  // Unix sockets get their configured mode explicitly.
  if (!opt.server.check_only) ::umask(077);
  if (opt.print && !opt.server.check_only) {
    std::cerr << "sluice: --print belongs to check-config\n";
    return 64;
  }
  // The Mailpit facade: Mailpit flags on the command line, or Mailpit variables and no
  // configuration file named anywhere.
  auto env = mailpit_env();
  const char* sluice_config = std::getenv("SLUICE_CONFIG");
  const bool facade = !opt.mailpit_args.empty() ||
                      (opt.server.config_file.empty() && !(sluice_config && *sluice_config) &&
                       sluice::kernel::mailpit::env_selects_facade(env));
  if (!opt.mailpit_args.empty() && !opt.server.config_file.empty()) {
    std::cerr << "sluice: Mailpit flags (" << opt.mailpit_args.front()
              << ") cannot be combined with -c/--config: put the settings in the file, or "
                 "drop -c\n";
    return 64;
  }
  // Removes the facade's temporary data directory once the server is gone (declared
  // before it, destroyed after it), also when startup fails.
  struct temp_data {
    std::filesystem::path dir;
    ~temp_data() {
      std::error_code ec;
      if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
  } temp;
  try {
    if (facade) {
      // check-config creates nothing: the printed path only shows where data would go.
      auto data_dir = [&]() -> std::filesystem::path {
        if (opt.server.check_only)
          return std::filesystem::temp_directory_path() / "sluice-(made at start)";
        temp.dir = make_temp_dir();
        return temp.dir;
      };
      std::optional<sluice::kernel::mailpit::facade> f;
      try {
        f = sluice::kernel::mailpit::translate(opt.mailpit_args, env, data_dir);
      } catch (const sluice::kernel::mailpit::flag_error& e) {
        std::cerr << "sluice: " << e.what() << "\n";
        return 64;
      }
      for (const auto& [name, val] : f->secrets)
        ::setenv(name.c_str(), val.c_str(), 1);
      opt.server.config_text = f->yaml;
      opt.server.config_name = "mailpit-flags";
    } else if (opt.server.config_file.empty()) {
      opt.server.config_file = default_config();
    }
    if (opt.print) {
      if (facade) {
        std::cout << opt.server.config_text;
      } else {
        std::ifstream in(opt.server.config_file, std::ios::binary);
        std::cout << in.rdbuf();
      }
      std::cout.flush();
    }
    const std::string name =
        facade ? std::string("Mailpit flags") : opt.server.config_file.string();
    sluice::kernel::server srv(opt.server);
    srv.build();
    if (opt.server.check_only) {
      (opt.print ? std::cerr : std::cout) << name << ": configuration is valid\n";
      return 0;
    }
    if (!temp.dir.empty()) {
      std::cerr << "sluice: no --database: data in " << temp.dir.string()
                << " (removed when sluice stops)\n";
    }
    return srv.run();
  } catch (const sluice::config_error& e) {
    std::cerr << "sluice: configuration error: " << e.what() << "\n";
    if (facade && std::string_view(e.what()).starts_with("mailpit-flags:")) {
      std::cerr << "sluice: (mailpit-flags is the configuration built from the Mailpit flags; "
                   "`sluice check-config --print FLAGS...` shows it)\n";
    }
    return 78;  // EX_CONFIG
  } catch (const sluice::storage_error& e) {
    std::cerr << "sluice: storage error: " << e.what() << "\n";
    return 74;  // EX_IOERR
  } catch (const std::system_error& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return 71;  // EX_OSERR
  } catch (const std::exception& e) {
    std::cerr << "sluice: " << e.what() << "\n";
    return 70;  // EX_SOFTWARE
  }
}
