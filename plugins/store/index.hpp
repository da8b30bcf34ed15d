// index.hpp — writing a message's derived rows (header fields, search index entry) and
// the JSON text of address columns; shared by the store's writer and the v2 migration.
//
// Threading: the functions run on whichever thread owns the connection (the writer).
// Failure: throw sqlite_error like every other write; address JSON parsing never throws
// (a corrupt column reads as empty).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codec.hpp"
#include "sluice/parsed_message.hpp"
#include "sqlite.hpp"

namespace sluice::store {

std::string address_json_text(const std::optional<mail_address>& a);
std::string address_list_json_text(const std::vector<mail_address>& v);
std::optional<mail_address> address_from_json_text(std::string_view json);
std::vector<mail_address> address_list_from_json_text(std::string_view json);

// Replaces the header fields of message_data row `data_id`.
void write_headers(database& db, std::int64_t data_id,
                   const std::vector<std::pair<std::string, std::string>>& headers);
// Replaces the index entry of message_data row `data_id`.
void write_index(database& db, std::int64_t data_id, const index_text& ix);

}  // namespace sluice::store
