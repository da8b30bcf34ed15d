// sluice/submit.hpp — the `pipelines` service: submitting a message into a named pipeline.
//
// Offered by the kernel (instance "default"); consumed by plugins that create messages
// themselves rather than receive them on a listener, e.g. the HTTP API's release of a
// stored message to a release pipeline. Look it up with
// `ctx.host.services().get<pipeline_service>()`.
//
// submit() behaves exactly like listener_context::submit for a listener bound to that
// pipeline: the inline stages run, the commit point is reached (store, spool), and the
// verdict comes back as a submit_result. It uses the current pipeline set (a reload swaps
// it atomically); an unknown pipeline name gives a tempfail (451 4.3.0), never a throw.
//
// Threading: thread-safe; completes on the caller's executor.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "sluice/listener.hpp"
#include "sluice/message.hpp"
#include "sluice/services.hpp"

namespace sluice {

class pipeline_service : public service {
 public:
  static constexpr std::string_view kind = "pipelines";

  // Whether a pipeline of that name is configured now.
  virtual bool has(std::string_view name) const = 0;
  // The configured pipeline names, sorted.
  virtual std::vector<std::string> names() const = 0;
  // Runs pipeline `name` over msg up to the commit point. Never throws. msg->id is
  // assigned when empty.
  virtual boost::asio::awaitable<submit_result> submit(std::string name,
                                                       std::shared_ptr<message> msg) = 0;
};

}  // namespace sluice
