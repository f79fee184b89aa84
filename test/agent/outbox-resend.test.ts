/** Issue 17: the agent side of the re-send after a console restore (pure plan + the uploader hook). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox } from '../../agent/report/outbox.js';
import { MAX_RETRY_AFTER_MS, Uploader, jittered, resendPlan } from '../../agent/report/uploader.js';
import type { ConsoleLink, ConsoleReply } from '../../agent/capability.js';

describe('resendPlan (pure)', () => {
  it.each([
    ['an older console (no hint)', { serverTime: 'x', policyVersion: 1 }, null],
    ['head only', { headSeq: 10 }, { ranges: [], above: 10 }],
    ['lastContiguousSeq only (contract name)', { lastContiguousSeq: 7 }, { ranges: [], above: 7 }],
    ['head wins over lastContiguousSeq', { headSeq: 10, lastContiguousSeq: 3, missing: [{ from: 4, to: 5 }] }, { ranges: [{ from: 4, to: 5 }], above: 10 }],
    ['inverted range ignored', { headSeq: 10, missing: [{ from: 5, to: 4 }] }, { ranges: [], above: 10 }],
    ['negative head', { headSeq: -1 }, null],
    ['2^53 head', { headSeq: 2 ** 53 }, null],
    ['string head', { headSeq: '10' }, null],
    ['65 ranges (over the limit)', { headSeq: 1, missing: Array.from({ length: 65 }, (_, i) => ({ from: i + 1, to: i + 1 })) }, null],
    ['not an object', [1, 2], null],
    ['null', null, null],
  ])('%s', (_n, body, plan) => {
    expect(resendPlan(body)).toEqual(plan);
  });

  it('jitter adds at most 20 % (≤ 30 s) and never passes the ceiling', () => {
    expect(jittered(60_000, () => 0)).toBe(60_000);
    expect(jittered(60_000, () => 0.999)).toBeLessThanOrEqual(72_000);
    expect(jittered(3_600_000, () => 0.999)).toBe(MAX_RETRY_AFTER_MS);
    expect(jittered(1_000, () => 0.5)).toBe(1_100);
  });
});

describe('uploader re-queues what the console lacks', () => {
  let dir: string;
  let outbox: Outbox;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sekimori-resend-'));
    outbox = new Outbox(join(dir, 'outbox.db'), 'agent-1', { cap: null });
  });
  afterEach(() => {
    outbox.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a heartbeat answer from a restored console (head behind) puts exactly the delivered events above it back', () => {
    const link: ConsoleLink = {
      request: async (): Promise<ConsoleReply> => ({ status: 500, body: {} }),
      consoleNow: () => new Date(),
    } as unknown as ConsoleLink;
    const up = new Uploader(outbox, link, { batchSize: () => 100, maxBackoffMs: () => 1000, log: () => {}, emit: (e) => outbox.append(e) });
    const sent = Array.from({ length: 12 }, (_, i) => outbox.append({ type: 'usb.blocked', data: { i } } as never));
    outbox.acknowledge(sent.map((e) => e.seq));
    expect(up.observeConsole({ serverTime: 'x', policyVersion: 1 })).toBe(0); // older console: nothing
    expect(up.observeConsole({ headSeq: 12, lastContiguousSeq: 12, missing: [] })).toBe(0); // up to date
    expect(up.observeConsole({ headSeq: 8, lastContiguousSeq: 8, missing: [] })).toBe(4);
    expect(outbox.pending(100).map((e) => e.seq)).toEqual([9, 10, 11, 12]);
    expect(outbox.pending(100)[0]!.hash).toBe(sent[8]!.hash);
  });
});
