/**
 * Limits for everything an unauthenticated or enrolled-but-compromised client can call:
 * token buckets per key (address, agent, user), a concurrency cap, and the 429 answer.
 * In memory on purpose: limits protect this process; a restart forgets them, the account
 * lockouts that must survive a restart live in the database.
 */
import { HttpError } from '../module.js';

export interface RateLimit {
  /** Requests allowed at once before the rate applies. */
  burst: number;
  /** Requests regained per second. */
  perSecond: number;
}

interface Bucket {
  tokens: number;
  at: number; // ms, when `tokens` was last computed
}

/**
 * Token bucket per key. The key table is bounded: when full, buckets that have refilled
 * completely are dropped first (they hold no memory of abuse); if none has, the oldest-touched
 * bucket is dropped, so a flood of fresh keys cannot grow memory without end.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly limit: RateLimit,
    private readonly maxKeys = 10_000,
  ) {}

  private current(key: string, now: number): Bucket {
    const b = this.buckets.get(key);
    if (!b) return { tokens: this.limit.burst, at: now };
    const tokens = Math.min(this.limit.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * this.limit.perSecond);
    return { tokens, at: now };
  }

  /** Takes `cost` tokens for `key`; false (and nothing taken) when there are not enough. */
  take(key: string, now = Date.now(), cost = 1): boolean {
    const b = this.current(key, now);
    if (b.tokens < cost) {
      this.store(key, b);
      return false;
    }
    b.tokens -= cost;
    this.store(key, b);
    return true;
  }

  /** Whole seconds until `cost` tokens are available again for `key` (0 = now). */
  retryAfterSeconds(key: string, now = Date.now(), cost = 1): number {
    const b = this.current(key, now);
    if (b.tokens >= cost) return 0;
    return Math.max(1, Math.ceil((cost - b.tokens) / this.limit.perSecond));
  }

  /** Throws the 429 answer when `key` is over its limit. */
  check(key: string, what: string, now = Date.now(), cost = 1): void {
    if (!this.take(key, now, cost)) throw tooManyRequests(this.retryAfterSeconds(key, now, cost), what);
  }

  get size(): number {
    return this.buckets.size;
  }

  private store(key: string, b: Bucket): void {
    this.buckets.delete(key); // re-insert: Map order is then least recently touched first
    this.buckets.set(key, b);
    if (this.buckets.size <= this.maxKeys) return;
    for (const k of this.buckets.keys()) {
      if (k !== key && this.current(k, b.at).tokens >= this.limit.burst) {
        this.buckets.delete(k);
        return;
      }
    }
    const oldest = this.buckets.keys().next().value;
    if (oldest !== undefined && oldest !== key) this.buckets.delete(oldest);
  }
}

/** At most `max` at once; `tryEnter` refuses instead of queueing (a queue is memory an attacker fills). */
export class ConcurrencyLimit {
  private active = 0;
  constructor(readonly max: number) {}

  tryEnter(): boolean {
    if (this.active >= this.max) return false;
    this.active++;
    return true;
  }

  leave(): void {
    this.active = Math.max(0, this.active - 1);
  }

  /** Runs `f` inside the limit, or throws 503 when it is full. */
  async run<T>(f: () => Promise<T>, what: string): Promise<T> {
    if (!this.tryEnter()) throw new HttpError(503, 'busy', `too many ${what} at once; try again shortly`, undefined, { 'retry-after': '1' });
    try {
      return await f();
    } finally {
      this.leave();
    }
  }

  get inUse(): number {
    return this.active;
  }
}

/** 429 with Retry-After; the message says what was limited (clients show it, agents honour the header). */
export function tooManyRequests(retryAfterSeconds: number, what: string): HttpError {
  const s = Math.max(1, Math.ceil(retryAfterSeconds));
  return new HttpError(429, 'rate_limited', `too many ${what}; retry after ${s} s`, undefined, { 'retry-after': String(s) });
}

/**
 * The "address" that limits and lock sources count: IPv4 as it is; IPv6 by its /64, because one
 * host is routinely given a whole /64 and could otherwise be a new address per request.
 */
export function sourceKey(address: string): string {
  const a = address.trim().toLowerCase().replace(/%.*$/, '');
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(a);
  if (mapped) return mapped[1]!;
  if (!a.includes(':')) return a;
  const [head = '', tail] = a.split('::', 2) as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  if (groups.length !== 8 || !groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return a; // not IPv6 after all: as it is
  return groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':') + '::/64';
}
