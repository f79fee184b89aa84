/**
 * Moves events from the outbox to the console: batches, deletes only what the console acked,
 * retries with exponential backoff and full jitter (so a fleet does not stampede a console
 * that comes back), and isolates an event the console refuses for good instead of blocking.
 */
import { randomUUID } from 'node:crypto';
import type { UploadResponse } from '../../protocol/api.js';
import { isObject } from '../../protocol/validate.js';
import type { ConsoleLink, LogLevel, NewEvent } from '../capability.js';
import type { Outbox } from './outbox.js';

export interface UploaderOptions {
  batchSize: () => number;
  maxBackoffMs: () => number;
  log: (level: LogLevel, m: string) => void;
  emit: (e: NewEvent) => void;
}

/** Backoff before retry number `attempt` (1-based): full jitter over an exponential ceiling. */
export function backoffMs(attempt: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, 500 * 2 ** Math.min(attempt - 1, 20));
  return Math.max(100, Math.floor(random() * ceiling));
}

export class Uploader {
  private running = false;
  private wake: (() => void) | null = null;
  private failures = 0;
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
      let progressed = false;
      try {
        progressed = await this.uploadOnce();
      } catch (e) {
        this.opts.log('error', `upload loop: ${(e as Error).message}`);
      }
      if (!this.running) break;
      if (progressed) continue;
      if (this.failures > 0) await this.sleep(backoffMs(this.failures, this.opts.maxBackoffMs()));
      else await this.sleep(5_000); // idle: woken by the next append
    }
  }

  /** One batch. Returns true when events left the outbox (more may be waiting). */
  private async uploadOnce(): Promise<boolean> {
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
      this.failures = 0;
      this.lastSuccess = new Date().toISOString();
      return acked.length > 0;
    }
    const message = isObject(reply.body) && typeof reply.body.message === 'string' ? reply.body.message : `HTTP ${reply.status}`;
    this.lastError = message;
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
