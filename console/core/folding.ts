/**
 * Folding of events anyone can cause. Unauthenticated requests (bad enrolment tokens, failed
 * logins, cross-origin posts, /validate/check without a client) each used to append to the
 * console's hash chain, so a flood of them buried the real admin.* events. Now the first event
 * per key and window is recorded at once (an administrator sees the attack start), the rest are
 * counted, and one summary event of the same type carries the count when the window ends.
 */
import type { ConsoleEventInput } from '../module.js';

export const FOLD_WINDOW_MS = 60_000;
/** Distinct keys per window; beyond this every new key folds into one overflow key. */
export const FOLD_MAX_KEYS = 200;
const OVERFLOW_KEY = '*';

interface Fold {
  first: ConsoleEventInput;
  last: ConsoleEventInput;
  firstSeen: number;
  lastSeen: number;
  repeated: number; // events after the first, not yet written
}

export class EventFolder {
  private window = new Map<string, Fold>();
  private windowStart = 0;

  constructor(
    private readonly write: (e: ConsoleEventInput) => void,
    private readonly windowMs = FOLD_WINDOW_MS,
    private readonly maxKeys = FOLD_MAX_KEYS,
  ) {}

  record(e: ConsoleEventInput, key: string, now = Date.now()): void {
    this.flush(now);
    if (this.window.size === 0) this.windowStart = now;
    let k = key;
    if (!this.window.has(k) && this.window.size >= this.maxKeys) k = OVERFLOW_KEY;
    const f = this.window.get(k);
    if (f) {
      f.repeated++;
      f.last = e;
      f.lastSeen = now;
      return;
    }
    this.window.set(k, { first: e, last: e, firstSeen: now, lastSeen: now, repeated: 0 });
    // The overflow key's first event says so: its data may describe a different source than the rest.
    this.write(k === OVERFLOW_KEY ? { ...e, data: { ...e.data, folded: 'overflow' } } : e);
  }

  /** Writes the summaries of a window that has ended (or of everything, with `force`: on shutdown). */
  flush(now = Date.now(), force = false): void {
    if (this.window.size === 0 || (!force && now - this.windowStart < this.windowMs)) return;
    const ended = this.window;
    this.window = new Map();
    for (const [key, f] of ended) {
      if (f.repeated === 0) continue;
      this.write({
        ...f.last,
        data: {
          ...f.last.data,
          repeated: f.repeated,
          firstSeen: new Date(f.firstSeen).toISOString(),
          lastSeen: new Date(f.lastSeen).toISOString(),
          ...(key === OVERFLOW_KEY ? { folded: 'overflow' } : {}),
        },
      });
    }
  }
}
