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
  let found: { step: number; replay: boolean } | null = null;
  for (let d = -window; d <= window; d++) {
    const s = nowStep + d;
    if (s < 0) continue;
    const hit = sameCode(hotp(key, s, p.digits, p.algorithm), code);
    // Prefer a fresh match over a replayed one (two steps can share a code by chance).
    if (hit && (found === null || (found.replay && s > afterStep))) found = { step: s, replay: s <= afterStep };
  }
  return found;
}
