import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../protocol/canonical.js';
import { chainEvent, eventHash, eventShapeErrors, genesisHash, isKnownEventType, type UnsignedEvent } from '../../protocol/events.js';
import { safeText } from '../../protocol/text.js';

const base: UnsignedEvent = {
  id: '3f1e2a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b',
  agentId: 'agent-1',
  seq: 1,
  ts: '2026-11-21T08:30:00.000Z',
  type: 'usb.blocked',
  severity: 'warning',
  user: 'tanaka',
  data: { vid: '0781', pid: '5567', product: 'Cruzer' },
};

describe('canonical JSON', () => {
  it.each([
    [{ b: 1, a: 2 }, '{"a":2,"b":1}'],
    [{ a: { d: 1, c: [3, { f: 1, e: 2 }] } }, '{"a":{"c":[3,{"e":2,"f":1}],"d":1}}'],
    [{ a: undefined, b: null }, '{"b":null}'],
    [[undefined, 1], '[null,1]'],
    ['日本語', '"日本語"'],
  ])('%j → %s', (value, text) => {
    expect(canonicalJson(value)).toBe(text);
  });
  it('refuses non-finite numbers', () => {
    expect(() => canonicalJson({ n: Number.NaN })).toThrow();
  });
});

describe('hash chain', () => {
  const e1 = chainEvent(genesisHash('agent-1'), base);
  const e2 = chainEvent(e1.hash, { ...base, id: '4f1e2a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b', seq: 2 });

  it('links each event to the previous one', () => {
    expect(e2.prevHash).toBe(e1.hash);
    expect(eventHash(e2.prevHash, e2)).toBe(e2.hash);
  });
  it('is sha256(prevHash ‖ canonical JSON of the event without its hashes)', () => {
    const { hash: _h, prevHash: _p, ...rest } = e2;
    expect(e2.hash).toBe(createHash('sha256').update(e2.prevHash + canonicalJson(rest)).digest('hex'));
  });
  it('does not depend on member order', () => {
    const reordered = { ...base, data: { product: 'Cruzer', pid: '5567', vid: '0781' } };
    expect(eventHash(e1.prevHash, reordered)).toBe(e1.hash);
  });
  it.each([
    ['data', { data: { ...base.data, product: 'other' } }],
    ['type', { type: 'usb.allowed' as const }],
    ['user', { user: 'suzuki' }],
    ['seq', { seq: 2 }],
    ['ts', { ts: '2026-11-21T08:30:00.001Z' }],
  ])('detects an edited %s', (_name, change) => {
    expect(eventHash(e1.prevHash, { ...e1, ...change })).not.toBe(e1.hash);
  });
  it('starts differently for different agents', () => {
    expect(genesisHash('a')).not.toBe(genesisHash('b'));
  });
});

describe('event shape', () => {
  const good = chainEvent(genesisHash('agent-1'), base);
  it('accepts a well-formed event', () => {
    expect(eventShapeErrors(good)).toEqual([]);
  });
  it.each([
    ['not an object', 'hello', /must be an object/],
    ['bad uuid', { ...good, id: 'x' }, /id/],
    ['seq zero', { ...good, seq: 0 }, /seq/],
    ['seq string', { ...good, seq: '1' }, /seq/],
    ['local time', { ...good, ts: '2026-11-21 08:30' }, /ts/],
    ['unknown type', { ...good, type: 'usb.teleported' }, /unknown event type/],
    ['severity', { ...good, severity: 'meh' }, /severity/],
    ['data array', { ...good, data: [] }, /data/],
    ['huge data', { ...good, data: { s: 'x'.repeat(40_000) } }, /larger than/],
    ['hash', { ...good, hash: 'zz' }, /hash/],
  ])('rejects %s', (_n, value, message) => {
    expect(eventShapeErrors(value).join('\n')).toMatch(message);
  });
  it('knows console and admin types', () => {
    expect(isKnownEventType('admin.policy_published')).toBe(true);
    expect(isKnownEventType('admin.<script>')).toBe(false);
    expect(isKnownEventType('agent.silent')).toBe(true);
  });
});

describe('safeText (attacker-chosen strings)', () => {
  it.each([
    ['control characters', 'USB\u001b[2J\u0007DISK', 'USB\\x1b[2J\\x07DISK'],
    ['newlines', 'a\nb\r', 'a\\x0ab\\x0d'],
    ['C1 controls', 'a\u009bb', 'a\\x9bb'],
    ['HTML is kept as text', '<img src=x onerror=alert(1)>', '<img src=x onerror=alert(1)>'],
    ['lone surrogate', 'a\ud800b', 'a\ufffdb'],
  ])('%s', (_n, input, output) => {
    expect(safeText(input)).toBe(output);
  });
  it('replaces invalid UTF-8 bytes', () => {
    expect(safeText(Buffer.from([0x41, 0xff, 0xfe, 0x42]))).toBe('A\ufffd\ufffdB');
  });
  it('bounds the length (4 KB descriptor)', () => {
    const s = safeText('あ'.repeat(4096), 256);
    expect(Array.from(s)).toHaveLength(257);
    expect(s.endsWith('…')).toBe(true);
  });
  it('maps null to empty', () => {
    expect(safeText(null)).toBe('');
  });
});
