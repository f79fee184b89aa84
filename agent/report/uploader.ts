/**
 * Moves events from the outbox to the console: batches, deletes only what the console acked,
 * retries with exponential backoff and full jitter (so a fleet does not stampede a console
 * that comes back), waits as long as the console asks when it is over a limit (429/503 with
 * Retry-After: the events stay in the outbox), and isolates an event the console refuses for
 * good instead of blocking.
 */
import { randomUUID } from 'node:crypto';
import { resendHintCheck, type UploadResponse } from '../../protocol/api.js';
import { isObject } from '../../protocol/validate.js';
import type { AgentEventType } from '../../protocol/events.js';
import type { ConsoleLink, ConsoleReply, LogLevel, TypedEvent } from '../capability.js';
import type { Outbox } from './outbox.js';

export interface UploaderOptions {
  batchSize: () => number;
  maxBackoffMs: () => number;
  log: (level: LogLevel, m: string) => void;
  emit: <T extends AgentEventType>(e: TypedEvent<T>) => void;
}

/** Backoff before retry number `attempt` (1-based): full jitter over an exponential ceiling. */
export function backoffMs(attempt: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, 500 * 2 ** Math.min(attempt - 1, 20));
  return Math.max(100, Math.floor(random() * ceiling));
}

/** Longest wait a Retry-After can impose (a wrong console must not silence a terminal for days). */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/**
 * The wait a 429/503 reply asks for (Retry-After in seconds, as the console sends it), clamped to
 * 1 s .. MAX_RETRY_AFTER_MS so it can neither hot-loop nor stall; null when there is none.
 */
export function retryAfterMs(reply: ConsoleReply): number | null {
  if (reply.status !== 429 && reply.status !== 503) return null;
  const headers = reply.headers;
  const raw = headers?.['retry-after'];
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (v === undefined || !/^\s*\d{1,9}\s*$/.test(v)) return null;
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(1_000, Number(v) * 1000));
}

/**
 * A console's wait with jitter added (up to +20 %, at most +30 s), so a fleet refused by a full
 * console does not come back in the same second; still within MAX_RETRY_AFTER_MS.
 */
export function jittered(waitMs: number, random = Math.random): number {
  const extra = Math.floor(random() * Math.min(waitMs * 0.2, 30_000));
  return Math.min(MAX_RETRY_AFTER_MS, waitMs + Math.max(0, extra));
}

/**
 * What to re-queue from a console's answer (issue 17, re-send after a restore): the `missing` ranges,
 * and everything above the console's head (`headSeq`, else `lastContiguousSeq` from a console that
 * sends only that). Null when the answer carries no hint (an older console) or a malformed one. Pure.
 */
export function resendPlan(body: unknown): { ranges: { from: number; to: number }[]; above: number | null } | null {
  if (!isObject(body) || !resendHintCheck.check(body)) return null;
  const above = body.headSeq ?? body.lastContiguousSeq ?? null;
  const ranges = (body.missing ?? []).filter((r) => r.from <= r.to);
  if (above === null && ranges.length === 0) return null;
  return { ranges, above };
}

export class Uploader {
  private running = false;
  private wake: (() => void) | null = null;
  private failures = 0;
  /** No upload before this time (ms): the console asked us to wait. */
  private notBefore = 0;
  private limited = 0;
  lastSuccess: string | null = null;
  lastError: string | null = null;
  /** Smaller batch size while isolating an event the console refuses. */
  private isolating: number | null = null;

  constructor(
    private readonly outbox: Outbox,
    private readonly link: ConsoleLink,
    private readonly opts: UploaderOptions,
  ) {
    // An append wakes the upload on the next turn of the event loop, never inside the caller's
    // await: whoever emitted (e.g. the USB enforcer between recording and writing sysfs) finishes first.
    outbox.onAppend(() => setImmediate(() => this.poke()));
    // The uploader is what pairs the outbox with the console link: from here on events carry the
    // console-corrected time (the console trusts an agent's ts only up to 5 minutes ahead of its own).
    outbox.useClock(() => link.consoleNow());
  }

  /**
   * An upload or heartbeat answer: re-queue what the console says it lacks from the events already
   * delivered (a console restored from a backup lacks what its predecessor acknowledged after it).
   */
  observeConsole(body: unknown): number {
    const plan = resendPlan(body);
    if (!plan) return 0;
    // Nothing delivered above the console's head and no missing range: nothing to do (cheap path).
    if (plan.ranges.length === 0 && plan.above !== null && plan.above >= this.outbox.lastDelivered()) return 0;
    const n = this.outbox.requeue(plan.ranges, plan.above);
    if (n > 0) this.opts.log('warn', `console lacks ${n} delivered event(s) (head #${String(plan.above)}); sending them again`);
    return n;
  }

  poke(): void {
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  stop(): void {
    this.running = false;
    this.poke();
  }

  /** Uploads until the outbox is empty or `deadline` passes (used at shutdown). */
  async flush(deadline: number): Promise<void> {
    while (Date.now() < deadline && this.outbox.depth() > 0) {
      if (!(await this.uploadOnce())) return;
    }
  }

  private async loop(): Promise<void> {
    while (this.running) {
      // An append or a heartbeat wakes the sleep early; the console's wait still holds.
      const wait = this.notBefore - Date.now();
      if (wait > 0) {
        await this.sleep(wait);
        continue;
      }
      let progressed = false;
      try {
        progressed = await this.uploadOnce();
      } catch (e) {
        this.opts.log('error', `upload loop: ${(e as Error).message}`);
      }
      if (!this.running) break;
      if (progressed || this.notBefore > Date.now()) continue;
      if (this.failures > 0) await this.sleep(backoffMs(this.failures, this.opts.maxBackoffMs()));
      else await this.sleep(5_000); // idle: woken by the next append
    }
  }

  /** One batch. Returns true when events left the outbox (more may be waiting). */
  private async uploadOnce(): Promise<boolean> {
    if (Date.now() < this.notBefore) return false;
    const batch = this.outbox.pending(this.isolating ?? this.opts.batchSize());
    if (batch.length === 0) {
      this.failures = 0;
      this.isolating = null;
      return false;
    }
    let reply;
    try {
      reply = await this.link.request('POST', '/api/agent/events', { batchId: randomUUID(), events: batch }, 30_000);
    } catch (e) {
      this.failures++;
      this.lastError = (e as Error).message;
      if (this.failures === 1 || this.failures % 20 === 0) this.opts.log('warn', `console unreachable, ${this.outbox.depth()} event(s) kept: ${this.lastError}`);
      return false;
    }
    if (reply.status === 200 && isObject(reply.body) && Array.isArray(reply.body.acked)) {
      const acked = (reply.body as unknown as UploadResponse).acked.filter((s) => Number.isSafeInteger(s));
      this.outbox.acknowledge(acked);
      this.observeConsole(reply.body);
      this.failures = 0;
      this.limited = 0;
      this.lastSuccess = new Date().toISOString();
      return acked.length > 0;
    }
    const message = isObject(reply.body) && typeof reply.body.message === 'string' ? reply.body.message : `HTTP ${reply.status}`;
    this.lastError = message;
    // Without a usable Retry-After, a 429 still waits (the backoff), and a poke does not cut it short.
    const asked = retryAfterMs(reply);
    // A 503 (a full console disk) refuses the whole fleet at once: jitter spreads its return. A 429's
    // wait is this agent's own token bucket, exact already.
    const wait = asked !== null ? (reply.status === 503 ? jittered(asked) : asked) : reply.status === 429 || reply.status === 503 ? backoffMs(++this.failures, this.opts.maxBackoffMs()) : null;
    if (wait !== null) {
      // Over the console's limit: nothing is dropped or set aside, the batch is sent again after the wait.
      this.notBefore = Date.now() + wait;
      this.limited++;
      if (this.limited === 1 || this.limited % 20 === 0) this.opts.log('warn', `console asks to wait ${Math.round(wait / 1000)} s (${reply.status}), ${this.outbox.depth()} event(s) kept: ${message}`);
      return false;
    }
    if ((reply.status === 400 || reply.status === 409 || reply.status === 413) && batch.length === 1) {
      // The console refuses this one event for good: keep it on disk, note why, move on.
      const seq = batch[0]!.seq;
      this.outbox.deadLetter(seq, message);
      this.isolating = null;
      this.opts.log('error', `event #${seq} refused by the console and set aside: ${message}`);
      this.opts.emit({ type: 'agent.error', data: { stage: 'upload', seq, reason: message.slice(0, 500) } });
      return true;
    }
    if (reply.status === 400 || reply.status === 409 || reply.status === 413) {
      // Find the culprit by retrying in halves; good events before it go through meanwhile.
      this.failures = 0;
      this.isolating = Math.max(1, Math.floor(batch.length / 2));
      return true;
    }
    this.failures++;
    this.opts.log('warn', `upload refused (${reply.status}): ${message}`);
    return false;
  }

}
