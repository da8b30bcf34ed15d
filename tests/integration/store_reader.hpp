// store_reader.hpp — opens a store database written by a (stopped) sluice through the real
// store plugin, loaded into the test process, and reads it via its mailbox service.
#pragma once

#include "plugin_host.hpp"
#include "sluice/mailbox.hpp"

namespace sluice::test {

class store_reader {
 public:
  // `db` relative to `dir`.
  store_reader(const std::filesystem::path& dir, const std::string& db)
      : host_({build_dir() + "/lib/sluice/plugins"}, dir, 1) {
    host_.make_service("store", "path: " + db + "\n");
    mailbox_ = host_.registry().get<mailbox_service>();
  }

  std::optional<std::string> raw(std::string id, bool with_edits, std::string mailbox = "default") {
    return host_.run(mailbox_->raw(std::move(mailbox), std::move(id), with_edits));
  }
  std::vector<stored_message> all(const std::string& mailbox = "default") {
    std::vector<stored_message> out;
    search_request q;
    q.mailbox = mailbox;
    q.limit = 1000;
    for (;;) {
      auto page = host_.run(mailbox_->search(q)).messages;
      out.insert(out.end(), page.begin(), page.end());
      if (page.size() < q.limit) return out;
      q.offset += q.limit;
    }
  }
  mailbox_service& service() { return *mailbox_; }
  template <class T>
  T run(boost::asio::awaitable<T> a) {
    return host_.run(std::move(a));
  }

 private:
  plugin_host host_;
  std::shared_ptr<mailbox_service> mailbox_;  // owned by host_'s registry
};

}  // namespace sluice::test
