/**
 * The SIEM forwarder's pure decisions (issue 17): when the stored cursor may move past a written
 * batch (settled on a healthy connection only), the reconnect backoff (bounded), and the outage
 * events (one "stopped" per outage, rate-limited; "resumed" only after an announced stop).
 */
import { describe, expect, it } from 'vitest';
import { BACKOFF_MAX_MS, INITIAL_OUTAGE, onFailure, onSuccess, replayFrom, settle, STOPPED_EVENT_MIN_INTERVAL_MS, type OutageState, type Written } from '../../console/siem/cursor.js';

describe('settle: the cursor moves only past batches that stayed on a healthy connection', () => {
  const w = (rid: number, count: number, at: number): Written => ({ rid, count, at });
  it.each<[string, Written[], number, boolean, number | null, number, number]>([
    ['nothing written', [], 10_000, true, null, 0, 0],
    ['too recent', [w(10, 10, 9_000)], 10_000, true, null, 0, 1],
    ['exactly the window', [w(10, 10, 8_500)], 10_000, true, 10, 10, 0],
    ['two settled, one not', [w(10, 10, 1_000), w(20, 10, 2_000), w(30, 10, 9_900)], 10_000, true, 20, 20, 1],
    ['broken connection: nothing, and all pending dropped (re-sent)', [w(10, 10, 1_000), w(20, 10, 2_000)], 10_000, false, null, 0, 0],
    ['clock went back: nothing settles', [w(10, 10, 20_000)], 10_000, true, null, 0, 1],
    ['huge rids (2^53 - 1)', [w(Number.MAX_SAFE_INTEGER, 1, 0)], 10_000, true, Number.MAX_SAFE_INTEGER, 1, 0],
  ])('%s', (_n, pending, now, healthy, rid, count, rest) => {
    const s = settle(pending, now, healthy, 1500);
    expect(s.commitRid).toBe(rid);
    expect(s.count).toBe(count);
    expect(s.rest).toHaveLength(rest);
  });
  it('a NaN time never settles', () => {
    expect(settle([w(5, 1, Number.NaN)], 10_000, true, 1500).commitRid).toBeNull();
  });
  it('graceful close settles everything (window 0)', () => {
    expect(settle([w(5, 1, 9_999), w(9, 4, 10_000)], 10_000, true, 0)).toEqual({ commitRid: 9, count: 5, rest: [] });
  });
});

describe('backoff', () => {
  it.each([
    [0, 1000],
    [1, 2000],
    [2, 4000],
    [5, 32_000],
    [6, BACKOFF_MAX_MS],
    [1e9, BACKOFF_MAX_MS],
    [2 ** 53, BACKOFF_MAX_MS],
    [-1, 1000],
    [Number.NaN, 1000],
    [Number.POSITIVE_INFINITY, 1000],
  ])('attempt %d → %d ms', async (attempt, ms) => {
    const { backoffMs } = await import('../../console/siem/cursor.js');
    expect(backoffMs(attempt)).toBe(ms);
  });
});

describe('outage events', () => {
  it('first failure announces, later failures of the same outage do not, success resumes', () => {
    let s: OutageState = INITIAL_OUTAGE;
    let d = onFailure(s, 1000);
    expect(d.emit).toEqual({ kind: 'stopped', suppressed: 0 });
    s = d.next;
    for (let i = 0; i < 1000; i++) {
      d = onFailure(s, 2000 + i);
      expect(d.emit).toBeNull();
      s = d.next;
    }
    const r = onSuccess(s, 61_000);
    expect(r.emit).toEqual({ kind: 'resumed', downMs: 60_000, failures: 1001 });
    expect(r.next.down).toBe(false);
  });

  it('success while up emits nothing', () => {
    expect(onSuccess(INITIAL_OUTAGE, 5).emit).toBeNull();
  });

  it('a flapping SIEM: at most one "stopped" per interval, the suppressed ones counted in the next', () => {
    let s: OutageState = INITIAL_OUTAGE;
    const emitted: string[] = [];
    let t = 0;
    // 100 short outages, one every minute, for 100 minutes.
    for (let i = 0; i < 100; i++) {
      const f = onFailure(s, t);
      s = f.next;
      if (f.emit) emitted.push(`${f.emit.kind}:${(f.emit as { suppressed: number }).suppressed}`);
      const ok = onSuccess(s, t + 5000);
      s = ok.next;
      if (ok.emit) emitted.push(ok.emit.kind);
      t += 60_000;
    }
    const stops = emitted.filter((e) => e.startsWith('stopped'));
    expect(stops.length).toBeLessThanOrEqual(Math.ceil((100 * 60_000) / STOPPED_EVENT_MIN_INTERVAL_MS));
    expect(stops[0]).toBe('stopped:0');
    expect(stops[1]).toBe('stopped:9');
    // Every announced stop has its resume, no resume without a stop.
    expect(emitted.filter((e) => e === 'resumed')).toHaveLength(stops.length);
  });

  it('a clock that went back does not silence the next outage forever', () => {
    const s: OutageState = { ...INITIAL_OUTAGE, lastStoppedEventAt: 10 ** 15 };
    expect(onFailure(s, 1000).emit).toEqual({ kind: 'stopped', suppressed: 0 });
  });
});

describe('replay after a failed connection: what the SIEM may not have read is sent again', () => {
  const b = (fromRid: number, bytes: number, at: number) => ({ fromRid, bytes, at });
  it.each<[string, ReturnType<typeof b>[], number | null]>([
    ['nothing written', [], null],
    ['all within 10 s: from the first', [b(0, 100, 95_000), b(10, 100, 99_000)], 0],
    ['old batches beyond 10 s and beyond the newest 16 MiB are not replayed', [b(0, 10 << 20, 50_000), b(10, 20 << 20, 60_000), b(20, 100, 99_000)], 10],
    ['beyond 10 s but within the last 16 MiB: replayed (a slow SIEM with full buffers)', [b(0, 1 << 20, 10_000), b(10, 1 << 20, 20_000), b(20, 100, 99_000)], 0],
    ['a clock that went back counts as recent', [b(5, 100, 200_000)], 5],
    ['huge rids', [b(Number.MAX_SAFE_INTEGER - 1, 1, 99_000)], Number.MAX_SAFE_INTEGER - 1],
  ])('%s', (_n, recent, want) => {
    expect(replayFrom(recent, 100_000, 10_000, 16 << 20)).toBe(want);
  });
});
