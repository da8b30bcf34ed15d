// index.hpp — writing a message's derived rows (header fields, search index entry) and
// the JSON text of address columns; shared by the store's writer and the migrations.
//
// Threading: the functions run on whichever thread owns the connection (the writer).
// Failure: throw sqlite_error like every other write; address JSON parsing never throws
// (a corrupt column reads as empty).
#pragma once

#include <cstdint>
#include <functional>
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

// The header fields of a message as one blob (message_fields.fields): for each field,
// its name and its value, each as a LEB128 length and the bytes. Decoding a corrupt blob
// yields the fields before the damage.
std::string encode_fields(const std::vector<std::pair<std::string, std::string>>& fields);
std::vector<std::pair<std::string, std::string>> decode_fields(std::string_view blob);
// Calls fn(name, value) for each field until it returns false; false if the blob is corrupt.
bool for_each_field(std::string_view blob,
                    const std::function<bool(std::string_view, std::string_view)>& fn);

// Unicode simple lower-casing of UTF-8 (GLib's g_unichar_tolower per code point; bytes
// that are not UTF-8 stay as they are): how search compares text case-insensitively.
std::string fold_case(std::string_view s);
// ASCII lower-casing (header field names compare ASCII case-insensitively).
std::string ascii_lower(std::string_view s);

// header_index keeps a field's folded value up to this many bytes; a longer value gets a
// row with `long` = 1 and is checked in the field blob (message_fields) instead.
inline constexpr std::size_t kIndexedValueBytes = 256;

// The header_index keys of one field: fn(name ASCII-lowercased, long, value folded or ''
// when long). `long` = 1 for a value longer than kIndexedValueBytes folded, or not UTF-8
// (such values are checked in the blob, byte for byte as sluice_field does).
void header_key(std::string_view name, std::string_view value,
                const std::function<void(const std::string&, int, const std::string&)>& fn);
// Deletes the header_index rows of message_data row `data_id` whose field blob is `fields`
// (for the messages_last_copy trigger, through sluice_unindex_fields()).
void unindex_fields(database& db, std::int64_t data_id, std::string_view fields);

// Writes the header fields of a new message_data row `data_id`: the blob (message_fields)
// and one header_index row per distinct (name, long, value).
void write_fields(database& db, std::int64_t data_id,
                  const std::vector<std::pair<std::string, std::string>>& fields);
// Replaces the full-text entries of message_data row `data_id`: messages_fts and body_fts.
// `fresh`: the row was inserted in this transaction, so it has no entries to delete (the
// messages_last_copy trigger removes them with the row); two lookups per message saved.
void write_index(database& db, std::int64_t data_id, const index_text& ix, bool fresh = false);

// Text as body_fts indexes it: every CJK character (Han, kana, Hangul) stands alone between
// spaces, so that unicode61, which keeps a run of them as one token, indexes each one and
// a phrase of them matches anywhere in a run. Applied to the body and to query terms alike.
std::string body_tokens(std::string_view text);

}  // namespace sluice::store
