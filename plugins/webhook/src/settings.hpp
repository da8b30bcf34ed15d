// settings.hpp — the webhook stage's configuration, validated at load.
//
// Every key is read here with the config_node helpers, so a bad value is an error with
// its file:line:col; keys nobody reads are reported by the kernel. Immutable afterwards.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "sluice/config.hpp"
#include "template.hpp"

namespace sluice::webhook {

struct rate_limit {
  double per_second = 0;  // tokens per second
  double burst = 1;
  std::chrono::milliseconds max_wait{10000};
};

// "10/s", "600/m", "600/min", "3600/h", a decimal count allowed ("0.5/s").
std::optional<double> parse_rate(std::string_view s);

struct settings {
  // An empty `url` (e.g. `${MP_WEBHOOK_URL:-}` with the variable unset) disables the
  // stage, as an empty --webhook-url disables Mailpit's webhook.
  bool disabled = false;
  url_template url;
  std::string method = "POST";
  std::optional<json_template> body;  // empty: Mailpit's MessageSummary
  std::vector<std::pair<std::string, std::string>> headers;
  std::string secret;  // empty: requests are not signed
  std::string signature_header = "X-Sluice-Signature";
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{15000};
  std::uint64_t max_response = 64 * 1024;
  std::optional<rate_limit> rate;
  std::chrono::seconds retry_after_max{3600};
  std::shared_ptr<boost::asio::ssl::context> tls;  // set for https URLs
  bool tls_verify = true;
  bool allow_private = false;
  // Read the summary from this mailbox of the store (tags included, exactly as the API
  // serves it) instead of building it from the message; empty: build it.
  std::string mailbox;
  std::string store;  // the mailbox service instance; empty: the default one
};

// `config_dir` resolves a relative ca_file; an https:// URL loads its CA file (check-config
// too: serve would refuse what does not load).
settings parse_settings(const config_node& cfg, const std::string& config_dir);

}  // namespace sluice::webhook
