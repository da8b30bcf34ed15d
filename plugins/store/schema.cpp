// schema.cpp — migrations of the store database (see schema.hpp).
//
// Rules for adding a migration: append to kMigrations with the next version, never edit a
// migration that has shipped, and keep each one idempotent within its transaction.
#include "schema.hpp"

#include <stdexcept>
#include <string>

#include <boost/json.hpp>

#include "codec.hpp"
#include "index.hpp"

namespace sluice::store {
namespace {

struct migration {
  std::int64_t version;
  const char* sql;
  // Runs after `sql`, in the same transaction: data work SQL cannot do (parsing).
  void (*after)(database&) = nullptr;
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

// Version 2: mailbox v2. A message is keyed by (mailbox, id); one message delivered to
// several mailboxes is several `messages` rows sharing one `message_data` row (its bytes,
// view, header fields and index entry are stored once; triggers remove them with the
// last row that uses them). The summary gets address lists as JSON, the username,
// snippet and part counts; the parsed view and the output header fields get tables of
// their own; the FTS5 index is rebuilt with the trigram tokenizer over the summary, body
// text, file names and header values (README "Search").
//
// The v1 tables are rebuilt: data_id takes over v1's seq, so message_data keeps its rows.
// The address JSON, header fields and index of the old rows are filled by
// backfill_v2() from each message's stored header block.
constexpr const char* kV2 = R"sql(
DROP TRIGGER messages_fts_ai;
DROP TRIGGER messages_fts_ad;
DROP TRIGGER messages_fts_au;
DROP TABLE messages_fts;

CREATE TABLE message_data_v2(
  id         INTEGER PRIMARY KEY,
  raw        BLOB NOT NULL,                -- one zstd frame if compressed, else the bytes
  compressed INTEGER NOT NULL,
  raw_size   INTEGER NOT NULL
);
INSERT INTO message_data_v2(id, raw, compressed, raw_size)
  SELECT seq, raw, compressed, raw_size FROM message_data;

CREATE TABLE messages_v2(
  seq          INTEGER PRIMARY KEY,
  id           TEXT NOT NULL,
  mailbox      TEXT NOT NULL,
  data_id      INTEGER NOT NULL REFERENCES message_data_v2(id),
  created      INTEGER NOT NULL,            -- ms since the Unix epoch
  size         INTEGER NOT NULL,            -- output size (raw + header edits)
  message_id   TEXT NOT NULL DEFAULT '',
  subject      TEXT NOT NULL DEFAULT '',
  from_addr    TEXT NOT NULL DEFAULT 'null', -- JSON {"name","address"} or null
  to_addr      TEXT NOT NULL DEFAULT '[]',   -- JSON [{"name","address"}…]
  cc_addr      TEXT NOT NULL DEFAULT '[]',
  bcc_addr     TEXT NOT NULL DEFAULT '[]',
  reply_to     TEXT NOT NULL DEFAULT '[]',
  username     TEXT NOT NULL DEFAULT '',
  snippet      TEXT NOT NULL DEFAULT '',
  attachments  INTEGER NOT NULL DEFAULT 0,
  inline_parts INTEGER NOT NULL DEFAULT 0,
  env_from     TEXT NOT NULL DEFAULT '',
  envelope     TEXT NOT NULL DEFAULT '{}',  -- JSON
  attributes   TEXT NOT NULL DEFAULT '{}',  -- JSON, without "mime"
  edits        TEXT NOT NULL DEFAULT '[]',  -- JSON
  read         INTEGER NOT NULL DEFAULT 0,
  quarantined  INTEGER NOT NULL DEFAULT 0,
  UNIQUE(mailbox, id)
);
INSERT INTO messages_v2(seq, id, mailbox, data_id, created, size, message_id, subject,
                        env_from, envelope, attributes, edits, read, quarantined)
  SELECT seq, id, mailbox, seq, created, size, message_id, subject,
         env_from, envelope, attributes, edits, read, quarantined FROM messages;

-- Tags belong to a mailbox (renaming or deleting one in a mailbox leaves the others).
CREATE TABLE tags_v2(
  id      INTEGER PRIMARY KEY,
  mailbox TEXT NOT NULL,
  name    TEXT NOT NULL COLLATE NOCASE,
  UNIQUE(mailbox, name)
);
INSERT INTO tags_v2(mailbox, name)
  SELECT DISTINCT m.mailbox, t.name FROM message_tags mt
  JOIN tags t ON t.id = mt.tag_id JOIN messages m ON m.seq = mt.seq;

CREATE TABLE message_tags_v2(
  seq    INTEGER NOT NULL REFERENCES messages_v2(seq) ON DELETE CASCADE,
  tag_id INTEGER NOT NULL REFERENCES tags_v2(id) ON DELETE CASCADE,
  PRIMARY KEY(seq, tag_id)
) WITHOUT ROWID;
INSERT INTO message_tags_v2(seq, tag_id)
  SELECT mt.seq, t2.id FROM message_tags mt
  JOIN tags t ON t.id = mt.tag_id JOIN messages m ON m.seq = mt.seq
  JOIN tags_v2 t2 ON t2.mailbox = m.mailbox AND t2.name = t.name;

DROP TABLE message_tags;
DROP TABLE tags;
DROP TABLE message_data;
DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;
ALTER TABLE message_data_v2 RENAME TO message_data;
ALTER TABLE tags_v2 RENAME TO tags;
ALTER TABLE message_tags_v2 RENAME TO message_tags;
CREATE INDEX messages_mailbox_created ON messages(mailbox, created);
CREATE INDEX messages_created ON messages(created);
CREATE INDEX messages_data ON messages(data_id);
CREATE INDEX message_tags_tag ON message_tags(tag_id);

-- The parsed view (the "mime" attribute without search_text), JSON, maybe zstd.
CREATE TABLE message_views(
  data_id    INTEGER PRIMARY KEY REFERENCES message_data(id) ON DELETE CASCADE,
  view       BLOB NOT NULL,
  compressed INTEGER NOT NULL
);

-- The header fields of the output (edits applied), in order.
CREATE TABLE message_headers(
  data_id INTEGER NOT NULL REFERENCES message_data(id) ON DELETE CASCADE,
  pos     INTEGER NOT NULL,
  name    TEXT NOT NULL,
  value   TEXT NOT NULL,
  PRIMARY KEY(data_id, pos)
) WITHOUT ROWID;
CREATE INDEX message_headers_name ON message_headers(name COLLATE NOCASE, data_id);

-- rowid = message_data.id. The short fields: case-insensitive substring search (trigram).
CREATE VIRTUAL TABLE messages_fts USING fts5(
  subject, from_t, to_t, cc_t, bcc_t, reply_to_t, return_path, message_id, files,
  tokenize='trigram'
);
-- rowid = message_data.id. The body text: words (unicode61, diacritics folded), each CJK
-- character a word of its own (index.cpp body_tokens), matched by prefix. A trigram index
-- of bodies costs ~15x more per message to write, which the one writer cannot afford.
CREATE VIRTUAL TABLE body_fts USING fts5(
  body, tokenize='unicode61 remove_diacritics 2'
);

-- The last stored copy of a message takes its data, view, header fields and index entry.
CREATE TRIGGER messages_last_copy AFTER DELETE ON messages
WHEN NOT EXISTS (SELECT 1 FROM messages WHERE data_id = old.data_id) BEGIN
  DELETE FROM messages_fts WHERE rowid = old.data_id;
  DELETE FROM body_fts WHERE rowid = old.data_id;
  DELETE FROM message_data WHERE id = old.data_id;
END;
)sql";

// Version 3: the header fields of a message as one blob (index.hpp encode_fields) instead
// of one row per field: the rows and their name index cost ~40% of a message's write. The
// names move into body_fts (a `names` column), which narrows a header: search to the
// messages that have such a field; the blob is then checked per candidate.
constexpr const char* kV3 = R"sql(
CREATE TABLE message_fields(
  data_id INTEGER PRIMARY KEY REFERENCES message_data(id) ON DELETE CASCADE,
  fields  BLOB NOT NULL
);
DROP TRIGGER messages_last_copy;
ALTER TABLE body_fts RENAME TO body_fts_v2;
CREATE VIRTUAL TABLE body_fts USING fts5(
  body, names, tokenize='unicode61 remove_diacritics 2'
);
INSERT INTO body_fts(rowid, body, names)
  SELECT b.rowid, b.body,
         coalesce((SELECT group_concat(DISTINCT h.name) FROM message_headers h
                   WHERE h.data_id = b.rowid), '')
  FROM body_fts_v2 b;
INSERT INTO body_fts(rowid, body, names)
  SELECT h.data_id, '', group_concat(DISTINCT h.name) FROM message_headers h
  WHERE h.data_id NOT IN (SELECT rowid FROM body_fts_v2) GROUP BY h.data_id;
DROP TABLE body_fts_v2;

-- Every list and search reports the mailbox's total and unread counts: with this index they
-- are counted from the index alone (a scan of the wide rows took ~90 ms at 100,000 messages).
CREATE INDEX messages_mailbox_read ON messages(mailbox, read, data_id);

-- The delivery log: the kernel's "delivery" events (one per attempt of a deferred stage)
-- for the messages this store holds, by the kernel's message id.
CREATE TABLE deliveries(
  seq   INTEGER PRIMARY KEY,
  id    TEXT NOT NULL,
  at    INTEGER NOT NULL,  -- ms since the Unix epoch
  entry TEXT NOT NULL      -- the event's data, JSON
);
CREATE INDEX deliveries_id ON deliveries(id, seq);
-- Gone with the last stored copy of the message (checked only when it has a log).
CREATE TRIGGER messages_deliveries AFTER DELETE ON messages
WHEN EXISTS (SELECT 1 FROM deliveries WHERE id = old.id)
 AND NOT EXISTS (SELECT 1 FROM messages WHERE mailbox IN (SELECT name FROM mailboxes)
                 AND id = old.id) BEGIN
  DELETE FROM deliveries WHERE id = old.id;
END;

CREATE TRIGGER messages_last_copy AFTER DELETE ON messages
WHEN NOT EXISTS (SELECT 1 FROM messages WHERE data_id = old.data_id) BEGIN
  DELETE FROM messages_fts WHERE rowid = old.data_id;
  DELETE FROM body_fts WHERE rowid = old.data_id;
  DELETE FROM message_data WHERE id = old.data_id;
END;
)sql";

// Version 4: search without scans. header_index holds one row per distinct (name, value)
// field of a message — the name ASCII-lowercased, the value Unicode-folded (fold_case), so
// a header: search is a scan of that name's short index entries instead of decoding every
// message's field blob; a value longer than kIndexedValueBytes (or not UTF-8) is a `long`
// row whose blob is checked. The table is keyed for the search only (one b-tree per row
// written), by name, long and then data_id, so a new message's rows are appended at the
// end of each name's range (a few hot pages per commit, not one random page per field); a
// search scans its name's short values, as a substring test must, and its long ones apart.
// Its rows go with the last copy of their message through sluice_unindex_fields(), which
// finds their keys in the field blob (so only a connection with the store's functions can
// delete messages). body_fts's `names` column is no longer written. The indexes gain
// columns so that a search reads only index entries until its page: messages_mailbox_read
// (created) counts the matches, messages_data (mailbox, read, created) orders a small set
// of them, and messages_mailbox_created (data_id) tests a match in a newest-first walk.
// The mailbox totals are kept by triggers (mailbox_counts).
constexpr const char* kV4 = R"sql(
CREATE TABLE header_index(
  name    TEXT NOT NULL,     -- ASCII-lowercased
  long    INTEGER NOT NULL,  -- 1: the value is long or not UTF-8 ('' here; check the blob)
  data_id INTEGER NOT NULL,
  value   BLOB NOT NULL,     -- folded (fold_case)
  PRIMARY KEY(name, long, data_id, value)
) WITHOUT ROWID;

DROP INDEX messages_mailbox_read;
CREATE INDEX messages_mailbox_read ON messages(mailbox, read, data_id, created);
DROP INDEX messages_data;
CREATE INDEX messages_data ON messages(data_id, mailbox, read, created);
DROP INDEX messages_mailbox_created;
CREATE INDEX messages_mailbox_created ON messages(mailbox, created, seq, data_id);

-- Every list and search reports the mailbox's total and unread counts: kept here by
-- triggers instead of counted per request (an index scan of every row of the mailbox).
CREATE TABLE mailbox_counts(
  mailbox TEXT PRIMARY KEY,
  total   INTEGER NOT NULL,
  unread  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO mailbox_counts(mailbox, total, unread)
  SELECT mailbox, count(*), sum(read = 0) FROM messages GROUP BY mailbox;
CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
  INSERT INTO mailbox_counts(mailbox, total, unread) VALUES(new.mailbox, 1, new.read = 0)
  ON CONFLICT(mailbox) DO UPDATE SET total = total + 1, unread = unread + (new.read = 0);
END;
CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
  UPDATE mailbox_counts SET total = total - 1, unread = unread - (old.read = 0)
  WHERE mailbox = old.mailbox;
END;
CREATE TRIGGER messages_count_update AFTER UPDATE OF mailbox, read ON messages BEGIN
  UPDATE mailbox_counts SET total = total - 1, unread = unread - (old.read = 0)
  WHERE mailbox = old.mailbox;
  INSERT INTO mailbox_counts(mailbox, total, unread) VALUES(new.mailbox, 1, new.read = 0)
  ON CONFLICT(mailbox) DO UPDATE SET total = total + 1, unread = unread + (new.read = 0);
END;

DROP TRIGGER messages_last_copy;
CREATE TRIGGER messages_last_copy AFTER DELETE ON messages
WHEN NOT EXISTS (SELECT 1 FROM messages WHERE data_id = old.data_id) BEGIN
  DELETE FROM messages_fts WHERE rowid = old.data_id;
  DELETE FROM body_fts WHERE rowid = old.data_id;
  SELECT sluice_unindex_fields(old.data_id, fields) FROM message_fields
  WHERE data_id = old.data_id;
  DELETE FROM message_data WHERE id = old.data_id;
END;
)sql";

// Version 5: no schema change. Versions up to 4 could leave full-text rows of a message
// deleted in the same group commit as its insert (store.cpp run_batch); SQLite gives such a
// data id out again, and the insert of the message that gets it failed on those rows. They
// all go, once.
constexpr const char* kV5 = R"sql(
DELETE FROM messages_fts WHERE rowid NOT IN (SELECT id FROM message_data);
DELETE FROM body_fts WHERE rowid NOT IN (SELECT id FROM message_data);
)sql";

void backfill_v2(database& db);
void backfill_v3(database& db);
void backfill_v4(database& db);

constexpr migration kMigrations[] = {
    {1, kV1}, {2, kV2, backfill_v2}, {3, kV3, backfill_v3}, {4, kV4, backfill_v4}, {5, kV5},
};

// The v3 shape of the header fields (the blob only), frozen with the migration that fills it.
void write_fields_v3(database& db, std::int64_t data_id,
                     const std::vector<std::pair<std::string, std::string>>& fields) {
  const std::string blob = encode_fields(fields);
  statement s(db.get(), "INSERT OR REPLACE INTO message_fields(data_id, fields) VALUES(?1, ?2)");
  s.bind(1, data_id);
  s.bind_blob_static(2, blob);
  s.run();
}

// The v2 shapes of the derived rows, frozen with the migration that fills them.
void write_headers_v2(database& db, std::int64_t data_id,
                      const std::vector<std::pair<std::string, std::string>>& headers) {
  statement s(db.get(),
              "INSERT INTO message_headers(data_id, pos, name, value) VALUES(?1, ?2, ?3, ?4)");
  std::int64_t pos = 0;
  for (const auto& [name, value] : headers) {
    s.bind(1, data_id);
    s.bind(2, pos++);
    s.bind(3, name);
    s.bind(4, value);
    s.run();
    s.reset();
  }
}

void write_index_v2(database& db, std::int64_t data_id, const index_text& ix) {
  {
    statement s(db.get(),
                "INSERT INTO messages_fts(rowid, subject, from_t, to_t, cc_t, bcc_t, reply_to_t,"
                " return_path, message_id, files)"
                " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    s.bind(1, data_id);
    s.bind(2, ix.subject);
    s.bind(3, ix.from);
    s.bind(4, ix.to);
    s.bind(5, ix.cc);
    s.bind(6, ix.bcc);
    s.bind(7, ix.reply_to);
    s.bind(8, ix.return_path);
    s.bind(9, ix.message_id);
    s.bind(10, ix.files);
    s.run();
  }
  if (!ix.body.empty()) {
    statement s(db.get(), "INSERT INTO body_fts(rowid, body) VALUES(?1, ?2)");
    s.bind(1, data_id);
    s.bind(2, body_tokens(ix.body));
    s.run();
  }
}

// Moves the header rows into one blob per message, in their order.
void backfill_v3(database& db) {
  {
    statement s(db.get(), "SELECT data_id, name, value FROM message_headers ORDER BY data_id, pos");
    std::int64_t current = -1;
    std::vector<std::pair<std::string, std::string>> fields;
    auto flush = [&] {
      if (current >= 0) write_fields_v3(db, current, fields);
      fields.clear();
    };
    while (s.step()) {
      const std::int64_t data_id = s.column_int(0);
      if (data_id != current) {
        flush();
        current = data_id;
      }
      fields.emplace_back(s.column_text(1), s.column_text(2));
    }
    flush();
  }
  db.exec("DROP TABLE message_headers");
}

// Indexes the header fields of every stored message (v4), from their blobs, one blob in
// memory at a time.
void backfill_v4(database& db) {
  statement s(db.get(), "SELECT data_id, fields FROM message_fields ORDER BY data_id");
  statement ins(db.get(),
                "INSERT OR IGNORE INTO header_index(name, long, value, data_id)"
                " VALUES(?1, ?2, ?3, ?4)");
  while (s.step()) {
    const std::int64_t data_id = s.column_int(0);
    for_each_field(s.column_blob(1), [&](std::string_view name, std::string_view value) {
      header_key(name, value, [&](const std::string& n, int long_value, const std::string& v) {
        ins.bind(1, n);
        ins.bind(2, long_value);
        ins.bind_blob_static(3, v);
        ins.bind(4, data_id);
        ins.run();
        ins.reset();
      });
      return true;
    });
  }
}

// Fills what v1 did not store, for every migrated row, from its stored bytes: address
// lists, Bcc/Reply-To, header fields, the index entry. One message in memory at a time.
void backfill_v2(database& db) {
  std::vector<std::int64_t> ids;
  {
    statement s(db.get(), "SELECT id FROM message_data ORDER BY id");
    while (s.step())
      ids.push_back(s.column_int(0));
  }
  for (const std::int64_t data_id : ids) {
    std::string edits_json;
    std::string raw;
    {
      statement s(db.get(),
                  "SELECT d.raw, d.compressed, d.raw_size, m.edits FROM message_data d"
                  " JOIN messages m ON m.data_id = d.id WHERE d.id = ?1 LIMIT 1");
      s.bind(1, data_id);
      if (!s.step()) continue;
      const auto raw_size = static_cast<std::uint64_t>(s.column_int(2));
      raw = s.column_int(1) != 0 ? decompress(s.column_blob(0), raw_size)
                                 : std::string(s.column_blob(0));
      edits_json = std::string(s.column_text(3));
    }
    message msg;
    msg.raw = message_body::from_string(std::move(raw));
    try {
      msg.edits = edits_from_json_text(edits_json);
    } catch (const std::exception&) {
      msg.edits.clear();  // unreadable edits: summarize the original header block
    }
    // Only the summary matters here; no compression, the data row stays as it is.
    prepared_message p = prepare_message(msg, "default", 0);
    {
      statement s(db.get(),
                  "UPDATE messages SET message_id = ?2, subject = ?3, from_addr = ?4,"
                  " to_addr = ?5, cc_addr = ?6, bcc_addr = ?7, reply_to = ?8 WHERE data_id = ?1");
      s.bind(1, data_id);
      s.bind(2, p.meta.message_id);
      s.bind(3, p.meta.subject);
      s.bind(4, address_json_text(p.meta.from));
      s.bind(5, address_list_json_text(p.meta.to));
      s.bind(6, address_list_json_text(p.meta.cc));
      s.bind(7, address_list_json_text(p.meta.bcc));
      s.bind(8, address_list_json_text(p.meta.reply_to));
      s.run();
    }
    write_headers_v2(db, data_id, p.headers);
    write_index_v2(db, data_id, p.index);
  }
}

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
        if (m.after) m.after(db);
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
