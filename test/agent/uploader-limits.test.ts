/**
 * Issue 10, item 4: the console answers a flooding agent 429 with Retry-After. The uploader must
 * keep those events in its outbox (never drop or set them aside) and send them again after the
 * wait, without hot-looping when appends and heartbeats poke it meanwhile. Fake timers drive the
 * clock: no wall-clock assertion.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ConsoleLink, ConsoleReply } from '../../agent/capability.js';
import { Outbox } from '../../agent/report/outbox.js';
import { MAX_RETRY_AFTER_MS, retryAfterMs, Uploader } from '../../agent/report/uploader.js';

const AGENT = '0b7c3c1e-8d0b-4b8e-9f5e-2d6f1a3b4c5d';

describe('retryAfterMs', () => {
  const r = (status: number, v?: string | string[]) => ({ status, body: null, headers: v === undefined ? {} : { 'retry-after': v } }) as ConsoleReply;
  it.each([
    [r(429, '3'), 3_000],
    [r(429, '0'), 1_000], // never a hot loop
    [r(429, '999999999'), MAX_RETRY_AFTER_MS], // never silenced for days by a wrong console
    [r(503, '2'), 2_000],
    [r(429, ['5']), 5_000],
    [r(429, 'Wed, 21 Oct 2026 07:28:00 GMT'), null],
    [r(429, '-1'), null],
    [r(429), null],
    [{ status: 429, body: null } as ConsoleReply, null],
    [r(200, '3'), null],
    [r(400, '3'), null],
  ])('%j → %j', (reply, want) => {
    expect(retryAfterMs(reply)).toBe(want);
  });
});

describe('uploader under a console rate limit', () => {
  let dir: string;
  let outbox: Outbox;
  let uploader: Uploader | null = null;
  const calls: number[][] = [];
  let replies: ((seqs: number[]) => ConsoleReply)[] = [];
  const link: ConsoleLink = {
    async request(_method, _path, body) {
      const seqs = (body as { events: { seq: number }[] }).events.map((e) => e.seq);
      calls.push(seqs);
      const next = replies.shift() ?? ((s: number[]) => ({ status: 200, body: { acked: s, stored: s.length, duplicates: 0 } }));
      return next(seqs);
    },
    consoleNow: () => new Date(),
    reachable: () => true,
  };
  const limited = (retryAfter?: string) => () => ({ status: 429, body: { error: 'rate_limited', message: 'too many events from this terminal' }, headers: retryAfter ? { 'retry-after': retryAfter } : {} }) as ConsoleReply;

  beforeEach(() => {
    vi.useFakeTimers();
    dir = mkdtempSync(join(tmpdir(), 'sekimori-uploader-'));
    outbox = new Outbox(join(dir, 'outbox.db'), AGENT);
    calls.length = 0;
    replies = [];
  });
  afterEach(() => {
    uploader?.stop();
    vi.useRealTimers();
    outbox.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function start() {
    uploader = new Uploader(outbox, link, { batchSize: () => 100, maxBackoffMs: () => 30_000, log: () => {}, emit: (e) => outbox.append(e) });
    uploader.start();
  }

  it('keeps the events and sends them again only after Retry-After, however often it is poked', async () => {
    for (let i = 0; i < 10; i++) outbox.append({ type: 'usb.blocked', data: { i } });
    replies = [limited('30')];
    start();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(1);
    expect(outbox.depth()).toBe(10);
    expect(outbox.deadLetters()).toEqual([]);
    // Appends and heartbeats poke the uploader during the wait: no request before the 30 s are up.
    for (let i = 0; i < 20; i++) {
      outbox.append({ type: 'usb.blocked', data: { more: i } });
      uploader!.poke();
      await vi.advanceTimersByTimeAsync(1_000);
    }
    await vi.advanceTimersByTimeAsync(10_000 - 1); // 30 s less 1 ms after the 429
    expect(calls).toHaveLength(1);
    expect(outbox.depth()).toBe(30);
    await vi.advanceTimersByTimeAsync(2);
    expect(calls.length).toBeGreaterThanOrEqual(2);
    expect(calls[1]![0]).toBe(1); // the same events again, from the start
    await vi.advanceTimersByTimeAsync(0);
    expect(outbox.depth()).toBe(0);
    expect(outbox.deadLetters()).toEqual([]);
  });

  it('waits a backoff on a 429 without Retry-After, and pokes do not cut it short', async () => {
    outbox.append({ type: 'usb.blocked', data: {} });
    replies = [limited()];
    start();
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(1);
    for (let i = 0; i < 9; i++) {
      uploader!.poke();
      await vi.advanceTimersByTimeAsync(10); // backoff is at least 100 ms
    }
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(calls).toHaveLength(2);
    expect(outbox.depth()).toBe(0);
  });

  it('stamps events with the console-corrected clock once it pairs the outbox with the link', () => {
    const skewed: ConsoleLink = { ...link, consoleNow: () => new Date('2026-11-29T12:00:00.000Z') };
    uploader = new Uploader(outbox, skewed, { batchSize: () => 100, maxBackoffMs: () => 30_000, log: () => {}, emit: () => {} });
    expect(outbox.append({ type: 'usb.blocked', data: {} }).ts).toBe('2026-11-29T12:00:00.000Z');
  });
});
