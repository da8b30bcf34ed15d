// plugin.cpp — the rewrite plugin: the `rewrite` stage (envelope sender and recipients by
// map and regex, header rules, From override, subject prefix; rewriter.hpp).
//
// Threading: the stage holds an immutable rule_set (shared_ptr, so a timed-out call's frame
// may outlive a reload) and is safe for concurrent calls; it does no I/O beyond reading the
// header block of a spilled body.
//
// Failure: rules are validated at startup (config_error with file:line:col). At run time a
// rule that cannot be applied safely (a regex hitting its match limit, a result that is no
// address) fails closed: the message is refused with a 451 so that it is neither lost nor
// sent on to an address that was meant to be rewritten.
#include <memory>

#include "rewriter.hpp"
#include "sluice/plugin.hpp"

namespace sluice::rewrite {
namespace {

class rewrite_stage final : public stage {
 public:
  explicit rewrite_stage(std::shared_ptr<const rule_set> rules) : rules_(std::move(rules)) {}

  boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                          const stage_call& call) override {
    auto rules = rules_;
    result r = apply(*rules, *msg);
    if (!r.error.empty()) {
      call.log.warn("rewrite failed; message refused (451)", {{"error", r.error}});
      co_return verdict::tempfail(451, "4.3.0",
                                  "Requested action aborted: address rewriting failed");
    }
    if (r.changed) {
      std::vector<log_field> fields;
      if (const auto* s = r.record.if_contains("sender")) {
        fields.push_back({"sender", std::string(s->at("rewritten").as_string())});
      }
      if (const auto* rc = r.record.if_contains("recipients")) {
        fields.push_back(
            {"recipients_rewritten", static_cast<std::int64_t>(rc->as_array().size())});
        fields.push_back(
            {"recipients", static_cast<std::int64_t>(msg->envelope.recipients.size())});
      }
      if (const auto* h = r.record.if_contains("headers")) {
        fields.push_back({"header_rules", static_cast<std::int64_t>(h->as_array().size())});
      }
      if (r.record.contains("from")) fields.push_back({"from_overridden", true});
      if (const auto* s = r.record.if_contains("subject");
          s && s->as_object().contains("rewritten")) {
        fields.push_back({"subject_prefixed", true});
      }
      call.log.info("message rewritten", std::move(fields));
    }
    co_return verdict::next();
  }

 private:
  const std::shared_ptr<const rule_set> rules_;
};

std::shared_ptr<stage> make_rewrite_stage(instance_context& ctx) {
  return std::make_shared<rewrite_stage>(std::make_shared<const rule_set>(parse_rules(ctx.config)));
}

void register_rewrite(registrar& r) {
  r.add_stage("rewrite", make_rewrite_stage);
}

}  // namespace
}  // namespace sluice::rewrite

SLUICE_PLUGIN("rewrite", "0.1.0",
              "Envelope and header rewriting: address maps and regexes, header rules, From "
              "override, subject prefix",
              sluice::rewrite::register_rewrite);
