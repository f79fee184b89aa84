/** Tables of the console core: terminals, enrollment tokens, events (hash-chained), policies, accounts. */
export const coreMigrations: string[] = [
  `CREATE TABLE agents (
     id TEXT PRIMARY KEY,
     hostname TEXT NOT NULL,
     os TEXT NOT NULL DEFAULT '',
     agent_version TEXT NOT NULL DEFAULT '',
     cert_fingerprint TEXT NOT NULL,
     enrolled_at TEXT NOT NULL,
     last_seen TEXT,
     status TEXT NOT NULL DEFAULT 'online' CHECK (status IN ('online','offline','silent','revoked')),
     revoked_at TEXT,
     policy_version INTEGER NOT NULL DEFAULT 0,
     monitor_only INTEGER NOT NULL DEFAULT 0,
     outbox_depth INTEGER NOT NULL DEFAULT 0,
     last_seq INTEGER NOT NULL DEFAULT 0,
     last_hash TEXT
   );
   CREATE TABLE enroll_tokens (
     token_hash TEXT PRIMARY KEY,
     created_at TEXT NOT NULL,
     expires_at TEXT NOT NULL,
     uses_left INTEGER NOT NULL,
     created_by TEXT NOT NULL
   );
   CREATE TABLE events (
     rid INTEGER PRIMARY KEY,
     id TEXT NOT NULL,
     agent_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     ts TEXT NOT NULL,
     type TEXT NOT NULL,
     severity TEXT NOT NULL,
     user TEXT,
     data TEXT NOT NULL,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL,
     terminal_id TEXT NOT NULL,
     chain TEXT NOT NULL CHECK (chain IN ('ok','gap','broken','tampered')),
     received_at TEXT NOT NULL,
     UNIQUE (agent_id, seq)
   );
   CREATE INDEX events_ts ON events (ts);
   CREATE INDEX events_type_ts ON events (type, ts);
   CREATE INDEX events_terminal_ts ON events (terminal_id, ts);
   CREATE INDEX events_user_ts ON events (user, ts) WHERE user IS NOT NULL;
   CREATE TABLE chain_gaps (
     agent_id TEXT NOT NULL,
     from_seq INTEGER NOT NULL,
     to_seq INTEGER NOT NULL,
     detected_at TEXT NOT NULL,
     PRIMARY KEY (agent_id, from_seq)
   );
   CREATE TABLE policies (
     version INTEGER PRIMARY KEY,
     document TEXT NOT NULL,
     signature TEXT NOT NULL,
     created_at TEXT NOT NULL,
     created_by TEXT NOT NULL
   );
   CREATE TABLE console_users (
     username TEXT PRIMARY KEY,
     role TEXT NOT NULL CHECK (role IN ('admin','auditor')),
     password_hash TEXT NOT NULL,
     totp_secret TEXT NOT NULL,
     created_at TEXT NOT NULL,
     disabled INTEGER NOT NULL DEFAULT 0
   );`,
  // v2: the console never lets an agent's clock decide where an event sorts. An event claiming a
  // time before 2020 or more than 5 minutes after its receipt is stored with the receipt time as
  // ts and the claimed time in agent_ts (NULL when trusted); the hash chain covers the claimed one.
  // Rows stored by earlier versions are corrected once here: a far-future ts made the daily rollup
  // fail on every page (issue 10). Only rows outside the range now, so the ts index serves it.
  `ALTER TABLE events ADD COLUMN agent_ts TEXT;
   UPDATE events SET agent_ts = ts, ts = received_at
    WHERE (ts < '2020-01-01T00:00:00.000Z' OR ts > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+5 minutes'))
      AND received_at >= '2020-01-01T00:00:00.000Z' AND received_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+5 minutes');`,
];
