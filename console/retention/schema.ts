/**
 * Retention tables (issue 17). Append-only like every module's migrations.
 *   retention_periods  family → days, set from the console (overrides DATA/config.json `retention`)
 *   retention_archives one row per archive file written (file, period, counts, manifest hash)
 *   chain_base         a hash-only stub per archived-and-deleted event: the chain stays checkable
 *                      (ingest, report) without the event's content, which lives in the archive
 *   retention_state    last run time of the daily run
 */
export const retentionMigrations: string[] = [
  `CREATE TABLE retention_periods (
     family TEXT PRIMARY KEY,
     days INTEGER NOT NULL CHECK (days >= 1 AND days <= 36500),
     set_at TEXT NOT NULL,
     set_by TEXT NOT NULL
   );
   CREATE TABLE retention_archives (
     id INTEGER PRIMARY KEY,
     file TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('writing','complete','failed','stale')),
     created_at TEXT NOT NULL,
     created_by TEXT NOT NULL,
     families TEXT NOT NULL,
     from_ts TEXT,
     to_ts TEXT,
     events INTEGER NOT NULL DEFAULT 0,
     agents INTEGER NOT NULL DEFAULT 0,
     bytes INTEGER NOT NULL DEFAULT 0,
     manifest_sha256 TEXT,
     deleted INTEGER NOT NULL DEFAULT 0,
     deleted_at TEXT,
     error TEXT
   );
   CREATE TABLE chain_base (
     agent_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     ts TEXT NOT NULL,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL,
     archive_id INTEGER NOT NULL,
     PRIMARY KEY (agent_id, seq)
   ) WITHOUT ROWID;
   CREATE INDEX chain_base_ts ON chain_base (agent_id, ts);
   CREATE TABLE retention_state (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL
   );`,
];
