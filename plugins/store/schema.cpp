// schema.cpp — migrations of the store database (see schema.hpp).
//
// Rules for adding a migration: append to kMigrations with the next version, never edit a
// migration that has shipped, and keep each one idempotent within its transaction.
#include "schema.hpp"

#include <stdexcept>
#include <string>

namespace sluice::store {
namespace {

struct migration {
  std::int64_t version;
  const char* sql;
};

// Version 1: messages with their header summary, raw data apart (so listing never reads
// blobs), Mailpit-like tags, settings, named mailboxes, and an FTS5 index over the header
// text (subject, from, to, cc) until the MIME stage provides body text.
//
// `seq` is an INTEGER PRIMARY KEY (a rowid alias) so the FTS5 external content and the
// child tables keep a stable key across VACUUM; `id` is the kernel's message id.
constexpr const char* kV1 = R"sql(
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

constexpr migration kMigrations[] = {
    {1, kV1},
};

}  // namespace

std::int64_t schema_version() {
  return std::end(kMigrations)[-1].version;
}

std::int64_t migrate(database& db) {
  const std::int64_t found = db.query_int("PRAGMA user_version");
  if (found > schema_version()) {
    throw std::runtime_error("database schema version " + std::to_string(found) +
                             " is newer than this build supports (" +
                             std::to_string(schema_version()) + "); refusing to open it");
  }
  if (found == 0 && db.query_int("SELECT count(*) FROM sqlite_schema") == 0) {
    // Only possible before the first table exists: lets the pruner give pages back to
    // the file system with PRAGMA incremental_vacuum.
    db.exec("PRAGMA auto_vacuum=INCREMENTAL");
  }
  for (const auto& m : kMigrations) {
    if (m.version <= found) continue;
    db.exec("BEGIN IMMEDIATE");
    try {
      // Re-check under the write lock: another process may have migrated meanwhile.
      if (db.query_int("PRAGMA user_version") < m.version) {
        db.exec(m.sql);
        db.exec("PRAGMA user_version=" + std::to_string(m.version));
      }
      db.exec("COMMIT");
    } catch (...) {
      if (db.in_transaction()) db.exec("ROLLBACK");
      throw;
    }
  }
  return found;
}

}  // namespace sluice::store
