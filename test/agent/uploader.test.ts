import { describe, expect, it } from 'vitest';
import { backoffMs } from '../../agent/report/uploader.js';

describe('upload backoff', () => {
  it('grows exponentially up to the cap, with full jitter', () => {
    const top = () => 0.999999;
    expect(backoffMs(1, 30_000, top)).toBeLessThanOrEqual(500);
    expect(backoffMs(3, 30_000, top)).toBeLessThanOrEqual(2000);
    expect(backoffMs(3, 30_000, top)).toBeGreaterThan(1000);
    expect(backoffMs(40, 30_000, top)).toBeLessThanOrEqual(30_000);
    expect(backoffMs(40, 30_000, top)).toBeGreaterThan(29_000);
  });
  it('never retries in a tight loop', () => {
    expect(backoffMs(1, 30_000, () => 0)).toBe(100);
  });
  it('spreads a fleet: different random draws give different delays', () => {
    const draws = [0.1, 0.5, 0.9].map((r) => backoffMs(10, 30_000, () => r));
    expect(new Set(draws).size).toBe(3);
  });
});
