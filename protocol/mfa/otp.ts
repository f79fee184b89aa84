/**
 * HOTP (RFC 4226) and TOTP (RFC 6238) on node:crypto. This is the code production verifies with
 * (console and agent offline cache alike) and the code the RFC vector tests run against; otplib is
 * used for secret generation and otpauth URIs, where it fits. Own implementation because the RFC
 * 6238 Appendix B vectors use 20/32/64-byte seeds with 8 digits for SHA1/SHA256/SHA512.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export type OtpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';
export const OTP_ALGORITHMS: readonly OtpAlgorithm[] = ['SHA1', 'SHA256', 'SHA512'];

export interface TotpParams {
  algorithm: OtpAlgorithm;
  digits: 6 | 8;
  period: number; // seconds, 30 or 60
}

export const DEFAULT_TOTP: TotpParams = { algorithm: 'SHA1', digits: 6, period: 30 };

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32, case-insensitive, spaces and padding ignored. Returns null on a bad character. */
export function base32Decode(text: string): Buffer | null {
  const clean = text.replace(/[\s=-]/g, '').toUpperCase();
  if (clean.length === 0 || clean.length > 1024) return null;
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of clean) {
    const idx = B32.indexOf(ch);
    if (idx < 0) return null;
    value = (value << 5) | idx;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

export function base32Encode(buf: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of buf) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

/** RFC 4226 §5.3: HMAC, dynamic truncation, modulo 10^digits, left-padded. */
export function hotp(key: Uint8Array, counter: number, digits: number = 6, algorithm: OtpAlgorithm = 'SHA1'): string {
  if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError('hotp: counter must be a non-negative integer');
  // 6–8 digits only (RFC 4226 §5.3; 9+ would exceed the 31-bit truncation's precision of meaning).
  if (digits !== 6 && digits !== 7 && digits !== 8) throw new RangeError('hotp: digits must be 6, 7 or 8');
  if (!OTP_ALGORITHMS.includes(algorithm)) throw new RangeError('hotp: unknown algorithm');
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(algorithm.toLowerCase(), key).update(msg).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const bin = ((mac[offset]! & 0x7f) << 24) | (mac[offset + 1]! << 16) | (mac[offset + 2]! << 8) | mac[offset + 3]!;
  return String(bin % 10 ** digits).padStart(digits, '0');
}

/** The RFC 6238 time step T = floor((unixSeconds - T0) / X). */
export function timeStep(unixMs: number, period = 30, t0 = 0): number {
  return Math.floor((Math.floor(unixMs / 1000) - t0) / period);
}

export function totp(key: Uint8Array, unixMs: number, p: TotpParams = DEFAULT_TOTP): string {
  return hotp(key, timeStep(unixMs, p.period), p.digits, p.algorithm);
}

function sameCode(a: string, b: string): boolean {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}

/**
 * Finds the time step within ±window of `nowStep` whose code equals `code`, checking every
 * candidate (no early exit, constant-time compare) so timing does not reveal which step matched.
 * Steps ≤ afterStep are replays: they are reported as such, never accepted.
 */
export function matchStep(
  key: Uint8Array,
  code: string,
  nowStep: number,
  window: number,
  p: TotpParams,
  afterStep: number,
): { step: number; replay: boolean } | null {
  return matchRange(key, code, nowStep - window, nowStep + window, p, afterStep);
}

/** The largest range matchRange walks: bounds the work a hostile window or counter can cause. */
export const MAX_MATCH_RANGE = 2001;

/**
 * Every counter/step in [from, to] (clipped to 0 … MAX_SAFE_INTEGER) is checked, no early exit.
 * Used for TOTP (a window around the drifted now), HOTP (look-ahead after the last used counter)
 * and resynchronisation (a wider range). A range wider than MAX_MATCH_RANGE is refused.
 */
export function matchRange(
  key: Uint8Array,
  code: string,
  from: number,
  to: number,
  p: Pick<TotpParams, 'algorithm' | 'digits'>,
  afterStep: number,
): { step: number; replay: boolean } | null {
  if (!Number.isFinite(from) || !Number.isFinite(to)) return null;
  const lo = Math.max(0, Math.ceil(from));
  const hi = Math.min(Number.MAX_SAFE_INTEGER, Math.floor(to));
  if (hi < lo || hi - lo + 1 > MAX_MATCH_RANGE) return null;
  let found: { step: number; replay: boolean } | null = null;
  for (let s = lo; s <= hi; s++) {
    const hit = sameCode(hotp(key, s, p.digits, p.algorithm), code);
    // Prefer a fresh match over a replayed one (two steps can share a code by chance).
    if (hit && (found === null || (found.replay && s > afterStep))) found = { step: s, replay: s <= afterStep };
  }
  return found;
}

/** Every counter/step in [from, to] at which `code` matches (resync needs all of them, not one). */
export function allMatches(key: Uint8Array, code: string, from: number, to: number, p: Pick<TotpParams, 'algorithm' | 'digits'>): number[] {
  const lo = Math.max(0, Math.ceil(from));
  const hi = Math.min(Number.MAX_SAFE_INTEGER, Math.floor(to));
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || hi < lo || hi - lo + 1 > MAX_MATCH_RANGE) return [];
  const out: number[] = [];
  for (let s = lo; s <= hi; s++) if (sameCode(hotp(key, s, p.digits, p.algorithm), code)) out.push(s);
  return out;
}
