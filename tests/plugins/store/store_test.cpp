// store_test.cpp — unit tests of the store plugin, built from its sources with a fake host.
//
// The fake host runs a real io_context on two threads and a worker pool, so the store's
// completion path (writer thread → caller's executor) is exercised as in the kernel.
// Each test uses its own temporary directory and database.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "codec.hpp"
#include "options.hpp"
#include "schema.hpp"
#include "sluice/mailpit_json.hpp"
#include "sluice/sdk.hpp"
#include "stage.hpp"
#include "store.hpp"

namespace asio = boost::asio;
using namespace sluice;
using namespace sluice::store;
using namespace std::chrono_literals;

extern "C" const sluice::plugin_descriptor sluice_plugin_descriptor;

namespace {

class fake_registry final : public service_registry {
 public:
  void add(std::string_view kind, std::string_view name, std::shared_ptr<service> s) override {
    std::lock_guard lk(mu_);
    auto key = std::make_pair(std::string(kind), std::string(name));
    if (map_.count(key)) throw std::invalid_argument("already registered");
    map_[key] = std::move(s);
  }
  std::shared_ptr<service> find(std::string_view kind, std::string_view name) const override {
    std::lock_guard lk(mu_);
    if (!name.empty()) {
      auto it = map_.find({std::string(kind), std::string(name)});
      return it == map_.end() ? nullptr : it->second;
    }
    if (auto it = map_.find({std::string(kind), "default"}); it != map_.end()) return it->second;
    std::shared_ptr<service> only;
    for (const auto& [k, v] : map_) {
      if (k.first != kind) continue;
      if (only) return nullptr;
      only = v;
    }
    return only;
  }
  std::vector<std::string> names(std::string_view kind) const override {
    std::lock_guard lk(mu_);
    std::vector<std::string> out;
    for (const auto& [k, v] : map_) {
      if (k.first == kind) out.push_back(k.second);
    }
    return out;
  }
  void declare(std::string_view kind, std::string_view name) override {
    std::lock_guard lk(mu_);
    map_.try_emplace({std::string(kind), std::string(name)}, nullptr);
  }
  bool declared(std::string_view kind, std::string_view name) const override {
    const auto of_kind = names(kind);
    auto has = [&](std::string_view n) {
      return std::find(of_kind.begin(), of_kind.end(), n) != of_kind.end();
    };
    return name.empty() ? has("default") || of_kind.size() == 1 : has(name);
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<service>> map_;
};

class fake_events final : public events {
 public:
  void publish(event e) override {
    std::lock_guard lk(mu_);
    seen_.push_back(std::move(e));
  }
  std::uint64_t subscribe(std::function<void(const event&)>) override { return 1; }
  void unsubscribe(std::uint64_t) override {}
  std::vector<event> of_type(const std::string& type) {
    std::lock_guard lk(mu_);
    std::vector<event> out;
    for (const auto& e : seen_) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<event> seen_;
};

class fake_counter final : public counter {
 public:
  void inc(double v) override { v_ += v; }
  double value() const override { return v_; }
  std::atomic<double> v_{0};
};
class fake_gauge final : public gauge {
 public:
  void set(double v) override { v_ = v; }
  void add(double v) override { v_ += v; }
  double value() const override { return v_; }
  std::atomic<double> v_{0};
};
class fake_histogram final : public histogram {
 public:
  void observe(double v) override {
    count_++;
    sum_ += v;
  }
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0};
};
class fake_metrics final : public metrics {
 public:
  counter& get_counter(std::string_view name, std::string_view, const metric_labels&) override {
    std::lock_guard lk(mu_);
    return counters_[std::string(name)];
  }
  gauge& get_gauge(std::string_view name, std::string_view, const metric_labels&) override {
    std::lock_guard lk(mu_);
    return gauges_[std::string(name)];
  }
  histogram& get_histogram(std::string_view name, std::string_view, const metric_labels&,
                           std::vector<double>) override {
    std::lock_guard lk(mu_);
    return histograms_[std::string(name)];
  }
  std::string render_prometheus() const override { return {}; }
  std::mutex mu_;
  std::map<std::string, fake_counter> counters_;
  std::map<std::string, fake_gauge> gauges_;
  std::map<std::string, fake_histogram> histograms_;
};

class fake_host final : public host {
 public:
  explicit fake_host(std::filesystem::path dir) : dir_(std::move(dir)) {
    for (int i = 0; i < 2; ++i)
      threads_.emplace_back([this] { io_.run(); });
  }
  ~fake_host() override {
    guard_.reset();
    for (auto& t : threads_)
      t.join();
    workers_.join();
  }
  asio::io_context& io() override { return io_; }
  asio::thread_pool& workers() override { return workers_; }
  service_registry& services() override { return registry_; }
  const std::filesystem::path& spool_dir() const override { return dir_; }
  const std::filesystem::path& config_dir() const override { return dir_; }
  std::size_t spill_threshold() const override { return 1024; }
  bool durability_full() const override { return false; }

 private:
  std::filesystem::path dir_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{io_.get_executor()};
  asio::thread_pool workers_{2};
  fake_registry registry_;
  std::vector<std::thread> threads_;
};

// Collects the plugin's factories through its own descriptor.
class fake_registrar final : public registrar {
 public:
  void add_stage(std::string_view name, stage_factory f, stage_traits t) override {
    stages[std::string(name)] = {std::move(f), t};
  }
  void add_listener(std::string_view, listener_factory) override {}
  void add_service(std::string_view name, service_factory f) override {
    services[std::string(name)] = std::move(f);
  }
  void add_command(std::string_view, std::string_view, command_fn) override {}
  std::map<std::string, std::pair<stage_factory, stage_traits>> stages;
  std::map<std::string, service_factory> services;
};

std::string sample_message(const std::string& subject, const std::string& body = "Hello\r\n") {
  return "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: " + subject +
         "\r\nMessage-ID: <" + subject + "@example.com>\r\n\r\n" + body;
}

std::shared_ptr<message> make_message(std::string raw, std::string from = "alice@example.com") {
  auto m = std::make_shared<message>();
  m->id = make_message_id();
  m->raw = message_body::from_string(std::move(raw));
  m->envelope.mail_from = std::move(from);
  m->envelope.recipients.push_back({"bob@example.com", {}});
  m->envelope.received_at = std::chrono::system_clock::now();
  return m;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sluice-store-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    host_ = std::make_unique<fake_host>(dir_);
    events_ = std::make_shared<fake_events>();
    metrics_ = std::make_shared<fake_metrics>();
  }
  void TearDown() override {
    host_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::shared_ptr<sqlite_store> open(store_options o = {}) {
    o.path = dir_ / "store.db";
    return std::make_shared<sqlite_store>(o, "default", logger("store"), events_, metrics_);
  }

  template <class T>
  T run(asio::awaitable<T> a) {
    return asio::co_spawn(host_->io(), std::move(a), asio::use_future).get();
  }

  write_result put(sqlite_store& s, const std::shared_ptr<message>& m,
                   const std::string& mailbox = "default") {
    return run(s.insert(prepare_message(*m, mailbox, s.options().compression_level)));
  }
  std::uint64_t count(mailbox_service& s, const std::string& mailbox) {
    return run(s.search({.mailbox = mailbox, .limit = 1})).total;
  }
  std::vector<stored_message> list(mailbox_service& s, search_request r = {}) {
    return run(s.search(std::move(r))).messages;
  }

  std::filesystem::path dir_;
  std::unique_ptr<fake_host> host_;
  std::shared_ptr<fake_events> events_;
  std::shared_ptr<fake_metrics> metrics_;
  static inline int counter_ = 0;
};

// Every byte value, NUL included, a bare LF, 8-bit text: stored bodies must come back
// exactly.
std::string binary_message(std::size_t body_size, bool compressible) {
  std::string s = "Subject: binary\r\nX-8bit: caf\xc3\xa9 \xff\xfe\r\n\r\n";
  std::mt19937 rng(42);
  for (std::size_t i = 0; i < body_size; ++i) {
    s.push_back(compressible ? static_cast<char>("abc\0\n\xff"[i % 6])
                             : static_cast<char>(rng() & 0xff));
  }
  return s;
}

}  // namespace

TEST_F(StoreTest, StoresListsAndGets) {
  auto s = open();
  auto m1 = make_message(sample_message("first"));
  m1->attributes["spam"] = boost::json::object{{"score", 1.5}};
  m1->attributes["tags"] = boost::json::array{"Work", "urgent!", "work"};
  ASSERT_TRUE(put(*s, m1).ok());
  std::this_thread::sleep_for(2ms);  // distinct created_ms
  auto m2 = make_message(sample_message("second"));
  ASSERT_TRUE(put(*s, m2).ok());

  auto page = list(*s);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].id, m2->id);  // newest first
  EXPECT_EQ(page[1].id, m1->id);
  const auto& st = page[1];
  EXPECT_EQ(st.subject, "first");
  ASSERT_TRUE(st.from);
  EXPECT_EQ(st.from->name, "Alice");
  EXPECT_EQ(st.from->address, "alice@example.com");
  ASSERT_EQ(st.to.size(), 1u);
  EXPECT_EQ(st.to[0].address, "bob@example.com");
  EXPECT_EQ(st.message_id, "first@example.com");
  EXPECT_EQ(st.envelope_from, "alice@example.com");
  EXPECT_EQ(st.envelope_to, std::vector<std::string>{"bob@example.com"});
  EXPECT_EQ(st.size, m1->raw->size());
  EXPECT_EQ(st.mailbox, "default");
  EXPECT_FALSE(st.read);
  EXPECT_TRUE(st.attributes.empty());                                // get() only
  EXPECT_EQ(st.tags, (std::vector<std::string>{"urgent", "Work"}));  // case-insensitive order

  auto got = run(s->get("default", m1->id));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->subject, "first");
  EXPECT_EQ(got->attributes.at("spam").at("score").as_double(), 1.5);
  EXPECT_FALSE(got->view);  // no "mime" attribute: the summary comes from the headers
  ASSERT_GE(got->headers.size(), 4u);
  EXPECT_EQ(got->headers[0],
            (std::pair<std::string, std::string>{"From", "Alice <alice@example.com>"}));
  EXPECT_FALSE(run(s->get("default", "nope")));
  EXPECT_FALSE(run(s->raw("default", "nope")));
  EXPECT_EQ(list(*s, {.mailbox = "default", .offset = 1, .limit = 5}).size(), 1u);

  auto fresh = events_->of_type("new");
  ASSERT_EQ(fresh.size(), 2u);
  EXPECT_EQ(fresh[0].data.at("ID").as_string(), m1->id);
  EXPECT_EQ(fresh[0].data.at("Subject").as_string(), "first");
  EXPECT_EQ(metrics_->counters_["sluice_store_messages_total"].value(), 2);
  EXPECT_GE(metrics_->histograms_["sluice_store_commit_batch_size"].count_.load(), 1u);
  EXPECT_GE(metrics_->histograms_["sluice_store_commit_seconds"].count_.load(), 1u);
}

TEST_F(StoreTest, AFromThatIsNoAddressIsKeptAsTheName) {
  auto s = open();
  auto m = make_message("From: Just A Name\r\nSubject: bare\r\n\r\nx\r\n");
  ASSERT_TRUE(put(*s, m).ok());
  auto got = run(s->get("default", m->id));
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->from);
  EXPECT_EQ(*got->from, (mail_address{"Just A Name", ""}));
  EXPECT_TRUE(got->to.empty());
  // Mailpit's summary shape: an object and lists, never null.
  const auto j = mailpit::summary_json(*got);
  EXPECT_EQ(j.at("From"), (boost::json::object{{"Name", "Just A Name"}, {"Address", ""}}));
  EXPECT_EQ(j.at("To"), boost::json::array());
  got->from.reset();
  EXPECT_EQ(mailpit::summary_json(*got).at("From"),
            (boost::json::object{{"Name", ""}, {"Address", ""}}));
}

// Checkpoints run on their own thread (checkpoint.hpp) and keep the WAL near
// checkpoint_bytes: without them these 300 incompressible 8 KB messages would leave a WAL of
// about 3 MB (at least two pages each); with a 16-page threshold it stays under 1 MB, the
// checkpoint thread copies frames and the WAL restarts (the writer's own pass at 32 pages alone
// would also keep it small: checkpoint_test.cpp tells the paths apart), every message reads
// back byte-identical, and the writer is the last connection out (the WAL is removed when the
// store closes).
TEST_F(StoreTest, CheckpointThreadKeepsTheWalBounded) {
  store_options o;
  o.checkpoint_bytes = 16 * 4096;  // 16 pages
  auto s = open(o);
  std::vector<std::pair<std::shared_ptr<message>, std::string>> sent;
  std::uintmax_t largest_wal = 0;
  for (int i = 0; i < 300; ++i) {
    std::string bytes = binary_message(8192, /*compressible=*/false);
    auto m = make_message(bytes);
    ASSERT_TRUE(put(*s, m).ok());
    sent.emplace_back(m, std::move(bytes));
    std::error_code ec;
    largest_wal = std::max(largest_wal, std::filesystem::file_size(dir_ / "store.db-wal", ec));
  }
  const auto st = s->write_stats();
  EXPECT_GT(st.checkpoints.thread_frames, 0u);  // the thread did the copying, not only the writer
  EXPECT_GT(st.checkpoints.restarts, 0u);
  EXPECT_EQ(st.checkpoints.failures, 0u);
  // The same counts in the metrics (this fake keys them by name, so `by` is summed), once the
  // thread is done with the last commit's wake-up (bounded: 2 s).
  auto c = s->write_stats().checkpoints;
  for (int i = 0; i < 40; ++i) {
    std::this_thread::sleep_for(50ms);
    const auto now = s->write_stats().checkpoints;
    if (now.thread_passes == c.thread_passes) break;
    c = now;
  }
  EXPECT_EQ(metrics_->counters_["sluice_store_wal_checkpoints_total"].value(),
            static_cast<double>(c.thread_passes + c.catch_up_passes + c.bound_passes));
  EXPECT_EQ(metrics_->counters_["sluice_store_wal_restarts_total"].value(),
            static_cast<double>(c.restarts));
  EXPECT_GT(metrics_->gauges_["sluice_store_wal_frames"].value(), 0);
  EXPECT_LT(largest_wal, std::uintmax_t{1} << 20);
  EXPECT_GT(largest_wal, 0u);
  for (auto& [m, bytes] : sent) {
    auto raw = run(s->raw("default", m->id, false));
    ASSERT_TRUE(raw);
    EXPECT_TRUE(*raw == bytes);
  }
  s.reset();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "store.db-wal"));
  auto again = open(o);
  EXPECT_EQ(run(again->search({.mailbox = "default", .limit = 1})).total, 300u);
}

TEST_F(StoreTest, RawIsByteIdenticalInMemoryAndFileBacked) {
  for (int level : {0, 1, 19}) {
    SCOPED_TRACE("compression " + std::to_string(level));
    store_options o;
    o.compression_level = level;
    auto s = open(o);
    std::vector<std::pair<std::shared_ptr<message>, std::string>> cases;
    for (bool compressible : {true, false}) {
      for (std::size_t size : {std::size_t{0}, std::size_t{100}, std::size_t{3} << 20}) {
        std::string bytes = binary_message(size, compressible);
        // In memory.
        cases.emplace_back(make_message(bytes), bytes);
        // File-backed, as the SMTP listener spills it.
        body_builder b(dir_, 1024);
        ASSERT_FALSE(b.append(bytes));
        std::error_code ec;
        auto m = make_message("");
        m->raw = b.finish(ec);
        ASSERT_FALSE(ec);
        ASSERT_EQ(m->raw->memory().has_value(), bytes.size() <= 1024);
        cases.emplace_back(m, bytes);
      }
    }
    for (auto& [m, bytes] : cases)
      ASSERT_TRUE(put(*s, m).ok());
    for (auto& [m, bytes] : cases) {
      auto raw = run(s->raw("default", m->id, false));
      ASSERT_TRUE(raw);
      ASSERT_EQ(raw->size(), bytes.size());
      EXPECT_TRUE(*raw == bytes);
      EXPECT_TRUE(*run(s->raw("default", m->id, true)) == bytes);  // no edits: the same bytes
    }
    // Compressible bodies were compressed when asked to, random ones kept plain.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2((dir_ / "store.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
              SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT sum(compressed), sum(length(raw) < raw_size) FROM message_data",
                       -1, &st, nullptr);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    if (level == 0) {
      EXPECT_EQ(sqlite3_column_int(st, 0), 0);
    } else {
      EXPECT_GE(sqlite3_column_int(st, 0), 4);  // the compressible 100 B and 3 MiB bodies
      EXPECT_EQ(sqlite3_column_int(st, 0), sqlite3_column_int(st, 1));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    s.reset();
    std::filesystem::remove(dir_ / "store.db");
    std::filesystem::remove(dir_ / "store.db-wal");
    std::filesystem::remove(dir_ / "store.db-shm");
  }
}

// Large bodies must not be held in memory on their way into the database: a zstd frame
// past kFrameMemoryLimit is spilled to an anonymous file, plain bodies are streamed from
// their file, and the writer streams both into a zeroblob. Checked through the path taken
// (where each prepared row keeps its data) and the bytes read back; the batch byte budget
// through the batch sizes.
TEST_F(StoreTest, LargeBodiesAreSpilledStreamedAndByteIdentical) {
  store_options o;
  o.compression_level = 1;
  o.max_batch_bytes = 1 << 20;  // every message below is larger: one per transaction
  auto s = open(o);
  const auto scratch = dir_ / "scratch";  // created on first use
  // 16 symbols, random: zstd saves about half, so the frame is megabytes too.
  auto semi_random = [](std::size_t n, unsigned seed) {
    std::string t = "Subject: semi\r\n\r\n";
    std::mt19937 rng(seed);
    for (std::size_t i = 0; i < n; ++i)
      t.push_back(static_cast<char>("abcdefghijklmnop"[rng() & 15]));
    return t;
  };
  auto file_backed = [&](const std::string& bytes) {
    body_builder b(dir_, 1024);
    EXPECT_FALSE(b.append(bytes));
    std::error_code ec;
    auto m = make_message("");
    m->raw = b.finish(ec);
    EXPECT_FALSE(ec);
    EXPECT_FALSE(m->raw->memory());
    return m;
  };
  struct item {
    std::shared_ptr<message> msg;
    std::string bytes;
    bool spilled_frame;  // else stored plain
  };
  std::vector<item> items;
  for (unsigned i = 0; i < 3; ++i) {
    std::string bytes = semi_random((3 + i) << 20, i);
    items.push_back({file_backed(bytes), bytes, true});
  }
  for (std::size_t size : {std::size_t{2} << 20, std::size_t{5} << 20}) {
    std::string bytes = binary_message(size, false);  // random: kept plain, streamed
    items.push_back({file_backed(bytes), bytes, false});
  }
  {
    std::string bytes = semi_random(3 << 20, 7);  // in memory, large frame: spilled too
    items.push_back({make_message(bytes), bytes, true});
  }

  std::vector<std::future<write_result>> done;
  for (auto& it : items) {
    prepared_message p = prepare_message(*it.msg, "default", 1, scratch);
    if (it.spilled_frame) {
      EXPECT_TRUE(p.compressed);
      ASSERT_TRUE(p.compressed_file);
      EXPECT_GT(p.compressed_file->size(), kFrameMemoryLimit);
      EXPECT_LT(p.compressed_file->size(), it.bytes.size());
      EXPECT_TRUE(p.compressed_data.empty());
      EXPECT_LT(p.compressed_data.capacity(), std::size_t{64});  // nothing kept in memory
    } else {
      EXPECT_FALSE(p.compressed);
      EXPECT_FALSE(p.compressed_file);
      EXPECT_LT(p.compressed_data.capacity(), std::size_t{64});
      ASSERT_TRUE(p.body);
      EXPECT_EQ(p.body.get(), it.msg->raw.get());  // the body itself, not a copy
    }
    EXPECT_EQ(p.stored_size(), p.compressed ? p.compressed_file->size() : it.bytes.size());
    done.push_back(asio::co_spawn(host_->io(), s->insert(std::move(p)), asio::use_future));
  }
  for (auto& f : done) {
    auto r = f.get();
    EXPECT_TRUE(r.ok()) << r.error;
  }
  // Anonymous files: nothing is left behind in the scratch directory.
  ASSERT_TRUE(std::filesystem::is_directory(scratch));
  EXPECT_TRUE(std::filesystem::is_empty(scratch));
  EXPECT_EQ(s->write_stats().largest_batch, 1u);
  EXPECT_EQ(s->write_stats().transactions, items.size());

  for (auto& it : items) {
    auto raw = run(s->raw("default", it.msg->id, false));
    ASSERT_TRUE(raw);
    ASSERT_EQ(raw->size(), it.bytes.size());
    EXPECT_TRUE(*raw == it.bytes);
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir_ / "store.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*), sum(compressed) FROM message_data", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), static_cast<int>(items.size()));
  EXPECT_EQ(sqlite3_column_int(st, 1), 4);
  sqlite3_finalize(st);
  sqlite3_close(db);

  // A frame that cannot be spilled is a read/write failure of the message, not a crash.
  const auto not_a_dir = dir_ / "plain-file";
  { std::ofstream(not_a_dir) << "x"; }
  EXPECT_THROW(prepare_message(*items.front().msg, "default", 1, not_a_dir), std::system_error);
}

TEST_F(StoreTest, RawWithEditsIsTheOutput) {
  auto s = open();
  const std::string original = sample_message("old subject", "body\r\n\x00\xff end\r\n");
  auto m = make_message(original);
  m->prepend_header("Received", "from client by sluice");
  m->set_header("Subject", "new subject");
  m->remove_header("Message-ID");
  ASSERT_TRUE(put(*s, m).ok());
  const std::string expected = m->output();
  ASSERT_NE(expected, original);
  EXPECT_EQ(*run(s->raw("default", m->id, true)), expected);
  EXPECT_EQ(*run(s->raw("default", m->id, false)), original);
  auto st = run(s->get("default", m->id));
  ASSERT_TRUE(st);
  EXPECT_EQ(st->size, expected.size());
  EXPECT_EQ(st->subject, "new subject");  // the summary describes what clients see
  EXPECT_EQ(st->message_id, "");
}

// A rewrite keeps a field's 8-bit text as it was (here Latin-1, not UTF-8): the stored
// edits must load again, or the raw message cannot be read (it answered 500).
TEST_F(StoreTest, EditsWithTextThatIsNotUtf8AreReadBack) {
  auto s = open();
  auto m = make_message(sample_message("caf\xe9"));
  m->set_header("Subject", "[STAGING] caf\xe9");
  m->set_header("From", "j\xf6rg <noreply@staging.test>");
  ASSERT_TRUE(put(*s, m).ok());
  const std::string expected = m->output();
  EXPECT_NE(expected.find("Subject: [STAGING] caf\xe9\r\n"), std::string::npos);
  auto raw = run(s->raw("default", m->id, true));
  ASSERT_TRUE(raw);
  EXPECT_EQ(*raw, expected);
}

TEST_F(StoreTest, GroupCommitBatchesConcurrentStores) {
  auto s = open();
  constexpr int kMessages = 500;
  std::atomic<int> ok{0};
  std::vector<std::future<void>> done;
  for (int i = 0; i < kMessages; ++i) {
    auto m = make_message(sample_message("m" + std::to_string(i)));
    done.push_back(asio::co_spawn(
        host_->io(),
        [&, m]() -> asio::awaitable<void> {
          auto r = co_await s->insert(prepare_message(*m, "default", 1));
          if (r.ok() && r.n == 1) ok++;
        },
        asio::use_future));
  }
  for (auto& f : done)
    f.get();
  EXPECT_EQ(ok.load(), kMessages);
  EXPECT_EQ(count(*s, "default"), static_cast<std::uint64_t>(kMessages));
  const auto st = s->write_stats();
  EXPECT_EQ(st.jobs, static_cast<std::uint64_t>(kMessages));
  EXPECT_LT(st.transactions, static_cast<std::uint64_t>(kMessages) / 4)
      << "group commit should put many messages in one transaction";
  EXPECT_GT(st.largest_batch, 1u);
  EXPECT_LE(st.largest_batch, 256u);  // max_batch
}

TEST_F(StoreTest, DuplicateIdIsIdempotent) {
  auto s = open();
  auto m = make_message(sample_message("dup"));
  EXPECT_EQ(put(*s, m).n, 1u);
  EXPECT_EQ(put(*s, m).n, 0u);
  EXPECT_EQ(count(*s, "default"), 1u);
  EXPECT_EQ(events_->of_type("new").size(), 1u);
}

TEST_F(StoreTest, CountRemoveRemoveAllAndSetRead) {
  auto s = open();
  std::vector<std::shared_ptr<message>> ms;
  for (int i = 0; i < 5; ++i) {
    ms.push_back(make_message(sample_message("x" + std::to_string(i))));
    ASSERT_TRUE(put(*s, ms.back()).ok());
  }
  EXPECT_EQ(count(*s, "default"), 5u);

  EXPECT_EQ(run(s->set_read("default", {.ids = {ms[0]->id}}, true)), 1u);
  EXPECT_TRUE(run(s->get("default", ms[0]->id))->read);
  EXPECT_EQ(run(s->set_read("default", {.ids = {ms[0]->id}}, true)), 0u);  // already read
  EXPECT_EQ(run(s->set_read("default", {.ids = {ms[0]->id}}, false)), 1u);
  EXPECT_FALSE(run(s->get("default", ms[0]->id))->read);
  EXPECT_EQ(run(s->set_read("default", {.ids = {"missing"}}, true)), 0u);
  EXPECT_EQ(run(s->set_read("other", {.ids = {ms[0]->id}}, true)), 0u);  // wrong mailbox
  auto updates = events_->of_type("update");
  ASSERT_EQ(updates.size(), 2u);
  EXPECT_EQ(updates[0].data, (boost::json::value{{"ID", ms[0]->id}, {"Read", true}}));
  EXPECT_EQ(updates[0].mailbox, "default");
  EXPECT_EQ(run(s->set_read("default", {}, true)), 5u);  // all
  EXPECT_EQ(run(s->search({})).unread, 0u);

  EXPECT_EQ(run(s->remove("default", {.ids = {ms[1]->id, ms[2]->id, "missing"}})), 2u);
  EXPECT_EQ(count(*s, "default"), 3u);
  EXPECT_FALSE(run(s->get("default", ms[1]->id)));
  EXPECT_FALSE(run(s->raw("default", ms[2]->id)));
  auto del = events_->of_type("delete");
  ASSERT_EQ(del.size(), 2u);  // one per message
  EXPECT_EQ(del[0].data, (boost::json::value{{"ID", ms[1]->id}}));
  EXPECT_EQ(del[1].data, (boost::json::value{{"ID", ms[2]->id}}));

  EXPECT_EQ(run(s->remove("default", {})), 3u);
  EXPECT_EQ(count(*s, "default"), 0u);
  auto trunc = events_->of_type("truncate");
  ASSERT_EQ(trunc.size(), 1u);
  EXPECT_TRUE(trunc[0].data.is_null());
  EXPECT_EQ(run(s->info()).deleted_total, 5u);
  EXPECT_EQ(s->mailboxes(), std::vector<std::string>{"default"});  // still exists, empty

  // The data rows went with their last message (trigger and foreign key cascade).
  sqlite3* db = nullptr;
  sqlite3_open_v2((dir_ / "store.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*) FROM message_data", -1, &st, nullptr);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

namespace {

std::int64_t scalar(const std::filesystem::path& path, const char* sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
  std::int64_t v = -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

}  // namespace

// Inserts and a delete-all in one group commit: the inserts' full-text rows are deferred to
// the end of the batch, and were once written after the delete had removed their messages,
// so the data ids given next collided with them and every later batch failed (451) for good.
TEST_F(StoreTest, DeleteAllBatchedWithInsertsLeavesNoIndexRowsBehind) {
  store_options o;
  o.busy_timeout = std::chrono::milliseconds(20000);
  auto s = open(o);
  // Hold the write lock from outside, so the writer blocks in its first batch and every
  // job below is queued behind it: one batch of inserts, the delete-all, more inserts.
  sqlite3* lock = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "store.db").c_str(), &lock), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(lock, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  // One thread submits, so the jobs reach the writer's queue in this order.
  asio::io_context submitter;
  auto insert = [&](const std::string& subject) {
    auto m = make_message(sample_message(subject, "body of " + subject + "\r\n"));
    return asio::co_spawn(submitter, s->insert(prepare_message(*m, "default", 1)),
                          asio::use_future);
  };
  std::vector<std::future<write_result>> first, last;
  first.push_back(insert("blocked0"));
  submitter.poll();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the writer waits on the lock
  for (int i = 1; i <= 5; ++i)
    first.push_back(insert("before" + std::to_string(i)));
  auto removed = asio::co_spawn(submitter, s->remove("default", {}), asio::use_future);
  for (int i = 1; i <= 5; ++i)
    last.push_back(insert("after" + std::to_string(i)));
  submitter.poll();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_EQ(sqlite3_exec(lock, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(lock);
  std::thread completions([&] {
    auto guard = asio::make_work_guard(submitter);
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
         std::chrono::steady_clock::now() < deadline &&
         last.back().wait_for(std::chrono::seconds(0)) != std::future_status::ready;)
      submitter.run_for(std::chrono::milliseconds(50));
  });
  completions.join();
  for (auto& f : first)
    EXPECT_TRUE(f.get().ok());
  EXPECT_EQ(removed.get(), 6u);
  for (auto& f : last) {
    auto r = f.get();
    EXPECT_TRUE(r.ok()) << r.error;
  }
  EXPECT_GE(s->write_stats().largest_batch, 11u) << "the test needs them in one batch";
  // Later mail is stored, and the index holds exactly the stored messages.
  for (int i = 0; i < 3; ++i) {
    auto r = put(*s, make_message(sample_message("later" + std::to_string(i))));
    EXPECT_TRUE(r.ok()) << r.error;
  }
  EXPECT_EQ(count(*s, "default"), 8u);
  EXPECT_EQ(run(s->search({.query = "subject:after3"})).matched, 1u);
  EXPECT_EQ(run(s->search({.query = "subject:before3"})).matched, 0u);
  s.reset();
  const auto db = dir_ / "store.db";
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM message_data"), 8);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM messages_fts"), 8);
  EXPECT_EQ(scalar(db,
                   "SELECT count(*) FROM messages_fts WHERE rowid NOT IN"
                   " (SELECT id FROM message_data)"),
            0);
  EXPECT_EQ(scalar(db,
                   "SELECT count(*) FROM body_fts WHERE rowid NOT IN"
                   " (SELECT id FROM message_data)"),
            0);
}

// A database left with such rows by an older version heals when it is opened: migration 5
// removes every one, and rows above the last data id go at every open.
TEST_F(StoreTest, IndexRowsOfDeletedMessagesAreRemovedAtOpen) {
  auto s = open();
  auto gone = make_message(sample_message("gone"));
  ASSERT_TRUE(put(*s, make_message(sample_message("kept1"))).ok());  // data id 1
  ASSERT_TRUE(put(*s, gone).ok());                                   // 2
  ASSERT_TRUE(put(*s, make_message(sample_message("kept3"))).ok());  // 3
  ASSERT_EQ(run(s->remove("default", {.ids = {gone->id}})), 1u);
  s.reset();
  const char* strays =
      "INSERT INTO messages_fts(rowid, subject) VALUES(2, 'stray');"  // below the last id
      "INSERT INTO body_fts(rowid, body) VALUES(2, 'stray');"
      "INSERT INTO messages_fts(rowid, subject) VALUES(4, 'stray');"  // above it
      "INSERT INTO messages_fts(rowid, subject) VALUES(5, 'stray');"
      "INSERT INTO body_fts(rowid, body) VALUES(4, 'stray')";
  for (const bool as_version_4 : {true, false}) {
    SCOPED_TRACE(as_version_4 ? "migration 5" : "at every open");
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "store.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, strays, nullptr, nullptr, nullptr), SQLITE_OK);
    if (as_version_4) {
      ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=4", nullptr, nullptr, nullptr), SQLITE_OK);
    } else {
      // Only those above the last id go at an open without a migration.
      ASSERT_EQ(sqlite3_exec(db,
                             "DELETE FROM messages_fts WHERE rowid = 2;"
                             "DELETE FROM body_fts WHERE rowid = 2",
                             nullptr, nullptr, nullptr),
                SQLITE_OK);
    }
    sqlite3_close(db);
    s = open();
    EXPECT_EQ(run(s->search({.query = "subject:stray"})).matched, 0u);
    s.reset();
    const auto path = dir_ / "store.db";
    EXPECT_EQ(scalar(path, "SELECT count(*) FROM messages_fts"), 2);
    EXPECT_EQ(scalar(path,
                     "SELECT count(*) FROM body_fts WHERE rowid NOT IN"
                     " (SELECT id FROM message_data)"),
              0);
  }
  s = open();
  for (int i = 0; i < 3; ++i) {
    auto r = put(*s, make_message(sample_message("new" + std::to_string(i))));
    EXPECT_TRUE(r.ok()) << r.error;
  }
  EXPECT_EQ(count(*s, "default"), 5u);
  EXPECT_EQ(run(s->search({.query = "subject:new1"})).matched, 1u);
}

// A bulk change of more than 200 messages is one "changed" event, not one per message.
TEST_F(StoreTest, BulkChangesOfManyMessagesPublishOneEvent) {
  auto s = open();
  std::vector<std::future<write_result>> done;
  std::vector<std::string> ids;
  for (int i = 0; i < 250; ++i) {
    auto m = make_message(sample_message("bulk" + std::to_string(i)));
    ids.push_back(m->id);
    done.push_back(asio::co_spawn(host_->io(), s->insert(prepare_message(*m, "default", 1)),
                                  asio::use_future));
  }
  for (auto& f : done)
    ASSERT_TRUE(f.get().ok());
  EXPECT_EQ(run(s->set_read("default", {}, true)), 250u);
  EXPECT_TRUE(events_->of_type("update").empty());
  auto changed = events_->of_type("changed");
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].mailbox, "default");
  EXPECT_EQ(changed[0].data, (boost::json::value{{"Count", 250}, {"Read", true}}));
  // A small one is still one event per message.
  EXPECT_EQ(run(s->set_read("default", {.ids = {ids[0], ids[1]}}, false)), 2u);
  EXPECT_EQ(events_->of_type("update").size(), 2u);
  run(s->set_tags("default", ids, {"t"}));
  changed = events_->of_type("changed");
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed[1].data, (boost::json::value{{"Count", 250}, {"Tags", true}}));
  EXPECT_EQ(run(s->remove("default", {.query = std::string("subject:bulk")})), 250u);
  EXPECT_TRUE(events_->of_type("delete").empty());
  changed = events_->of_type("changed");
  ASSERT_EQ(changed.size(), 3u);
  EXPECT_EQ(changed[2].data, (boost::json::value{{"Count", 250}, {"Deleted", true}}));
  EXPECT_EQ(count(*s, "default"), 0u);
}

TEST_F(StoreTest, MailboxesAreIsolated) {
  auto s = open();
  s->declare_mailbox("declared");
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(put(*s, make_message(sample_message("a")), "a").ok());
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(put(*s, make_message(sample_message("b")), "b").ok());
  EXPECT_EQ(s->mailboxes(), (std::vector<std::string>{"a", "b", "declared"}));
  EXPECT_EQ(count(*s, "a"), 3u);
  EXPECT_EQ(count(*s, "b"), 2u);
  EXPECT_EQ(count(*s, "declared"), 0u);
  for (const auto& m : list(*s, {.mailbox = "b"}))
    EXPECT_EQ(m.mailbox, "b");
  EXPECT_EQ(run(s->remove("a", {})), 3u);
  EXPECT_EQ(count(*s, "b"), 2u);

  // Mailboxes survive a re-open.
  s.reset();
  s = open();
  EXPECT_EQ(s->mailboxes(), (std::vector<std::string>{"a", "b", "declared"}));
}

TEST_F(StoreTest, PrunesByCountPerMailbox) {
  store_options o;
  o.max_messages = 5;
  o.prune_interval = 1h;  // only prune_now() prunes in this test
  auto s = open(o);
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    auto m = make_message(sample_message("p" + std::to_string(i)));
    m->envelope.received_at = std::chrono::system_clock::now() - std::chrono::minutes(60 - i);
    ids.push_back(m->id);
    ASSERT_TRUE(put(*s, m).ok());
  }
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(put(*s, make_message(sample_message("o")), "other").ok());
  EXPECT_EQ(run(s->prune_now()), 7u);
  EXPECT_EQ(count(*s, "default"), 5u);
  EXPECT_EQ(count(*s, "other"), 3u);
  auto kept = list(*s);
  ASSERT_EQ(kept.size(), 5u);
  for (std::size_t i = 0; i < kept.size(); ++i)
    EXPECT_EQ(kept[i].id, ids[11 - i]);  // newest
  auto pr = events_->of_type("prune");
  ASSERT_EQ(pr.size(), 1u);
  EXPECT_EQ(pr[0].mailbox, "default");
  EXPECT_TRUE(pr[0].data.is_null());
  EXPECT_EQ(s->write_stats().pruned, 7u);
  EXPECT_EQ(metrics_->counters_["sluice_store_pruned_total"].value(), 7);
}

TEST_F(StoreTest, PrunesByAgeInBatches) {
  store_options o;
  o.max_age = 1h;
  o.prune_interval = 1h;
  o.prune_batch = 4;  // forces several prune transactions
  auto s = open(o);
  for (int i = 0; i < 10; ++i) {
    auto m = make_message(sample_message("old"));
    m->envelope.received_at = std::chrono::system_clock::now() - 2h;
    ASSERT_TRUE(put(*s, m).ok());
  }
  auto young = make_message(sample_message("young"));
  ASSERT_TRUE(put(*s, young).ok());
  EXPECT_EQ(run(s->prune_now()), 10u);
  auto left = list(*s);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].id, young->id);
  EXPECT_EQ(events_->of_type("prune").size(), 3u);  // 4 + 4 + 2
}

TEST_F(StoreTest, PrunesOnTheTimer) {
  store_options o;
  o.max_messages = 2;
  o.prune_interval = 20ms;
  auto s = open(o);
  for (int i = 0; i < 6; ++i)
    ASSERT_TRUE(put(*s, make_message(sample_message("t"))).ok());
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (count(*s, "default") > 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(count(*s, "default"), 2u);
}

TEST_F(StoreTest, MigratesEmptyDatabaseAndKeepsVersionOnReopen) {
  auto user_version = [&] {
    sqlite3* db = nullptr;
    sqlite3_open_v2((dir_ / "store.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr);
    sqlite3_step(st);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
  };
  auto m = make_message(sample_message("persist"));
  {
    auto s = open();
    EXPECT_EQ(user_version(), schema_version());
    ASSERT_TRUE(put(*s, m).ok());
  }
  {
    auto s = open();  // existing database: no migration, data intact
    EXPECT_EQ(user_version(), schema_version());
    EXPECT_EQ(*run(s->raw("default", m->id, false)), m->raw->to_string());
    EXPECT_EQ(run(s->get("default", m->id))->subject, "persist");
  }
  {
    // The header index exists and follows inserts and deletes.
    database db(dir_ / "store.db", SQLITE_OPEN_READWRITE);
    EXPECT_EQ(db.query_int("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'persist'"),
              1);
    EXPECT_EQ(db.query_int("PRAGMA journal_mode=WAL; "), 0);
    db.exec("PRAGMA user_version=999");
  }
  EXPECT_THROW(open(), std::runtime_error);  // a newer schema is refused, not guessed at
}

// The schema of version 1 as it shipped (a copy: the migration must keep reading it).
constexpr const char* kShippedV1 = R"sql(
CREATE TABLE mailboxes(
  name    TEXT PRIMARY KEY,
  created INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE messages(
  seq         INTEGER PRIMARY KEY,
  id          TEXT NOT NULL UNIQUE,
  mailbox     TEXT NOT NULL,
  created     INTEGER NOT NULL,            -- ms since the Unix epoch
  size        INTEGER NOT NULL,            -- output size (raw + header edits)
  message_id  TEXT NOT NULL DEFAULT '',
  subject     TEXT NOT NULL DEFAULT '',
  from_hdr    TEXT NOT NULL DEFAULT '',
  to_hdr      TEXT NOT NULL DEFAULT '',
  cc_hdr      TEXT NOT NULL DEFAULT '',
  env_from    TEXT NOT NULL DEFAULT '',
  envelope    TEXT NOT NULL DEFAULT '{}',  -- JSON
  attributes  TEXT NOT NULL DEFAULT '{}',  -- JSON
  edits       TEXT NOT NULL DEFAULT '[]',  -- JSON
  read        INTEGER NOT NULL DEFAULT 0,
  quarantined INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_mailbox_created ON messages(mailbox, created);
CREATE INDEX messages_created ON messages(created);
CREATE INDEX messages_message_id ON messages(message_id);

CREATE TABLE message_data(
  seq        INTEGER PRIMARY KEY REFERENCES messages(seq) ON DELETE CASCADE,
  raw        BLOB NOT NULL,                -- one zstd frame if compressed, else the bytes
  compressed INTEGER NOT NULL,
  raw_size   INTEGER NOT NULL
);

CREATE TABLE tags(
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE COLLATE NOCASE
);
CREATE TABLE message_tags(
  seq    INTEGER NOT NULL REFERENCES messages(seq) ON DELETE CASCADE,
  tag_id INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
  PRIMARY KEY(seq, tag_id)
) WITHOUT ROWID;
CREATE INDEX message_tags_tag ON message_tags(tag_id);

CREATE TABLE settings(
  key   TEXT PRIMARY KEY,
  value TEXT
) WITHOUT ROWID;

CREATE VIRTUAL TABLE messages_fts USING fts5(
  subject, from_hdr, to_hdr, cc_hdr,
  content='messages', content_rowid='seq',
  tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN
  INSERT INTO messages_fts(rowid, subject, from_hdr, to_hdr, cc_hdr)
  VALUES (new.seq, new.subject, new.from_hdr, new.to_hdr, new.cc_hdr);
END;
CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, subject, from_hdr, to_hdr, cc_hdr)
  VALUES ('delete', old.seq, old.subject, old.from_hdr, old.to_hdr, old.cc_hdr);
END;
CREATE TRIGGER messages_fts_au AFTER UPDATE OF subject, from_hdr, to_hdr, cc_hdr ON messages BEGIN
  INSERT INTO messages_fts(messages_fts, rowid, subject, from_hdr, to_hdr, cc_hdr)
  VALUES ('delete', old.seq, old.subject, old.from_hdr, old.to_hdr, old.cc_hdr);
  INSERT INTO messages_fts(rowid, subject, from_hdr, to_hdr, cc_hdr)
  VALUES (new.seq, new.subject, new.from_hdr, new.to_hdr, new.cc_hdr);
END;
)sql";

TEST_F(StoreTest, MigratesVersion1DatabaseWithDataIntact) {
  const std::string raw1 =
      "From: \"Shop, Inc.\" <shop@example.com>\r\nTo: a@example.com, B <b+promo@example.com>\r\n"
      "Cc: c@example.com\r\nBcc: hidden@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
      "Message-ID: <m1@example.com>\r\nX-Custom: Hello World\r\n\r\nbody one\r\n";
  const std::string raw2 = sample_message("second");
  {
    database db(dir_ / "store.db", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL");
    db.exec(kShippedV1);
    db.exec("PRAGMA user_version=1");
    db.exec("INSERT INTO mailboxes VALUES('default', 1), ('other', 2)");
    auto add = [&](int seq, const char* id, const char* mailbox, const std::string& raw,
                   const char* edits, int read) {
      statement s(db.get(),
                  "INSERT INTO messages(seq, id, mailbox, created, size, message_id, subject,"
                  " from_hdr, env_from, envelope, attributes, edits, read)"
                  " VALUES(?1, ?2, ?3, ?4, ?5, 'old', 'old', 'old', 'env@example.com',"
                  " '{\"recipients\":[{\"address\":\"a@example.com\"}]}', '{\"spam\":1}', ?6, ?7)");
      s.bind(1, seq);
      s.bind(2, std::string_view(id));
      s.bind(3, std::string_view(mailbox));
      s.bind(4, 1000 * seq);
      s.bind(5, static_cast<std::int64_t>(raw.size()));
      s.bind(6, std::string_view(edits));
      s.bind(7, read);
      s.run();
      statement d(db.get(),
                  "INSERT INTO message_data(seq, raw, compressed, raw_size) VALUES(?1, ?2, 0, ?3)");
      d.bind(1, seq);
      d.bind_blob_static(2, raw);
      d.bind(3, static_cast<std::int64_t>(raw.size()));
      d.run();
    };
    add(1, "id-one", "default", raw1, "[]", 1);
    add(2, "id-two", "other", raw2, R"([{"op":"prepend","name":"Received","value":"from x"}])", 0);
    db.exec("INSERT INTO tags(id, name) VALUES(1, 'Work'), (2, 'Unused')");
    db.exec("INSERT INTO message_tags VALUES(1, 1), (2, 1)");
  }
  auto s = open();
  EXPECT_EQ(s->mailboxes(), (std::vector<std::string>{"default", "other"}));
  auto one = run(s->get("default", "id-one"));
  ASSERT_TRUE(one);
  EXPECT_EQ(one->subject,
            "Gr\xC3\xBC\xC3\x9F"
            "e");  // re-read from the stored header block
  EXPECT_EQ(one->message_id, "m1@example.com");
  ASSERT_TRUE(one->from);
  EXPECT_EQ(one->from->name, "Shop, Inc.");
  EXPECT_EQ(one->from->address, "shop@example.com");
  ASSERT_EQ(one->to.size(), 2u);
  EXPECT_EQ(one->to[1], (mail_address{"B", "b+promo@example.com"}));
  ASSERT_EQ(one->bcc.size(), 1u);
  EXPECT_TRUE(one->read);
  EXPECT_EQ(one->created_ms, 1000);
  EXPECT_EQ(one->envelope_from, "env@example.com");
  EXPECT_EQ(one->attributes.at("spam").as_int64(), 1);
  EXPECT_EQ(one->tags, std::vector<std::string>{"Work"});
  ASSERT_EQ(one->headers.size(), 7u);
  EXPECT_EQ(one->headers[6], (std::pair<std::string, std::string>{"X-Custom", "Hello World"}));
  EXPECT_TRUE(*run(s->raw("default", "id-one", false)) == raw1);
  // The edited message keeps its edits; its summary describes the output.
  auto two = run(s->get("other", "id-two"));
  ASSERT_TRUE(two);
  EXPECT_EQ(two->subject, "second");
  EXPECT_EQ(two->headers.front().first, "Received");
  EXPECT_EQ(*run(s->raw("other", "id-two", true)), "Received: from x\r\n" + raw2);
  EXPECT_EQ(two->tags, std::vector<std::string>{"Work"});  // tags are per mailbox now
  EXPECT_EQ(run(s->tags("default")), std::vector<std::string>{"Work"});
  EXPECT_EQ(run(s->tags("other")), std::vector<std::string>{"Work"});
  EXPECT_FALSE(run(s->get("default", "id-two")));
  // v4 indexed the migrated header fields and counted the mailboxes.
  auto custom = run(s->search({.mailbox = "default", .query = "header:x-custom:WORLD"}));
  ASSERT_EQ(custom.messages.size(), 1u);
  EXPECT_EQ(custom.messages[0].id, "id-one");
  EXPECT_EQ(custom.matched, 1u);
  EXPECT_EQ(custom.matched_unread, 0u);  // id-one was read
  EXPECT_EQ(custom.total, 1u);
  EXPECT_EQ(custom.unread, 0u);
  auto received = run(s->search({.mailbox = "other", .query = "header:Received:\"FROM X\""}));
  EXPECT_EQ(received.matched, 1u);  // the edit's field (the output's header fields)
  EXPECT_EQ(received.unread, 1u);
  EXPECT_EQ(run(s->search({.mailbox = "other", .query = "-header:Received"})).matched, 0u);
  {
    database db(dir_ / "store.db", SQLITE_OPEN_READONLY);
    EXPECT_EQ(db.query_int("PRAGMA user_version"), schema_version());
    EXPECT_EQ(db.query_int("SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'shop'"), 1);
    EXPECT_EQ(db.query_int("SELECT count(*) FROM tags"), 2);  // one per mailbox, unused gone
    EXPECT_EQ(db.query_int("PRAGMA foreign_key_check"), 0);
  }
  // Deleting the last copy removes its data.
  EXPECT_EQ(run(s->remove("default", {.ids = {"id-one"}})), 1u);
  database db(dir_ / "store.db", SQLITE_OPEN_READONLY);
  EXPECT_EQ(db.query_int("SELECT count(*) FROM message_data"), 1);
  EXPECT_EQ(db.query_int("SELECT count(*) FROM message_fields WHERE data_id = 1"), 0);
  EXPECT_EQ(db.query_int("SELECT count(*) FROM message_fields"), 1);
}

TEST_F(StoreTest, ShutdownDrainsQueuedWrites) {
  std::vector<std::future<write_result>> pending;
  std::vector<std::string> ids;
  {
    auto s = open();
    for (int i = 0; i < 300; ++i) {
      auto m = make_message(sample_message("drain" + std::to_string(i)));
      ids.push_back(m->id);
      pending.push_back(asio::co_spawn(host_->io(), s->insert(prepare_message(*m, "default", 1)),
                                       asio::use_future));
    }
    // Some writes are committed before stop() starts, the rest are still in flight when it
    // does; without this wait a busy machine may not have queued any of them yet.
    for (int i = 0; i < 10; ++i)
      pending[i].wait();
    s->stop();  // returns only when every queued write is committed
  }
  std::size_t acknowledged = 0;
  for (auto& f : pending)
    acknowledged += f.get().ok() ? 1 : 0;
  auto s = open();
  // Every acknowledged write is there after a re-open.
  EXPECT_EQ(count(*s, "default"), acknowledged);
  EXPECT_GE(acknowledged, 10u);
}

TEST_F(StoreTest, StopRefusesLateWrites) {
  auto s = open();
  s->stop();
  auto r = run(s->insert(prepare_message(*make_message(sample_message("late")), "default", 1)));
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(verdict_for_failure(r.rc).kind, verdict_kind::tempfail);
}

// ---------------------------------------------------------------------------------------
// Through the plugin's own factories, as the kernel uses it.

class StorePluginTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    sluice_plugin_descriptor.register_fn(reg_);
  }
  std::shared_ptr<service> make_service(const std::string& yaml, const std::string& name) {
    auto cfg = config_node::parse(yaml, "test.yaml");
    instance_context ctx{*host_, cfg, name, logger("store")};
    auto svc = reg_.services.at("store")(ctx);
    cfg.check_unknown_keys();
    return svc;
  }
  std::shared_ptr<stage> make_stage(const std::string& yaml) {
    auto cfg = config_node::parse(yaml, "test.yaml");
    instance_context ctx{*host_, cfg, "store", logger("store")};
    auto st = reg_.stages.at("store").first(ctx);
    cfg.check_unknown_keys();
    return st;
  }
  verdict process(stage& st, std::shared_ptr<message> m) {
    stage_call call;
    call.log = logger("test");
    return run(st.process(std::move(m), call));
  }
  fake_registrar reg_;
};

TEST_F(StorePluginTest, DescriptorAndTraits) {
  EXPECT_STREQ(sluice_plugin_descriptor.name, "store");
  EXPECT_EQ(sluice_plugin_descriptor.abi, sdk_abi);
  ASSERT_TRUE(reg_.stages.count("store"));
  EXPECT_TRUE(reg_.stages.at("store").second.commits);
  EXPECT_TRUE(reg_.services.count("store"));
}

TEST_F(StorePluginTest, StageStoresIntoConfiguredMailbox) {
  auto svc = make_service(
      "path: data/mail.db\ncompression: best\nmax_messages: 100\nmax_age: 7d\n"
      "prune_interval: 30s\nread_connections: 2\ngroup_commit: {max_batch: 64, max_delay: 1ms, "
      "max_bytes: 8MB}\n",
      "default");
  EXPECT_TRUE(std::filesystem::exists(dir_ / "data" / "mail.db"));  // relative to config_dir
  auto mb = host_->services().get<mailbox_service>();
  ASSERT_EQ(mb, svc);
  auto st = make_stage("mailbox: inbox\n");

  auto small = make_message(sample_message("via stage"));
  EXPECT_EQ(process(*st, small).kind, verdict_kind::continue_);
  // A large body goes through the worker pool.
  body_builder b(dir_, 1024);
  const std::string big = binary_message(2 << 20, true);
  ASSERT_FALSE(b.append(big));
  std::error_code ec;
  auto large = make_message("");
  large->raw = b.finish(ec);
  large->quarantined = true;
  EXPECT_EQ(process(*st, large).kind, verdict_kind::continue_);

  EXPECT_EQ(count(*mb, "inbox"), 2u);
  EXPECT_TRUE(run(mb->raw("inbox", large->id, false)) == big);
  EXPECT_FALSE(run(mb->raw("default", large->id, false)));  // (mailbox, id) is the key
  EXPECT_TRUE(run(mb->get("inbox", large->id))->quarantined);
  EXPECT_EQ(run(mb->get("inbox", small->id))->mailbox, "inbox");
  auto names = mb->mailboxes();
  EXPECT_NE(std::find(names.begin(), names.end(), "inbox"), names.end());
}

TEST_F(StorePluginTest, StageTempfailsOnUnreadableBody) {
  make_service("path: s.db\ncompression: 0\n", "default");
  auto st = make_stage("{}");
  const std::string file = (dir_ / "spooled.eml").string();
  { std::ofstream(file, std::ios::binary) << binary_message(200'000, false); }
  std::error_code ec;
  auto m = make_message("");
  m->raw = message_body::from_file(file, ec);
  ASSERT_FALSE(ec);
  std::filesystem::resize_file(file, 1000);  // the spool file lost its tail
  verdict v = process(*st, m);
  EXPECT_EQ(v.kind, verdict_kind::tempfail);
  EXPECT_EQ(v.reply.code, 451);
  EXPECT_EQ(v.reply.text.find("sqlite"), std::string::npos);
  EXPECT_EQ(count(*host_->services().get<mailbox_service>(), "default"), 0u);
}

TEST_F(StorePluginTest, ConfigErrors) {
  EXPECT_THROW(make_stage("service: nowhere\n"), config_error);  // no store yet
  EXPECT_THROW(make_service("compression: 99\n", "a"), config_error);
  EXPECT_THROW(make_service("compression: fast\n", "a"), config_error);
  EXPECT_THROW(make_service("read_connections: 0\n", "a"), config_error);
  EXPECT_THROW(make_service("max_messages: -1\n", "a"), config_error);
  EXPECT_THROW(make_service("group_commit: {max_batch: 0}\n", "a"), config_error);
  EXPECT_THROW(make_service("group_commit: {max_bytes: 1KB}\n", "a"), config_error);
  EXPECT_THROW(make_service("bogus_key: 1\n", "a"), config_error);  // unknown key
  make_service("path: one.db\n", "one");
  make_service("path: two.db\n", "two");
  EXPECT_THROW(make_stage("mailbox: \"\"\n"), config_error);  // two stores, none "default"
  EXPECT_NO_THROW(make_stage("service: two\nmailbox: x\n"));
}

// wal_checkpoint sets the WAL size that starts a checkpoint; min_free_space's default grows to
// twice it (the WAL a full disk must still be able to checkpoint), an explicit one is kept.
TEST_F(StorePluginTest, WalCheckpointSizeAndTheReserveItNeeds) {
  auto opts = [&](const std::string& yaml) {
    auto cfg = config_node::parse(yaml, "test.yaml");
    return parse_store_options(cfg, *host_);
  };
  EXPECT_EQ(opts("{}").checkpoint_bytes, 32ull << 20);
  EXPECT_EQ(opts("{}").min_free_space, 64ull << 20);
  EXPECT_EQ(opts("wal_checkpoint: 8MB\n").checkpoint_bytes, 8ull << 20);
  EXPECT_EQ(opts("wal_checkpoint: 8MB\n").min_free_space, 64ull << 20);
  EXPECT_EQ(opts("wal_checkpoint: 100MB\n").min_free_space, 200ull << 20);
  EXPECT_EQ(opts("wal_checkpoint: 100MB\nmin_free_space: 10MB\n").min_free_space, 10ull << 20);
  for (const char* bad :
       {"wal_checkpoint: 512KB\n", "wal_checkpoint: 2GB\n", "wal_checkpoint: lots\n"}) {
    SCOPED_TRACE(bad);
    try {
      make_service(std::string("path: w.db\n") + bad, "w");
      ADD_FAILURE() << "accepted";
    } catch (const config_error& e) {
      EXPECT_NE(std::string(e.what()).find("test.yaml:2:"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("wal_checkpoint"), std::string::npos) << e.what();
    }
  }
  // A store opened with it checkpoints at that size: 3 MB of incompressible messages pass 1 MB
  // (the default 32 MB would not have started one).
  struct store_case {
    const char* name;
    const char* yaml;
    bool checkpoints;
  };
  for (const auto& [name, yaml, checkpoints] :
       {store_case{"small", "path: small.db\nwal_checkpoint: 1MB\n", true},
        store_case{"large", "path: large.db\n", false}}) {
    SCOPED_TRACE(yaml);
    auto svc = make_service(yaml, name);
    auto* st = dynamic_cast<sqlite_store*>(svc.get());
    ASSERT_NE(st, nullptr);
    for (int i = 0; i < 48; ++i)
      ASSERT_TRUE(put(*st, make_message(binary_message(64 * 1024, false))).ok());
    const auto c = st->write_stats().checkpoints;
    const auto passes = c.thread_passes + c.catch_up_passes + c.bound_passes;
    if (checkpoints) {
      EXPECT_GT(passes, 0u);
    } else {
      EXPECT_EQ(passes, 0u);
    }
  }
}

TEST(StoreOptions, CompressionNames) {
  auto level = [](const char* v) {
    auto cfg = config_node::parse(std::string("compression: ") + v + "\n", "t.yaml");
    return parse_compression(cfg.at("compression"));
  };
  EXPECT_EQ(level("0"), 0);
  EXPECT_EQ(level("off"), 0);
  EXPECT_EQ(level("fastest"), 1);
  EXPECT_EQ(level("default"), 3);
  EXPECT_EQ(level("best"), 9);
  EXPECT_EQ(level("19"), 19);
}

TEST(StoreCodec, HeaderSummaryDecodesEncodedWords) {
  auto h = summarize_headers(
      "Subject: =?UTF-8?B?SGVsbG8g8J+Mjg==?= =?ISO-8859-1?Q?caf=E9_au_lait?=\r\n"
      "From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\r\n"
      "To: a@example.com,\r\n b@example.com\r\n"
      "Cc: c@example.com\r\n"
      "Message-ID:\r\n <abc@host>\r\n"
      "Subject: second subject is ignored\r\n\r\nbody Subject: no\r\n");
  EXPECT_EQ(h.subject,
            "Hello \xF0\x9F\x8C\x8E"
            "caf\xC3\xA9 au lait");
  EXPECT_EQ(h.from, "J\xC3\xB6rg <j@example.com>");
  EXPECT_EQ(h.to, "a@example.com, b@example.com");
  EXPECT_EQ(h.cc, "c@example.com");
  EXPECT_EQ(h.message_id, "abc@host");
  // Unknown charsets stay encoded; raw 8-bit that is not UTF-8 becomes U+FFFD.
  EXPECT_EQ(decode_rfc2047("=?koi8-r?B?8NLJ?= x"), "=?koi8-r?B?8NLJ?= x");
  EXPECT_EQ(sanitize_utf8("a\xff"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
}

TEST(StoreCodec, TagsAndFailureVerdicts) {
  EXPECT_EQ(clean_tag("  hello, world! "), "hello world");
  EXPECT_EQ(clean_tag("!!!"), "");
  EXPECT_EQ(clean_tag(std::string(150, 'a')).size(), 100u);
  auto full = verdict_for_failure(SQLITE_FULL);
  EXPECT_EQ(full.kind, verdict_kind::tempfail);
  EXPECT_EQ(full.reply.code, 452);
  EXPECT_EQ(full.reply.enhanced, "4.3.1");
  EXPECT_EQ(verdict_for_failure(SQLITE_IOERR_WRITE).reply.code, 451);
  EXPECT_EQ(verdict_for_failure(SQLITE_TOOBIG).kind, verdict_kind::reject);
}

TEST(StoreCodec, EditsRoundTripThroughJson) {
  std::vector<header_edit> edits{{edit_op::prepend, "Received", "from x"},
                                 {edit_op::rename, "X-A", "X-B"},
                                 {edit_op::remove, "Bcc", ""}};
  auto back = edits_from_json_text(edits_to_json_text(edits));
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[1].op, edit_op::rename);
  EXPECT_EQ(back[1].value, "X-B");
  EXPECT_EQ(back[2].name, "Bcc");
}

// ---------------------------------------------------------------------------------------
// Search, tags, templates and parts against real stored rows.

namespace {

// A message with a hand-made MIME view (what the MIME stage attaches).
std::shared_ptr<message> with_view(const std::string& raw, parsed_message v) {
  auto m = make_message(raw);
  m->attributes["mime"] = to_json(v);
  return m;
}

parsed_message view_of(std::string subject, std::string body, mail_address from) {
  parsed_message v;
  v.subject = std::move(subject);
  v.from = std::move(from);
  v.to = {{"Bob", "bob@example.com"}};
  v.text = body;
  v.search_text = std::move(body);
  v.snippet = v.text.substr(0, 200);
  return v;
}

std::set<std::string> ids_of(const search_result& r) {
  std::set<std::string> out;
  for (const auto& m : r.messages)
    out.insert(m.id);
  return out;
}

}  // namespace

// Each commit adds a segment to each full-text index. While the writer is busy they pile up
// (FTS5 merges on the write path in units of 64 leaf pages, and crisismerge is 64, so 40
// one-message commits leave 40 segments; its default crisismerge of 16 would have merged
// them); once the writer has been idle for index_merge_idle it merges them in small steps,
// for segments an earlier run left and after its own writes. Searches find the same
// messages before and after. Fails when the idle merge does nothing.
TEST_F(StoreTest, MergesFullTextSegmentsOnceIdle) {
  auto segments = [&](const char* table) {
    database db(dir_ / "store.db", SQLITE_OPEN_READONLY);
    return db.query_int(std::string("SELECT count(DISTINCT segid) FROM ") + table + "_idx");
  };
  int stored = 0;
  auto put_some = [&](sqlite_store& s, int n) {
    for (int i = 0; i < n; ++i, ++stored) {  // one commit each: one segment each
      const std::string subject = "merge" + std::to_string(stored);
      auto m = with_view(sample_message(subject, "a pangolin\r\n"),
                         view_of(subject, "a pangolin", {"Alice", "alice@example.com"}));
      ASSERT_TRUE(put(s, m).ok());
    }
  };
  auto found = [&](sqlite_store& s) {
    return std::pair{run(s.search({.query = "subject:merge"})).matched,
                     run(s.search({.query = "pangolin"})).matched};
  };
  const auto all = [&] { return std::pair{std::uint64_t(stored), std::uint64_t(stored)}; };
  // Waits until merge steps have run beyond `since` and then stopped (no new step for
  // 300 ms, far more than the 20 ms idle wait); returns the count of steps.
  auto merges_settled = [&](sqlite_store& s, std::uint64_t since) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    std::uint64_t last = s.write_stats().index_merges;
    while (std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(300ms);
      const std::uint64_t now = s.write_stats().index_merges;
      if (now > since && now == last) break;
      last = now;
    }
    return s.write_stats().index_merges;
  };

  store_options busy;
  busy.index_merge_idle = std::chrono::hours(1);  // never idle long enough in this test
  {
    auto s = open(busy);
    put_some(*s, 40);
    EXPECT_EQ(found(*s), all());
    EXPECT_EQ(s->write_stats().index_merges, 0u);
  }
  EXPECT_EQ(segments("messages_fts"), 40);
  EXPECT_EQ(segments("body_fts"), 40);

  store_options idle;
  idle.index_merge_idle = 20ms;
  auto s = open(idle);
  const auto first = merges_settled(*s, 0);  // what the last run left: 40 on one level
  EXPECT_GT(first, 0u);
  EXPECT_LE(segments("messages_fts"), 3);
  EXPECT_LE(segments("body_fts"), 3);
  EXPECT_EQ(found(*s), all());

  // After its own writes. Idle merges may also run between these puts on a slow machine,
  // spreading segments over levels; whatever the timing, fewer than 4 stay on each level,
  // and 41 segments cannot make more than 4 levels.
  put_some(*s, 40);
  const auto second = merges_settled(*s, first);
  EXPECT_GT(second, first);
  EXPECT_LE(segments("messages_fts"), 12);
  EXPECT_LE(segments("body_fts"), 12);
  EXPECT_EQ(found(*s), all());
  EXPECT_EQ(metrics_->counters_["sluice_store_index_merges_total"].value(),
            static_cast<double>(second));
}

// Opening a store whose merge settings are in place writes nothing: a store on a full
// disk must still open (to serve reads and the deletes that free space).
TEST_F(StoreTest, ReopeningAnUnchangedStoreWritesNothing) {
  { open(); }
  database watcher(dir_ / "store.db", SQLITE_OPEN_READONLY);
  const auto before = watcher.query_int("PRAGMA data_version");
  { open(); }
  EXPECT_EQ(watcher.query_int("PRAGMA data_version"), before);
  {
    sqlite3* db = nullptr;  // another connection changes a setting: the next open restores it
    ASSERT_EQ(sqlite3_open((dir_ / "store.db").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, "INSERT INTO body_fts(body_fts, rank) VALUES('automerge', 4)",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  const auto changed = watcher.query_int("PRAGMA data_version");
  EXPECT_NE(changed, before);
  { open(); }
  EXPECT_NE(watcher.query_int("PRAGMA data_version"), changed);
  EXPECT_EQ(watcher.query_int("SELECT v FROM body_fts_config WHERE k = 'automerge'"), 16);
}

// A keyword Mailpit reads as text (is:spam, has:nothing) is that literal text: the body's
// word index must not read it as the words "is spam".
TEST_F(StoreTest, KeywordsReadAsTextAreLiteral) {
  auto s = open();
  auto m = with_view("From: x@example.com\r\nSubject: s\r\n\r\nbody",
                     view_of("Weekly", "this is spam, it has nothing", {"", "x@example.com"}));
  ASSERT_TRUE(put(*s, m).ok());
  auto n = [&](const std::string& query) {
    return run(s->search({.mailbox = "default", .query = query, .tz = "UTC"})).matched;
  };
  EXPECT_EQ(n("\"is spam\""), 1u);  // the words are there
  EXPECT_EQ(n("is:spam"), 0u);
  EXPECT_EQ(n("has:nothing"), 0u);
  EXPECT_EQ(n("-has:nothing"), 1u);
  EXPECT_EQ(n("is:"), 0u);
  EXPECT_EQ(n("larger:weekly"), 0u);
}

TEST_F(StoreTest, SearchEveryTermOverTheIndex) {
  auto s = open();
  const std::string head =
      "From: x@example.com\r\nSubject: s\r\nX-Mailer: Acme Mail 2.0\r\n"
      "List-Id: <news.example.com>\r\n\r\n";
  auto de = with_view(head + "body", view_of("Grüße aus Äpfelstadt", "Die ÄPFEL sind reif",
                                             {"Jörg Müller", "joerg@example.de"}));
  auto ru =
      with_view("From: r@example.ru\r\nSubject: s\r\n\r\nbody",
                view_of("Привет мир", "Съешь же ещё этих мягких булок", {"", "ivan@example.ru"}));
  auto jp = with_view("From: t@example.jp\r\nSubject: s\r\n\r\nbody",
                      view_of("東京の天気", "明日は晴れるでしょう", {"山田", "yamada@example.jp"}));
  parsed_message att =
      view_of("Invoice 42", "Please find the invoice attached", {"Shop", "shop@example.com"});
  mime_part pdf;
  pdf.part_id = "2";
  pdf.file_name = "rechnung-2024.pdf";
  pdf.content_type = "application/pdf";
  att.attachments.push_back(pdf);
  att.cc = {{"", "accounts@example.org"}};
  att.message_id = "inv42@shop.example.com";
  auto inv =
      with_view("From: shop@example.com\r\nX-Priority: 1\r\n\r\n" + std::string(5000, 'x'), att);
  inv->attributes["tags"] = boost::json::array{"Billing"};
  for (auto* m : {&de, &ru, &jp, &inv}) {
    ASSERT_TRUE(put(*s, *m).ok());
  }
  ASSERT_EQ(run(s->set_read("default", {.ids = {ru->id}}, true)), 1u);
  auto q = [&](const std::string& query, const std::string& tz = "UTC") {
    return ids_of(run(s->search({.mailbox = "default", .query = query, .tz = tz, .limit = 0})));
  };
  using ids = std::set<std::string>;
  EXPECT_EQ(q("äpfel"), (ids{de->id}));  // Ä in subject and body, folded
  EXPECT_EQ(q("ÄPFELSTADT"), (ids{de->id}));
  EXPECT_EQ(q("from:müller"), (ids{de->id}));
  EXPECT_EQ(q("ПРИВЕТ"), (ids{ru->id}));  // Cyrillic, case-insensitive
  EXPECT_EQ(q("булок"), (ids{ru->id}));
  EXPECT_EQ(q("東京の"), (ids{jp->id}));  // CJK substring (trigram)
  EXPECT_EQ(q("晴れ"), (ids{jp->id}));    // two characters: the per-row check
  // Bodies are indexed by word (body_fts): a word matches by prefix, not inside a word,
  // except CJK, where every character is a word, so any run of them matches.
  EXPECT_EQ(q("мягк"), (ids{ru->id}));
  EXPECT_EQ(q("ягких"), (ids{}));
  EXPECT_EQ(q("れるでし"), (ids{jp->id}));
  EXPECT_EQ(q("\"sind reif\""), (ids{de->id}));
  EXPECT_EQ(q("\"sind rei\""), (ids{de->id}));  // the phrase's last word by prefix
  EXPECT_EQ(q("@@@"), (ids{}));                 // no word characters: short fields only
  EXPECT_EQ(q("from:山田"), (ids{jp->id}));
  EXPECT_EQ(q("ü"), (ids{de->id}));  // one character
  EXPECT_EQ(q("Ü"), (ids{de->id}));
  EXPECT_EQ(q("invoice"), (ids{inv->id}));
  EXPECT_EQ(q("rechnung"), (ids{inv->id}));  // attachment file names
  EXPECT_EQ(q("\"the invoice attached\""), (ids{inv->id}));
  EXPECT_EQ(q("\"invoice the\""), (ids{}));  // a phrase is one substring
  EXPECT_EQ(q("cc:accounts"), (ids{inv->id}));
  EXPECT_EQ(q("to:bob"), (ids{de->id, ru->id, jp->id, inv->id}));
  EXPECT_EQ(q("addressed:accounts@"), (ids{inv->id}));
  EXPECT_EQ(q("subject:invoice -subject:nothing"), (ids{inv->id}));
  EXPECT_EQ(q("message-id:inv42@"), (ids{inv->id}));
  EXPECT_EQ(q("tag:billing"), (ids{inv->id}));  // case-insensitive, exact
  EXPECT_EQ(q("tag:bill"), (ids{}));
  EXPECT_EQ(q("is:tagged"), (ids{inv->id}));
  EXPECT_EQ(q("is:read"), (ids{ru->id}));
  EXPECT_EQ(q("is:unread -is:tagged"), (ids{de->id, jp->id}));
  EXPECT_EQ(q("has:attachment"), (ids{inv->id}));
  EXPECT_EQ(q("!has:attachment has:inline"), (ids{}));
  EXPECT_EQ(q("larger:4K"), (ids{inv->id}));
  EXPECT_EQ(q("smaller:4K").size(), 3u);
  EXPECT_EQ(q("-äpfel -булок -東京"), (ids{inv->id}));  // negation, long and short
  EXPECT_EQ(q("-ü"), (ids{ru->id, jp->id, inv->id}));
  EXPECT_EQ(q("header:X-Mailer:acme"), (ids{de->id}));  // any header, by name and value
  EXPECT_EQ(q("header:x-mailer:\"mail 2.0\""), (ids{de->id}));
  EXPECT_EQ(q("header:List-Id:Acme"), (ids{}));       // the value must be in that header
  EXPECT_EQ(q("header:X-Priority"), (ids{inv->id}));  // present
  EXPECT_EQ(q("-header:X-Priority").size(), 3u);
  EXPECT_EQ(q("header:X-Priority:1"), (ids{inv->id}));  // short value
  EXPECT_EQ(q("before:2000-01-01"), (ids{}));
  EXPECT_EQ(q("after:2000-01-01").size(), 4u);
  EXPECT_EQ(q("after:today").size(), 4u);  // from today's midnight on, as Mailpit
  EXPECT_EQ(q("before:today"), (ids{}));
  // What Mailpit cannot read is ignored (a date) or text (is:, has:, a size), not an error.
  EXPECT_EQ(q("before:tomorrow").size(), 4u);
  EXPECT_EQ(q("before:2024-13-01 after:notadate").size(), 4u);
  EXPECT_EQ(q("is:starred"), (ids{}));
  EXPECT_EQ(q("-has:nothing").size(), 4u);
  EXPECT_EQ(q("larger:huge"), (ids{}));
  EXPECT_THROW(q("after:2024-01-01", "Mars/Olympus"), search_error);
  EXPECT_THROW(q("after:2024-01-01", "/etc/localtime"), search_error);

  auto all = run(s->search({.mailbox = "default", .query = "-is:read", .limit = 2}));
  EXPECT_EQ(all.total, 4u);
  EXPECT_EQ(all.unread, 3u);
  EXPECT_EQ(all.matched, 3u);
  EXPECT_EQ(all.matched_unread, 3u);
  EXPECT_EQ(all.messages.size(), 2u);
  EXPECT_EQ(all.tags, std::vector<std::string>{"Billing"});
  EXPECT_EQ(*run(s->latest("default", "", "")), inv->id);
  EXPECT_EQ(*run(s->latest("default", "булок", "")), ru->id);
  EXPECT_FALSE(run(s->latest("default", "nothing-like-this", "")));
  EXPECT_TRUE(run(s->matches("default", jp->id, "東京", "")));
  EXPECT_FALSE(run(s->matches("default", jp->id, "булок", "")));
  EXPECT_FALSE(run(s->matches("other", jp->id, "", "")));
  // Bulk operations by query.
  EXPECT_EQ(run(s->set_read("default", {.query = "has:attachment"}, true)), 1u);
  EXPECT_EQ(run(s->remove("default", {.query = "is:read"})), 2u);
  EXPECT_EQ(count(*s, "default"), 2u);
  EXPECT_THROW(run(s->remove("default", {.query = "\"open"})), search_error);
}

// header: search goes through header_index (names ASCII-lowercased, values Unicode-folded,
// long values checked in the field blob); a search by an index set counts its matches from
// a small set (messages_data) or a scan of the mailbox (sluice_keys). Each query's matches,
// counts and page are compared with what the messages say.
// The Return-Path is indexed only when it is not already part of the From text; a bare
// word finds it either way, and only the other one writes a return_path entry.
TEST_F(StoreTest, ReturnPathIsSearchableWhetherOrNotItRepeatsFrom) {
  auto s = open();
  auto same = make_message(
      "Return-Path: <alice@example.com>\r\nFrom: Alice <alice@example.com>\r\n"
      "Subject: one\r\n\r\nbody");
  auto other = make_message(
      "Return-Path: <bounce-77@lists.example.net>\r\nFrom: Bob <bob@example.com>\r\n"
      "Subject: two\r\n\r\nbody");
  ASSERT_TRUE(put(*s, same).ok());
  ASSERT_TRUE(put(*s, other).ok());
  auto q = [&](const std::string& query) {
    return ids_of(run(s->search({.mailbox = "default", .query = query, .limit = 0})));
  };
  using ids = std::set<std::string>;
  EXPECT_EQ(q("alice@example.com"), (ids{same->id}));
  EXPECT_EQ(q("ALICE@"), (ids{same->id}));
  EXPECT_EQ(q("bounce-77@lists"), (ids{other->id}));
  EXPECT_EQ(q("example.net"), (ids{other->id}));
  EXPECT_EQ(q("77"), (ids{other->id}));  // a short term: the per-row check
  EXPECT_EQ(q("ce"), (ids{same->id, other->id}));
  EXPECT_EQ(q("-bounce"), (ids{same->id}));
  EXPECT_EQ(q("from:bounce"), (ids{}));  // from: is the From field only

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir_ / "store.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT return_path FROM messages_fts ORDER BY rowid", -1, &st,
                               nullptr),
            SQLITE_OK);
  std::vector<std::string> indexed;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const auto* t = sqlite3_column_text(st, 0);
    indexed.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  ASSERT_EQ(indexed.size(), 2u);
  EXPECT_EQ(indexed[0], "");
  EXPECT_NE(indexed[1].find("bounce-77@lists.example.net"), std::string::npos);
}

TEST_F(StoreTest, HeaderIndexAndKeyedCountsAreExact) {
  auto s = open();
  constexpr int kN = 12;
  const auto base = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  std::vector<std::string> id(kN);
  std::vector<std::int64_t> created(kN);
  for (int i = 0; i < kN; ++i) {
    const std::string tenant = i % 3 == 0   ? "\xC3\x84rger GmbH"  // Ärger
                               : i % 3 == 1 ? "\xC3\x89"
                                              "COLE Stra\xC3\x9F"
                                              "e"  // ÉCOLE Straße
                                            : "plain co";
    std::string raw =
        "From: a@example.com\r\nSubject: " + std::string(i % 2 ? "beta" : "alpha") + " " +
        std::to_string(i) + "\r\nX-Tenant: " + tenant + "\r\nx-TRACE-id: T-" + std::to_string(i) +
        "\r\nReceived: from hop" + std::to_string(i) +
        "\r\nReceived: from relay\r\nReceived: from relay\r\nX-Long: " + std::string(300, 'b') +
        (i % 2 ? "" : " needle-" + std::to_string(i)) + "\r\n";
    if (i == 5) raw += "X-Empty:\r\n";
    raw += "\r\nbody\r\n";
    auto m = make_message(raw);
    m->envelope.received_at = base + std::chrono::seconds(i);
    ASSERT_TRUE(put(*s, m).ok());
    id[i] = m->id;
    created[i] = std::chrono::duration_cast<std::chrono::milliseconds>(
                     m->envelope.received_at.time_since_epoch())
                     .count();
  }
  // A copy elsewhere must not be counted in "default".
  auto other = make_message(
      "From: a@example.com\r\nX-Tenant: \xC3\x84rger\r\nX-Bin: caf\xE9 LAIT\r\n\r\nx\r\n");
  ASSERT_TRUE(put(*s, other, "other").ok());
  const std::set<int> read = {0, 3, 4};
  for (int i : read)
    ASSERT_EQ(run(s->set_read("default", {.ids = {id[i]}}, true)), 1u);

  // Checks matches (as the page, newest first), matched and matched_unread.
  auto check = [&](const std::string& query, const std::vector<int>& want) {
    SCOPED_TRACE(query);
    auto r = run(s->search({.mailbox = "default", .query = query, .limit = 0}));
    std::vector<std::string> got, expect;
    for (const auto& m : r.messages)
      got.push_back(m.id);
    std::uint64_t unread = 0;
    for (auto it = want.rbegin(); it != want.rend(); ++it) {
      expect.push_back(id[*it]);
      unread += read.count(*it) ? 0 : 1;
    }
    EXPECT_EQ(got, expect);
    EXPECT_EQ(r.matched, want.size());
    EXPECT_EQ(r.matched_unread, unread);
    EXPECT_EQ(r.total, static_cast<std::uint64_t>(kN));
    EXPECT_EQ(r.unread, static_cast<std::uint64_t>(kN) - read.size());
  };
  check("header:x-tenant:\xC3\xA4rger", {0, 3, 6, 9});  // ärger finds Ärger
  check("header:X-TENANT:\xC3\x84RGER", {0, 3, 6, 9});  // ÄRGER
  check(
      "header:X-Tenant:\xC3\xA9"
      "cole",
      {1, 4, 7, 10});  // école finds ÉCOLE
  check(
      "header:x-tenant:STRA\xE1\xBA\x9E"
      "E",
      {1, 4, 7, 10});                           // ẞ folds to ß
  check("header:x-tenant:strasse", {});         // no full case folding
  check("header:X-Trace-Id:t-1", {1, 10, 11});  // substring of the value
  check("header:x-trace-id:T-11", {11});        // small set: counted from messages_data
  check("header:X-Trace-Id", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  check("header:X-Tenant:\"plain co\"", {2, 5, 8, 11});
  check("header:X-Tenant:co", {1, 2, 4, 5, 7, 8, 10, 11});  // ÉCOLE and "plain co"
  check("header:Subject:alpha", {0, 2, 4, 6, 8, 10});
  check("header:X-Long:needle-4", {4});  // a long value: the blob is checked
  check("header:X-Long:needle", {0, 2, 4, 6, 8, 10});
  check("header:X-Long:bbb", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  check("header:Received:relay", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});  // repeated field
  check("header:received:hop1", {1, 10, 11});
  check("header:X-Empty", {5});
  check("header:X-Empty:x", {});
  check("header:X-Nothing", {});
  check("header:X-Tenant:relay", {});  // the value must be in that field
  check("-header:x-tenant:\xC3\xA4rger", {1, 2, 4, 5, 7, 8, 10, 11});
  check("-header:X-Long:needle", {1, 3, 5, 7, 9, 11});
  check("-header:X-Empty", {0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11});
  check("header:x-tenant:\xC3\xA4rger -header:X-Long:needle", {3, 9});
  check("header:x-tenant:\xC3\xA4rger header:X-Long:needle", {0, 6});  // two sets, intersected
  check("alpha header:x-trace-id:t-1", {10});                          // trigram set and header set
  check("beta -alpha", {1, 3, 5, 7, 9, 11});
  check("beta", {1, 3, 5, 7, 9, 11});  // half the mailbox: counted by the scan
  check("beta is:unread", {1, 5, 7, 9, 11});
  check("beta is:read", {3});
  check("alpha -is:read -header:X-Trace-Id:t-1", {2, 6, 8});
  check("from:example.com header:X-Tenant:co", {1, 2, 4, 5, 7, 8, 10, 11});
  check("beta 1", {1, 11});  // a short term is checked per row of the set

  // Pages (offset, limit) and before_ms over both ways of finding them.
  auto page = [&](const std::string& query, std::uint64_t offset, std::uint64_t limit,
                  std::optional<std::int64_t> before = std::nullopt) {
    auto r = run(s->search({.mailbox = "default",
                            .query = query,
                            .offset = offset,
                            .limit = limit,
                            .before_ms = before}));
    std::vector<std::string> got;
    for (const auto& m : r.messages)
      got.push_back(m.id);
    return std::make_pair(got, std::make_pair(r.matched, r.matched_unread));
  };
  using page_t = std::pair<std::vector<std::string>, std::pair<std::uint64_t, std::uint64_t>>;
  EXPECT_EQ(page("header:x-tenant:\xC3\xA4rger", 1, 2), (page_t{{id[6], id[3]}, {4, 2}}));
  EXPECT_EQ(page("header:x-tenant:\xC3\xA4rger", 4, 2), (page_t{{}, {4, 2}}));
  EXPECT_EQ(page("header:x-trace-id:T-11", 0, 5), (page_t{{id[11]}, {1, 1}}));
  EXPECT_EQ(page("beta", 2, 3), (page_t{{id[7], id[5], id[3]}, {6, 5}}));
  EXPECT_EQ(page("beta", 0, 2, created[6]), (page_t{{id[5], id[3]}, {3, 2}}));
  EXPECT_EQ(page("header:x-tenant:\xC3\xA4rger", 0, 10, created[6]),
            (page_t{{id[3], id[0]}, {2, 0}}));
  EXPECT_EQ(page("", 0, 1, created[2]), (page_t{{id[1]}, {2, 1}}));
  EXPECT_EQ(page("header:x-trace-id:T-11", 0, 5, created[11]), (page_t{{}, {0, 0}}));
  EXPECT_EQ(page("header:x-trace-id:T-10", 0, 5, created[11]), (page_t{{id[10]}, {1, 1}}));

  // The other mailbox has its own copy and its own counts.
  auto o = run(s->search({.mailbox = "other", .query = "header:X-Tenant:\xC3\xA4rger"}));
  EXPECT_EQ(o.matched, 1u);
  EXPECT_EQ(o.total, 1u);
  EXPECT_EQ(o.unread, 1u);
  // A byte that is not UTF-8 was stored as U+FFFD (the fields are sanitized).
  EXPECT_EQ(run(s->search({.mailbox = "other", .query = "header:x-bin:lait"})).matched, 1u);
  EXPECT_EQ(
      run(s->search({.mailbox = "other", .query = "header:X-BIN:\"f\xEF\xBF\xBD l\""})).matched,
      1u);
  EXPECT_EQ(run(s->search({.mailbox = "other", .query = "header:X-Bin:cafe"})).matched, 0u);

  // The index follows deletes; the kept counts follow deletes and read changes.
  EXPECT_EQ(run(s->remove("default", {.query = "header:x-tenant:\xC3\xA4rger"})), 4u);
  ASSERT_EQ(run(s->set_read("default", {.ids = {id[1]}}, true)), 1u);
  auto all = run(s->search({.mailbox = "default", .query = "header:x-tenant"}));
  EXPECT_EQ(all.matched, 8u);
  EXPECT_EQ(all.matched_unread, 6u);  // 12 - 4 deleted (2 of them read) - id[1], id[4]
  EXPECT_EQ(all.total, 8u);
  EXPECT_EQ(all.unread, 6u);
  EXPECT_EQ(run(s->stats("default")).total, 8u);
  EXPECT_EQ(run(s->stats("default")).unread, 6u);
  {
    database db(dir_ / "store.db", SQLITE_OPEN_READONLY);
    EXPECT_EQ(db.query_int("SELECT count(*) FROM header_index WHERE data_id NOT IN"
                           " (SELECT id FROM message_data)"),
              0);
    EXPECT_EQ(db.query_int("SELECT count(DISTINCT data_id) FROM header_index"), 9);
    EXPECT_EQ(db.query_int("SELECT count(*) FROM header_index WHERE long = 1"), 8);  // X-Long
  }
  EXPECT_EQ(run(s->remove("default", {})), 8u);
  auto none = run(s->search({.mailbox = "default", .query = "header:x-tenant"}));
  EXPECT_EQ(none.total, 0u);
  EXPECT_EQ(none.matched, 0u);
  EXPECT_EQ(run(s->remove("other", {})), 1u);
  database db(dir_ / "store.db", SQLITE_OPEN_READONLY);
  EXPECT_EQ(db.query_int("SELECT count(*) FROM header_index"), 0);
  EXPECT_EQ(db.query_int("SELECT count(*) FROM message_data"), 0);
}

// header_index rows go in as multi-row inserts of up to 16 rows: every field of a message
// with more fields than that (and one repeated across the chunk boundary) is searchable.
TEST_F(StoreTest, EveryHeaderFieldIsIndexedAcrossInsertChunks) {
  auto s = open();
  constexpr int kFields = 40;
  std::string raw = "From: a@example.com\r\nSubject: many fields\r\n";
  for (int k = 0; k < kFields; ++k)
    raw += "X-F" + std::to_string(k) + ": v" + std::to_string(k) + "\r\n";
  raw += "X-F3: v3\r\nX-F3: again\r\n\r\nbody\r\n";
  auto many = make_message(raw);
  ASSERT_TRUE(put(*s, many).ok());
  auto few = make_message("From: b@example.com\r\nX-F20: other\r\n\r\nx\r\n");
  ASSERT_TRUE(put(*s, few).ok());
  auto ids_of = [&](const std::string& query) {
    auto r = run(s->search({.mailbox = "default", .query = query, .limit = 0}));
    std::vector<std::string> out;
    for (const auto& m : r.messages)
      out.push_back(m.id);
    return out;
  };
  for (int k = 0; k < kFields; ++k) {
    const std::string q = "header:X-F" + std::to_string(k) + ":v" + std::to_string(k);
    SCOPED_TRACE(q);
    EXPECT_EQ(ids_of(q), (std::vector<std::string>{many->id}));
  }
  EXPECT_EQ(ids_of("header:X-F3:again"), (std::vector<std::string>{many->id}));
  EXPECT_EQ(ids_of("header:X-F20:other"), (std::vector<std::string>{few->id}));
  EXPECT_EQ(ids_of("header:X-F20").size(), 2u);
  EXPECT_TRUE(ids_of("header:X-F40").empty());
}

TEST_F(StoreTest, BeforeAndAfterUseTheRequestTimeZone) {
  auto s = open();
  // 2024-06-01 23:30 UTC is 2024-06-02 01:30 in Berlin (CEST, +02:00).
  auto m = make_message(sample_message("tz"));
  m->envelope.received_at = std::chrono::system_clock::time_point(std::chrono::seconds(1717284600));
  ASSERT_TRUE(put(*s, m).ok());
  auto n = [&](const std::string& query, const std::string& tz) {
    return run(s->search({.mailbox = "default", .query = query, .tz = tz})).matched;
  };
  // A date alone is its midnight in the request's zone; both bounds include it (Mailpit).
  EXPECT_EQ(n("after:2024-06-01", "UTC"), 1u);
  EXPECT_EQ(n("after:2024-06-02", "UTC"), 0u);
  EXPECT_EQ(n("after:2024-06-02", "Europe/Berlin"), 1u);
  EXPECT_EQ(n("after:2024-06-03", "Europe/Berlin"), 0u);
  EXPECT_EQ(n("after:6/1/2024", "UTC"), 1u);            // US order, as dateparse
  EXPECT_EQ(n("before:1717284600", "Asia/Tokyo"), 1u);  // a Unix time: the very second, UTC
  EXPECT_EQ(n("before:1717284599", "Asia/Tokyo"), 0u);
  EXPECT_EQ(n("after:1717284600000", "UTC"), 1u);  // milliseconds count
  EXPECT_EQ(n("after:1717284600001", "UTC"), 0u);
  EXPECT_EQ(n("before:\"2024-06-01 23:29:59.999\"", "UTC"), 0u);
  EXPECT_EQ(n("before:2024-06-02", "UTC"), 1u);
  EXPECT_EQ(n("before:2024-06-02", "Europe/Berlin"), 0u);
  EXPECT_EQ(n("after:\"2024-06-01 23:00\"", "UTC"), 1u);
  EXPECT_EQ(n("after:\"2024-06-01 23:00\"", "Europe/Berlin"), 1u);
  EXPECT_EQ(n("before:2024-06-02T01:00:00+02:00", "UTC"), 0u);  // its own offset wins
  EXPECT_EQ(n("before:2024-06-02T02:00:00+02:00", "UTC"), 1u);
  EXPECT_EQ(n("after:\"Sat, 1 Jun 2024 23:29:00 +0000\"", "Asia/Tokyo"), 1u);
}

TEST_F(StoreTest, TagsFromEverySourceRulesRenameDelete) {
  auto s = open();
  auto m = make_message(
      "From: Shop <shop+promo@example.com>\r\nTo: me+inbox+news@example.com\r\n"
      "X-Tags: urgent, Follow up,  \r\nSubject: deal\r\n\r\nbuy now\r\n");
  m->envelope.auth_user = "robot";
  m->attributes["tags"] = boost::json::array{"From attribute"};
  prepared_message p = prepare_message(
      *m, "default", 1, {},
      tag_sources{.x_tags = true, .plus_addresses = true, .username = true, .title_case = true});
  insert_options o;
  o.rules.push_back({parse_search("from:shop+promo@"), {"Shop"}});
  o.rules.push_back({parse_search("subject:deal tag:urgent"), {"Deals"}});  // sees the tags
  o.rules.push_back({parse_search("nothing-matches"), {"Never"}});
  ASSERT_EQ(run(s->insert(std::move(p), std::move(o))).n, 1u);
  auto got = run(s->get("default", m->id));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->username, "robot");
  EXPECT_EQ(got->tags, (std::vector<std::string>{"Deals", "Follow Up", "From attribute", "Inbox",
                                                 "News", "Promo", "robot", "Shop", "Urgent"}));
  auto fresh = events_->of_type("new");
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(fresh[0].data, boost::json::value(mailpit::summary_json([&] {
              auto c = *got;
              c.attributes = {};
              c.headers = {};
              return c;
            }())));
  EXPECT_EQ(fresh[0].data.at("Username").as_string(), "robot");
  // X-Tags and plus-addresses can be switched off.
  auto plain =
      prepare_message(*m, "default", 1, {}, tag_sources{.x_tags = false, .plus_addresses = false});
  EXPECT_EQ(plain.tags, std::vector<std::string>{"From attribute"});

  run(s->set_tags("default", {m->id}, {"one", "Two!", "one"}));
  EXPECT_EQ(run(s->get("default", m->id))->tags, (std::vector<std::string>{"one", "Two"}));
  auto upd = events_->of_type("update");
  ASSERT_EQ(upd.size(), 1u);
  EXPECT_EQ(upd[0].data, (boost::json::value{{"ID", m->id}, {"Tags", {"one", "Two"}}}));
  EXPECT_EQ(run(s->tags("default")), (std::vector<std::string>{"one", "Two"}));  // unused pruned
  auto m2 = make_message(sample_message("second"));
  m2->attributes["tags"] = boost::json::array{"Two", "three"};
  ASSERT_TRUE(put(*s, m2).ok());
  ASSERT_TRUE(put(*s, m2, "other").ok());
  run(s->rename_tag("default", "two", "Zwei"));
  EXPECT_EQ(run(s->tags("default")), (std::vector<std::string>{"one", "three", "Zwei"}));
  EXPECT_EQ(run(s->tags("other")), (std::vector<std::string>{"three", "Two"}));  // untouched
  run(s->rename_tag("default", "one", "three"));  // merge into an existing tag
  EXPECT_EQ(run(s->get("default", m->id))->tags, (std::vector<std::string>{"three", "Zwei"}));
  EXPECT_THROW(run(s->rename_tag("default", "three", "!!!")), std::invalid_argument);
  run(s->delete_tag("default", "zwei"));
  EXPECT_EQ(run(s->tags("default")), std::vector<std::string>{"three"});
  EXPECT_EQ(events_->of_type("prune").size(), 3u);
  auto st = run(s->stats("default"));
  EXPECT_EQ(st.total, 2u);
  EXPECT_EQ(st.unread, 2u);
  EXPECT_EQ(st.tags, (std::map<std::string, std::uint64_t>{{"three", 2}}));
  run(s->set_tags("default", {m->id, m2->id}, {}));
  EXPECT_TRUE(run(s->tags("default")).empty());
  auto info = run(s->info());
  EXPECT_EQ(info.location, (dir_ / "store.db").string());
  EXPECT_GT(info.size_bytes, 0u);
}

TEST_F(StoreTest, PartsAreSlicedAndDecoded) {
  const std::string pdf_bytes = std::string("%PDF-1.4\n\x00\x01\xff binary", 19);
  const std::string b64 = "JVBERi0xLjQKAAH/IGJpbmFyeQ==";
  const std::string qp_text = "caf=C3=A9 =\r\nsoft break=3D";
  const std::string uu = "begin 644 a.txt\r\n#86)C\r\n`\r\nend\r\n";
  const std::string head =
      "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n";
  std::string raw = head + "--b\r\n\r\n";
  auto part_at = [&](const std::string& id, const std::string& enc, const std::string& content) {
    mime_part p;
    p.part_id = id;
    p.transfer_encoding = enc;
    p.offset = raw.size();
    p.length = content.size();
    raw += content + "\r\n--b\r\n\r\n";
    return p;
  };
  parsed_message v;
  v.attachments.push_back(part_at("2", "base64", b64));
  v.attachments.push_back(part_at("3", "quoted-printable", qp_text));
  v.inline_parts.push_back(part_at("4", "x-uuencode", uu));
  v.attachments.push_back(part_at("5", "", "plain 7bit"));
  raw += std::string(300'000, 'z');  // compressible: stored as a zstd frame at level 1
  for (int level : {0, 1}) {
    SCOPED_TRACE(level);
    store_options o;
    o.compression_level = level;
    auto s = open(o);
    auto m = with_view(raw, v);
    ASSERT_TRUE(put(*s, m).ok());
    auto p2 = run(s->part("default", m->id, "2"));
    ASSERT_TRUE(p2);
    EXPECT_EQ(p2->data, pdf_bytes);
    EXPECT_EQ(p2->part.part_id, "2");
    EXPECT_EQ(run(s->part("default", m->id, "3"))->data, "caf\xC3\xA9 soft break=");
    EXPECT_EQ(run(s->part("default", m->id, "4"))->data, "abc");
    EXPECT_EQ(run(s->part("default", m->id, "5"))->data, "plain 7bit");
    EXPECT_FALSE(run(s->part("default", m->id, "9")));
    EXPECT_FALSE(run(s->part("other", m->id, "2")));
    auto got = run(s->get("default", m->id));
    ASSERT_TRUE(got->view);
    EXPECT_EQ(got->attachments, 3u);
    EXPECT_EQ(got->inline_parts, 1u);
    EXPECT_TRUE(got->view->search_text.empty());  // indexed, not kept
    s.reset();
    std::filesystem::remove(dir_ / "store.db");
    std::filesystem::remove(dir_ / "store.db-wal");
    std::filesystem::remove(dir_ / "store.db-shm");
  }
  EXPECT_EQ(decode_transfer("BASE64", "aGVs\r\nbG8="), "hello");
  EXPECT_EQ(decode_transfer("binary", std::string("\0a", 2)), std::string("\0a", 2));
}

TEST_F(StorePluginTest, MailboxTemplatesStoreOneCopyPerMailbox) {
  make_service("path: t.db\n", "default");
  auto mb = host_->services().get<mailbox_service>();
  auto st = make_stage(
      "mailbox: \"{rcpt_domain}\"\nfallback_mailbox: lost\n"
      "tags: {rules: [{match: \"subject:hello\", tags: [Greeting]}], username: true}\n");
  auto m = make_message(sample_message("hello"));
  m->envelope.recipients = {
      {"a@One.example", {}}, {"b@one.example", {}}, {"c@two.example", {}}, {"nodomain", {}}};
  m->envelope.auth_user = "sender";
  EXPECT_EQ(process(*st, m).kind, verdict_kind::continue_);
  for (const char* name : {"one.example", "two.example", "lost"}) {
    SCOPED_TRACE(name);
    auto got = run(mb->get(name, m->id));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->tags, (std::vector<std::string>{"Greeting", "sender"}));
  }
  EXPECT_EQ(count(*mb, "one.example"), 1u);  // distinct mailboxes only
  // A retry stores nothing twice; deleting one copy keeps the others' data.
  EXPECT_EQ(process(*st, m).kind, verdict_kind::continue_);
  EXPECT_EQ(count(*mb, "two.example"), 1u);
  EXPECT_EQ(run(mb->remove("one.example", {})), 1u);
  EXPECT_TRUE(run(mb->raw("two.example", m->id, false)) == m->raw->to_string());

  auto user = make_stage("mailbox: \"in-{auth_user}-{listener}\"\n");
  auto a = make_message(sample_message("x"));
  a->envelope.auth_user = "joe";
  a->envelope.listener = "smtp";
  EXPECT_EQ(process(*user, a).kind, verdict_kind::continue_);
  EXPECT_TRUE(run(mb->get("in-joe-smtp", a->id)));
  auto anon = make_message(sample_message("y"));
  EXPECT_EQ(process(*user, anon).kind, verdict_kind::continue_);
  EXPECT_TRUE(run(mb->get("default", anon->id)));  // no AUTH: the fallback

  // Mailpit's "A, B" form of a rule's tags.
  auto listed =
      make_stage("tags: {rules: [{match: \"subject:\\\"y\\\"\", tags: \"Alpha, Beta\"}]}\n");
  auto b = make_message(sample_message("y"));
  EXPECT_EQ(process(*listed, b).kind, verdict_kind::continue_);
  EXPECT_EQ(run(mb->get("default", b->id))->tags, (std::vector<std::string>{"Alpha", "Beta"}));

  EXPECT_THROW(make_stage("mailbox: \"{nope}\"\n"), config_error);
  EXPECT_THROW(make_stage("mailbox: \"{auth_user\"\n"), config_error);
  // A rule is parsed strictly: what a client's search would read as text is an error here.
  EXPECT_THROW(make_stage("tags: {rules: [{match: \"larger:x\", tags: [A]}]}\n"), config_error);
  EXPECT_THROW(make_stage("tags: {rules: [{match: \"is:starred\", tags: [A]}]}\n"), config_error);
  EXPECT_THROW(make_stage("tags: {rules: [{match: \"after:x y\", tags: [A]}]}\n"), config_error);
  EXPECT_THROW(make_stage("tags: {rules: [{match: \"a\", tags: [\"!!\"]}]}\n"), config_error);
  EXPECT_THROW(make_stage("tags: {bogus: 1}\n"), config_error);
}

// Mailpit's --ignore-duplicate-ids: a copy whose mailbox holds the Message-ID already is
// acknowledged and not stored; only when no copy is new does the stage discard.
TEST_F(StorePluginTest, DuplicateMessageIdsAreDroppedPerMailbox) {
  make_service("path: d.db\n", "default");
  auto mb = host_->services().get<mailbox_service>();
  auto keep = make_stage("{}");
  auto drop = make_stage("mailbox: \"{rcpt_domain}\"\nduplicates: drop\n");
  auto to = [](std::shared_ptr<message> m, std::vector<std::string> rcpts) {
    m->envelope.recipients.clear();
    for (auto& r : rcpts)
      m->envelope.recipients.push_back({r, {}});
    return m;
  };
  // sample_message("x") carries Message-ID <x@example.com>.
  auto first = to(make_message(sample_message("x")), {"a@one.example"});
  EXPECT_EQ(process(*drop, first).kind, verdict_kind::continue_);
  auto again = to(make_message(sample_message("x")), {"a@one.example"});
  verdict v = process(*drop, again);
  EXPECT_EQ(v.kind, verdict_kind::discard);
  EXPECT_EQ(v.reply.code, 250);
  EXPECT_FALSE(run(mb->get("one.example", again->id)));
  EXPECT_EQ(count(*mb, "one.example"), 1u);
  // A retry of the same message is idempotent, not a duplicate.
  EXPECT_EQ(process(*drop, first).kind, verdict_kind::continue_);
  // Per mailbox: a new mailbox takes it, the one that has it does not, and that is a
  // success (the new copy is stored).
  auto both = to(make_message(sample_message("x")), {"b@one.example", "c@two.example"});
  EXPECT_EQ(process(*drop, both).kind, verdict_kind::continue_);
  EXPECT_FALSE(run(mb->get("one.example", both->id)));
  EXPECT_TRUE(run(mb->get("two.example", both->id)));
  // Without a Message-ID nothing is a duplicate.
  for (int i = 0; i < 2; ++i) {
    auto anon = to(make_message("Subject: no id\r\n\r\nbody\r\n"), {"a@one.example"});
    EXPECT_EQ(process(*drop, anon).kind, verdict_kind::continue_);
  }
  EXPECT_EQ(count(*mb, "one.example"), 3u);
  // A stage that keeps duplicates (the default) stores them.
  EXPECT_EQ(process(*keep, make_message(sample_message("x"))).kind, verdict_kind::continue_);
  EXPECT_EQ(process(*keep, make_message(sample_message("x"))).kind, verdict_kind::continue_);
  EXPECT_EQ(count(*mb, "default"), 2u);
  // Two copies racing into one batch: exactly one is stored.
  std::vector<std::future<verdict>> racing;
  std::deque<stage_call> calls(8);  // process() holds its call by reference
  for (auto& call : calls) {
    auto m = to(make_message(sample_message("race")), {"r@three.example"});
    call.log = logger("test");
    racing.push_back(asio::co_spawn(host_->io(), drop->process(m, call), asio::use_future));
  }
  int discarded = 0;
  for (auto& f : racing)
    discarded += f.get().kind == verdict_kind::discard;
  EXPECT_EQ(discarded, 7);
  EXPECT_EQ(count(*mb, "three.example"), 1u);

  EXPECT_THROW(make_stage("duplicates: ignore\n"), config_error);
}

// Mailpit's --use-message-dates: created (listing order, pruning) from the Date header the
// mime stage parsed; the arrival time without one.
TEST_F(StorePluginTest, MessageDatesComeFromTheParsedView) {
  make_service("path: dates.db\n", "default");
  auto mb = host_->services().get<mailbox_service>();
  auto st = make_stage("dates: message\n");
  auto arrival = make_stage("{}");
  parsed_message v = view_of("dated", "text", {"Alice", "alice@example.com"});
  v.date_ms = 978'307'200'123;  // 2001-01-01T00:00:00.123Z
  auto old = with_view("Date: Mon, 1 Jan 2001 00:00:00 +0000\r\nSubject: dated\r\n\r\ntext\r\n", v);
  EXPECT_EQ(process(*st, old).kind, verdict_kind::continue_);
  EXPECT_EQ(run(mb->get("default", old->id))->created_ms, 978'307'200'123);
  const auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const auto before = now_ms();
  auto undated = with_view("Subject: undated\r\n\r\ntext\r\n", view_of("undated", "t", {}));
  undated->envelope.received_at = std::chrono::system_clock::now();
  EXPECT_EQ(process(*st, undated).kind, verdict_kind::continue_);
  EXPECT_GE(run(mb->get("default", undated->id))->created_ms, before - 1000);
  auto same = with_view("Subject: dated\r\n\r\ntext\r\n", v);
  EXPECT_EQ(process(*arrival, same).kind, verdict_kind::continue_);
  EXPECT_GE(run(mb->get("default", same->id))->created_ms, before - 1000);
  // The newest first order follows the dates.
  auto page = list(*mb, {.mailbox = "default", .limit = 10});
  ASSERT_EQ(page.size(), 3u);
  EXPECT_EQ(page.back().id, old->id);

  EXPECT_THROW(make_stage("dates: header\n"), config_error);
}
