/**
 * Tables of the unauthorized-software feature: baselines (import → approval → signed policy) and
 * the fleet's quarantine. Module name 'software' as stored databases know it; only ./store.ts
 * touches these tables.
 */
export const softwareMigrations = [
  `CREATE TABLE software_baselines (
     id TEXT PRIMARY KEY,
     digest TEXT NOT NULL,
     host TEXT NOT NULL,
     created_at TEXT NOT NULL,
     imported_at TEXT NOT NULL,
     imported_by TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
     decided_at TEXT,
     decided_by TEXT,
     policy_version INTEGER,
     packages INTEGER NOT NULL,
     files INTEGER NOT NULL,
     doc TEXT NOT NULL
   )`,
  `CREATE TABLE software_quarantine (
     agent_id TEXT NOT NULL,
     id TEXT NOT NULL,
     path TEXT NOT NULL,
     sha256 TEXT NOT NULL,
     size INTEGER NOT NULL,
     quarantined_at TEXT NOT NULL,
     rule TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('quarantined', 'restore_requested', 'restored', 'restore_failed', 'gone')),
     requested_by TEXT,
     requested_at TEXT,
     updated_at TEXT NOT NULL,
     error TEXT,
     PRIMARY KEY (agent_id, id)
   )`,
  // Installed software per terminal (asset management): one row per terminal with the digest and
  // when it was reported, its entries replaced together in one transaction per full report.
  `CREATE TABLE software_inventory (
     agent_id TEXT PRIMARY KEY,
     platform TEXT NOT NULL,
     digest TEXT NOT NULL,
     total INTEGER NOT NULL,
     stored INTEGER NOT NULL,
     changed_at TEXT NOT NULL,
     reported_at TEXT NOT NULL
   )`,
  `CREATE TABLE software_inventory_entries (
     agent_id TEXT NOT NULL,
     name TEXT NOT NULL,
     version TEXT NOT NULL,
     arch TEXT NOT NULL,
     PRIMARY KEY (agent_id, name, arch, version)
   ) WITHOUT ROWID`,
  `CREATE INDEX software_inventory_by_name ON software_inventory_entries (name COLLATE NOCASE, version)`,
  // "この端末を基準にする" (issue 15): an administrator's request, collected by the agent with its
  // software sync; at most one open request per terminal. It ends as the pending baseline it produced.
  `CREATE TABLE software_baseline_requests (
     id TEXT PRIMARY KEY,
     agent_id TEXT NOT NULL,
     scope TEXT NOT NULL,
     requested_at TEXT NOT NULL,
     requested_by TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('requested', 'sent', 'uploaded', 'failed', 'expired')),
     sent_at TEXT,
     updated_at TEXT NOT NULL,
     baseline_id TEXT,
     error TEXT
   )`,
  `CREATE UNIQUE INDEX software_baseline_requests_open ON software_baseline_requests (agent_id) WHERE state IN ('requested', 'sent')`,
];
