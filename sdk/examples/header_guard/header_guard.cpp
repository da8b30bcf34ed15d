// header_guard.cpp — an example stage plugin built out of tree with the Sluice SDK.
//
// Stage "header_guard": rejects a message addressed to any recipient listed in `reject`
// (550 5.7.1), otherwise appends a header and lets the pipeline continue.
//
//   stages:
//     - plugin: header_guard
//       header: X-Header-Guard     # optional, the default
//       value: checked             # optional, the default
//       reject: [blocked@example.com]
#include <algorithm>
#include <cctype>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/sdk.hpp"

namespace {

using sluice::verdict;

// Addresses compare without regard to ASCII case.
bool same_address(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

class header_guard_stage final : public sluice::stage {
 public:
  // Reads every key it accepts; the kernel reports any other key as "unknown key".
  explicit header_guard_stage(sluice::instance_context& ctx)
      : header_(ctx.config.get_string("header", "X-Header-Guard")),
        value_(ctx.config.get_string("value", "checked")),
        reject_(ctx.config.get_string_list("reject")) {
    if (header_.empty() || header_.find_first_of(": \t\r\n") != std::string::npos) {
      ctx.config.at("header").fail("expected a header name like X-Header-Guard");
    }
    if (value_.find_first_of("\r\n") != std::string::npos) {
      ctx.config.at("value").fail("must be one line");
    }
  }

  // Only reads members set at construction, so concurrent calls are safe. Nothing here
  // blocks; blocking work would go through sluice::offload(host, fn).
  boost::asio::awaitable<verdict> process(std::shared_ptr<sluice::message> msg,
                                          const sluice::stage_call& call) override {
    for (const auto& rcpt : msg->envelope.recipients) {
      for (const auto& refused : reject_) {
        if (same_address(rcpt.address, refused)) {
          call.log.info("recipient refused by policy", {{"rcpt", rcpt.address}});
          co_return verdict::reject(550, "5.7.1", "Recipient refused by policy");
        }
      }
    }
    msg->append_header(header_, value_);
    co_return verdict::next();
  }

 private:
  std::string header_;
  std::string value_;
  std::vector<std::string> reject_;
};

void register_header_guard(sluice::registrar& r) {
  r.add_stage("header_guard", [](sluice::instance_context& ctx) {
    return std::make_shared<header_guard_stage>(ctx);
  });
}

}  // namespace

SLUICE_PLUGIN("header_guard", "0.1.0", "example: tag messages, refuse listed recipients",
              register_header_guard);
