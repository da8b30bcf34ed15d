// options.cpp — store configuration parsing (see options.hpp).
#include "options.hpp"

#include <zstd.h>

#include <algorithm>

#include "sluice/listen.hpp"

namespace sluice::store {

int parse_compression(const config_node& node) {
  const std::string s = node.as_string();
  if (s == "off" || s == "false") return 0;
  if (s == "fastest") return 1;
  if (s == "default") return 3;
  // "best" stays at a level whose memory and time cost are reasonable for a mail store
  // (Mailpit's "best" level 3 needed 1.2 GB of RAM in its own benchmark).
  if (s == "best") return 9;
  const bool digits =
      !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || s.size() > 3 || std::stoi(s) > ZSTD_maxCLevel()) {
    node.fail("expected a zstd level 0 (off) to " + std::to_string(ZSTD_maxCLevel()) +
              " or off|fastest|default|best, got \"" + s + "\"");
  }
  return std::stoi(s);
}

store_options parse_store_options(const config_node& cfg, const host& h) {
  store_options o;
  const std::string path = cfg.get_string("path", "sluice.db");
  if (path.empty()) cfg.at("path").fail("must not be empty");
  o.path = resolve_config_path(h.config_dir(), path);

  const std::int64_t max_messages = cfg.get_int("max_messages", 0);
  if (max_messages < 0) cfg.at("max_messages").fail("must be 0 (unlimited) or more");
  o.max_messages = static_cast<std::uint64_t>(max_messages);

  o.max_age = cfg.get_duration("max_age", std::chrono::milliseconds(0));
  if (o.max_age.count() < 0) cfg.at("max_age").fail("must not be negative");
  o.prune_interval = cfg.get_duration("prune_interval", std::chrono::seconds(60));
  if (o.prune_interval < std::chrono::milliseconds(10)) {
    cfg.at("prune_interval").fail("must be at least 10ms");
  }

  if (auto c = cfg.find("compression")) o.compression_level = parse_compression(*c);

  const std::int64_t readers = cfg.get_int("read_connections", 4);
  if (readers < 1 || readers > 64) cfg.at("read_connections").fail("must be between 1 and 64");
  o.read_connections = static_cast<unsigned>(readers);

  if (auto gc = cfg.find("group_commit")) {
    if (!gc->is_map()) gc->fail("expected a map with max_batch, max_delay and max_bytes");
    const std::int64_t max_batch = gc->get_int("max_batch", 256);
    if (max_batch < 1 || max_batch > 100'000) {
      gc->at("max_batch").fail("must be between 1 and 100000");
    }
    o.max_batch = static_cast<std::size_t>(max_batch);
    const auto delay = gc->get_duration("max_delay", std::chrono::milliseconds(0));
    if (delay.count() < 0 || delay > std::chrono::seconds(1)) {
      gc->at("max_delay").fail("must be between 0 and 1s");
    }
    o.max_delay = delay;
    o.max_batch_bytes = gc->get_size("max_bytes", o.max_batch_bytes);
    if (o.max_batch_bytes < 64 * 1024) gc->at("max_bytes").fail("must be at least 64KB");
  }
  o.checkpoint_bytes = cfg.get_size("wal_checkpoint", o.checkpoint_bytes);
  if (o.checkpoint_bytes < 1024 * 1024 || o.checkpoint_bytes > 1024ull * 1024 * 1024) {
    cfg.at("wal_checkpoint").fail("must be between 1MB and 1GB");
  }
  // The reserve must hold a checkpoint of the largest WAL the writer lets grow (twice it).
  o.min_free_space =
      cfg.get_size("min_free_space", std::max(o.min_free_space, 2 * o.checkpoint_bytes));
  o.durability_full = h.durability_full();
  return o;
}

}  // namespace sluice::store
