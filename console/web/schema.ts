/**
 * Tables of the web console (migration module 'web', name and list unchanged: stored databases
 * track them). web_sessions and web_login_state belong to console accounts (only ./store.ts
 * touches them, with console_users from the core schema); web_rollup, web_rollup_head and
 * web_types are the dashboard's and report's daily counts (only ./queries.ts touches them).
 */
export const webMigrations: string[] = [
  `CREATE TABLE web_sessions (
     id_hash TEXT PRIMARY KEY,
     username TEXT NOT NULL,
     csrf TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     last_seen INTEGER NOT NULL
   );
   CREATE TABLE web_login_state (
     username TEXT PRIMARY KEY,
     failures INTEGER NOT NULL DEFAULT 0,
     locked_until INTEGER NOT NULL DEFAULT 0,
     last_step INTEGER NOT NULL DEFAULT -1
   );
   -- Daily counts for the dashboard and report, filled from events by rid (no trigger on events,
   -- so ingest pays nothing); web_rollup_head remembers the last rid counted.
   CREATE TABLE web_rollup (
     day TEXT NOT NULL,
     type TEXT NOT NULL,
     terminal_id TEXT NOT NULL,
     user TEXT NOT NULL,
     n INTEGER NOT NULL,
     PRIMARY KEY (day, type, terminal_id, user)
   ) WITHOUT ROWID;
   CREATE INDEX web_rollup_type_day ON web_rollup (type, day);
   CREATE TABLE web_rollup_head (one INTEGER PRIMARY KEY CHECK (one = 1), rid INTEGER NOT NULL);
   INSERT INTO web_rollup_head (one, rid) VALUES (1, 0);`,
  // v2: one row per (dimension, type, day, key) — dim '' is the day total, 't' per terminal,
  // 'u' per user — so per-day charts read a handful of rows; plus the event types seen (for "x.*").
  `DROP TABLE web_rollup;
   CREATE TABLE web_rollup (
     dim TEXT NOT NULL CHECK (dim IN ('', 't', 'u')),
     type TEXT NOT NULL,
     day TEXT NOT NULL,
     key TEXT NOT NULL,
     n INTEGER NOT NULL,
     PRIMARY KEY (dim, type, day, key)
   ) WITHOUT ROWID;
   CREATE TABLE web_types (type TEXT PRIMARY KEY) WITHOUT ROWID;
   UPDATE web_rollup_head SET rid = 0;`,
  // v3 (issue 15): the 'approver' role (decides applications, nothing else). SQLite cannot alter a
  // CHECK, so console_users (core schema, no foreign keys point at it) is copied into a new table.
  `CREATE TABLE console_users_v3 (
     username TEXT PRIMARY KEY,
     role TEXT NOT NULL CHECK (role IN ('admin','auditor','approver')),
     password_hash TEXT NOT NULL,
     totp_secret TEXT NOT NULL,
     created_at TEXT NOT NULL,
     disabled INTEGER NOT NULL DEFAULT 0
   );
   INSERT INTO console_users_v3 (username, role, password_hash, totp_secret, created_at, disabled)
     SELECT username, role, password_hash, totp_secret, created_at, disabled FROM console_users;
   DROP TABLE console_users;
   ALTER TABLE console_users_v3 RENAME TO console_users;`,
];
