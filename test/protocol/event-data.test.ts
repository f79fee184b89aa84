/**
 * protocol/event-data.ts: one declaration per event type. The producers' real output passes its
 * declaration (USB producers called here with hostile devices; the others as a real agent and
 * console write them, in test/console/event-data-producers.test.ts), readers get one shape, and
 * ingest stores an event whose data fails its declaration, marked, never refused.
 */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { decideUsb } from '../../agent/usb/decide.js';
import { builtinEventData, usbEventData } from '../../agent/usb/events.js';
import type { UsbDeviceInfo } from '../../agent/usb/observe.js';
import { createIngester, eventDataMark } from '../../console/backbone/ingest.js';
import { EXPLAINED_PER_BATCH } from '../../console/backbone/batch-check.js';
import { migrate } from '../../console/core/db.js';
import { coreMigrations } from '../../console/core/schema.js';
import { EVENT_DATA, eventDataErrors, eventDataValid, isUsbDeviceData, readEventData } from '../../protocol/event-data.js';
import { AGENT_EVENT_TYPES, chainEvent, CONSOLE_EVENT_TYPES, genesisHash, type SekimoriEvent } from '../../protocol/events.js';
import { defaultUsbPolicy } from '../../protocol/policy-usb.js';

const AGENT = '0b7c3c1e-8d0b-4b8e-9f5e-2d6f1a3b4c5d';

const device = (over: Partial<UsbDeviceInfo> = {}): UsbDeviceInfo => ({
  path: '1-1.2',
  busnum: 1,
  devnum: 7,
  vendorId: '0781',
  productId: '5567',
  bcdDevice: '0100',
  deviceClass: 0,
  deviceSubclass: 0,
  deviceProtocol: 0,
  manufacturer: Buffer.from('SanDisk'),
  product: Buffer.from('Cruzer Blade'),
  serial: Buffer.from('4C530001'),
  interfaces: [{ number: 0, alt: 0, class: 8, subclass: 6, protocol: 0x50 }],
  descriptorHash: 'b'.repeat(64),
  authorized: false,
  ...over,
});

describe('every event type in the catalogue has a declaration', () => {
  it.each([...Object.keys(AGENT_EVENT_TYPES), ...Object.keys(CONSOLE_EVENT_TYPES)])('%s', (type) => {
    expect(Object.hasOwn(EVENT_DATA, type)).toBe(true);
  });
});

describe('the USB producers (agent/usb/events.ts) pass their declaration, hostile devices included', () => {
  const policy = defaultUsbPolicy();
  const cases: [string, UsbDeviceInfo][] = [
    ['a plain stick', device()],
    ['no serial', device({ serial: null })],
    ['a zero-length serial', device({ serial: Buffer.alloc(0) })],
    ['control characters everywhere', device({ manufacturer: Buffer.from('\u001b[2J\u0007'), product: Buffer.from('a\nb\r\u009b'), serial: Buffer.from('AB\u001bCD') })],
    ['invalid UTF-8', device({ product: Buffer.from([0xff, 0xfe]), serial: Buffer.from([0x41, 0xff, 0xc3]) })],
    ['a 255-byte serial', device({ serial: Buffer.alloc(255, 0x53) })],
    ['what Windows cannot know (null bus numbers, bcdDevice, descriptorHash)', device({ path: 'USB\\VID_0781&PID_5567\\4C530001' + 'X'.repeat(180), busnum: null, devnum: null, bcdDevice: null, descriptorHash: null })],
    ['a descriptor that could not be read', device({ descriptorHash: '' })],
    ['no interfaces', device({ interfaces: [] })],
    ['a composite keyboard with storage', device({ interfaces: [{ number: 0, alt: 0, class: 3, subclass: 1, protocol: 1 }, { number: 1, alt: 0, class: 8, subclass: 6, protocol: 0x50 }, { number: 1, alt: 1, class: 0xff, subclass: 0, protocol: 0 }] })],
  ];
  it.each(cases)('%s', (_name, d) => {
    for (const mode of ['enforce', 'monitor'] as const) {
      const dec = decideUsb({ ...policy, mode }, d, { agentId: AGENT, now: new Date(), exceptions: [], others: [] });
      const data = usbEventData(d, dec, mode);
      for (const type of ['usb.blocked', 'usb.would_block', 'usb.allowed', 'usb.readonly', 'usb.exception_used'] as const) expect(eventDataErrors(type, data)).toEqual([]);
      const read = readEventData('usb.blocked', data);
      expect(read).not.toBeNull();
      expect(isUsbDeviceData(read!) && read.serialHex).toBe(d.serial && d.serial.length ? d.serial.toString('hex') : d.serial ? '' : null);
    }
  });
  it.each([
    ['optical', 'sr0', []],
    ['sdcard', 'mmcblk0', ['mmcblk0p1', 'mmcblk0p2']],
  ] as const)('built-in %s', (kind, name, parts) => {
    const data = builtinEventData(kind, 'enforce', name, `${kind}:block`, [...parts]);
    expect(eventDataErrors('usb.blocked', data)).toEqual([]);
    expect(readEventData('usb.blocked', data)).toMatchObject({ kind, device: name });
  });
});

describe('eventDataErrors and readEventData', () => {
  const usb = usbEventData(device(), decideUsb(defaultUsbPolicy(), device(), { agentId: AGENT, now: new Date(), exceptions: [], others: [] }), 'enforce');
  const { serialHex: _drop, ...beforeSerialHex } = usb;
  it.each([
    ['data not an object', 'agent.stopped', [1], /^data: must be an object$/],
    ['null', 'agent.stopped', null, /^data: must be an object$/],
    ['a wrong type', 'agent.stopped', { pid: '1', reason: 'signal' }, /^data\.pid: must be integer$/],
    ['a missing member', 'agent.stopped', { pid: 1 }, /^data\.reason: missing$/],
    ['a 2^53 pid', 'agent.stopped', { pid: 2 ** 53, reason: 'signal' }, /^data\.pid: must be <= 9007199254740991$/],
    ['a USB event with a display serial as the key', 'usb.blocked', { ...usb, serialHex: 'AB\\x1b' }, /^data\.serialHex: must match pattern/],
    ['a USB event without vendorId', 'usb.blocked', JSON.parse(JSON.stringify({ ...usb, vendorId: undefined })) as unknown, /^data\.vendorId: missing$/],
    ['a built-in drive of an unknown kind', 'usb.blocked', { kind: 'floppy', mode: 'enforce', device: 'fd0', rule: 'x', partitions: [] }, /^data/],
    ['an unknown agent type', 'usb.teleported', {}, /^data: no declaration for event type "usb\.teleported"$/],
    ['a huge string', 'agent.tamper', { what: 'x', reason: 'y'.repeat(100_000), action: 'z' }, /^data\.reason: must not have more than 4096 characters$/],
  ])('%s', (_name, type, data, error) => {
    const errors = eventDataErrors(type, data);
    expect(errors[0]).toMatch(error);
    expect(eventDataValid(type, data)).toBe(false);
    expect(readEventData(type as 'agent.stopped', data)).toBeNull();
  });
  it('extra members are allowed (a newer agent, the console folding counts)', () => {
    expect(eventDataErrors('agent.stopped', { pid: 1, reason: 'signal', repeated: 3, firstSeen: 'x' })).toEqual([]);
  });
  it('an event from an agent before serialHex reads with serialHex null', () => {
    expect(eventDataErrors('usb.blocked', beforeSerialHex)).toEqual([]);
    expect(readEventData('usb.blocked', beforeSerialHex)).toMatchObject({ serial: '4C530001', serialHex: null });
    expect(beforeSerialHex).not.toHaveProperty('serialHex'); // the stored (signed) data itself is untouched
  });
  it('admin.* types without a declaration carry any object', () => {
    expect(eventDataErrors('admin.something_new', { a: [1] })).toEqual([]);
    expect(readEventData('admin.something_new', { a: 1 })).toEqual({ a: 1 });
  });
  it('data nested 5000 deep in an open member is no crash', () => {
    const deep = JSON.parse('{"a":'.repeat(5000) + '1' + '}'.repeat(5000)) as unknown;
    expect(eventDataErrors('agent.stopped', { pid: 1, reason: 'x', extra: deep })).toEqual([]);
    expect(eventDataErrors('agent.stopped', { pid: deep, reason: 'x' })[0]).toMatch(/^data\.pid: must be integer/);
  });
});

describe('ingest: an event whose data fails its declaration is stored, marked and counted, never refused', () => {
  it('stores all, marks the bad ones, explains the first EXPLAINED_PER_BATCH of a batch and counts the rest', () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE schema_migrations (module TEXT, version INTEGER, applied_at TEXT, PRIMARY KEY (module, version))');
    migrate(db, 'core', coreMigrations);
    db.prepare("INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at) VALUES (?, 'pc', 'fp', 'now')").run(AGENT);
    const ingest = createIngester(db);
    const datas: [SekimoriEvent['type'], Record<string, unknown>][] = [
      ['agent.stopped', { pid: 1, reason: 'signal' }],
      ['usb.blocked', { product: 'USB DISK 2.0' }],
      ['agent.started', { version: '0.1.0', pid: 2, policyVersion: 1, monitorOnly: false, hostname: 'pc' }],
      ['agent.stopped', { pid: 'x', reason: 'signal' }],
    ];
    let prev = genesisHash(AGENT);
    const events = datas.map(([type, data], i) => {
      const e = chainEvent(prev, { id: randomUUID(), agentId: AGENT, seq: i + 1, ts: new Date().toISOString(), type, severity: 'info', user: null, data });
      prev = e.hash;
      return e;
    });
    const r = ingest(AGENT, events);
    expect(r.response).toMatchObject({ stored: 4, acked: [1, 2, 3, 4] });
    expect(r.invalidData.map((f) => f.seq)).toEqual([2, 4]);
    expect(r.invalidData[0]!.errors[0]).toMatch(/^data\.kind: missing|^data/);
    expect(eventDataMark(db, AGENT, 2)?.errors.length).toBeGreaterThan(0);
    expect(eventDataMark(db, AGENT, 4)).toEqual({ errors: ['data.pid: must be integer'] });
    expect(eventDataMark(db, AGENT, 1)).toBeNull();
    // A retry of the same batch marks nothing twice and reports nothing new.
    expect(ingest(AGENT, events).invalidData).toEqual([]);
    expect((db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n).toBe(4);
    // A batch of many bad events: the explanations are bounded, every one is still marked.
    const many = Array.from({ length: EXPLAINED_PER_BATCH + 2 }, (_, i) => {
      const e = chainEvent(prev, { id: randomUUID(), agentId: AGENT, seq: 5 + i, ts: new Date().toISOString(), type: 'agent.stopped', severity: 'info', user: null, data: { pid: 'x', reason: 'signal' } });
      prev = e.hash;
      return e;
    });
    expect(ingest(AGENT, many).invalidData.map((f) => f.errors.length > 0)).toEqual(many.map((_, i) => i < EXPLAINED_PER_BATCH));
    expect(eventDataMark(db, AGENT, 5 + EXPLAINED_PER_BATCH)).toEqual({ errors: [] }); // counted, not explained
  });
});
