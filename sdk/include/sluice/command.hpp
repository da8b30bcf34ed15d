// sluice/command.hpp — subcommands contributed by plugins (`sluice sendmail`, …).
//
// A command runs instead of the server, with the arguments that follow its name. When
// the sluice binary is invoked through a symlink whose name is a command's name (e.g.
// /usr/sbin/sendmail → sluice), that command runs with all arguments.
#pragma once

#include <functional>
#include <span>
#include <string>

namespace sluice {

// Returns the process exit status.
using command_fn = std::function<int(std::span<const std::string> args)>;

}  // namespace sluice
