/**
 * The console's MFA store: the authority on every user's TOTP state for all terminals (replay
 * and lockout hold across terminals because they live here). Seeds are sealed with ctx.seal
 * (AES-256-GCM, key outside the database); recovery codes are stored as scrypt hashes only.
 * Every statement is prepared; user names are validated before they reach SQL.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { effectiveMfaPolicy, isValidMfaUser, type MfaPolicy } from '../../protocol/policy-mfa.js';
import { decide, generateRecoveryCodes, hashRecoveryCode, resync, type MfaStatus, type MfaUserState, type MfaVerdict, type RecoveryHash, type ResyncResult } from '../../protocol/mfa/decide.js';
import { base32Decode, base32Encode, type OtpAlgorithm, type TotpParams } from '../../protocol/mfa/otp.js';
import type { ImportRow, TokenType } from './import-csv.js';
import type { MfaCacheUser, MfaReconcileEntry } from '../../protocol/mfa/wire.js';
import type { ConsoleContext } from '../module.js';
import { planReconcile, type ReconcilePlan, type ReconcileUserFacts } from './reconcile.js';
import { MfaError } from './errors.js';
import { claimUserKey, decideName, INVALID_NAME_MESSAGE, normaliseUserName, resolveAdminUser } from './identity.js';

interface UserRow {
  user: string;
  status: MfaStatus;
  kind: 'app' | 'hardware';
  serial: string | null;
  secret: string;
  algorithm: OtpAlgorithm;
  digits: 6 | 8;
  period: number;
  last_step: number;
  failures: number;
  locked_until: number;
  created_at: string;
  updated_at: string;
  type: TokenType;
  drift: number | null;
}

// Kept importable from the store: the CLI and pages catch it from here.
export { MfaError };

/** A name as stored (Unicode NFC, Japanese and spaces allowed; ./identity.ts normaliseUserName), or MfaError. */
export function assertUser(user: unknown): string {
  const n = normaliseUserName(user);
  if (n === null) throw new MfaError(INVALID_NAME_MESSAGE);
  return n;
}

export function mfaPolicy(ctx: ConsoleContext): MfaPolicy {
  return effectiveMfaPolicy(ctx.currentPolicy().policy.mfa);
}

function row(ctx: ConsoleContext, user: string): UserRow | undefined {
  return ctx.db.prepare('SELECT * FROM mfa_users WHERE user = ?').get(user) as UserRow | undefined;
}

function recoveryOf(ctx: ConsoleContext, user: string): RecoveryHash[] {
  const rows = ctx.db.prepare('SELECT id, salt, hash, used_at FROM mfa_recovery_codes WHERE user = ? ORDER BY id').all(user) as {
    id: number;
    salt: string;
    hash: string;
    used_at: string | null;
  }[];
  return rows.map((r) => ({ id: r.id, salt: r.salt, hash: r.hash, used: r.used_at !== null }));
}

function paramsOf(r: UserRow): TotpParams {
  return { algorithm: r.algorithm, digits: r.digits, period: r.period };
}

/** Seeds are sealed as their base32 text (what the offline cache and the enrolment show). */
function seedOf(ctx: ConsoleContext, r: UserRow): Buffer {
  const key = base32Decode(ctx.open(r.secret).toString('utf8'));
  if (!key) throw new Error(`mfa: stored seed of ${r.user} is not base32`);
  return key;
}

function stateOf(ctx: ConsoleContext, r: UserRow): MfaUserState {
  return {
    status: r.status,
    key: seedOf(ctx, r),
    params: paramsOf(r),
    lastStep: r.last_step,
    failures: r.failures,
    lockedUntil: r.locked_until,
    recovery: recoveryOf(ctx, r.user),
    type: r.type,
    ...(r.type === 'totp' && r.drift !== null ? { drift: r.drift } : {}),
  };
}

export interface Enrolment {
  user: string;
  secret: string; // base32
  uri: string;
  recoveryCodes: string[];
}

function otpauthUri(issuer: string, user: string, secret: string, p: TotpParams): string {
  // Built by hand rather than with otplib's generateURI so SHA256/SHA512 and 8 digits are carried too.
  const label = encodeURIComponent(issuer) + ':' + encodeURIComponent(user);
  const q = new URLSearchParams({ secret, issuer, algorithm: p.algorithm, digits: String(p.digits), period: String(p.period) });
  return `otpauth://totp/${label}?${q.toString().replace(/\+/g, '%20')}`;
}

function replaceRecovery(ctx: ConsoleContext, user: string, count: number): string[] {
  const codes = generateRecoveryCodes(count);
  ctx.db.prepare('DELETE FROM mfa_recovery_codes WHERE user = ?').run(user);
  const ins = ctx.db.prepare('INSERT INTO mfa_recovery_codes (user, id, salt, hash) VALUES (?, ?, ?, ?)');
  codes.forEach((c, i) => {
    const h = hashRecoveryCode(c, i + 1);
    ins.run(user, h.id, h.salt, h.hash);
  });
  return codes;
}

/** New secret (state pending until confirmed with a first code) and fresh recovery codes; also `reset`. */
export function enrollUser(ctx: ConsoleContext, userIn: unknown, actor: string, opts: { reset?: boolean; recoveryCount?: number } = {}): Enrolment {
  // A reset finds the enrolment as Windows would ("Yamada" → "yamada"); a new name must not be another's Windows identity.
  const user = opts.reset ? resolveAdminUser(ctx, userIn) : assertUser(userIn);
  const secretBytes = randomBytes(20); // 160 bits, RFC 4226's recommendation
  const secret = base32Encode(secretBytes);
  const now = new Date().toISOString();
  const params: TotpParams = { algorithm: 'SHA1', digits: 6, period: 30 }; // what every authenticator app supports
  const codes = ctx.db.transaction(() => {
    const existing = row(ctx, user);
    if (existing && !opts.reset) throw new MfaError(`${user}: 登録済みです。再登録は mfa reset / already enrolled: use mfa reset`);
    if (!existing && opts.reset) throw new MfaError(`${user}: 未登録です / not enrolled`);
    if (!existing) claimUserKey(ctx, user);
    // A reset clears the replay state too: steps used with the old secret say nothing about the
    // new one's codes, and a poisoned last_step (issue 10) must not survive the repair.
    ctx.db
      .prepare(
        `INSERT INTO mfa_users (user, status, kind, serial, secret, algorithm, digits, period, last_step, failures, locked_until, created_at, updated_at)
         VALUES (@user, 'pending', 'app', NULL, @secret, @algorithm, @digits, @period, -1, 0, 0, @now, @now)
         ON CONFLICT(user) DO UPDATE SET status='pending', kind='app', serial=NULL, secret=@secret, algorithm=@algorithm,
           digits=@digits, period=@period, last_step=-1, failures=0, locked_until=0, updated_at=@now, type='totp', drift=NULL`,
      )
      .run({ user, secret: ctx.seal(secret), ...params, now });
    forgetUsedSteps(ctx, user);
    const c = replaceRecovery(ctx, user, opts.recoveryCount ?? 10);
    ctx.recordEvent({ type: opts.reset ? 'admin.mfa_reset' : 'admin.mfa_enrolled', user: actor, data: { staffUser: user } });
    return c;
  })();
  return { user, secret, uri: otpauthUri(ctx.organisation(), user, secret, params), recoveryCodes: codes };
}

/** Steps recorded for a secret that is being replaced (they would otherwise hide the new secret's: INSERT OR IGNORE). */
function forgetUsedSteps(ctx: ConsoleContext, user: string): void {
  ctx.db.prepare('DELETE FROM mfa_used_steps WHERE user = ?').run(user);
}

export function confirmUser(ctx: ConsoleContext, userIn: unknown, code: unknown, actor: string, nowMs = Date.now()): boolean {
  const user = resolveAdminUser(ctx, userIn);
  return ctx.db.transaction(() => {
    const r = row(ctx, user);
    if (!r) throw new MfaError(`${user}: 未登録です / not enrolled`);
    if (r.status !== 'pending') throw new MfaError(`${user}: 確認待ちではありません / not waiting for confirmation (${r.status})`);
    const st = stateOf(ctx, r);
    const policy = mfaPolicy(ctx);
    // Judged like a login (so the confirming code is consumed and cannot be replayed at a terminal).
    const v = decide({ ...st, status: 'active' }, { user: decideName(user), code, nowMs, policy });
    if (v.result !== 'accept' || v.reason !== 'ok' || !v.next) {
      ctx.recordEvent({ type: 'admin.mfa_confirm_failed', user: actor, data: { staffUser: user, reason: v.reason } });
      return false;
    }
    ctx.db.prepare("UPDATE mfa_users SET status='active', last_step=?, failures=0, locked_until=0, updated_at=? WHERE user=?").run(
      v.next.lastStep,
      new Date(nowMs).toISOString(),
      user,
    );
    ctx.db.prepare('INSERT OR IGNORE INTO mfa_used_steps (user, step, terminal, at) VALUES (?, ?, ?, ?)').run(user, v.next.lastStep, 'console', new Date(nowMs).toISOString());
    ctx.recordEvent({ type: 'admin.mfa_confirmed', user: actor, data: { staffUser: user } });
    return true;
  })();
}

export function setDisabled(ctx: ConsoleContext, userIn: unknown, disabled: boolean, actor: string): void {
  const user = resolveAdminUser(ctx, userIn);
  const r = row(ctx, user);
  if (!r) throw new MfaError(`${user}: 未登録です / not enrolled`);
  // Enabling again returns to 'active' only if it had been confirmed (last_step ≥ 0) or is a hardware token.
  const status = disabled ? 'disabled' : r.last_step >= 0 || r.kind === 'hardware' ? 'active' : 'pending';
  ctx.db.prepare('UPDATE mfa_users SET status=?, updated_at=? WHERE user=?').run(status, new Date().toISOString(), user);
  ctx.recordEvent({ type: disabled ? 'admin.mfa_disabled' : 'admin.mfa_enabled', user: actor, data: { staffUser: user } });
}

export function unlockUser(ctx: ConsoleContext, userIn: unknown, actor: string): void {
  const user = resolveAdminUser(ctx, userIn);
  const res = ctx.db.prepare('UPDATE mfa_users SET failures=0, locked_until=0, updated_at=? WHERE user=?').run(new Date().toISOString(), user);
  if (res.changes === 0) throw new MfaError(`${user}: 未登録です / not enrolled`);
  ctx.recordEvent({ type: 'admin.mfa_unlocked', user: actor, data: { staffUser: user } });
}

export function newRecoveryCodes(ctx: ConsoleContext, userIn: unknown, actor: string, count = 10): string[] {
  const user = resolveAdminUser(ctx, userIn);
  return ctx.db.transaction(() => {
    if (!row(ctx, user)) throw new MfaError(`${user}: 未登録です / not enrolled`);
    const c = replaceRecovery(ctx, user, count);
    ctx.recordEvent({ type: 'admin.mfa_recovery_codes', user: actor, data: { staffUser: user, count } });
    return c;
  })();
}

export type { ImportRow } from './import-csv.js';
/** The Sekimori CSV (header user,serial,secret|seed_hex[,type,algorithm,digits,period,counter]); see import-csv.ts. */
export { parseSekimoriCsv as parseTokenCsv } from './import-csv.js';

export interface ImportOutcome {
  /** Tokens given to a user by the file (Sekimori CSV `user`, privacyIDEA CSV version 2). */
  assigned: number;
  /** Tokens kept in the inventory until `mfa assign-token`. */
  unassigned: number;
}

function serialHolder(ctx: ConsoleContext, serial: string): string | null {
  const u = ctx.db.prepare('SELECT user FROM mfa_users WHERE serial = ?').get(serial) as { user: string } | undefined;
  return u ? u.user : null;
}

/** Puts one token's seed on a user: active at once (the seed came from the vendor), fresh replay state. */
function putTokenOnUser(ctx: ConsoleContext, user: string, t: { serial: string; sealed: string; type: TokenType; algorithm: OtpAlgorithm; digits: 6 | 8; period: number; counter: number }, now: string): void {
  if (!row(ctx, user)) claimUserKey(ctx, user); // a new name must not be another enrolment's Windows identity
  ctx.db
    .prepare(
      `INSERT INTO mfa_users (user, status, kind, serial, secret, algorithm, digits, period, last_step, failures, locked_until, created_at, updated_at, type, drift)
       VALUES (@user, 'active', 'hardware', @serial, @secret, @algorithm, @digits, @period, @last, 0, 0, @now, @now, @type, @drift)
       ON CONFLICT(user) DO UPDATE SET status='active', kind='hardware', serial=@serial, secret=@secret, algorithm=@algorithm,
         digits=@digits, period=@period, last_step=@last, failures=0, locked_until=0, updated_at=@now, type=@type, drift=@drift`,
    )
    // HOTP: the vendor's counter is the next one the token shows, so the last used is one before.
    .run({ user, serial: t.serial, secret: t.sealed, algorithm: t.algorithm, digits: t.digits, period: t.period, last: t.type === 'hotp' ? t.counter - 1 : -1, now, type: t.type, drift: t.type === 'totp' ? 0 : null });
  forgetUsedSteps(ctx, user); // a new seed: as for a reset
}

/**
 * Imports hardware tokens in one transaction: every row or none. Rows naming a user are put on
 * that user (as before); the others go to the inventory (`mfa_tokens`) until `assignToken`. A
 * serial already known (in the inventory or on a user) or a user already enrolled is refused
 * unless `replace`. Seeds are sealed; only serials and counts reach the event.
 */
export function importTokens(ctx: ConsoleContext, rows: ImportRow[], actor: string, replace: boolean, source = 'csv'): number {
  const r = importTokenRows(ctx, rows, actor, replace, source);
  return r.assigned + r.unassigned;
}

export function importTokenRows(ctx: ConsoleContext, rows: ImportRow[], actor: string, replace: boolean, source = 'csv'): ImportOutcome {
  return ctx.db.transaction((): ImportOutcome => {
    const now = new Date().toISOString();
    const res: ImportOutcome = { assigned: 0, unassigned: 0 };
    for (const r of rows) {
      const holder = serialHolder(ctx, r.serial);
      const inStock = ctx.db.prepare('SELECT 1 FROM mfa_tokens WHERE serial = ?').get(r.serial) !== undefined;
      // Found by any spelling Windows would use ("Yamada" is yamada's enrolment), as admin commands do.
      const named = r.user === null ? null : resolveAdminUser(ctx, r.user);
      if (named !== null && !replace && row(ctx, named)) throw new MfaError(`${named}: 登録済みです(置き換えは --replace) / already enrolled (use --replace)`);
      if (!replace && (inStock || holder !== null)) throw new MfaError(`${r.serial}: 取込済みのシリアルです(置き換えは --replace) / serial already imported (use --replace)`);
      if (holder !== null && named !== null && holder !== named) {
        throw new MfaError(`${r.serial}: ${holder} が使用中のトークンです / token is held by ${holder}`);
      }
      // --replace of a token someone holds: the new seed goes to the same person (same device).
      const user = named ?? holder;
      if (user !== null && user !== holder && !replace && row(ctx, user)) throw new MfaError(`${user}: 登録済みです(置き換えは --replace) / already enrolled (use --replace)`);
      ctx.db.prepare('DELETE FROM mfa_tokens WHERE serial = ?').run(r.serial);
      const sealed = ctx.seal(base32Encode(r.secret));
      if (user !== null) {
        putTokenOnUser(ctx, user, { ...r, sealed }, now);
        res.assigned++;
      } else {
        ctx.db
          .prepare('INSERT INTO mfa_tokens (serial, type, secret, algorithm, digits, period, counter, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
          .run(r.serial, r.type, sealed, r.algorithm, r.digits, r.period, r.counter, now);
        res.unassigned++;
      }
    }
    ctx.recordEvent({
      type: 'admin.mfa_tokens_imported',
      user: actor,
      data: { count: rows.length, source, assigned: res.assigned, unassigned: res.unassigned, serials: rows.slice(0, 200).map((r) => r.serial), users: rows.filter((r) => r.user).slice(0, 200).map((r) => r.user) },
    });
    return res;
  })();
}

/**
 * Hands an imported token to a user (`mfa assign-token --user U --serial S`): the seed moves from
 * the inventory to the user, active at once. A user already enrolled needs `replace` (their old
 * secret, app or token, stops working; the old token's serial is free again but its seed is gone).
 */
export function assignToken(ctx: ConsoleContext, userIn: unknown, serial: string, actor: string, replace = false): void {
  const user = resolveAdminUser(ctx, userIn);
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(serial)) throw new MfaError('シリアルが不正です / invalid serial');
  ctx.db.transaction(() => {
    const t = ctx.db.prepare('SELECT * FROM mfa_tokens WHERE serial = ?').get(serial) as
      | { serial: string; type: TokenType; secret: string; algorithm: OtpAlgorithm; digits: 6 | 8; period: number; counter: number }
      | undefined;
    if (!t) {
      const holder = serialHolder(ctx, serial);
      throw new MfaError(holder ? `${serial}: 割当済みです(${holder}) / already assigned (to ${holder})` : `${serial}: 未取込のシリアルです / no such imported token`);
    }
    if (row(ctx, user) && !replace) throw new MfaError(`${user}: 登録済みです(置き換えは --replace) / already enrolled (use --replace)`);
    const now = new Date().toISOString();
    putTokenOnUser(ctx, user, { ...t, sealed: t.secret }, now);
    ctx.db.prepare('DELETE FROM mfa_tokens WHERE serial = ?').run(serial);
    ctx.recordEvent({ type: 'admin.mfa_token_assigned', user: actor, data: { staffUser: user, serial, tokenType: t.type } });
  })();
}

export interface StockToken {
  serial: string;
  type: TokenType;
  algorithm: string;
  digits: number;
  period: number;
  counter: number;
  importedAt: string;
}

/** The imported tokens nobody holds yet (no seeds). */
export function listStock(ctx: ConsoleContext): StockToken[] {
  const rows = ctx.db.prepare('SELECT serial, type, algorithm, digits, period, counter, imported_at FROM mfa_tokens ORDER BY serial').all() as (Omit<StockToken, 'importedAt'> & { imported_at: string })[];
  return rows.map(({ imported_at, ...r }) => ({ ...r, importedAt: imported_at }));
}

/**
 * `mfa resync --user U --codes C1 C2`: two consecutive codes from the user's token bring the
 * console back in step (HOTP counter, or hardware-TOTP drift). Both codes are used up. Decided
 * and written in one IMMEDIATE transaction, like a login. Failures are recorded, not counted
 * toward the lock (an administrator runs this, with the token in hand).
 */
export function resyncUser(ctx: ConsoleContext, userIn: unknown, code1: unknown, code2: unknown, actor: string, nowMs = Date.now()): ResyncResult {
  const user = resolveAdminUser(ctx, userIn);
  return ctx.db
    .transaction((): ResyncResult => {
      const r = row(ctx, user);
      if (!r) throw new MfaError(`${user}: 未登録です / not enrolled`);
      if (r.status === 'pending') throw new MfaError(`${user}: 確認待ちです(mfa confirm) / not confirmed yet (mfa confirm)`);
      const res = resync(stateOf(ctx, r), code1, code2, nowMs);
      if (!res.ok) {
        ctx.recordEvent({ type: 'admin.mfa_resync_failed', user: actor, data: { staffUser: user, reason: res.reason } });
        return res;
      }
      const at = new Date(nowMs).toISOString();
      // Drift only for tokens that learn it (hardware TOTP); app users keep NULL.
      const drift = res.drift !== undefined && r.drift !== null ? res.drift : r.drift;
      ctx.db.prepare('UPDATE mfa_users SET last_step = ?, drift = ?, updated_at = ? WHERE user = ?').run(res.lastStep, drift, at, user);
      const used = ctx.db.prepare('INSERT OR IGNORE INTO mfa_used_steps (user, step, terminal, at) VALUES (?, ?, ?, ?)');
      used.run(user, res.lastStep - 1, 'console', at);
      used.run(user, res.lastStep, 'console', at);
      ctx.recordEvent({ type: 'admin.mfa_resynced', user: actor, data: { staffUser: user, tokenType: r.type, counter: res.lastStep, ...(drift !== null ? { drift } : {}) } });
      return res;
    })
    .immediate();
}

export function assign(ctx: ConsoleContext, userIn: unknown, terminal: string, actor: string, remove = false): void {
  const user = resolveAdminUser(ctx, userIn);
  if (!/^[A-Za-z0-9._:-]{1,64}$/.test(terminal)) throw new MfaError('端末IDが不正です / invalid terminal id');
  if (remove) ctx.db.prepare('DELETE FROM mfa_assignments WHERE user = ? AND terminal = ?').run(user, terminal);
  else ctx.db.prepare('INSERT OR IGNORE INTO mfa_assignments (user, terminal, created_at) VALUES (?, ?, ?)').run(user, terminal, new Date().toISOString());
  ctx.recordEvent({ type: remove ? 'admin.mfa_unassigned' : 'admin.mfa_assigned', user: actor, terminalId: terminal, data: { staffUser: user, terminal } });
}

function isAssigned(ctx: ConsoleContext, user: string, terminal: string): boolean {
  return ctx.db.prepare('SELECT 1 FROM mfa_assignments WHERE user = ? AND terminal = ?').get(user, terminal) !== undefined;
}

export interface ListedUser {
  user: string;
  status: MfaStatus;
  kind: string;
  /** 'hotp' | 'totp' */
  type: string;
  serial: string | null;
  algorithm: string;
  digits: number;
  period: number;
  locked: boolean;
  lockedUntil: string | null;
  failures: number;
  recoveryLeft: number;
  terminals: string[];
}

export function listUsers(ctx: ConsoleContext, nowMs = Date.now()): ListedUser[] {
  const rows = ctx.db.prepare('SELECT * FROM mfa_users ORDER BY user').all() as UserRow[];
  return rows.map((r) => ({
    user: r.user,
    status: r.status,
    kind: r.kind,
    type: r.type,
    serial: r.serial,
    algorithm: r.algorithm,
    digits: r.digits,
    period: r.period,
    locked: r.locked_until > nowMs,
    lockedUntil: r.locked_until > nowMs ? new Date(r.locked_until).toISOString() : null,
    failures: r.failures,
    recoveryLeft: (ctx.db.prepare('SELECT count(*) AS n FROM mfa_recovery_codes WHERE user = ? AND used_at IS NULL').get(r.user) as { n: number }).n,
    terminals: (ctx.db.prepare('SELECT terminal FROM mfa_assignments WHERE user = ? ORDER BY terminal').all(r.user) as { terminal: string }[]).map((t) => t.terminal),
  }));
}

export interface VerifyOutcome {
  verdict: MfaVerdict;
  state: { lastStep: number; failures: number; lockedUntil: number } | null;
}

/**
 * One verification attempt from `terminal`, decided and persisted in one IMMEDIATE transaction
 * so two terminals presenting the same code at the same moment cannot both succeed.
 */
export function verifyAttempt(ctx: ConsoleContext, userIn: unknown, code: unknown, terminal: string, nowMs = Date.now()): VerifyOutcome {
  const policy = mfaPolicy(ctx);
  const run = ctx.db.transaction((): VerifyOutcome => {
    // Exactly as sent (Linux names are case-sensitive); /validate/check passes the name identity.ts resolved.
    const user = normaliseUserName(userIn) === userIn ? (userIn as string) : null;
    const r = user ? row(ctx, user) : undefined;
    const st = r ? stateOf(ctx, r) : null;
    const notAssigned = policy.requireAssignment && user !== null && !isAssigned(ctx, user, terminal);
    const verdict = decide(st, { user: user === null ? userIn : decideName(user), code, nowMs, policy, notAssigned });
    if (!user || !r || !verdict.next) return { verdict, state: r ? { lastStep: r.last_step, failures: r.failures, lockedUntil: r.locked_until } : null };
    const n = verdict.next;
    const at = new Date(nowMs).toISOString();
    ctx.db.prepare('UPDATE mfa_users SET last_step=?, failures=?, locked_until=?, updated_at=? WHERE user=?').run(n.lastStep, n.failures, n.lockedUntil, at, user);
    if (n.drift !== undefined) ctx.db.prepare('UPDATE mfa_users SET drift=? WHERE user=? AND drift IS NOT NULL').run(n.drift, user);
    if (verdict.result === 'accept' && verdict.step !== undefined) {
      ctx.db.prepare('INSERT OR IGNORE INTO mfa_used_steps (user, step, terminal, at) VALUES (?, ?, ?, ?)').run(user, verdict.step, terminal, at);
    }
    if (n.recoveryUsed !== undefined) {
      ctx.db.prepare('UPDATE mfa_recovery_codes SET used_at=?, used_on=? WHERE user=? AND id=? AND used_at IS NULL').run(at, terminal, user, n.recoveryUsed);
    }
    if (verdict.result === 'reject' && verdict.reason !== 'locked') {
      ctx.db.prepare('INSERT INTO mfa_failures (user, terminal, at, reason) VALUES (?, ?, ?, ?)').run(user, terminal, at, verdict.reason);
    }
    return { verdict, state: { lastStep: n.lastStep, failures: n.failures, lockedUntil: n.lockedUntil } };
  });
  return run.immediate();
}

/**
 * The users whose seeds a terminal's offline cache gets: assigned to it and not pending. The same
 * statement decides whose offline use a terminal may reconcile, so the two cannot drift apart.
 * HOTP users are never cached: a counter can be advanced in one place only (the console), and a
 * code used offline on one terminal would still be good on every other one (issue 13).
 */
const CACHED_FOR_TERMINAL = `SELECT u.* FROM mfa_users u JOIN mfa_assignments a ON a.user = u.user WHERE a.terminal = ? AND u.status != 'pending' AND u.type = 'totp'`;

/** The offline cache for one terminal: only its assigned, non-pending users, only when policy allows offline. */
export function cacheFor(ctx: ConsoleContext, terminal: string): { offlineAllowed: boolean; users: MfaCacheUser[] } {
  const policy = mfaPolicy(ctx);
  if (!policy.offlineAllowed) return { offlineAllowed: false, users: [] };
  const rows = ctx.db.prepare(`${CACHED_FOR_TERMINAL} ORDER BY u.user`).all(terminal) as UserRow[];
  return {
    offlineAllowed: true,
    users: rows.map((r) => ({
      user: r.user,
      status: r.status,
      secret: ctx.open(r.secret).toString('utf8'),
      algorithm: r.algorithm,
      digits: r.digits,
      period: r.period,
      lastStep: r.last_step,
      failures: r.failures,
      lockedUntil: r.locked_until,
      recovery: recoveryOf(ctx, r.user),
      // A drifted hardware token must verify offline too, in the window the console centres on it.
      ...(r.type === 'totp' && r.drift !== null ? { drift: r.drift } : {}),
    })),
  };
}

export interface ReconcileOutcome {
  applied: number;
  refused: ReconcilePlan['refused'];
  lockedNow: string[];
}

/**
 * Learns what a terminal did offline: steps it accepted (replay state moves forward, never back),
 * recovery codes it consumed, and failures (which count toward the console-side lockout) — only
 * what reconcile.ts `planReconcile` believes; the rest comes back as `refused`.
 */
export function reconcile(ctx: ConsoleContext, terminal: string, entries: MfaReconcileEntry[], nowMs = Date.now()): ReconcileOutcome {
  const policy = mfaPolicy(ctx);
  return ctx.db
    .transaction((): ReconcileOutcome => {
      const facts = new Map<string, ReconcileUserFacts>();
      if (policy.offlineAllowed) {
        const cached = ctx.db.prepare(`${CACHED_FOR_TERMINAL} AND u.user = ?`);
        const codes = ctx.db.prepare('SELECT id, used_on, used_at FROM mfa_recovery_codes WHERE user = ?');
        for (const user of new Set(entries.map((e) => e.user))) {
          if (!isValidMfaUser(user)) continue;
          const r = cached.get(terminal, user) as UserRow | undefined;
          if (!r) continue;
          const rec = codes.all(user) as { id: number; used_on: string | null; used_at: string | null }[];
          facts.set(user, {
            period: r.period,
            lastStep: r.last_step,
            failures: r.failures,
            lockedUntil: r.locked_until,
            recovery: new Map(rec.map((c) => [c.id, c.used_at === null ? null : { usedOn: c.used_on }])),
          });
        }
      }
      const plan = planReconcile(entries, facts, terminal, policy, nowMs);
      const now = new Date(nowMs).toISOString();
      const setState = ctx.db.prepare('UPDATE mfa_users SET last_step = max(last_step, ?), failures = ?, locked_until = ?, updated_at = ? WHERE user = ?');
      for (const [user, st] of plan.users) setState.run(st.lastStep, st.failures, st.lockedUntil, now, user);
      const step = ctx.db.prepare('INSERT OR IGNORE INTO mfa_used_steps (user, step, terminal, at, offline) VALUES (?, ?, ?, ?, 1)');
      for (const u of plan.usedSteps) step.run(u.user, u.step, terminal, u.at);
      const rec = ctx.db.prepare('UPDATE mfa_recovery_codes SET used_at=?, used_on=? WHERE user=? AND id=? AND used_at IS NULL');
      for (const r of plan.recoveryUsed) rec.run(r.at, terminal, r.user, r.id);
      const fail = ctx.db.prepare("INSERT INTO mfa_failures (user, terminal, at, reason, offline) VALUES (?, ?, ?, 'offline', 1)");
      for (const f of plan.failures) fail.run(f.user, terminal, f.at);
      return { applied: plan.applied, refused: plan.refused, lockedNow: plan.lockedNow };
    })
    .immediate();
}

// ---- clients of POST /validate/check (Windows terminals with the privacyIDEA Credential Provider) ----

export function hashClientKey(key: string): string {
  return createHash('sha256').update('sekimori-validate-client\0' + key).digest('hex');
}

/** Registers a Windows terminal; returns the key to configure once in the Credential Provider. */
export function addValidateClient(ctx: ConsoleContext, name: string, address: string | null, actor: string): string {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new MfaError('端末名が不正です / invalid terminal name');
  if (address !== null && !/^[0-9a-fA-F.:]{2,45}$/.test(address)) throw new MfaError('アドレスが不正です / invalid address');
  const key = randomBytes(18).toString('base64url');
  ctx.db
    .prepare(
      `INSERT INTO mfa_validate_clients (name, key_hash, address, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT(name) DO UPDATE SET key_hash=excluded.key_hash, address=excluded.address, disabled=0`,
    )
    .run(name, hashClientKey(key), address, new Date().toISOString());
  ctx.recordEvent({ type: 'admin.mfa_validate_client_added', user: actor, terminalId: `win:${name}`, data: { name, address } });
  return `${name}.${key}`;
}

/** Checks a credential "NAME.KEY" (and the source address when one was registered); returns the terminal id. */
export function authenticateValidateClient(ctx: ConsoleContext, credential: string, remoteAddress: string): string | null {
  const m = /^([A-Za-z0-9._-]{1,64})\.([A-Za-z0-9_-]{24})$/.exec(credential);
  if (!m) return null;
  const r = ctx.db.prepare('SELECT key_hash, address, disabled FROM mfa_validate_clients WHERE name = ?').get(m[1]) as
    | { key_hash: string; address: string | null; disabled: number }
    | undefined;
  if (!r || r.disabled) return null;
  const want = Buffer.from(r.key_hash, 'hex');
  const got = Buffer.from(hashClientKey(m[2]!), 'hex');
  if (!timingSafeEqual(want, got)) return null;
  if (r.address && normaliseAddress(r.address) !== normaliseAddress(remoteAddress)) return null;
  return `win:${m[1]}`;
}

function normaliseAddress(a: string): string {
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}
