/** The console's rate limiter, concurrency cap and event folding: pure, with the clock passed in. */
import { describe, expect, it } from 'vitest';
import { ConcurrencyLimit, RateLimiter, tooManyRequests } from '../../console/core/limits.js';
import { EventFolder } from '../../console/core/folding.js';
import { canonicalHost, hostOfHeader } from '../../console/core/server.js';
import type { ConsoleEventInput } from '../../console/module.js';

describe('RateLimiter', () => {
  it('allows the burst, then the rate, per key', () => {
    const l = new RateLimiter({ burst: 3, perSecond: 1 });
    const t = 1_000_000;
    expect([1, 2, 3, 4].map(() => l.take('a', t))).toEqual([true, true, true, false]);
    expect(l.take('b', t)).toBe(true); // another key has its own bucket
    expect(l.retryAfterSeconds('a', t)).toBe(1);
    expect(l.take('a', t + 999)).toBe(false);
    expect(l.take('a', t + 1000)).toBe(true);
    expect(l.take('a', t + 1000)).toBe(false);
    // Refill never exceeds the burst.
    expect([1, 2, 3, 4].map(() => l.take('a', t + 3_600_000))).toEqual([true, true, true, false]);
  });

  it('a refused request takes nothing, and a clock going backwards gives nothing back', () => {
    const l = new RateLimiter({ burst: 1, perSecond: 1 });
    expect(l.take('a', 5000)).toBe(true);
    for (let i = 0; i < 10; i++) expect(l.take('a', 5000)).toBe(false);
    expect(l.take('a', 6000)).toBe(true); // ten refusals did not dig a hole
    expect(l.take('a', 1000)).toBe(false);
  });

  it('cost: a 5-token request needs 5 tokens', () => {
    const l = new RateLimiter({ burst: 10, perSecond: 2 });
    expect(l.take('a', 0, 8)).toBe(true);
    expect(l.take('a', 0, 5)).toBe(false);
    expect(l.retryAfterSeconds('a', 0, 5)).toBe(2); // 2 tokens held, 3 more at 2/s
    expect(l.take('a', 1500, 5)).toBe(true);
  });

  it('a flood of fresh keys keeps the table bounded and does not free an abuser', () => {
    const l = new RateLimiter({ burst: 2, perSecond: 0.001 }, 100);
    l.take('abuser', 0);
    l.take('abuser', 0);
    expect(l.take('abuser', 0)).toBe(false);
    for (let i = 0; i < 10_000; i++) l.take(`spoof-${i}`, 1);
    expect(l.size).toBeLessThanOrEqual(100);
    // Keys at their full burst are evicted before others only when there are some: here every
    // spoof key spent a token, so the oldest went first; the table never grew.
    expect(l.size).toBe(100);
  });

  it('check() throws a 429 with Retry-After', () => {
    const l = new RateLimiter({ burst: 1, perSecond: 0.5 });
    l.check('a', 'logins', 0);
    try {
      l.check('a', 'logins', 0);
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ status: 429, code: 'rate_limited', headers: { 'retry-after': '2' } });
    }
    expect(tooManyRequests(0.2, 'x').headers).toEqual({ 'retry-after': '1' });
  });
});

describe('ConcurrencyLimit', () => {
  it('refuses beyond max with 503 instead of queueing, and frees on failure too', async () => {
    const c = new ConcurrencyLimit(2);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const a = c.run(() => gate, 'checks');
    const b = c.run(() => gate, 'checks');
    await expect(c.run(async () => 1, 'checks')).rejects.toMatchObject({ status: 503, headers: { 'retry-after': '1' } });
    release();
    await Promise.all([a, b]);
    await expect(c.run(async () => Promise.reject(new Error('boom')), 'checks')).rejects.toThrow('boom');
    expect(c.inUse).toBe(0);
  });
});

describe('EventFolder', () => {
  const ev = (from: string): ConsoleEventInput => ({ type: 'admin.login_failed', data: { from } });

  it('records the first per key at once and the rest as one counted summary when the window ends', () => {
    const written: ConsoleEventInput[] = [];
    const f = new EventFolder((e) => written.push(e), 60_000, 10);
    for (let i = 0; i < 500; i++) f.record(ev('10.0.0.1'), 'login:10.0.0.1', 1000 + i);
    f.record(ev('10.0.0.2'), 'login:10.0.0.2', 2000);
    expect(written.map((e) => e.data.from)).toEqual(['10.0.0.1', '10.0.0.2']);
    f.flush(30_000);
    expect(written).toHaveLength(2); // the minute has not ended
    f.flush(61_000);
    expect(written).toHaveLength(3);
    expect(written[2]).toMatchObject({ type: 'admin.login_failed', data: { from: '10.0.0.1', repeated: 499 } });
    expect(written[2]!.data.firstSeen).toBe(new Date(1000).toISOString());
    expect(written[2]!.data.lastSeen).toBe(new Date(1499).toISOString());
    // A new window starts fresh: the next event is recorded at once again.
    f.record(ev('10.0.0.1'), 'login:10.0.0.1', 70_000);
    expect(written).toHaveLength(4);
  });

  it('many sources fold into one overflow key: at most maxKeys + 1 events per window, then one summary', () => {
    const written: ConsoleEventInput[] = [];
    const f = new EventFolder((e) => written.push(e), 60_000, 10);
    for (let i = 0; i < 10_000; i++) f.record(ev(`10.0.${i >> 8}.${i & 255}`), `login:${i}`, 1000);
    expect(written).toHaveLength(11);
    expect(written[10]!.data.folded).toBe('overflow');
    f.flush(0, true);
    expect(written).toHaveLength(12);
    expect(written[11]!.data).toMatchObject({ repeated: 10_000 - 11, folded: 'overflow' });
  });

  it('a forced flush (shutdown) writes pending counts; nothing pending writes nothing', () => {
    const written: ConsoleEventInput[] = [];
    const f = new EventFolder((e) => written.push(e));
    f.flush(0, true);
    f.record(ev('a'), 'k', 0);
    f.flush(1, true);
    expect(written).toHaveLength(1);
    f.record(ev('a'), 'k', 2);
    f.record(ev('a'), 'k', 3);
    f.flush(4, true);
    expect(written.map((e) => e.data.repeated)).toEqual([undefined, undefined, 1]);
  });
});

describe('Host header parsing', () => {
  it.each([
    ['localhost:8443', 'localhost'],
    ['LOCALHOST', 'localhost'],
    ['127.0.0.1:1', '127.0.0.1'],
    ['[::1]:8443', '[::1]'],
    ['[0:0:0:0:0:0:0:1]', '[::1]'],
    ['console.example.lg.jp', 'console.example.lg.jp'],
    ['', null],
    ['a b', null],
    ['[::1', null],
    ['host:port', null],
    ['evil.example@localhost', null],
  ])('%s → %s', (header, host) => {
    expect(hostOfHeader(header)).toBe(host);
  });

  it('certificate IPv6 form and header form agree', () => {
    expect(canonicalHost('0:0:0:0:0:0:0:1')).toBe(hostOfHeader('[::1]:443'));
  });
});
