/**
 * Who is told, and when (issue 15): the pure decision for one notice, and the Notifier that runs
 * it and hands the text to the platform's delivery. Delivery never blocks or slows enforcement:
 * ctx.notify() returns at once, each delivery is bounded in time by the platform, a failure is
 * logged and counted, never retried.
 */
import { noticeText, type Notice, type NoticeSettings } from '../../protocol/notice.js';

/** A logged-in user's desktop session the platform can deliver to. */
export interface NoticeSession {
  /** Account name ('' = the test override: whoever the notice is for). */
  user: string;
  uid: number;
  gid: number;
  /** Linux: the session bus address (unix:path=…); Windows: unused (''). */
  address: string;
  lang: 'ja' | 'en';
}

export interface NoticeDelivery {
  readonly name: string;
  /** The sessions notices can go to now ([] when nobody is logged in). Must not throw. */
  sessions(): NoticeSession[];
  /**
   * Shows one notice; rejects on failure; settles within the platform's time bound. 'nobody' when
   * the platform found no one to show it to only at delivery (Windows: no active console session).
   */
  deliver(s: NoticeSession, text: { summary: string; body: string }, n: Notice): Promise<'shown' | 'nobody'>;
}

/** What the notifier remembers between notices (bounded). */
export interface NoticeMemory {
  /** Keys already shown (one device on one plug), oldest first. */
  seen: Map<string, number>;
  /** When recent notices were shown (ms) per kind, for the rate bound: programs cannot starve devices. */
  recent: Map<string, number[]>;
}

export const SEEN_MAX = 1024;
/** A hostile device that re-enumerates endlessly must not flood the desktop. */
export const RATE_WINDOW_MS = 60_000;
export const RATE_MAX = 6;

export type NoticeDecision =
  | { show: true; targets: NoticeSession[] }
  | { show: false; why: 'disabled' | 'monitor' | 'duplicate' | 'nobody' | 'rate' };

export function newMemory(): NoticeMemory {
  return { seen: new Map(), recent: new Map() };
}

/**
 * Decides one notice and updates the memory: disabled by policy → nothing; monitor mode →
 * nothing unless the policy asks; a key already shown → nothing (one notice per device per
 * plug; a re-plug carries a new key); nobody logged in → nothing (and the key counts as used:
 * logging in later does not replay an old plug); more than RATE_MAX of one kind in RATE_WINDOW_MS → nothing.
 */
export function decideNotice(n: Notice, settings: NoticeSettings, sessions: readonly NoticeSession[], mem: NoticeMemory, nowMs: number): NoticeDecision {
  if (!settings.enabled) return { show: false, why: 'disabled' };
  if (n.monitor === true && !settings.monitor) return { show: false, why: 'monitor' };
  if (n.key !== undefined) {
    if (mem.seen.has(n.key)) return { show: false, why: 'duplicate' };
    mem.seen.set(n.key, nowMs);
    while (mem.seen.size > SEEN_MAX) mem.seen.delete(mem.seen.keys().next().value as string);
  }
  const targets = sessions.filter((s) => s.user === '' || n.user === '' || s.user === n.user);
  if (!targets.length) return { show: false, why: 'nobody' };
  const recent = (mem.recent.get(n.kind) ?? []).filter((t) => t > nowMs - RATE_WINDOW_MS && t <= nowMs);
  mem.recent.set(n.kind, recent);
  if (recent.length >= RATE_MAX) return { show: false, why: 'rate' };
  recent.push(nowMs);
  return { show: true, targets };
}

export interface NotifierCounters {
  shown: number;
  failed: number;
  suppressed: Record<'disabled' | 'monitor' | 'duplicate' | 'nobody' | 'rate' | 'busy', number>;
}

/** Deliveries in flight at once; more are dropped (counted), never queued without bound. */
export const MAX_IN_FLIGHT = 4;

export class Notifier {
  private mem = newMemory();
  private inFlight = 0;
  private pending = new Set<Promise<void>>();
  readonly counters: NotifierCounters = { shown: 0, failed: 0, suppressed: { disabled: 0, monitor: 0, duplicate: 0, nobody: 0, rate: 0, busy: 0 } };

  constructor(
    private readonly delivery: NoticeDelivery,
    private readonly settings: () => NoticeSettings,
    private readonly log: (level: 'debug' | 'info' | 'warn', m: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Fire-and-forget: never throws, never awaits the platform. The decision (which reads who is
   * logged in) runs on a later turn, so the capability's enforcement right after the event goes
   * first; notices keep their order.
   */
  notify(n: Notice): void {
    setImmediate(() => this.run(n));
  }

  /** The decision and the start of delivery for one notice (synchronous up to the platform call). */
  run(n: Notice): void {
    let d: NoticeDecision;
    try {
      d = decideNotice(n, this.settings(), this.delivery.sessions(), this.mem, this.now());
    } catch (e) {
      this.counters.failed++;
      this.log('warn', `notice: ${n.kind}: ${(e as Error).message}`);
      return;
    }
    if (!d.show) {
      this.counters.suppressed[d.why]++;
      this.log('debug', `notice: ${n.kind} not shown (${d.why})`);
      return;
    }
    for (const s of d.targets) {
      if (this.inFlight >= MAX_IN_FLIGHT) {
        this.counters.suppressed.busy++;
        this.log('warn', `notice: ${n.kind} dropped: ${MAX_IN_FLIGHT} deliveries still running`);
        continue;
      }
      this.inFlight++;
      const p: Promise<void> = this.delivery
        .deliver(s, noticeText(n, s.lang), n)
        .then(
          (r) => {
            if (r === 'nobody') {
              this.counters.suppressed.nobody++;
              this.log('debug', `notice: ${n.kind} not shown (nobody at the console)`);
              return;
            }
            this.counters.shown++;
            this.log('info', `notice: ${n.kind} shown to ${s.user || `uid ${s.uid}`} (${this.delivery.name})`);
          },
          (e: unknown) => {
            this.counters.failed++;
            this.log('warn', `notice: ${n.kind} to ${s.user || `uid ${s.uid}`} failed (${this.delivery.name}): ${(e as Error).message}`);
          },
        )
        .finally(() => {
          this.inFlight--;
          this.pending.delete(p);
        });
      this.pending.add(p);
    }
  }

  /** Waits (bounded) for deliveries in flight; for shutdown and tests. */
  async settle(timeoutMs = 5_000): Promise<void> {
    await Promise.race([Promise.allSettled([...this.pending]), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }
}
