// sluice/listener.hpp — a protocol front end that accepts mail or serves it.
//
// A listener owns its sockets and sessions. It submits messages to its pipeline through
// the listener_context and turns the result into its protocol's reply. Every session
// holds the drain gate; when the gate closes the listener stops accepting, tells idle
// sessions its protocol's "shutting down" reply (SMTP: 421 4.3.2) and lets busy ones
// finish their current message.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "sluice/gate.hpp"
#include "sluice/message.hpp"
#include "sluice/verdict.hpp"

namespace sluice {

struct submit_result {
  verdict_kind kind = verdict_kind::accept;  // accept, discard, quarantine, reject, tempfail
  sluice::reply reply;                       // what to tell the client
  std::string id;                            // the message id, set when it was accepted
};

class listener_context {
 public:
  virtual ~listener_context() = default;
  // Runs the listener's pipeline (the current one: a reload swaps it atomically) over
  // msg up to the commit point. Never throws; failures come back as tempfail.
  // Completes on the caller's executor.
  virtual boost::asio::awaitable<submit_result> submit(std::shared_ptr<message> msg) = 0;
  // The name of the configured pipeline, empty if the listener has none (POP3).
  virtual const std::string& pipeline() const = 0;
  virtual std::shared_ptr<gate> drain_gate() const = 0;
};

class listener {
 public:
  virtual ~listener() = default;
  // Binds every configured address and starts accepting. Throws std::system_error or
  // config_error at startup when an address cannot be used.
  virtual void start() = 0;
  // Bound endpoints, e.g. "127.0.0.1:1025" (the real port when 0 was asked) or
  // "unix:/run/sluice/smtp.sock".
  virtual std::vector<std::string> endpoints() const = 0;
  // Stops accepting and closes the listening sockets (unix socket files are removed).
  // Sessions learn of the drain from the gate.
  virtual void stop() = 0;
  // Pipelines other than its own that the listener submits into (the http listener's
  // `release_pipeline`). Listeners keep their configuration until a restart, so a reload
  // whose pipelines lack one of these is refused.
  virtual std::vector<std::string> pipelines_used() const { return {}; }
};

}  // namespace sluice
