/**
 * protocol/event-text.ts: every event type in the catalogue has a name and a sentence in both
 * languages, sentences are built from the declared data (readEventData), hostile and absurd data
 * still gives a bounded sentence, and nothing throws.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Value } from 'typebox/value';
import { describe, expect, it } from 'vitest';
import { EVENT_DATA, readEventData } from '../../protocol/event-data.js';
import { describeEvent, eventFields, eventTypeName, EVENT_TEXT, fieldLabel, FIELD_LABELS, FIELDS_MAX, hasEventText, SENTENCE_MAX } from '../../protocol/event-text.js';
import { AGENT_EVENT_TYPES, CONSOLE_EVENT_TYPES, type EventType } from '../../protocol/events.js';

const WHERE = 'add an entry to EVENT_TEXT in protocol/event-text.ts (name: [日本語, English], and a sentence built from the data in both languages)';

/** admin.* types the console code writes (they need not be declared in event-data.ts to be stored). */
function adminTypesInSource(): string[] {
  const found = new Set<string>();
  const walk = (dir: string, depth: number): void => {
    if (depth > 8) return;
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p, depth + 1);
      else if (p.endsWith('.ts')) for (const m of readFileSync(p, 'utf8').matchAll(/'(admin\.[a-z_]{1,64})'/g)) found.add(m[1]!);
    }
  };
  for (const d of ['console', 'agent', 'protocol']) walk(join(import.meta.dirname, '../..', d), 0);
  return [...found];
}

const CATALOGUE = [...new Set([...Object.keys(AGENT_EVENT_TYPES), ...Object.keys(CONSOLE_EVENT_TYPES), ...Object.keys(EVENT_DATA), ...adminTypesInSource()])].sort();

describe('catalogue completeness', () => {
  it('enumerates a real catalogue', () => {
    expect(CATALOGUE.length).toBeGreaterThan(80);
    expect(CATALOGUE).toContain('usb.blocked');
    expect(CATALOGUE).toContain('admin.login');
  });

  it.each(CATALOGUE)('%s has a name and a sentence in Japanese and English', (type) => {
    expect(hasEventText(type), `event type ${type} has no description: ${WHERE}`).toBe(true);
    const ja = eventTypeName(type, 'ja');
    const en = eventTypeName(type, 'en');
    expect(ja, `${type}: Japanese name missing — ${WHERE}`).toMatch(/[ぁ-んァ-ヶ一-龠]/);
    expect(en, `${type}: English name missing — ${WHERE}`).toMatch(/^[\x20-\x7e–]+$/);
    expect(ja).not.toBe(type);
    expect(en).not.toBe(type);
  });

  it.each(Object.keys(EVENT_DATA))('%s: a sentence from declared data (both languages), not the fallback', (type) => {
    const data = sample(type);
    expect(readEventData(type as EventType, data), `${type}: the test's sample does not match the declaration`).not.toBeNull();
    const ja = describeEvent({ type, user: '山田', data }, 'ja', { terminal: 'PC-KOSEKI-07' });
    const en = describeEvent({ type, user: 'yamada', data }, 'en', { terminal: 'PC-KOSEKI-07' });
    expect(ja).not.toMatch(/宣言と一致しない.*詳細は表/);
    expect(en).not.toMatch(/data not as declared/);
    expect(ja).toMatch(/[ぁ-んァ-ヶ一-龠]/);
    expect(ja.length).toBeGreaterThan(4);
    expect(en.length).toBeGreaterThan(4);
  });

  it('every field of every declaration has a label in both languages', () => {
    const missing: string[] = [];
    for (const [type, schema] of Object.entries(EVENT_DATA)) for (const key of schemaKeys(schema)) if (!Object.hasOwn(FIELD_LABELS, key)) missing.push(`${type}.${key}`);
    expect(missing, `fields without a label: add them to FIELD_LABELS in protocol/event-text.ts`).toEqual([]);
    for (const [k, [ja, en]] of Object.entries(FIELD_LABELS)) {
      expect(ja.length, k).toBeGreaterThan(0);
      expect(en.length, k).toBeGreaterThan(0);
    }
  });
});

function schemaKeys(s: unknown): string[] {
  const o = s as { properties?: Record<string, unknown>; anyOf?: unknown[] };
  if (o.properties) return Object.keys(o.properties);
  if (o.anyOf) return o.anyOf.flatMap(schemaKeys);
  return [];
}

const USB = {
  kind: 'usb',
  mode: 'enforce',
  port: '1-2.3',
  busnum: 1,
  devnum: 7,
  vendorId: '0781',
  productId: '5567',
  bcdDevice: '0100',
  deviceClass: '00',
  interfaceClasses: ['08'],
  interfaces: [{ number: 0, classes: ['08'], allow: false, rule: 'default deny' }],
  manufacturer: 'SanDisk',
  product: 'Ultra',
  serial: '4C530001234567891234',
  serialHex: '34',
  descriptorHash: 'a'.repeat(64),
  rule: 'default deny mass storage',
  partial: false,
  readonly: false,
  exceptionId: null,
};

/** A well-formed value for a declaration: hand-written where TypeBox cannot make one (patterns). */
const MEDIUM = { port: '1-1', vendorId: '0781', productId: '5567', serialHex: '34433533', descriptorHash: '', label: 'SanDisk Cruzer', serial: '4C53', access: 'allow', exceptionId: null };
const FILE_LOG: Record<string, Record<string, unknown>> = {
  'usb.file_written': { device: MEDIUM, path: '報告書.xlsx', pathHash: 'a'.repeat(64), size: 5, sha256: 'b'.repeat(64), hashSkipped: null, uid: 1000, userSource: 'writer', pid: 10, fsType: 'vfat', mode: 'enforce' },
  'usb.file_log_overflow': { reason: 'kernel_queue', count: 3 },
  'usb.file_log_unavailable': { device: MEDIUM, reason: 'helper not installed' },
};
/** 申請 (agent/usb/apply.ts): not device decisions either. */
const APPLICATION: Record<string, Record<string, unknown>> = {
  'usb.application_sent': { id: 'a1', ref: 'K7M4QX', vendorId: '0781', productId: '5567', serialHex: '34433533', descriptorHash: '', serial: '4C53', manufacturer: 'SanDisk', product: 'Cruzer', port: '1-1', reason: '監査資料', hours: 8 },
  'usb.application_refused': { reason: 'unknown_ref', ref: 'ZZZ999', refused: 1 },
  'usb.application_answered': { id: 'a1', status: 'approved', until: '2026-12-01T00:00:00.000Z', comment: '' },
};

function sample(type: string): Record<string, unknown> {
  if (FILE_LOG[type]) return FILE_LOG[type]!; // 持ち出しログ: not device decisions
  if (APPLICATION[type]) return APPLICATION[type]!;
  if (type.startsWith('usb.') && type !== 'usb.enforced_stricter') return { ...USB };
  const HAND: Record<string, Record<string, unknown>> = {
    'admin.usb_exception_granted': { id: 'x', vendorId: '0781', productId: '5567', serial: 'S1', access: 'allow', expiresAt: '2026-12-01T00:00:00.000Z', reason: '研修' },
    'admin.usb_exception_requested': { id: 'x', vendorId: '0781', productId: '5567', serial: null, access: 'allow', forMs: 3600000, staffUser: '山田', reason: '研修' },
    'admin.usb_exception_revoked': { id: 'x', vendorId: '0781', productId: '5567', serial: null },
    'software.unauthorized_process': { pid: 1, uid: 1000, path: '/tmp/x', sha256: null, exe: '/tmp/x', exeSha256: null, deleted: false, rule: 'default', reason: 'not_allowed', mode: 'enforce', action: 'kill', detectMs: 3 },
    'software.unauthorized_file': { path: '/tmp/x', sha256: 'a'.repeat(64), size: 1, uid: 1000, fileMode: '755', event: 'add', rule: 'r', reason: 'not_allowed', mode: 'enforce', action: 'none', detectMs: 1 },
    'software.killed': { pid: 1, uid: 1, path: '/tmp/x', sha256: null, rule: 'r', mode: 'enforce', killMs: 1 },
    'software.quarantined': { id: 'q', path: '/tmp/x', sha256: 'a'.repeat(64), size: 1, uid: 1, rule: 'r', mode: 'enforce' },
    'software.restored': { id: 'q', path: '/tmp/x', sha256: 'a'.repeat(64), by: 'admin' },
    'software.exec_denied': { path: '/tmp/x', sha256: null, rule: 'r', reason: 'not_allowed', pid: 1, uid: 1, mode: 'enforce', decideMs: 1 },
    'admin.software_restore_requested': { id: 'q', path: '/tmp/x', sha256: 'a'.repeat(64) },
    'admin.evidence_exported': { from: '2026-11-01', to: '2026-11-30', events: 12, bytes: 3400, fingerprint: 'b'.repeat(64) },
  };
  if (HAND[type]) return HAND[type]!;
  return Value.Create(EVENT_DATA[type as keyof typeof EVENT_DATA]) as Record<string, unknown>;
}

describe('sentences', () => {
  it('the issue example, in Japanese and English', () => {
    expect(describeEvent({ type: 'usb.blocked', user: '山田', data: USB }, 'ja', { terminal: 'PC-KOSEKI-07' })).toBe(
      '端末 PC-KOSEKI-07 で 山田 が USBメモリ SanDisk Ultra (シリアル 4C530001…) を接続 — 遮断しました',
    );
    expect(describeEvent({ type: 'usb.blocked', user: 'yamada', data: USB }, 'en', { terminal: 'PC-KOSEKI-07' })).toBe(
      'On PC-KOSEKI-07: yamada plugged in USB storage SanDisk Ultra (serial 4C530001…) — blocked',
    );
  });

  const cases: [string, string, Record<string, unknown>, RegExp][] = [
    ['read-only', 'usb.readonly', USB, /読み取り専用で許可/],
    ['keyboard', 'usb.allowed', { ...USB, interfaceClasses: ['03'], product: 'Keyboard', serial: '' }, /キーボード・マウス .*Keyboard を接続 — 許可しました$/],
    ['tethering', 'usb.blocked', { ...USB, interfaceClasses: ['e0', '0a'] }, /通信機器/],
    ['no names: ids instead', 'usb.blocked', { ...USB, manufacturer: '', product: '' }, /0781:5567/],
    ['optical drive', 'usb.blocked', { kind: 'optical', mode: 'enforce', device: 'sr0', rule: 'r', partitions: [] }, /光学ドライブ.*sr0 — 遮断/],
    ['monitor mode', 'usb.would_block', USB, /監視モード/],
    ['process reported only', 'software.unauthorized_process', { ...sample('software.unauthorized_process'), action: 'none' }, /記録のみ/],
    ['process stopped', 'software.unauthorized_process', sample('software.unauthorized_process'), /停止します/],
  ];
  it.each(cases)('%s', (_n, type, data, re) => {
    expect(describeEvent({ type, user: '山田', data }, 'ja', { terminal: 'PC-1' })).toMatch(re);
  });

  it('console events have no terminal prefix and name the account', () => {
    expect(describeEvent({ type: 'admin.login', user: 'admin', data: { from: '127.0.0.1', role: 'admin' } }, 'ja', { terminal: 'console' })).toBe('admin が 127.0.0.1 からログインしました');
  });

  it('type names for families ("usb.*") and unknown types', () => {
    expect(eventTypeName('usb.*', 'ja')).toBe('USB・外部記録媒体(すべて)');
    expect(eventTypeName('admin.*', 'en')).toBe('Administration (all)');
    expect(eventTypeName('admin.brand_new', 'ja')).toBe('admin.brand_new');
    expect(eventTypeName('<script>', 'ja')).toBe('<script>'); // escaping is the renderer's job; bounded here
  });
});

const HUGE = 'A'.repeat(100_000);
const hostile: [string, string, unknown, string | null][] = [
  ['script in product', 'usb.blocked', { ...USB, product: '<img src=x onerror=alert(1)>' }, 'terminal'],
  ['formula in product', 'usb.blocked', { ...USB, manufacturer: '=HYPERLINK("http://x")', product: '' }, null],
  ['control characters', 'usb.blocked', { ...USB, product: 'a\u001b[31mred\r\nb', serial: '\u0000\u0007' }, null],
  ['lone surrogate', 'usb.blocked', { ...USB, product: 'x\ud800y' }, null],
  ['100 kB product', 'usb.blocked', { ...USB, product: HUGE, manufacturer: HUGE, serial: HUGE }, HUGE],
  ['100 kB path', 'software.killed', { ...(sample('software.killed') as object), path: '/' + HUGE }, null],
  ['2^53 numbers', 'agent.flood', { agentId: 'a', limit: 'x', batchEvents: 2 ** 53, batchBytes: 2 ** 53, retryAfterSeconds: Number.MAX_SAFE_INTEGER }, null],
  ['year 9999', 'agent.silent', { agentId: 'a', hostname: null, lastSeen: '9999-12-31T23:59:59.999Z' }, null],
  ['another terminal id as hostname', 'agent.enrolled', { agentId: 'x', hostname: '0b7c3c1e-8d0b-4b8e-9f5e-2d6f1a3b4c5d', os: 'linux' }, null],
  ['data missing', 'usb.blocked', {}, null],
  ['data null', 'usb.blocked', null, null],
  ['data an array', 'mfa.failure', [1, 2], null],
  ['data a string', 'software.killed', 'x', null],
  ['wrong field types', 'agent.started', { version: 1, pid: 'x' }, null],
  ['type unknown', 'foo.bar', { a: 1 }, null],
  ['type empty', '', {}, null],
  ['undeclared admin type', 'admin.new_thing', { x: '<b>' }, null],
  ['type __proto__', '__proto__', {}, null],
  ['type constructor', 'constructor', {}, null],
  ['proto pollution data', 'admin.login', JSON.parse('{"__proto__":{"x":1},"from":"a","role":"b"}'), null],
];

describe('hostile and absurd data: a bounded sentence, never a throw', () => {
  it.each(hostile)('%s', (_n, type, data, terminal) => {
    for (const L of ['ja', 'en'] as const) {
      const out = describeEvent({ type, user: '<u>\u0007' + HUGE, data }, L, { terminal });
      expect(typeof out).toBe('string');
      expect(Array.from(out).length).toBeLessThanOrEqual(SENTENCE_MAX + 1);
      expect(out).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
      expect(out.isWellFormed()).toBe(true);
      expect(out.length).toBeGreaterThan(0);
      const fields = eventFields(data, L);
      for (const f of fields) {
        expect(f.value).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
        expect(Array.from(f.value).length).toBeLessThanOrEqual(1025);
      }
    }
  });

  it('the fallback names the type and says the data did not match', () => {
    expect(describeEvent({ type: 'usb.blocked', user: null, data: { kind: 'usb' } }, 'ja', { terminal: 'PC-1' })).toBe('端末 PC-1 で USB機器の遮断 — データが宣言と一致しないため詳細は表を参照');
    expect(describeEvent({ type: 'x.y', user: null, data: {} }, 'en')).toBe('x.y — a type without a description');
  });

  it('the serial never leaks whole into a sentence, the detail field has it', () => {
    const out = describeEvent({ type: 'usb.blocked', data: USB }, 'ja');
    expect(out).not.toContain('4C530001234567891234');
    expect(eventFields(USB, 'ja').find((f) => f.key === 'serial')?.value).toBe('4C530001234567891234');
  });

  it('fields: labelled, bounded in number, nested values as JSON, booleans as words', () => {
    const many = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, i]));
    expect(eventFields(many, 'ja')).toHaveLength(FIELDS_MAX);
    const f = eventFields(USB, 'ja');
    expect(f.find((x) => x.key === 'product')).toEqual({ key: 'product', label: '製品名', value: 'Ultra' });
    expect(f.find((x) => x.key === 'partial')?.value).toBe('いいえ');
    expect(f.find((x) => x.key === 'interfaceClasses')?.value).toBe('["08"]');
    expect(fieldLabel('unknownField', 'ja')).toBe('unknownField');
    expect(eventFields(null, 'ja')).toEqual([]);
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(eventFields({ deep }, 'en')[0]?.value).toBe('[?]');
  });

  it('EVENT_TEXT has nothing beyond the catalogue (a renamed type leaves no stale entry)', () => {
    expect(Object.keys(EVENT_TEXT).filter((t) => !CATALOGUE.includes(t))).toEqual([]);
  });
});
