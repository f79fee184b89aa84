/**
 * Password hashing for console accounts (scrypt, per-password salt, constant-time compare).
 * Asynchronous on purpose: scrypt costs ~50-100 ms of CPU, and the synchronous form ran on the
 * event loop, so a flood of unauthenticated logins stalled every agent's heartbeat. crypto.scrypt
 * runs on libuv's thread pool instead. Stored format unchanged: scrypt$N$r$p$salt$hash (base64).
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const N = 16384;
const R = 8;
const P = 1;
/** Parameters read from a stored hash are bounded, so a bad row cannot ask for gigabytes. */
const MAX_N = 1 << 20;
const MAX_MEM = 64 * 1024 * 1024;

function scryptAsync(password: string, salt: Buffer, keylen: number, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, keylen, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const hash = await scryptAsync(password, salt, 32, { N, r: R, p: P });
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** False for a wrong password and for a malformed stored hash (never throws for either). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![n, r, p].every((x) => Number.isSafeInteger(x) && x > 0) || n > MAX_N || 128 * n * r > MAX_MEM || p > 16) return false;
  const expected = Buffer.from(parts[5]!, 'base64');
  if (expected.length < 16 || expected.length > 64) return false;
  let actual: Buffer;
  try {
    actual = await scryptAsync(password, Buffer.from(parts[4]!, 'base64'), expected.length, { N: n, r, p, maxmem: MAX_MEM + 1024 * 1024 });
  } catch {
    return false; // e.g. N not a power of two
  }
  return timingSafeEqual(actual, expected);
}

/**
 * A stored-format hash no password matches (random salt and digest), at today's cost: checked
 * when an account does not exist, so the reply takes as long as for a real one.
 */
export function unmatchableHash(): string {
  return `scrypt$${N}$${R}$${P}$${randomBytes(16).toString('base64')}$${randomBytes(32).toString('base64')}`;
}

/** A password people can type from a printout: no 0/O/1/l/I. */
export function generatePassword(length = 16): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';
  const bytes = randomBytes(length);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}
