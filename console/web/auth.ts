/**
 * Console accounts: login (password + TOTP; the code, its replay guard and the lockout are judged
 * by protocol/mfa/decide.ts, the one TOTP decision), sessions with idle and absolute timeouts, CSRF
 * tokens, and the same-origin check for every POST. The decisions are pure functions (unit-tested);
 * rows are read and written only by ./store.ts.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type Database from 'better-sqlite3';
import { decide, type MfaReason, type MfaUserState } from '../../protocol/mfa/decide.js';
import { base32Decode } from '../../protocol/mfa/otp.js';
import { ConcurrencyLimit, RateLimiter, sourceKey, type RateLimit } from '../core/limits.js';
import { hashPassword, unmatchableHash, verifyPassword } from '../core/passwords.js';
import type { ConsoleContext } from '../module.js';
import {
  clearLoginFailures,
  countEnabledAdmins,
  deleteOtherSessions,
  deleteSessionById,
  deleteSessionsIdleOrOld,
  getAccount,
  insertAccount,
  insertSession,
  readLoginState,
  sessionAlive as sessionExists,
  sessionById,
  setAccountDisabledRow,
  setPasswordHash,
  touchSession,
  writeLoginState,
  type Account,
  type LoginState,
  type Role,
} from './store.js';

export { getAccount, listAccounts, type Account, type LoginState, type Role } from './store.js';

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

export type LoginReason = 'ok' | 'locked' | 'bad_credentials' | 'replay' | 'disabled' | 'malformed';

export interface LoginVerdict {
  ok: boolean;
  reason: LoginReason;
  next: LoginState;
  lockedNow: boolean;
}

/** Console accounts' authenticator apps: RFC 6238 defaults (what `init` and `user add` enrol). */
const ADMIN_TOTP = { algorithm: 'SHA1', digits: 6, period: 30 } as const;
const NO_KEY = new Uint8Array(20);

const REASONS: Partial<Record<MfaReason, LoginReason>> = { ok: 'ok', locked: 'locked', malformed: 'malformed', replay: 'replay', disabled: 'disabled' };

/**
 * Pure decision, made by protocol/mfa/decide.ts (the one TOTP decision: window, replay, lockout)
 * with the password as the factor checked before the code. `passwordOk` is computed by the caller
 * (scrypt); `key` is the account's TOTP seed (null: no account, or a seed that does not decode);
 * `streakSources` is the number of different addresses in the account's failure streak if this
 * attempt fails (this address included): the account locks only from `lockSources` addresses on.
 * The reply to the person never says which factor was wrong, nor that the account is locked; the
 * event log does.
 */
export function decideLogin(
  state: LoginState,
  input: { exists: boolean; disabled: boolean; passwordOk: boolean; key: Uint8Array | null; code: string; wellFormed: boolean; nowMs: number; streakSources: number },
  policy = LOGIN_POLICY,
): LoginVerdict {
  const mfaState: MfaUserState = {
    status: 'active',
    key: input.key ?? NO_KEY,
    params: ADMIN_TOTP,
    lastStep: state.lastStep,
    failures: state.failures,
    lockedUntil: state.lockedUntil,
    recovery: [], // console accounts have no recovery codes: a lost authenticator is re-enrolled by another admin
  };
  const v = decide(mfaState, {
    user: 'console-account', // decide() checks the terminals' name grammar only; the account is known here
    code: input.wellFormed ? input.code : '',
    nowMs: input.nowMs,
    policy: { windowSteps: policy.totpWindow, maxFailures: policy.lockFailures, lockoutSeconds: policy.lockMs / 1000 },
    priorFactor: !input.exists || !input.passwordOk || input.key === null ? 'wrong' : input.disabled ? 'disabled' : 'ok',
    mayLock: input.streakSources >= policy.lockSources,
  });
  const next: LoginState = v.next ? { failures: v.next.failures, lockedUntil: v.next.lockedUntil, lastStep: v.next.lastStep } : state;
  if (v.result === 'accept') return { ok: true, reason: 'ok', next, lockedNow: false };
  return { ok: false, reason: REASONS[v.reason] ?? 'bad_credentials', next, lockedNow: v.lockedNow };
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
  const state = acct ? readLoginState(ctx.db, username) : { failures: 0, lockedUntil: 0, lastStep: -1 };
  const key = acct ? base32Decode(ctx.open(acct.row.totp_secret).toString('utf8')) : null;
  const sources = loginLimiters(ctx).streakSources;
  // The streak's addresses live in memory; the failure count in the database. A fresh streak
  // (count 0, also after a restart or an unlock) starts with no remembered addresses.
  const streak = acct && state.failures > 0 ? (sources.get(username) ?? new Set<string>()) : new Set<string>();
  const source = sourceKey(from);
  const verdict = decideLogin(state, { exists: acct !== null, disabled: acct?.disabled ?? false, passwordOk, key, code, wellFormed, nowMs, streakSources: streak.size + (streak.has(source) ? 0 : 1) });
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
    if (acct) writeLoginState(ctx.db, username, verdict.next);
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
  insertSession(db, sha256(token), username, csrf, nowMs);
  return { token, csrf };
}

/** Finds a live session (and refreshes its idle timer); expired or disabled ones are deleted. */
export function loadSession(db: Database.Database, token: string | undefined, nowMs = Date.now()): Session | null {
  if (!token || token.length > 100) return null;
  const id = sha256(token);
  const r = sessionById(db, id);
  if (!r) return null;
  if (r.disabled || nowMs - r.lastSeen > LOGIN_POLICY.idleMs || nowMs - r.createdAt > LOGIN_POLICY.absoluteMs) {
    deleteSessionById(db, id);
    return null;
  }
  if (nowMs - r.lastSeen > 5_000) touchSession(db, id, nowMs);
  return { username: r.username, role: r.role, csrf: r.csrf };
}

export function deleteSession(db: Database.Database, token: string | undefined): void {
  if (token) deleteSessionById(db, sha256(token));
}

export function purgeSessions(db: Database.Database, nowMs = Date.now()): void {
  deleteSessionsIdleOrOld(db, nowMs - LOGIN_POLICY.idleMs, nowMs - LOGIN_POLICY.absoluteMs);
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
    insertAccount(ctx.db, { username, role, passwordHash, sealedTotpSecret: ctx.seal(generate.secret), createdAt: new Date().toISOString() });
    ctx.recordEvent({ type: 'admin.account_created', user: actor, data: { account: username, role, before: null, after: { role, disabled: false } } });
  })();
}

export function setAccountDisabled(ctx: ConsoleContext, username: string, disabled: boolean, actor: string): void {
  ctx.db.transaction(() => {
    const a = getAccount(ctx.db, username);
    if (!a) throw new Error(`${username}: 存在しません / no such account`);
    if (disabled && a.role === 'admin') {
      if (countEnabledAdmins(ctx.db) <= 1) throw new Error('最後の管理者は無効にできません / cannot disable the last administrator');
    }
    setAccountDisabledRow(ctx.db, username, disabled);
    ctx.recordEvent({ type: disabled ? 'admin.account_disabled' : 'admin.account_enabled', user: actor, data: { account: username, before: { disabled: a.disabled }, after: { disabled } } });
  })();
}

export function unlockAccount(ctx: ConsoleContext, username: string, actor: string): void {
  clearLoginFailures(ctx.db, username);
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
  const sessionAlive = () => sessionExists(ctx.db, sid, username);
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
  if (!ok) {
    // Every guess that was checked is recorded, also one that finished after a parallel guess
    // ended the session (the count taken before the check keeps them to the allowance).
    ctx.recordEvent({ type: 'admin.password_change_failed', severity: 'warning', user: username, data: { account: username, failures: tries, max } });
    if (!sessionAlive()) return { result: 'ended' };
    if (tries >= max) {
      endSessionForGuessing(ctx, username, sid, tries);
      return { result: 'ended' };
    }
    return { result: 'wrong', left: max - tries };
  }
  if (!sessionAlive()) return { result: 'ended' }; // ended by a parallel guess meanwhile: no password change from it
  l.passwordChangeFailures.delete(sid);
  const sessionsEnded = ctx.db.transaction(() => {
    setPasswordHash(ctx.db, username, nextHash);
    const n = deleteOtherSessions(ctx.db, username, sid);
    ctx.recordEvent({ type: 'admin.password_changed', user: username, data: { account: username, otherSessionsEnded: n } });
    return n;
  })();
  return { result: 'ok', sessionsEnded };
}

function endSessionForGuessing(ctx: ConsoleContext, username: string, sid: string, failures: number): void {
  const n = deleteSessionById(ctx.db, sid);
  // The count stays (at the maximum) for requests of this session still in flight; the map is bounded.
  loginLimiters(ctx).passwordChangeFailures.set(sid, LOGIN_LIMITS.passwordChangeFailures);
  if (n > 0) ctx.recordEvent({ type: 'admin.session_ended', severity: 'critical', user: username, data: { account: username, reason: 'password_change_failures', failures } });
}

export function accountLocked(db: Database.Database, username: string, nowMs = Date.now()): boolean {
  return readLoginState(db, username).lockedUntil > nowMs;
}
