/**
 * The console accounts' store: the only code that reads or writes `console_users` (core schema),
 * `web_sessions` and `web_login_state` (./schema.ts). `init` (console/core/context.ts) creates the
 * first administrator through it too. Decisions (login, expiry, limits) live in ./auth.ts.
 */
import type Database from 'better-sqlite3';

/** approver: decides applications (申請 → 上長承認) and nothing else (console/web/web.ts). */
export type Role = 'admin' | 'auditor' | 'approver';

export interface Account {
  username: string;
  role: Role;
  disabled: boolean;
  createdAt: string;
}

export interface AccountRow {
  username: string;
  role: Role;
  password_hash: string;
  totp_secret: string;
  created_at: string;
  disabled: number;
}

/** Lockout and replay state of one account (decided by protocol/mfa/decide.ts through ./auth.ts). */
export interface LoginState {
  failures: number;
  lockedUntil: number; // epoch ms
  lastStep: number; // highest TOTP step accepted (replay guard)
}

export function getAccount(db: Database.Database, username: string): (Account & { row: AccountRow }) | null {
  const r = db.prepare('SELECT * FROM console_users WHERE username = ?').get(username) as AccountRow | undefined;
  return r ? { username: r.username, role: r.role, disabled: r.disabled === 1, createdAt: r.created_at, row: r } : null;
}

export function listAccounts(db: Database.Database): Account[] {
  const rows = db.prepare('SELECT username, role, created_at, disabled FROM console_users ORDER BY username').all() as AccountRow[];
  return rows.map((r) => ({ username: r.username, role: r.role, disabled: r.disabled === 1, createdAt: r.created_at }));
}

/** `sealedTotpSecret` is already sealed with ctx.seal (the key file is outside the database). */
export function insertAccount(db: Database.Database, a: { username: string; role: Role; passwordHash: string; sealedTotpSecret: string; createdAt: string }): void {
  db.prepare('INSERT INTO console_users (username, role, password_hash, totp_secret, created_at) VALUES (?, ?, ?, ?, ?)').run(a.username, a.role, a.passwordHash, a.sealedTotpSecret, a.createdAt);
}

export function countEnabledAdmins(db: Database.Database): number {
  return (db.prepare("SELECT count(*) AS n FROM console_users WHERE role = 'admin' AND disabled = 0").get() as { n: number }).n;
}

/** Disabling also ends every session of the account. */
export function setAccountDisabledRow(db: Database.Database, username: string, disabled: boolean): void {
  db.prepare('UPDATE console_users SET disabled = ? WHERE username = ?').run(disabled ? 1 : 0, username);
  if (disabled) db.prepare('DELETE FROM web_sessions WHERE username = ?').run(username);
}

export function setPasswordHash(db: Database.Database, username: string, passwordHash: string): void {
  db.prepare('UPDATE console_users SET password_hash = ? WHERE username = ?').run(passwordHash, username);
}

export function readLoginState(db: Database.Database, username: string): LoginState {
  const r = db.prepare('SELECT failures, locked_until, last_step FROM web_login_state WHERE username = ?').get(username) as
    | { failures: number; locked_until: number; last_step: number }
    | undefined;
  return r ? { failures: r.failures, lockedUntil: r.locked_until, lastStep: r.last_step } : { failures: 0, lockedUntil: 0, lastStep: -1 };
}

export function writeLoginState(db: Database.Database, username: string, s: LoginState): void {
  db.prepare(
    `INSERT INTO web_login_state (username, failures, locked_until, last_step) VALUES (@u, @f, @l, @s)
     ON CONFLICT (username) DO UPDATE SET failures = @f, locked_until = @l, last_step = @s`,
  ).run({ u: username, f: s.failures, l: s.lockedUntil, s: s.lastStep });
}

/** Unlock: the failure count and the lock go, the replay guard stays. */
export function clearLoginFailures(db: Database.Database, username: string): void {
  db.prepare('UPDATE web_login_state SET failures = 0, locked_until = 0 WHERE username = ?').run(username);
}

export function insertSession(db: Database.Database, idHash: string, username: string, csrf: string, nowMs: number): void {
  db.prepare('INSERT INTO web_sessions (id_hash, username, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)').run(idHash, username, csrf, nowMs, nowMs);
}

export interface SessionRow {
  username: string;
  csrf: string;
  createdAt: number;
  lastSeen: number;
  role: Role;
  disabled: boolean;
}

/** A session with its account's role and state, by the hash of its token. */
export function sessionById(db: Database.Database, idHash: string): SessionRow | null {
  const r = db
    .prepare('SELECT s.username, s.csrf, s.created_at, s.last_seen, u.role, u.disabled FROM web_sessions s JOIN console_users u ON u.username = s.username WHERE s.id_hash = ?')
    .get(idHash) as { username: string; csrf: string; created_at: number; last_seen: number; role: Role; disabled: number } | undefined;
  return r ? { username: r.username, csrf: r.csrf, createdAt: r.created_at, lastSeen: r.last_seen, role: r.role, disabled: r.disabled === 1 } : null;
}

export function sessionAlive(db: Database.Database, idHash: string, username: string): boolean {
  return db.prepare('SELECT 1 FROM web_sessions WHERE id_hash = ? AND username = ?').get(idHash, username) !== undefined;
}

export function touchSession(db: Database.Database, idHash: string, nowMs: number): void {
  db.prepare('UPDATE web_sessions SET last_seen = ? WHERE id_hash = ?').run(nowMs, idHash);
}

/** Returns the number of sessions deleted (0 or 1). */
export function deleteSessionById(db: Database.Database, idHash: string): number {
  return db.prepare('DELETE FROM web_sessions WHERE id_hash = ?').run(idHash).changes;
}

/** Every other session of the account (after a password change); returns how many ended. */
export function deleteOtherSessions(db: Database.Database, username: string, keepIdHash: string): number {
  return db.prepare('DELETE FROM web_sessions WHERE username = ? AND id_hash != ?').run(username, keepIdHash).changes;
}

export function deleteSessionsIdleOrOld(db: Database.Database, lastSeenBefore: number, createdBefore: number): void {
  db.prepare('DELETE FROM web_sessions WHERE last_seen < ? OR created_at < ?').run(lastSeenBefore, createdBefore);
}
