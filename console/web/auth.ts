/**
 * Console accounts: login decision (password + TOTP, replay guard, lockout), sessions with idle
 * and absolute timeouts, CSRF tokens, and the same-origin check for every POST. The decisions are
 * pure functions (unit-tested); the store functions only read and write rows.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type Database from 'better-sqlite3';
import { base32Decode, matchStep, timeStep } from '../../protocol/mfa/otp.js';
import { ConcurrencyLimit, RateLimiter, sourceKey, type RateLimit } from '../core/limits.js';
import { hashPassword, unmatchableHash, verifyPassword } from '../core/passwords.js';
import type { ConsoleContext } from '../module.js';

export type Role = 'admin' | 'auditor';

/**
 * Account lock. One address is throttled by LOGIN_LIMITS.perAddress long before it could lock an
 * account, and it can never lock one on its own: with `admin` known to everyone, a lock any single
 * address could set was a lock-out of the real administrators on demand. The account locks only
 * when its current failure streak (failures since the last success or lock) reaches
 * `lockFailures` AND came from at least `lockSources` different addresses, i.e. a guess spread
 * over several machines. Guessing from one machine stays bounded by the per-address throttle.
 */
export const LOGIN_POLICY = {
  lockFailures: 10,
  lockSources: 3,
  lockMs: 15 * 60_000,
  idleMs: 15 * 60_000, // session idle timeout
  absoluteMs: 10 * 3_600_000, // one working day, then log in again
  totpWindow: 1,
};

/**
 * What unauthenticated POST /login may cost (in memory, per console process). Every attempt takes
 * a token from its address's bucket and from the global bucket BEFORE the password is checked, so
 * parallel requests cannot all slip past a check that only counted finished failures.
 * - perAddress: 10 at once, then one every 30 s: a person who mistypes is not held up, a script is.
 * - global: 20 at once, then 2 per second for all addresses together: scrypt costs ~50-100 ms of a
 *   core, so an attack from many addresses uses at most ~20 % of one of the two cores.
 * - verifications: scrypt checks in flight at once (login and password change): 2 of libuv's 4 pool
 *   threads, so file and DNS work on the pool is never starved; more are refused (503), not queued.
 * - passwordChangeFailures: wrong current passwords per session before the session is ended.
 */
export const LOGIN_LIMITS: { perAddress: RateLimit; global: RateLimit; verifications: number; passwordChangeFailures: number } = {
  perAddress: { burst: 10, perSecond: 1 / 30 },
  global: { burst: 20, perSecond: 2 },
  verifications: 2,
  passwordChangeFailures: 3,
};

/** The limiters of one running console (a WeakMap, so each context, e.g. in tests, has its own). */
export interface LoginLimiters {
  perAddress: RateLimiter;
  global: RateLimiter;
  verifications: ConcurrencyLimit;
  /** Addresses that failed in each account's current failure streak (known accounts only). */
  streakSources: Map<string, Set<string>>;
  /** Wrong current passwords per session (by session id hash). */
  passwordChangeFailures: Map<string, number>;
}

const limiters = new WeakMap<ConsoleContext, LoginLimiters>();

export function loginLimiters(ctx: ConsoleContext): LoginLimiters {
  let l = limiters.get(ctx);
  if (!l) {
    l = {
      perAddress: new RateLimiter(LOGIN_LIMITS.perAddress),
      global: new RateLimiter(LOGIN_LIMITS.global, 1),
      verifications: new ConcurrencyLimit(LOGIN_LIMITS.verifications),
      streakSources: new Map(),
      passwordChangeFailures: new Map(),
    };
    limiters.set(ctx, l);
  }
  return l;
}

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
 * Pure decision. `passwordOk`/`codeMatch` are computed by the caller (scrypt, TOTP);
 * `streakSources` is the number of different addresses in the account's failure streak if this
 * attempt fails (this address included). The reply to the person never says which factor was
 * wrong, nor that the account is locked; the event log does.
 */
export function decideLogin(
  state: LoginState,
  input: { exists: boolean; disabled: boolean; passwordOk: boolean; codeMatch: { step: number; replay: boolean } | null; wellFormed: boolean; nowMs: number; streakSources: number },
  policy = LOGIN_POLICY,
): LoginVerdict {
  if (state.lockedUntil > input.nowMs) return { ok: false, reason: 'locked', next: state, lockedNow: false };
  const fail = (reason: LoginReason): LoginVerdict => {
    const failures = state.failures + 1;
    const lockedNow = failures >= policy.lockFailures && input.streakSources >= policy.lockSources;
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

// Checked when the account does not exist, so the reply takes as long as for a real one.
const DUMMY_HASH = unmatchableHash();

export interface LoginOutcome {
  verdict: LoginVerdict;
  account: Account | null;
}

/** A login refused before any password was checked: too many attempts, or too many checks at once. */
export interface LoginRefusal {
  refused: 'address' | 'global' | 'busy';
  retryAfterSeconds: number;
}

/** Limits first (cheap, in memory), so a refused attempt costs no scrypt and no database write. */
function admitLogin(ctx: ConsoleContext, address: string, nowMs: number): LoginRefusal | null {
  const l = loginLimiters(ctx);
  const from = sourceKey(address);
  let refusal: LoginRefusal | null = null;
  if (!l.perAddress.take(from, nowMs)) refusal = { refused: 'address', retryAfterSeconds: l.perAddress.retryAfterSeconds(from, nowMs) };
  else if (!l.global.take('*', nowMs)) refusal = { refused: 'global', retryAfterSeconds: l.global.retryAfterSeconds('*', nowMs) };
  else if (!l.verifications.tryEnter()) refusal = { refused: 'busy', retryAfterSeconds: 1 };
  if (refusal) {
    // Anyone can cause these: one event per key and minute, the rest counted (folding.ts). The
    // global and busy refusals come from floods spread over many addresses, so they are keyed by
    // the limit alone: per address, each new address would still cost a synchronous (fsync'd) write.
    const key = refusal.refused === 'address' ? `login_throttled:${from}` : `login_throttled:${refusal.refused}`;
    ctx.recordRepeated({ type: 'admin.login_throttled', severity: 'warning', user: null, data: { from: address, limit: refusal.refused } }, key);
  }
  return refusal;
}

/**
 * Checks a login attempt, persists the new state and records the attempt as an event. The
 * password is checked off the event loop (scrypt on the thread pool) inside the limits above;
 * the account's state is read and written only afterwards, in one synchronous transaction, so
 * concurrent attempts cannot overwrite each other's counts.
 */
export async function attemptLogin(ctx: ConsoleContext, usernameIn: string, password: string, code: string, from: string, nowMs = Date.now()): Promise<LoginOutcome | LoginRefusal> {
  const refusal = admitLogin(ctx, from, nowMs);
  if (refusal) return refusal;
  const wellFormed = USERNAME_RE.test(usernameIn) && CODE_RE.test(code) && password.length > 0 && password.length <= 1024;
  const username = USERNAME_RE.test(usernameIn) ? usernameIn : '';
  const hashBefore = (username ? getAccount(ctx.db, username) : null)?.row.password_hash ?? null;
  let passwordMatches: boolean;
  try {
    passwordMatches = await verifyPassword(password.slice(0, 1024), hashBefore ?? DUMMY_HASH);
  } finally {
    loginLimiters(ctx).verifications.leave();
  }
  const acct = username ? getAccount(ctx.db, username) : null;
  // A password changed while this one was being checked no longer counts.
  const passwordOk = passwordMatches && acct !== null && acct.row.password_hash === hashBefore;
  const state = acct ? loginState(ctx.db, username) : { failures: 0, lockedUntil: 0, lastStep: -1 };
  let codeMatch: { step: number; replay: boolean } | null = null;
  if (acct && CODE_RE.test(code)) {
    const key = base32Decode(ctx.open(acct.row.totp_secret).toString('utf8'));
    if (key) codeMatch = matchStep(key, code, timeStep(nowMs), LOGIN_POLICY.totpWindow, { algorithm: 'SHA1', digits: 6, period: 30 }, state.lastStep);
  }
  const sources = loginLimiters(ctx).streakSources;
  // The streak's addresses live in memory; the failure count in the database. A fresh streak
  // (count 0, also after a restart or an unlock) starts with no remembered addresses.
  const streak = acct && state.failures > 0 ? (sources.get(username) ?? new Set<string>()) : new Set<string>();
  const source = sourceKey(from);
  const verdict = decideLogin(state, { exists: acct !== null, disabled: acct?.disabled ?? false, passwordOk, codeMatch, wellFormed, nowMs, streakSources: streak.size + (streak.has(source) ? 0 : 1) });
  if (acct) {
    if (verdict.ok || verdict.lockedNow) sources.delete(username);
    else if (verdict.reason !== 'locked') {
      if (streak.size < 64) streak.add(source); // only "at least lockSources" matters
      sources.delete(username); // re-insert: oldest first, for the bound below
      sources.set(username, streak);
      if (sources.size > 10_000) sources.delete(sources.keys().next().value!);
    }
  }
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
    // Failures are folded per address: a flood from one address is one event plus a count a minute.
    else ctx.recordRepeated({ type: 'admin.login_failed', severity: 'warning', user: shownUser, data: { from, reason: verdict.reason, known: acct !== null } }, `login_failed:${source}`);
    if (verdict.lockedNow) ctx.recordEvent({ type: 'admin.account_locked', severity: 'critical', user: shownUser, data: { from, sources: [...new Set([...streak, source])].slice(0, 20), until: new Date(verdict.next.lockedUntil).toISOString() } });
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
export async function addAccount(ctx: ConsoleContext, username: string, role: Role, actor: string, generate: { password: string; secret: string }): Promise<void> {
  if (!USERNAME_RE.test(username)) throw new Error('ユーザー名が不正です(英数字と . _ @ - の1〜64文字) / invalid user name');
  if (getAccount(ctx.db, username)) throw new Error(`${username}: 既に存在します / already exists`);
  const passwordHash = await hashPassword(generate.password);
  ctx.db.transaction(() => {
    if (getAccount(ctx.db, username)) throw new Error(`${username}: 既に存在します / already exists`);
    ctx.db
      .prepare('INSERT INTO console_users (username, role, password_hash, totp_secret, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(username, role, passwordHash, ctx.seal(generate.secret), new Date().toISOString());
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
  loginLimiters(ctx).streakSources.delete(username);
  ctx.recordEvent({ type: 'admin.account_unlocked', user: actor, data: { account: username } });
}

/**
 * 'ok'; 'wrong' (current password wrong, `left` more tries in this session); 'ended' (too many
 * wrong current passwords: this session has been deleted); 'busy' (too many checks at once).
 */
export type PasswordChangeResult = { result: 'ok'; sessionsEnded: number } | { result: 'wrong'; left: number } | { result: 'ended' } | { result: 'busy' };

/**
 * Own password change, from the session whose token is `sessionToken`. Wrong current passwords
 * are counted per session (in memory): a stolen session cookie gets LOGIN_LIMITS.passwordChangeFailures
 * guesses, then the session is ended and a new one needs the password and a TOTP code again.
 * The count is taken before the check, so parallel requests cannot all guess. On success every
 * other session of the account ends (the one someone else may hold is exactly why people change it).
 */
export async function changePassword(ctx: ConsoleContext, username: string, sessionToken: string, current: string, next: string): Promise<PasswordChangeResult> {
  const l = loginLimiters(ctx);
  const sid = sha256(sessionToken);
  const max = LOGIN_LIMITS.passwordChangeFailures;
  // Requests already in flight when the session was ended must not guess on (nor start a new count).
  const sessionAlive = () => ctx.db.prepare('SELECT 1 FROM web_sessions WHERE id_hash = ? AND username = ?').get(sid, username) !== undefined;
  const tries = (l.passwordChangeFailures.get(sid) ?? 0) + 1;
  if (tries > max || !sessionAlive()) {
    endSessionForGuessing(ctx, username, sid, tries - 1);
    return { result: 'ended' };
  }
  if (!l.verifications.tryEnter()) return { result: 'busy' };
  l.passwordChangeFailures.set(sid, tries);
  if (l.passwordChangeFailures.size > 10_000) l.passwordChangeFailures.delete(l.passwordChangeFailures.keys().next().value!);
  let ok: boolean;
  let nextHash = '';
  try {
    const a = getAccount(ctx.db, username);
    ok = a !== null && (await verifyPassword(current, a.row.password_hash));
    if (ok) nextHash = await hashPassword(next);
  } finally {
    l.verifications.leave();
  }
  if (!sessionAlive()) return { result: 'ended' }; // ended by a parallel guess meanwhile: this result does not count
  if (!ok) {
    ctx.recordEvent({ type: 'admin.password_change_failed', severity: 'warning', user: username, data: { account: username, failures: tries, max } });
    if (tries >= max) {
      endSessionForGuessing(ctx, username, sid, tries);
      return { result: 'ended' };
    }
    return { result: 'wrong', left: max - tries };
  }
  l.passwordChangeFailures.delete(sid);
  const sessionsEnded = ctx.db.transaction(() => {
    ctx.db.prepare('UPDATE console_users SET password_hash = ? WHERE username = ?').run(nextHash, username);
    const n = ctx.db.prepare('DELETE FROM web_sessions WHERE username = ? AND id_hash != ?').run(username, sid).changes;
    ctx.recordEvent({ type: 'admin.password_changed', user: username, data: { account: username, otherSessionsEnded: n } });
    return n;
  })();
  return { result: 'ok', sessionsEnded };
}

function endSessionForGuessing(ctx: ConsoleContext, username: string, sid: string, failures: number): void {
  const n = ctx.db.prepare('DELETE FROM web_sessions WHERE id_hash = ?').run(sid).changes;
  // The count stays (at the maximum) for requests of this session still in flight; the map is bounded.
  loginLimiters(ctx).passwordChangeFailures.set(sid, LOGIN_LIMITS.passwordChangeFailures);
  if (n > 0) ctx.recordEvent({ type: 'admin.session_ended', severity: 'critical', user: username, data: { account: username, reason: 'password_change_failures', failures } });
}

export function accountLocked(db: Database.Database, username: string, nowMs = Date.now()): boolean {
  return loginState(db, username).lockedUntil > nowMs;
}
