/**
 * Issue 10, item 14: event data nested thousands of levels deep must be refused by the shape check
 * (a 400 naming the path) without recursion — before, JSON.stringify overflowed the stack (a 500).
 */
import { describe, expect, it } from 'vitest';
import { eventShapeErrors, MAX_EVENT_DATA_DEPTH, tooDeepPath } from '../../protocol/events.js';

const nestObj = (n: number): unknown => JSON.parse('{"a":'.repeat(n - 1) + '{}' + '}'.repeat(n - 1));
const nestArr = (n: number): unknown => JSON.parse('['.repeat(n) + ']'.repeat(n));

describe('tooDeepPath', () => {
  it.each([
    ['a scalar', 5, null],
    ['null', null, null],
    ['flat object', { a: 1, b: 'x' }, null],
    ['objects at the limit', nestObj(MAX_EVENT_DATA_DEPTH), null],
    ['arrays at the limit', nestArr(MAX_EVENT_DATA_DEPTH), null],
    ['objects one past the limit', nestObj(MAX_EVENT_DATA_DEPTH + 1), '.a'.repeat(MAX_EVENT_DATA_DEPTH)],
    ['arrays one past the limit', nestArr(MAX_EVENT_DATA_DEPTH + 1), '[0]'.repeat(MAX_EVENT_DATA_DEPTH)],
    ['mixed, deep on the second key', { ok: 1, deep: [{ x: nestObj(MAX_EVENT_DATA_DEPTH) }] }, '.deep[0].x' + '.a'.repeat(MAX_EVENT_DATA_DEPTH - 3)],
  ])('%s', (_name, value, want) => {
    expect(tooDeepPath(value)).toBe(want);
  });

  it('walks 100,000 levels without recursion', () => {
    expect(tooDeepPath(nestArr(100_000))).toBe('[0]'.repeat(MAX_EVENT_DATA_DEPTH));
    expect(tooDeepPath(nestObj(100_000))).toMatch(/^(\.a){32}$/);
  });

  it('bounds the path it reports even for long hostile keys', () => {
    const k = 'k'.repeat(10_000);
    let v: Record<string, unknown> = {};
    for (let i = 0; i < 40; i++) v = { [k]: v };
    expect(tooDeepPath(v)!.length).toBeLessThanOrEqual(400);
  });
});

describe('eventShapeErrors with deep data', () => {
  it('names the path and the limit instead of throwing', () => {
    const errors = eventShapeErrors({ data: nestObj(5000) }, 'events[3]');
    expect(errors).toContain(`events[3].data${'.a'.repeat(MAX_EVENT_DATA_DEPTH)}: nested deeper than ${MAX_EVENT_DATA_DEPTH} levels`);
  });
});
