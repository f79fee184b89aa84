/**
 * canonicalJson's native path (keys already in order → JSON.stringify) must give byte for byte what
 * the reference algorithm gives (sort keys at every level), for every input: the event chain's
 * hashes and the policy signatures depend on it.
 */
import { describe, expect, it } from 'vitest';
import { canonicalJson, sortedKeys } from '../../protocol/canonical.js';

/** The reference: the algorithm as specified (sorted keys, undefined members dropped, null in arrays). */
function reference(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error('non-finite');
    return JSON.stringify(v);
  }
  if (typeof v === 'string' || typeof v === 'boolean') return JSON.stringify(v);
  if (typeof v !== 'object') throw new Error('cannot encode');
  if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
  const o = v as Record<string, unknown>;
  const parts = Object.keys(o)
    .sort()
    .filter((k) => o[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${reference(o[k])}`);
  return `{${parts.join(',')}}`;
}

/** Deterministic pseudo-random JSON-ish values (xorshift), with the awkward cases mixed in. */
function* values(n: number): Generator<unknown> {
  let s = 0x9e3779b9;
  const rnd = () => ((s ^= s << 13), (s ^= s >>> 17), (s ^= s << 5), (s >>> 0) / 2 ** 32);
  const keys = ['a', 'b', 'B', '_', '1', '10', '2', 'é', '日本', '😀', '__proto__', 'constructor', 'z z', '"q"', '\\u0000'];
  const make = (depth: number): unknown => {
    const r = rnd();
    if (depth > 4 || r < 0.35) {
      const p = rnd();
      if (p < 0.2) return Math.floor(rnd() * 1e6) - 5e5;
      if (p < 0.3) return rnd() * 1e-7;
      if (p < 0.4) return Number.MAX_SAFE_INTEGER;
      if (p < 0.5) return null;
      if (p < 0.6) return rnd() < 0.5;
      if (p < 0.7) return '\u0000\u001f"\\</script>\ud800';
      return keys[Math.floor(rnd() * keys.length)]!;
    }
    if (r < 0.55) return Array.from({ length: Math.floor(rnd() * 4) }, () => make(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(rnd() * 6); i > 0; i--) {
      const k = keys[Math.floor(rnd() * keys.length)]!;
      Object.defineProperty(o, k, { value: make(depth + 1), enumerable: true, writable: true, configurable: true });
    }
    return o;
  };
  for (let i = 0; i < n; i++) yield make(0);
}

describe('canonicalJson', () => {
  it('equals the reference for 3000 generated values, as built, sorted (sortedKeys) and as JSON.parse returns them', () => {
    let fast = 0;
    for (const v of values(3000)) {
      const want = reference(v);
      expect(canonicalJson(v)).toBe(want);
      const sorted = sortedKeys(v);
      expect(canonicalJson(sorted)).toBe(want);
      const parsed: unknown = JSON.parse(JSON.stringify(sorted));
      expect(canonicalJson(parsed)).toBe(want);
      if (typeof v === 'object' && v !== null && JSON.stringify(parsed) === want) fast++;
    }
    expect(fast).toBeGreaterThan(500); // the native path is really taken for sorted data
  });

  it('what JSON.stringify writes differently takes the exact path', () => {
    expect(canonicalJson({ b: 1, a: 2 })).toBe('{"a":2,"b":1}');
    expect(canonicalJson({ a: [undefined, 1] })).toBe('{"a":[null,1]}');
    expect(canonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(canonicalJson({ '10': 1, '2': 2, '1': 3 })).toBe('{"1":3,"10":1,"2":2}'); // integer keys: objects reorder them
    expect(canonicalJson({ d: new Date(0) })).toBe('{"d":{}}'); // no toJSON
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(/non-finite/);
    expect(() => canonicalJson({ a: 1n })).toThrow(/cannot encode/);
  });

  it('keeps an own "__proto__" member a member when sorting', () => {
    const v: unknown = JSON.parse('{"z":1,"__proto__":{"x":2}}');
    const sorted = sortedKeys(v) as Record<string, unknown>;
    expect(Object.keys(sorted)).toEqual(['__proto__', 'z']);
    expect(Object.getPrototypeOf(sorted)).toBe(Object.prototype);
    expect(canonicalJson(sorted)).toBe('{"__proto__":{"x":2},"z":1}');
  });

  it('very deep data: exact (slow) path, no overflow at the depth events allow', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = { a: deep };
    expect(canonicalJson(deep)).toBe(reference(deep));
  });
});
