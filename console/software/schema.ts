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
];
