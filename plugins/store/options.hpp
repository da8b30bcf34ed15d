// options.hpp — reading the store's configuration (service and stage keys).
//
// Runs at startup in the factories; throws sluice::config_error naming the offending key
// (file:line:col) for bad values. No other side effects.
#pragma once

#include <string>

#include "sluice/config.hpp"
#include "sluice/host.hpp"
#include "store.hpp"

namespace sluice::store {

// Keys: path, max_messages, max_age, prune_interval, compression, read_connections,
// group_commit {max_batch, max_delay, max_bytes}, min_free_space, wal_checkpoint. Relative paths
// resolve against host.config_dir().
store_options parse_store_options(const config_node& cfg, const host& h);

// `compression`: an integer zstd level (0 = off, 1..22) or off|fastest|default|best.
int parse_compression(const config_node& node);

}  // namespace sluice::store
