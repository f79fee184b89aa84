/**
 * Tables of SIEM forwarding (issue 17). Only ./store.ts touches them.
 * - siem_config: the one target (row id 1); the client key is sealed (ctx.seal, key file outside the DB).
 * - siem_state: the cursor (the rid of the last event the SIEM is taken to have) and what the
 *   status shows. Kept when forwarding is turned off, so turning it on again resumes, not restarts.
 */
export const siemMigrations = [
  `CREATE TABLE siem_config (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
     host TEXT NOT NULL,
     port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
     name TEXT NOT NULL,
     ca_pem TEXT NOT NULL,
     client_cert_pem TEXT,
     client_key_sealed TEXT,
     facility INTEGER NOT NULL CHECK (facility BETWEEN 0 AND 23),
     updated_at TEXT NOT NULL,
     updated_by TEXT NOT NULL
   );
   CREATE TABLE siem_state (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     cursor_rid INTEGER NOT NULL DEFAULT 0,
     forwarded INTEGER NOT NULL DEFAULT 0,
     state TEXT NOT NULL DEFAULT 'idle',
     last_error TEXT,
     last_error_at TEXT,
     last_ok_at TEXT,
     updated_at TEXT
   );
   INSERT INTO siem_state (id) VALUES (1);`,
];
