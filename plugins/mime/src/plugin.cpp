// plugin.cpp — the mime plugin: the `mime` stage.
//
// The stage parses each message once (parse.hpp) and attaches the parsed view as the
// attribute "mime" (sluice/parsed_message.hpp), which the store keeps. A malformed
// message is still a message: parse problems are listed in the view and the stage always
// returns continue. Only a read error of a spooled body is an error: it throws, so the
// kernel applies the stage's on_error.
//
// Threading: process() runs on I/O threads, concurrently for different messages. Small
// in-memory bodies are parsed right there (cheap); spilled or larger bodies are parsed on
// the host's workers (sluice::offload), from the spool file. The stage is immutable after
// construction; each call copies what the parse needs (the body pointer and the edits),
// so a worker never touches the message while another stage may. GMime and libxml2 are
// initialised once per process, in the factory (startup, one thread).
#include <boost/asio/this_coro.hpp>
#include <memory>
#include <system_error>

#include "parse.hpp"
#include "sluice/parsed_message.hpp"
#include "sluice/plugin.hpp"
#include "text.hpp"

namespace sluice::mime {
namespace {

struct stage_options {
  parse_limits limits;
  std::size_t inline_parse_max = 64 * 1024;
};

std::int64_t bounded_int(const config_node& cfg, std::string_view key, std::int64_t fallback,
                         std::int64_t lo, std::int64_t hi) {
  const std::int64_t v = cfg.get_int(key, fallback);
  if (v < lo || v > hi) {
    cfg.at(key).fail("must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  return v;
}

std::uint64_t bounded_size(const config_node& cfg, std::string_view key, std::uint64_t fallback,
                           std::uint64_t lo, std::uint64_t hi, std::string_view range) {
  const std::uint64_t v = cfg.get_size(key, fallback);
  if (v < lo || v > hi) cfg.at(key).fail("must be between " + std::string(range));
  return v;
}

stage_options parse_options(const config_node& cfg) {
  stage_options o;
  o.limits.structure.max_depth =
      static_cast<std::size_t>(bounded_int(cfg, "max_depth", 64, 1, 1000));
  o.limits.structure.max_parts =
      static_cast<std::size_t>(bounded_int(cfg, "max_parts", 1000, 1, 100000));
  o.limits.structure.max_header_bytes =
      bounded_size(cfg, "max_header_bytes", 1024 * 1024, 1024, 64ull << 20, "1KB and 64MB");
  o.limits.max_text_bytes =
      bounded_size(cfg, "max_text_size", 8ull << 20, 1024, 1ull << 30, "1KB and 1GB");
  o.inline_parse_max =
      bounded_size(cfg, "inline_parse_max", 64 * 1024, 0, 16ull << 20, "0 and 16MB");
  o.limits.fallback_charset = cfg.get_string("fallback_charset", "windows-1252");
  if (!charset_known(o.limits.fallback_charset)) {
    cfg.at("fallback_charset").fail("unknown charset \"" + o.limits.fallback_charset + "\"");
  }
  return o;
}

class mime_stage final : public stage {
 public:
  mime_stage(sluice::host& host, stage_options o) : host_(host), options_(std::move(o)) {}

  boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                          const stage_call& call) override {
    // Copies: the frame may outlive a timed-out call, and the worker must not read the
    // message while a later stage edits it.
    std::shared_ptr<const message_body> raw = msg->raw;
    std::vector<header_edit> edits = msg->edits;
    const parse_limits limits = options_.limits;
    const bool here = raw && raw->memory() && raw->size() <= options_.inline_parse_max;
    parse_result r;
    if (here) {
      r = parse(raw, edits, limits);
    } else {
      r = co_await offload(host_.workers(), [raw, edits = std::move(edits), limits] {
        return parse(raw, edits, limits);
      });
      // After a timeout the runner has moved on with the message: leave it alone.
      auto cs = co_await boost::asio::this_coro::cancellation_state;
      if (cs.cancelled() != boost::asio::cancellation_type::none) co_return verdict::next();
    }
    if (r.io_error) {
      call.log.warn("mime: cannot read the message body", {{"error", r.io_error.message()}});
      throw std::system_error(r.io_error, "mime: reading the message body");
    }
    if (!r.view.problems.empty()) {
      call.log.debug("mime: message parsed with problems",
                     {{"problems", static_cast<std::int64_t>(r.view.problems.size())},
                      {"first", r.view.problems.front()}});
    }
    msg->attributes["mime"] = to_json(r.view);
    co_return verdict::next();
  }

 private:
  sluice::host& host_;
  const stage_options options_;
};

std::shared_ptr<stage> make_mime_stage(instance_context& ctx) {
  stage_options o = parse_options(ctx.config);
  init_libraries();
  return std::make_shared<mime_stage>(ctx.host, std::move(o));
}

void register_mime(registrar& r) {
  r.add_stage("mime", make_mime_stage);
}

}  // namespace
}  // namespace sluice::mime

SLUICE_PLUGIN("mime", "0.1.0", "MIME parsing (GMime): the parsed view of each message",
              ::sluice::mime::register_mime);
