/**
 * Tables of the MFA feature. Two migration modules, as stored databases know them: 'mfa' (users,
 * recovery codes, used steps, failures, assignments, validate clients, tokens) and 'mfa-identity'
 * (the Windows identity of each name, see ./identity.ts). Only ./store.ts and ./identity.ts touch them.
 */
export const REPAIR_FUTURE_LAST_STEP = `UPDATE mfa_users SET last_step = CAST(strftime('%s','now') AS INTEGER) / period
   WHERE last_step > CAST(strftime('%s','now') AS INTEGER) / period + 10`;

export const mfaMigrations: string[] = [
  `CREATE TABLE mfa_users (
     user TEXT PRIMARY KEY,
     status TEXT NOT NULL CHECK (status IN ('pending','active','disabled')),
     kind TEXT NOT NULL CHECK (kind IN ('app','hardware')),
     serial TEXT,
     secret TEXT NOT NULL,
     algorithm TEXT NOT NULL DEFAULT 'SHA1' CHECK (algorithm IN ('SHA1','SHA256','SHA512')),
     digits INTEGER NOT NULL DEFAULT 6 CHECK (digits IN (6,8)),
     period INTEGER NOT NULL DEFAULT 30 CHECK (period IN (30,60)),
     last_step INTEGER NOT NULL DEFAULT -1,
     failures INTEGER NOT NULL DEFAULT 0,
     locked_until INTEGER NOT NULL DEFAULT 0,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE mfa_recovery_codes (
     user TEXT NOT NULL REFERENCES mfa_users(user) ON DELETE CASCADE,
     id INTEGER NOT NULL,
     salt TEXT NOT NULL,
     hash TEXT NOT NULL,
     used_at TEXT,
     used_on TEXT,
     PRIMARY KEY (user, id)
   );
   CREATE TABLE mfa_used_steps (
     user TEXT NOT NULL,
     step INTEGER NOT NULL,
     terminal TEXT NOT NULL,
     at TEXT NOT NULL,
     offline INTEGER NOT NULL DEFAULT 0,
     PRIMARY KEY (user, step)
   );
   CREATE TABLE mfa_failures (
     rid INTEGER PRIMARY KEY,
     user TEXT NOT NULL,
     terminal TEXT NOT NULL,
     at TEXT NOT NULL,
     reason TEXT NOT NULL,
     offline INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX mfa_failures_user ON mfa_failures(user, at);
   CREATE TABLE mfa_assignments (
     user TEXT NOT NULL,
     terminal TEXT NOT NULL,
     created_at TEXT NOT NULL,
     PRIMARY KEY (user, terminal)
   );
   CREATE INDEX mfa_assignments_terminal ON mfa_assignments(terminal);
   CREATE TABLE mfa_validate_clients (
     name TEXT PRIMARY KEY,
     key_hash TEXT NOT NULL,
     address TEXT,
     created_at TEXT NOT NULL,
     disabled INTEGER NOT NULL DEFAULT 0
   );`,
  // Issue 10: a reconcile entry with a far-future step (e.g. 2^53-1) made every later code a
  // replay. Replay state beyond now + the largest policy window (10 steps) cannot come from a real
  // code: bring it back to the current step (at most this step's code is then refused once).
  REPAIR_FUTURE_LAST_STEP,
  // Issue 13: HOTP hardware tokens (last_step is then the last used counter), a learned clock
  // drift for hardware TOTP tokens (NULL = never learned: authenticator apps), and the inventory
  // of imported tokens not yet handed to anyone (a vendor's box of 100 comes unassigned).
  `ALTER TABLE mfa_users ADD COLUMN type TEXT NOT NULL DEFAULT 'totp' CHECK (type IN ('totp','hotp'));
   ALTER TABLE mfa_users ADD COLUMN drift INTEGER;
   UPDATE mfa_users SET drift = 0 WHERE kind = 'hardware';
   CREATE INDEX mfa_users_serial ON mfa_users(serial);
   CREATE TABLE mfa_tokens (
     serial TEXT PRIMARY KEY,
     type TEXT NOT NULL CHECK (type IN ('totp','hotp')),
     secret TEXT NOT NULL,
     algorithm TEXT NOT NULL CHECK (algorithm IN ('SHA1','SHA256','SHA512')),
     digits INTEGER NOT NULL CHECK (digits IN (6,8)),
     period INTEGER NOT NULL CHECK (period IN (30,60)),
     counter INTEGER NOT NULL DEFAULT 0,
     imported_at TEXT NOT NULL
   );`,
];

/** The Windows identity keys: a module of its own, migrated after 'mfa' (it does not depend on mfa_users' columns). */
export const mfaIdentityMigrations: string[] = [
  // Byte for byte as first released (indented for its old place in identity.ts).
  `CREATE TABLE mfa_user_keys (
       user TEXT PRIMARY KEY,
       canon TEXT NOT NULL UNIQUE
     );`,
];
