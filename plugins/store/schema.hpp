// schema.hpp — the store's SQLite schema and its ordered migrations.
//
// The schema version lives in PRAGMA user_version. migrate() applies every migration
// whose version is above the database's, each in its own IMMEDIATE transaction together
// with the user_version bump, so a crash leaves the database at a whole version.
//
// Threading: called on the writer connection before any reader is opened.
// Failure: throws sqlite_error; refuses (std::runtime_error) a database whose version is
// newer than this build knows, rather than guessing at its layout.
#pragma once

#include <cstdint>

#include "sqlite.hpp"

namespace sluice::store {

// The version a database has after migrate().
std::int64_t schema_version();

// Brings the database to schema_version(). Returns the version found before migrating.
std::int64_t migrate(database& db);

}  // namespace sluice::store
