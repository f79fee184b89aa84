/** Issue 10, items 4 and 6: the agent API's limits, their defaults, and overrides in DATA/config.json. */
import { describe, expect, it } from 'vitest';
import { consoleLimits, DEFAULT_LIMITS } from '../../console/core/paths.js';
import { MAX_BATCH_EVENTS } from '../../console/backbone/batch-check.js';

describe('console limits', () => {
  it('defaults let a real backlog through at once and hold a flood to a steady trickle', () => {
    const l = consoleLimits({});
    expect(l).toEqual(DEFAULT_LIMITS);
    // The integration suite's backlogs (10,000 and 20,000 events after an outage) fit the burst.
    expect(l.agentEvents.burst).toBeGreaterThanOrEqual(20_002);
    expect(l.agentEvents.burst).toBeGreaterThanOrEqual(MAX_BATCH_EVENTS);
    expect(l.agentBytes.burst).toBeGreaterThanOrEqual(8 * 1024 * 1024); // the largest upload body
    // Before: 317 MB in 10 s from one agent. Now at most the burst plus the steady rate.
    expect(l.agentBytes.burst + 10 * l.agentBytes.perSecond).toBeLessThan(100 * 1024 * 1024);
    expect(l.agentBytes.perSecond * 3600).toBeLessThanOrEqual(128 * 1024 * 1024);
    expect(l.enrollPerAddress).toEqual({ burst: 20, perSecond: 1 });
  });

  it('takes overrides from config.json', () => {
    const l = consoleLimits({ limits: { agentEvents: { burst: 1_000_000, perSecond: 100_000 }, enrollPerAddress: { perSecond: 5 } } });
    expect(l.agentEvents).toEqual({ burst: 1_000_000, perSecond: 100_000 });
    expect(l.enrollPerAddress).toEqual({ burst: 20, perSecond: 5 });
    expect(l.agentBytes).toEqual(DEFAULT_LIMITS.agentBytes);
  });

  it.each([
    [{ limits: 5 }, /^config\.json limits: /],
    [{ limits: { agentEvnts: { burst: 1 } } }, /limits\.agentEvnts: .*agentEvents, agentBytes, enrollPerAddress/],
    [{ limits: { agentEvents: [] } }, /limits\.agentEvents: .*\{burst, perSecond\}/],
    [{ limits: { agentEvents: { burst: -1 } } }, /limits\.agentEvents\.burst: /],
    [{ limits: { agentEvents: { perSecond: '5' } } }, /limits\.agentEvents\.perSecond: /],
    [{ limits: { agentBytes: { burst: Infinity } } }, /limits\.agentBytes\.burst: /],
    [{ limits: { agentBytes: { refill: 5 } } }, /limits\.agentBytes\.refill: /],
  ])('refuses %j naming the path (in Japanese or English)', (config, message) => {
    expect(() => consoleLimits(config as never)).toThrow(message);
  });
});
