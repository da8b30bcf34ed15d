// dkim_stages.hpp — factories of the auth plugin's DKIM and DMARC stages and its command:
// `dkim` (verify, RFC 6376/8301/8463), `dmarc` (RFC 7489), `dkim_sign` and
// `sluice dkim keygen`. Factories run at startup and throw config_error for bad config.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "sluice/plugin.hpp"

namespace sluice::auth {

std::shared_ptr<stage> make_dkim_stage(instance_context& ctx);
std::shared_ptr<stage> make_dmarc_stage(instance_context& ctx);
std::shared_ptr<stage> make_dkim_sign_stage(instance_context& ctx);
// `sluice dkim keygen …`: args are those after "dkim". Returns the exit status.
int dkim_command(std::span<const std::string> args);

}  // namespace sluice::auth
