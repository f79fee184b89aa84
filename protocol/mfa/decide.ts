/**
 * Where a TOTP/HOTP code is checked: the one pure decision (user state × presented code × policy ×
 * clock → verdict and new state: window, replay guard, failure count, lockout, recovery codes).
 * No I/O: the console (online, the authority for all terminals, and its own administrators' login
 * in console/web/auth.ts), the agent (offline cache) and /validate/check all call `decide` and
 * persist `verdict.next` themselves.
 */
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { isValidMfaUser, type MfaPolicy } from '../policy-mfa.js';
import { allMatches, hotp, matchRange, matchStep, timeStep, type TotpParams } from './otp.js';

export type MfaStatus = 'pending' | 'active' | 'disabled';

export interface RecoveryHash {
  id: number;
  salt: string; // base64
  hash: string; // base64 scrypt
  used: boolean;
}

export interface MfaUserState {
  status: MfaStatus;
  key: Uint8Array; // the decrypted TOTP seed
  params: TotpParams;
  /** Highest accepted time step; every step ≤ this is a replay. -1 when none yet. */
  lastStep: number;
  /** Consecutive failures since the last success or lock. */
  failures: number;
  /** ms since epoch; 0 = not locked. */
  lockedUntil: number;
  recovery: RecoveryHash[];
  /**
   * 'hotp': event-based hardware token; `lastStep` is then the last accepted counter and the next
   * codes are looked for in lastStep+1 … lastStep+HOTP_LOOKAHEAD. Absent = 'totp'.
   */
  type?: 'totp' | 'hotp';
  /**
   * TOTP only, hardware tokens: how many steps the token's clock is ahead (+) or behind (−).
   * Present = learned from every accepted code (privacyIDEA's timeShift); absent = never drifted
   * (authenticator apps, whose phones keep network time).
   */
  drift?: number;
}

/** HOTP look-ahead: a token pressed up to 9 times without logging in still works (privacyIDEA DefaultCountWindow = 10). */
export const HOTP_LOOKAHEAD = 10;
/** HOTP resync: two consecutive codes searched this far ahead (privacyIDEA DefaultSyncWindow = 1000). */
export const HOTP_RESYNC_WINDOW = 1000;
/** TOTP resync: ± this many steps around now (±1 h at 30 s); also the largest drift ever kept. */
export const TOTP_RESYNC_STEPS = 120;

export function clampDrift(d: number): number {
  if (!Number.isSafeInteger(d)) return 0;
  return Math.max(-TOTP_RESYNC_STEPS, Math.min(TOTP_RESYNC_STEPS, d));
}

export type MfaReason =
  | 'ok'
  | 'recovery'
  | 'invalid_user'
  | 'not_enrolled'
  | 'not_confirmed'
  | 'disabled'
  | 'not_assigned'
  | 'locked'
  | 'malformed'
  | 'wrong_code'
  | 'replay'
  | 'console_unreachable'
  | 'offline_unavailable'
  | 'not_own_account'
  | 'rate_limited'
  | 'error';

export type MfaEventType = 'mfa.success' | 'mfa.failure' | 'mfa.locked' | 'mfa.replay' | 'mfa.recovery_used';

export interface MfaVerdict {
  result: 'accept' | 'reject';
  reason: MfaReason;
  event: MfaEventType;
  /** The accepted (or replayed) time step. */
  step?: number;
  /** Id of the recovery code consumed by this attempt. */
  recoveryId?: number;
  /** This attempt caused the lock. */
  lockedNow: boolean;
  /** State to persist (absent when nothing changes, e.g. unknown user). */
  next?: { lastStep: number; failures: number; lockedUntil: number; recoveryUsed?: number; drift?: number };
}

export type ParsedCode = { kind: 'totp'; code: string } | { kind: 'recovery'; code: string } | { kind: 'malformed' };

// Crockford base32 without I L O U: readable on paper, no 0/O or 1/I confusion when typed.
const RECOVERY_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const RECOVERY_RE = /^[0-9A-HJKMNP-TV-Z]{12}$/;
export const MAX_CODE_INPUT = 64;

/**
 * Classifies what the user typed. Never throws: anything that is not exactly `digits` digits
 * (spaces allowed, as apps display "123 456") or a 12-character recovery code is malformed.
 */
export function parseCode(raw: unknown, digits: number): ParsedCode {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_CODE_INPUT) return { kind: 'malformed' };
  const compact = raw.replace(/[ \t]/g, '');
  if (/^[0-9]+$/.test(compact) && compact.length === digits) return { kind: 'totp', code: compact };
  const rec = compact.replace(/-/g, '').toUpperCase();
  if (RECOVERY_RE.test(rec)) return { kind: 'recovery', code: rec };
  return { kind: 'malformed' };
}

export function generateRecoveryCodes(count = 10): string[] {
  const codes: string[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = randomBytes(12);
    let c = '';
    for (const b of bytes) c += RECOVERY_ALPHABET[b & 31];
    codes.push(`${c.slice(0, 4)}-${c.slice(4, 8)}-${c.slice(8, 12)}`);
  }
  return codes;
}

// 60-bit random codes: scrypt with a modest cost keeps a stolen database useless and checking
// ten codes fast enough for a login prompt.
const SCRYPT = { N: 1 << 12, r: 8, p: 1 } as const;

export function hashRecoveryCode(code: string, id: number): RecoveryHash {
  const norm = code.replace(/[-\s]/g, '').toUpperCase();
  const salt = randomBytes(16);
  return { id, salt: salt.toString('base64'), hash: scryptSync(norm, salt, 32, SCRYPT).toString('base64'), used: false };
}

export function recoveryMatches(normalised: string, h: RecoveryHash): boolean {
  const want = Buffer.from(h.hash, 'base64');
  const got = scryptSync(normalised, Buffer.from(h.salt, 'base64'), want.length || 32, SCRYPT);
  return want.length === got.length && timingSafeEqual(want, got);
}

export interface DecideInput {
  user: unknown;
  code: unknown;
  nowMs: number;
  policy: Pick<MfaPolicy, 'windowSteps' | 'maxFailures' | 'lockoutSeconds'>;
  /** Set when policy.requireAssignment holds and the user is not assigned to the terminal. */
  notAssigned?: boolean;
  /**
   * Console login only: the outcome of the factor checked before the code (the account's password,
   * and whether the account may log in). 'wrong' fails the attempt whatever the code (reason
   * 'wrong_code': a reply never says which factor was wrong); 'disabled' fails a right code with
   * reason 'disabled'. Both count as failures. Absent = no other factor (terminals).
   */
  priorFactor?: 'ok' | 'wrong' | 'disabled';
  /**
   * Console login only: false while the current failure streak comes from too few addresses to
   * lock (a lock any single address could set would lock the real administrators out on demand).
   * Failures still count; the lock waits for enough addresses. Absent = may lock.
   */
  mayLock?: boolean;
}

const reject = (reason: MfaReason, event: MfaEventType = 'mfa.failure'): MfaVerdict => ({ result: 'reject', reason, event, lockedNow: false });

export function decide(state: MfaUserState | null, input: DecideInput): MfaVerdict {
  if (!isValidMfaUser(input.user)) return reject('invalid_user');
  if (!state) return reject('not_enrolled');
  if (state.status === 'disabled') return reject('disabled');
  if (state.status === 'pending') return reject('not_confirmed');
  if (input.notAssigned) return reject('not_assigned');

  const { nowMs, policy } = input;
  // An expired lock is forgotten together with the failures that caused it.
  let failures = state.failures;
  let lockedUntil = state.lockedUntil;
  if (lockedUntil !== 0 && lockedUntil <= nowMs) {
    lockedUntil = 0;
    failures = 0;
  }
  if (lockedUntil > nowMs) {
    // No code is even looked at while locked: a lock must not be a guessing oracle.
    return { ...reject('locked'), next: { lastStep: state.lastStep, failures, lockedUntil } };
  }

  const fail = (reason: MfaReason, event: MfaEventType, step?: number): MfaVerdict => {
    const f = failures + 1;
    const lockNow = f >= policy.maxFailures && input.mayLock !== false;
    return {
      result: 'reject',
      reason,
      event: lockNow ? 'mfa.locked' : event,
      ...(step !== undefined ? { step } : {}),
      lockedNow: lockNow,
      next: { lastStep: state.lastStep, failures: lockNow ? 0 : f, lockedUntil: lockNow ? nowMs + policy.lockoutSeconds * 1000 : 0 },
    };
  };

  const parsed = parseCode(input.code, state.params.digits);
  if (parsed.kind === 'malformed') return fail('malformed', 'mfa.failure');
  if (input.priorFactor === 'wrong') return fail('wrong_code', 'mfa.failure');
  if (parsed.kind === 'recovery') {
    for (const r of state.recovery) {
      if (r.used) continue;
      if (recoveryMatches(parsed.code, r)) {
        if (input.priorFactor === 'disabled') return fail('disabled', 'mfa.failure');
        return {
          result: 'accept',
          reason: 'recovery',
          event: 'mfa.recovery_used',
          recoveryId: r.id,
          lockedNow: false,
          next: { lastStep: state.lastStep, failures: 0, lockedUntil: 0, recoveryUsed: r.id },
        };
      }
    }
    return fail('wrong_code', 'mfa.failure');
  }
  let m: { step: number; replay: boolean } | null;
  let drift: number | undefined;
  if (state.type === 'hotp') {
    // The last used counter is looked at too, only so that reusing it is reported as a replay.
    const last = Number.isSafeInteger(state.lastStep) ? state.lastStep : Number.MAX_SAFE_INTEGER;
    m = matchRange(state.key, parsed.code, last, last + HOTP_LOOKAHEAD, state.params, last);
  } else {
    const realStep = timeStep(nowMs, state.params.period);
    const d = state.drift === undefined ? 0 : clampDrift(state.drift);
    m = matchStep(state.key, parsed.code, realStep + d, policy.windowSteps, state.params, state.lastStep);
    // A hardware clock keeps drifting the same way: centre the next window where this code was.
    if (m && !m.replay && state.drift !== undefined) drift = clampDrift(m.step - realStep);
  }
  if (!m) return fail('wrong_code', 'mfa.failure');
  if (input.priorFactor === 'disabled') return fail('disabled', 'mfa.failure');
  if (m.replay) return fail('replay', 'mfa.replay', m.step);
  return {
    result: 'accept',
    reason: 'ok',
    event: 'mfa.success',
    step: m.step,
    lockedNow: false,
    next: { lastStep: m.step, failures: 0, lockedUntil: 0, ...(drift !== undefined ? { drift } : {}) },
  };
}

export type ResyncResult = { ok: true; lastStep: number; drift?: number } | { ok: false; reason: 'malformed' | 'no_match' | 'ambiguous' };

/**
 * Resynchronisation with two consecutive codes (privacyIDEA's resync): the first code is looked
 * for in a wide range, the second must be the very next counter/step. HOTP: after the last used
 * counter, HOTP_RESYNC_WINDOW ahead. TOTP: ±TOTP_RESYNC_STEPS around the real now, never at or
 * before the last used step; the drift becomes where the second code was. Both codes are used up.
 * Two different positions matching (≈ 10^-9 for 6 digits) are refused, not guessed between.
 */
export function resync(state: Pick<MfaUserState, 'key' | 'params' | 'lastStep' | 'type'>, code1: unknown, code2: unknown, nowMs: number): ResyncResult {
  const p1 = parseCode(code1, state.params.digits);
  const p2 = parseCode(code2, state.params.digits);
  if (p1.kind !== 'totp' || p2.kind !== 'totp') return { ok: false, reason: 'malformed' };
  const last = Number.isSafeInteger(state.lastStep) ? Math.max(-1, state.lastStep) : Number.MAX_SAFE_INTEGER;
  let from: number;
  let to: number;
  let realStep = 0;
  if (state.type === 'hotp') {
    from = last + 1;
    to = last + HOTP_RESYNC_WINDOW;
  } else {
    realStep = timeStep(nowMs, state.params.period);
    from = Math.max(last + 1, realStep - TOTP_RESYNC_STEPS);
    to = realStep + TOTP_RESYNC_STEPS - 1; // the second code at most TOTP_RESYNC_STEPS ahead
  }
  if (to > Number.MAX_SAFE_INTEGER - 1) to = Number.MAX_SAFE_INTEGER - 1;
  const hits = allMatches(state.key, p1.code, from, to, state.params).filter((n) => hotp(state.key, n + 1, state.params.digits, state.params.algorithm) === p2.code);
  if (hits.length === 0) return { ok: false, reason: 'no_match' };
  if (hits.length > 1) return { ok: false, reason: 'ambiguous' };
  const second = hits[0]! + 1;
  return state.type === 'hotp' ? { ok: true, lastStep: second } : { ok: true, lastStep: second, drift: clampDrift(second - realStep) };
}

/** Enrolment confirmation: the first code proves the user's device holds the secret. */
export function confirmMatch(key: Uint8Array, params: TotpParams, code: unknown, nowMs: number, windowSteps: number): number | null {
  const parsed = parseCode(code, params.digits);
  if (parsed.kind !== 'totp') return null;
  const m = matchStep(key, parsed.code, timeStep(nowMs, params.period), windowSteps, params, -1);
  return m ? m.step : null;
}

/** Japanese first, English after: what the staff member sees for each outcome. */
export const REASON_TEXT: Record<MfaReason, string> = {
  ok: '認証しました / verified',
  recovery: '回復コードで認証しました(このコードは再利用できません) / verified with a recovery code (it cannot be used again)',
  invalid_user: 'ユーザー名が不正です / invalid user name',
  not_enrolled: '多要素認証が登録されていません / no MFA enrolment',
  not_confirmed: '多要素認証の登録が完了していません / MFA enrolment not confirmed',
  disabled: '多要素認証が無効化されています / MFA disabled for this user',
  not_assigned: 'この端末の利用は許可されていません / not assigned to this terminal',
  locked: '失敗が続いたため一時的にロックされています / temporarily locked after repeated failures',
  malformed: '認証コードの形式が正しくありません / malformed code',
  wrong_code: '認証コードが正しくありません / wrong code',
  replay: 'この認証コードは使用済みです / code already used',
  console_unreachable: '管理コンソールに接続できません / console unreachable',
  offline_unavailable: 'オフライン認証は利用できません / offline verification unavailable',
  not_own_account: 'ここでは本人のアカウントのみ認証できます / only your own account can be verified here',
  rate_limited: '試行が多すぎます。しばらく待ってから再度お試しください / too many attempts, wait a little and try again',
  error: '内部エラー / internal error',
};
