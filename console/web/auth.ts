/**
 * Console accounts: login decision (password + TOTP, replay guard, lockout), sessions with idle
 * and absolute timeouts, CSRF tokens, and the same-origin check for every POST. The decisions are
 * pure functions (unit-tested); the store functions only read and write rows.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type Database from 'better-sqlite3';
import { base32Decode, matchStep, timeStep } from '../../agent/mfa/otp.js';
import { hashPassword, verifyPassword } from '../core/passwords.js';
import type { ConsoleContext } from '../module.js';

export type Role = 'admin' | 'auditor';

export const LOGIN_POLICY = {
  maxFailures: 5, // consecutive failures before the account locks
  lockMs: 15 * 60_000,
  idleMs: 15 * 60_000, // session idle timeout
  absoluteMs: 10 * 3_600_000, // one working day, then log in again
  totpWindow: 1,
};

export interface LoginState {
  failures: number;
  lockedUntil: number; // epoch ms
  lastStep: number; // highest TOTP step accepted (replay guard)
}

export type LoginReason = 'ok' | 'locked' | 'bad_credentials' | 'replay' | 'disabled' | 'malformed';

export interface LoginVerdict {
  ok: boolean;
  reason: LoginReason;
  next: LoginState;
  lockedNow: boolean;
}

/**
 * Pure decision. `passwordOk`/`codeMatch` are computed by the caller (scrypt, TOTP). The reply to
 * the person never says which factor was wrong; the event log does.
 */
export function decideLogin(
  state: LoginState,
  input: { exists: boolean; disabled: boolean; passwordOk: boolean; codeMatch: { step: number; replay: boolean } | null; wellFormed: boolean; nowMs: number },
  policy = LOGIN_POLICY,
): LoginVerdict {
  if (state.lockedUntil > input.nowMs) return { ok: false, reason: 'locked', next: state, lockedNow: false };
  const fail = (reason: LoginReason): LoginVerdict => {
    const failures = state.failures + 1;
    const lockedNow = failures >= policy.maxFailures;
    return { ok: false, reason, next: { ...state, failures: lockedNow ? 0 : failures, lockedUntil: lockedNow ? input.nowMs + policy.lockMs : state.lockedUntil }, lockedNow };
  };
  if (!input.wellFormed) return fail('malformed');
  if (!input.exists || !input.passwordOk || input.codeMatch === null) return fail('bad_credentials');
  if (input.disabled) return fail('disabled');
  if (input.codeMatch.replay || input.codeMatch.step <= state.lastStep) return fail('replay');
  return { ok: true, reason: 'ok', next: { failures: 0, lockedUntil: 0, lastStep: input.codeMatch.step }, lockedNow: false };
}

export const USERNAME_RE = /^[A-Za-z0-9._@-]{1,64}$/;
export const CODE_RE = /^\d{6}$/;

export function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export function sameSecret(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

/**
 * A POST is accepted only from the console's own pages: Origin (or, failing that, Referer) must
 * be exactly this origin. Browsers always send Origin on cross-site POSTs, so a missing one with
 * no Referer either is refused too (fail closed).
 */
export function sameOrigin(headers: { origin?: string | undefined; referer?: string | undefined; host?: string | undefined }): boolean {
  const host = headers.host;
  if (!host || !/^[A-Za-z0-9.\-[\]:]{1,300}$/.test(host)) return false;
  const expected = `https://${host}`.toLowerCase();
  if (headers.origin !== undefined) return headers.origin.toLowerCase() === expected;
  if (headers.referer !== undefined) {
    try {
      return new URL(headers.referer).origin.toLowerCase() === expected;
    } catch {
      return false;
    }
  }
  return false;
}

export interface Account {
  username: string;
  role: Role;
  disabled: boolean;
  createdAt: string;
}

interface AccountRow {
  username: string;
  role: Role;
  password_hash: string;
  totp_secret: string;
  created_at: string;
  disabled: number;
}

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
];

export function getAccount(db: Database.Database, username: string): (Account & { row: AccountRow }) | null {
  const r = db.prepare('SELECT * FROM console_users WHERE username = ?').get(username) as AccountRow | undefined;
  return r ? { username: r.username, role: r.role, disabled: r.disabled === 1, createdAt: r.created_at, row: r } : null;
}

export function listAccounts(db: Database.Database): Account[] {
  const rows = db.prepare('SELECT username, role, created_at, disabled FROM console_users ORDER BY username').all() as AccountRow[];
  return rows.map((r) => ({ username: r.username, role: r.role, disabled: r.disabled === 1, createdAt: r.created_at }));
}

function loginState(db: Database.Database, username: string): LoginState {
  const r = db.prepare('SELECT failures, locked_until, last_step FROM web_login_state WHERE username = ?').get(username) as
    | { failures: number; locked_until: number; last_step: number }
    | undefined;
  return r ? { failures: r.failures, lockedUntil: r.locked_until, lastStep: r.last_step } : { failures: 0, lockedUntil: 0, lastStep: -1 };
}

// Compared against when the account does not exist, so the reply takes as long as for a real one.
const DUMMY_HASH = hashPassword(randomBytes(12).toString('hex'));

export interface LoginOutcome {
  verdict: LoginVerdict;
  account: Account | null;
}

/** Checks a login attempt, persists the new state and records the attempt as an event. */
export function attemptLogin(ctx: ConsoleContext, usernameIn: string, password: string, code: string, from: string, nowMs = Date.now()): LoginOutcome {
  const wellFormed = USERNAME_RE.test(usernameIn) && CODE_RE.test(code) && password.length > 0 && password.length <= 1024;
  const username = USERNAME_RE.test(usernameIn) ? usernameIn : '';
  const acct = username ? getAccount(ctx.db, username) : null;
  const passwordOk = verifyPassword(password.slice(0, 1024), acct?.row.password_hash ?? DUMMY_HASH) && acct !== null;
  const state = acct ? loginState(ctx.db, username) : { failures: 0, lockedUntil: 0, lastStep: -1 };
  let codeMatch: { step: number; replay: boolean } | null = null;
  if (acct && CODE_RE.test(code)) {
    const key = base32Decode(ctx.open(acct.row.totp_secret).toString('utf8'));
    if (key) codeMatch = matchStep(key, code, timeStep(nowMs), LOGIN_POLICY.totpWindow, { algorithm: 'SHA1', digits: 6, period: 30 }, state.lastStep);
  }
  const verdict = decideLogin(state, { exists: acct !== null, disabled: acct?.disabled ?? false, passwordOk, codeMatch, wellFormed, nowMs });
  const shownUser = username || usernameIn.slice(0, 64);
  ctx.db.transaction(() => {
    if (acct) {
      ctx.db
        .prepare(
          `INSERT INTO web_login_state (username, failures, locked_until, last_step) VALUES (@u, @f, @l, @s)
           ON CONFLICT (username) DO UPDATE SET failures = @f, locked_until = @l, last_step = @s`,
        )
        .run({ u: username, f: verdict.next.failures, l: verdict.next.lockedUntil, s: verdict.next.lastStep });
    }
    if (verdict.ok) ctx.recordEvent({ type: 'admin.login', user: username, data: { from, role: acct!.role } });
    else ctx.recordEvent({ type: 'admin.login_failed', severity: 'warning', user: shownUser, data: { from, reason: verdict.reason, known: acct !== null } });
    if (verdict.lockedNow) ctx.recordEvent({ type: 'admin.account_locked', severity: 'critical', user: shownUser, data: { from, until: new Date(verdict.next.lockedUntil).toISOString() } });
  })();
  return { verdict, account: acct ? { username: acct.username, role: acct.role, disabled: acct.disabled, createdAt: acct.createdAt } : null };
}

export interface Session {
  username: string;
  role: Role;
  csrf: string;
}

export function createSession(db: Database.Database, username: string, nowMs = Date.now()): { token: string; csrf: string } {
  const token = randomBytes(32).toString('base64url');
  const csrf = randomBytes(32).toString('base64url');
  db.prepare('INSERT INTO web_sessions (id_hash, username, csrf, created_at, last_seen) VALUES (?, ?, ?, ?, ?)').run(sha256(token), username, csrf, nowMs, nowMs);
  return { token, csrf };
}

/** Finds a live session (and refreshes its idle timer); expired or disabled ones are deleted. */
export function loadSession(db: Database.Database, token: string | undefined, nowMs = Date.now()): Session | null {
  if (!token || token.length > 100) return null;
  const id = sha256(token);
  const r = db
    .prepare('SELECT s.username, s.csrf, s.created_at, s.last_seen, u.role, u.disabled FROM web_sessions s JOIN console_users u ON u.username = s.username WHERE s.id_hash = ?')
    .get(id) as { username: string; csrf: string; created_at: number; last_seen: number; role: Role; disabled: number } | undefined;
  if (!r) return null;
  if (r.disabled === 1 || nowMs - r.last_seen > LOGIN_POLICY.idleMs || nowMs - r.created_at > LOGIN_POLICY.absoluteMs) {
    db.prepare('DELETE FROM web_sessions WHERE id_hash = ?').run(id);
    return null;
  }
  if (nowMs - r.last_seen > 5_000) db.prepare('UPDATE web_sessions SET last_seen = ? WHERE id_hash = ?').run(nowMs, id);
  return { username: r.username, role: r.role, csrf: r.csrf };
}

export function deleteSession(db: Database.Database, token: string | undefined): void {
  if (token) db.prepare('DELETE FROM web_sessions WHERE id_hash = ?').run(sha256(token));
}

export function purgeSessions(db: Database.Database, nowMs = Date.now()): void {
  db.prepare('DELETE FROM web_sessions WHERE last_seen < ? OR created_at < ?').run(nowMs - LOGIN_POLICY.idleMs, nowMs - LOGIN_POLICY.absoluteMs);
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  if (!header) return m;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const k = part.slice(0, i).trim();
    if (!m.has(k)) m.set(k, part.slice(i + 1).trim());
  }
  return m;
}

/** A new console account: random password and TOTP secret, shown once. */
export function addAccount(ctx: ConsoleContext, username: string, role: Role, actor: string, generate: { password: string; secret: string }): void {
  if (!USERNAME_RE.test(username)) throw new Error('ユーザー名が不正です(英数字と . _ @ - の1〜64文字) / invalid user name');
  ctx.db.transaction(() => {
    if (getAccount(ctx.db, username)) throw new Error(`${username}: 既に存在します / already exists`);
    ctx.db
      .prepare('INSERT INTO console_users (username, role, password_hash, totp_secret, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(username, role, hashPassword(generate.password), ctx.seal(generate.secret), new Date().toISOString());
    ctx.recordEvent({ type: 'admin.account_created', user: actor, data: { account: username, role, before: null, after: { role, disabled: false } } });
  })();
}

export function setAccountDisabled(ctx: ConsoleContext, username: string, disabled: boolean, actor: string): void {
  ctx.db.transaction(() => {
    const a = getAccount(ctx.db, username);
    if (!a) throw new Error(`${username}: 存在しません / no such account`);
    if (disabled && a.role === 'admin') {
      const admins = (ctx.db.prepare("SELECT count(*) AS n FROM console_users WHERE role = 'admin' AND disabled = 0").get() as { n: number }).n;
      if (admins <= 1) throw new Error('最後の管理者は無効にできません / cannot disable the last administrator');
    }
    ctx.db.prepare('UPDATE console_users SET disabled = ? WHERE username = ?').run(disabled ? 1 : 0, username);
    if (disabled) ctx.db.prepare('DELETE FROM web_sessions WHERE username = ?').run(username);
    ctx.recordEvent({ type: disabled ? 'admin.account_disabled' : 'admin.account_enabled', user: actor, data: { account: username, before: { disabled: a.disabled }, after: { disabled } } });
  })();
}

export function unlockAccount(ctx: ConsoleContext, username: string, actor: string): void {
  ctx.db.prepare('UPDATE web_login_state SET failures = 0, locked_until = 0 WHERE username = ?').run(username);
  ctx.recordEvent({ type: 'admin.account_unlocked', user: actor, data: { account: username } });
}

export function changePassword(ctx: ConsoleContext, username: string, current: string, next: string): boolean {
  const a = getAccount(ctx.db, username);
  if (!a || !verifyPassword(current, a.row.password_hash)) return false;
  ctx.db.prepare('UPDATE console_users SET password_hash = ? WHERE username = ?').run(hashPassword(next), username);
  ctx.recordEvent({ type: 'admin.password_changed', user: username, data: { account: username } });
  return true;
}

export function accountLocked(db: Database.Database, username: string, nowMs = Date.now()): boolean {
  return loginState(db, username).lockedUntil > nowMs;
}
