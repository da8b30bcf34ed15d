// tests/plugins/pop3/pop3_event_test.cpp — the real pop3 and store plugins loaded into the
// test process (plugin_host) with the kernel's event bus: a message deleted over POP3 is
// gone from the mailbox service and the store emits its `delete` event, only at QUIT;
// messages stored during a session do not change its numbering.
#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <condition_variable>
#include <future>
#include <mutex>

#include "plugin_host.hpp"
#include "sluice/events.hpp"
#include "sluice/mailbox.hpp"
#include "transcript.hpp"

namespace {
using namespace sluice;

std::shared_ptr<message> make_message(const std::string& subject) {
  auto m = std::make_shared<message>();
  m->id = make_message_id();
  m->raw = message_body::from_string(
      "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\n"
      "Subject: " +
      subject + "\r\n\r\nHello\r\n.dot\r\n");
  m->envelope.mail_from = "alice@example.com";
  m->envelope.recipients.push_back({"bob@example.com", {}});
  m->envelope.received_at = std::chrono::system_clock::now();
  return m;
}

class fake_listener_context final : public listener_context {
 public:
  boost::asio::awaitable<submit_result> submit(std::shared_ptr<message>) override {
    co_return submit_result{verdict_kind::tempfail, {}, {}};
  }
  const std::string& pipeline() const override { return pipeline_; }
  std::shared_ptr<gate> drain_gate() const override { return gate_; }

 private:
  std::string pipeline_;
  std::shared_ptr<gate> gate_ = gate::make();
};

struct recorded_events {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<event> seen;
  bool wait_for(std::size_t n, std::chrono::seconds limit) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, limit, [&] { return seen.size() >= n; });
  }
};

std::string cmd(pop3_test::client& c, const std::string& line) {
  c.send(line + "\r\n");
  return c.read_line().value_or("<none>");
}

TEST(Pop3Events, DeleteOverPop3RemovesFromTheStoreAndEmitsDelete) {
  test::temp_dir dir;
  test::plugin_host h({test::build_dir() + "/lib/sluice/plugins"}, dir.path());
  auto bus = std::make_shared<kernel::events_impl>();
  h.registry().add(events::kind, "default", bus);
  auto deletes = std::make_shared<recorded_events>();
  bus->subscribe([deletes](const event& e) {
    if (e.type != "delete") return;
    std::lock_guard lk(deletes->mu);
    deletes->seen.push_back(e);
    deletes->cv.notify_all();
  });
  h.make_service("store", "path: store.db\n");
  auto mailboxes = h.registry().get<mailbox_service>();
  ASSERT_TRUE(mailboxes);
  auto store = h.make_stage("store", "mailbox: default\n");
  stage_call call;
  for (const char* subject : {"one", "two", "three"}) {
    auto v = h.run(store->process(make_message(subject), call));
    ASSERT_EQ(v.kind, verdict_kind::continue_);
  }

  const auto* type = h.loader().find_listener("pop3");
  ASSERT_NE(type, nullptr);
  auto cfg = config_node::parse(
      "listen: [\"127.0.0.1:0\"]\nusers: \"alice:secret\"\nallow_insecure: true\n", "pop3.yaml");
  fake_listener_context lctx;
  instance_context ictx{h, cfg, "pop3", logger("pop3"), false};
  auto listener = type->factory(ictx, lctx);
  cfg.check_unknown_keys();
  listener->start();
  ASSERT_EQ(listener->endpoints().size(), 1u);

  std::vector<std::string> ids;  // oldest first, as POP3 numbers them
  {
    search_request q;
    q.limit = 0;
    for (auto& m : h.run(mailboxes->search(q)).messages)
      ids.insert(ids.begin(), m.id);
  }
  ASSERT_EQ(ids.size(), 3u);
  {
    pop3_test::client c(listener->endpoints()[0]);
    ASSERT_TRUE(c.read_line());
    EXPECT_EQ(cmd(c, "USER alice"), "+OK send PASS");
    EXPECT_EQ(cmd(c, "PASS secret"), "+OK maildrop locked and ready, 3 messages");
    EXPECT_EQ(cmd(c, "UIDL 2"), "+OK 2 " + ids[1]);
    // A message stored now does not join this session's maildrop.
    ASSERT_EQ(h.run(store->process(make_message("four"), call)).kind, verdict_kind::continue_);
    EXPECT_EQ(cmd(c, "LIST 4"), "-ERR no such message, only 3 in the maildrop");
    EXPECT_EQ(cmd(c, "UIDL 2"), "+OK 2 " + ids[1]);
    // A message removed behind the session's back (the HTTP API) keeps its number but
    // cannot be retrieved.
    message_selector gone;
    gone.ids = {ids[2]};
    EXPECT_EQ(h.run(mailboxes->remove("default", gone)), 1u);
    ASSERT_TRUE(deletes->wait_for(1, std::chrono::seconds(10)));
    EXPECT_EQ(cmd(c, "RETR 3"), "-ERR message 3 is no longer in the store");
    EXPECT_EQ(cmd(c, "DELE 2"), "+OK message 2 deleted");
    // Marked, not removed: still in the store, no event for it yet.
    EXPECT_TRUE(h.run(mailboxes->get("default", ids[1])));
    {
      std::lock_guard lk(deletes->mu);
      EXPECT_EQ(deletes->seen.size(), 1u);
    }
    // Marking the message that is already gone too: QUIT counts what it removed.
    EXPECT_EQ(cmd(c, "DELE 3"), "+OK message 3 deleted");
    EXPECT_EQ(cmd(c, "QUIT"), "+OK Sluice POP3 server signing off (1 deleted, 1 left)");
    EXPECT_FALSE(c.read_line());
  }
  ASSERT_TRUE(deletes->wait_for(2, std::chrono::seconds(10)));
  {
    std::lock_guard lk(deletes->mu);
    ASSERT_EQ(deletes->seen.size(), 2u);
    EXPECT_EQ(deletes->seen[1].mailbox, "default");
    EXPECT_EQ(boost::json::serialize(deletes->seen[1].data),
              boost::json::serialize(boost::json::object{{"ID", ids[1]}}));
  }
  EXPECT_FALSE(h.run(mailboxes->get("default", ids[1])));
  EXPECT_FALSE(h.run(mailboxes->raw("default", ids[1], true)));
  search_request q;
  q.limit = 0;
  auto left = h.run(mailboxes->search(q));
  EXPECT_EQ(left.total, 2u);  // one and four
  listener->stop();
  // Sessions hold the drain gate: closing it tells when the last one has left.
  auto idle = std::make_shared<std::promise<void>>();
  lctx.drain_gate()->close([idle] { idle->set_value(); });
  EXPECT_EQ(idle->get_future().wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

}  // namespace
