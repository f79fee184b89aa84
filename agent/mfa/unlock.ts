/**
 * Pure decisions for the unlock socket, where any local user can ask: whose code may be verified
 * (only the caller's own account, as the kernel names it), how fast (a per-uid token bucket, so
 * unlock is never a faster guessing path than login and one user cannot fill the agent's one
 * verification queue), and how often a refusal is recorded (one event per uid and reason a
 * minute, carrying the count of those folded into it, so nobody can bury the event log).
 */
import { isValidMfaUser } from '../../protocol/policy-mfa.js';
import type { LocalPeer } from '../capability.js';

export type UnlockGate =
  | { ok: true; user: string; uid: number }
  | { ok: false; reason: 'no_peer' | 'no_account' | 'invalid_user' | 'other_user'; uid: number | null };

/** Only the account getpwuid(peer uid) names may be verified on the unlock socket. */
export function unlockGate(peer: LocalPeer, requested: unknown): UnlockGate {
  if (peer.uid === null || !Number.isSafeInteger(peer.uid) || peer.uid < 0) return { ok: false, reason: 'no_peer', uid: null };
  if (!isValidMfaUser(peer.user)) return { ok: false, reason: 'no_account', uid: peer.uid };
  if (!isValidMfaUser(requested)) return { ok: false, reason: 'invalid_user', uid: peer.uid };
  // Exact match: account names are case-sensitive on Linux, and an alias is another name.
  if (requested !== peer.user) return { ok: false, reason: 'other_user', uid: peer.uid };
  return { ok: true, user: peer.user, uid: peer.uid };
}

export interface RateOptions {
  /** Attempts a uid may make at once. */
  burst: number;
  /** One more attempt every this many ms. */
  refillMs: number;
  /** Uids remembered at most; the fullest buckets are forgotten first (they have nothing owed). */
  maxKeys: number;
}

/** Five attempts, then one every 12 s: a person retyping a code never notices. */
export const UNLOCK_RATE: RateOptions = { burst: 5, refillMs: 12_000, maxKeys: 4096 };

export class RateLimiter<K> {
  private readonly buckets = new Map<K, { tokens: number; at: number }>();

  constructor(private readonly o: RateOptions = UNLOCK_RATE) {}

  /** Takes one attempt for key at nowMs; false when none is left. */
  take(key: K, nowMs: number): boolean {
    const b = this.buckets.get(key);
    let tokens = this.o.burst;
    if (b) {
      // A clock that went backwards refills nothing.
      const elapsed = Math.max(0, nowMs - b.at);
      tokens = Math.min(this.o.burst, b.tokens + elapsed / this.o.refillMs);
    }
    const ok = tokens >= 1;
    this.buckets.delete(key); // re-insert: Map order is then least recently used first
    this.buckets.set(key, { tokens: ok ? tokens - 1 : tokens, at: Math.max(nowMs, b?.at ?? nowMs) });
    if (this.buckets.size > this.o.maxKeys) this.prune(nowMs);
    return ok;
  }

  size(): number {
    return this.buckets.size;
  }

  private prune(nowMs: number): void {
    for (const [k, b] of this.buckets) {
      if (this.buckets.size <= this.o.maxKeys) return;
      if (b.tokens + Math.max(0, nowMs - b.at) / this.o.refillMs >= this.o.burst) this.buckets.delete(k);
    }
    // All still owe attempts: drop the least recently used (bounded memory beats a perfect count).
    for (const k of this.buckets.keys()) {
      if (this.buckets.size <= this.o.maxKeys) return;
      this.buckets.delete(k);
    }
  }
}

/**
 * One recorded event per key and window; the next one recorded says how many were folded since.
 * Returns null when this occurrence is folded, else the count folded before it.
 */
export class EventFold {
  private readonly seen = new Map<string, { windowStart: number; folded: number }>();

  constructor(
    private readonly windowMs = 60_000,
    private readonly maxKeys = 4096,
  ) {}

  record(key: string, nowMs: number): { folded: number } | null {
    const s = this.seen.get(key);
    if (s && nowMs >= s.windowStart && nowMs - s.windowStart < this.windowMs) {
      s.folded++;
      return null;
    }
    const folded = s?.folded ?? 0;
    this.seen.delete(key);
    this.seen.set(key, { windowStart: nowMs, folded: 0 });
    if (this.seen.size > this.maxKeys) {
      const oldest = this.seen.keys().next();
      if (!oldest.done) this.seen.delete(oldest.value);
    }
    return { folded };
  }
}
