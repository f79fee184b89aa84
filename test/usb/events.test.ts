/**
 * USB event data as the agent produces it, against the declaration in protocol/event-data.ts:
 * every decision's data passes its type's check, also for hostile device strings and for a
 * device as Windows observes it (no bus numbers, no raw descriptors). serialHex carries the raw
 * serial bytes exactly (the matching key), apart from the display serial.
 */
import { describe, expect, it } from 'vitest';
import { decideUsb } from '../../agent/usb/decide.js';
import { builtinEventData, builtinEventType, usbEventData, usbEventType } from '../../agent/usb/events.js';
import type { UsbDeviceInfo } from '../../agent/usb/observe.js';
import { exceptionsFromReply, sameExceptions } from '../../agent/usb/sync.js';
import { eventDataErrors } from '../../protocol/event-data.js';
import { defaultUsbPolicy } from '../../protocol/policy-usb.js';

const base: UsbDeviceInfo = {
  path: '1-1',
  busnum: 1,
  devnum: 2,
  vendorId: '0781',
  productId: '5581',
  bcdDevice: '0100',
  deviceClass: 0,
  deviceSubclass: 0,
  deviceProtocol: 0,
  manufacturer: Buffer.from('SanDisk'),
  product: Buffer.from('Ultra'),
  serial: Buffer.from('SN123'),
  interfaces: [{ number: 0, alt: 0, class: 0x08, subclass: 0x06, protocol: 0x50 }],
  descriptorHash: 'a'.repeat(64),
  authorized: false,
};

const windowsShaped: UsbDeviceInfo = {
  ...base,
  path: 'USB\\VID_0781&PID_5581\\SN123',
  busnum: null,
  devnum: null,
  bcdDevice: null,
  descriptorHash: null,
};

const serials: [string, Buffer | null][] = [
  ['plain', Buffer.from('SN123')],
  ['none', null],
  ['empty', Buffer.alloc(0)],
  ['control characters', Buffer.from('A\x00B\x1b[2J\r\n')],
  ['invalid UTF-8', Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xff])],
  ['255 bytes (the descriptor maximum)', Buffer.alloc(255, 0x41)],
  ['HTML', Buffer.from('<img src=x onerror=alert(1)>')],
];

const ctx = { agentId: 'a1', now: new Date('2026-01-01T00:00:00Z'), exceptions: [], others: [] };

describe('usbEventData against its declaration', () => {
  for (const [name, serial] of serials) {
    for (const [shape, dev] of [
      ['Linux', base],
      ['Windows', windowsShaped],
    ] as const) {
      it(`${shape} device, serial ${name}`, () => {
        const d: UsbDeviceInfo = { ...dev, serial, manufacturer: serial, product: serial };
        const dec = decideUsb(defaultUsbPolicy(), d, ctx);
        const data = usbEventData(d, dec, 'enforce');
        for (const type of ['usb.blocked', 'usb.would_block', 'usb.allowed'] as const) expect(eventDataErrors(type, data)).toEqual([]);
        // The matching key is the raw bytes, whatever the display text became.
        expect(data.serialHex).toBe(serial === null ? null : serial.toString('hex'));
        if (serial !== null) expect(Buffer.from(data.serialHex!, 'hex').equals(serial)).toBe(true);
        expect(data.serial.length).toBeLessThanOrEqual(257);
      });
    }
  }

  it('a serial longer than any real device sends keeps its exact key: the declaration flags the event, nothing is truncated into a key of another device', () => {
    const serial = Buffer.alloc(8192, 0xfe); // what a (fake) sysfs could hand over at most
    const d: UsbDeviceInfo = { ...base, serial };
    const data = usbEventData(d, decideUsb(defaultUsbPolicy(), d, ctx), 'enforce');
    expect(data.serialHex).toBe(serial.toString('hex'));
    expect(eventDataErrors('usb.blocked', data).join('\n')).toMatch(/serialHex/);
  });

  it('fields Windows cannot know go out empty, never invented', () => {
    const data = usbEventData(windowsShaped, decideUsb(defaultUsbPolicy(), windowsShaped, ctx), 'enforce');
    expect(data).toMatchObject({ busnum: null, devnum: null, bcdDevice: '', descriptorHash: '', port: windowsShaped.path });
  });
});

describe('event types', () => {
  it.each([
    ['usb.blocked', false, 'usb.blocked'],
    ['usb.blocked', true, 'usb.would_block'],
    ['usb.allowed', true, 'usb.allowed'],
    ['usb.readonly', true, 'usb.readonly'],
    ['usb.exception_used', false, 'usb.exception_used'],
  ] as const)('%s, monitor %s → %s', (t, monitor, out) => expect(usbEventType({ eventType: t }, monitor)).toBe(out));

  it.each([
    ['allow', false, 'usb.allowed'],
    ['readonly', false, 'usb.readonly'],
    ['block', false, 'usb.blocked'],
    ['block', true, 'usb.would_block'],
  ] as const)('built-in medium %s, monitor %s → %s', (access, monitor, out) => expect(builtinEventType(access, monitor)).toBe(out));

  it('built-in medium data passes its declaration', () => {
    for (const kind of ['optical', 'sdcard'] as const) {
      expect(eventDataErrors('usb.blocked', builtinEventData(kind, 'enforce', 'sr0', `${kind}:block`, ['sr0p1']))).toEqual([]);
    }
  });
});

describe('exceptions from the console reply', () => {
  const good = {
    id: 'e1',
    agentId: 'a1',
    vendorId: '0781',
    productId: '5581',
    serial: 'SN123',
    serialHex: '534e313233',
    access: 'allow',
    grantedAt: '2026-01-01T00:00:00.000Z',
    expiresAt: '2026-01-02T00:00:00.000Z',
    grantedBy: 'admin',
    reason: 'r',
  };
  it.each([
    ['null body', null, null],
    ['string body', 'x', null],
    ['no list', {}, null],
    ['list not an array', { exceptions: { 0: good } }, null],
    ['empty list', { exceptions: [] }, []],
    ['one good', { exceptions: [good] }, ['e1']],
    ['another terminal’s grant is ignored', { exceptions: [{ ...good, agentId: 'a2' }] }, []],
    ['bad entries are dropped, good ones kept', { exceptions: [null, 1, 'x', { ...good, id: 'e2', access: 'write' }, { ...good, id: 'e3', serialHex: 'zz' }, good] }, ['e1']],
    ['prototype pollution attempt', JSON.parse('{"exceptions":[{"__proto__":{"agentId":"a1"}}]}') as unknown, []],
  ])('%s', (_n, body, ids) => {
    const got = exceptionsFromReply(body, 'a1');
    expect(got === null ? null : got.map((e) => e.id)).toEqual(ids);
  });
  it('sameExceptions compares content', () => {
    expect(sameExceptions([], [])).toBe(true);
    expect(sameExceptions([good as never], [{ ...good } as never])).toBe(true);
    expect(sameExceptions([good as never], [{ ...good, expiresAt: '2026-01-03T00:00:00.000Z' } as never])).toBe(false);
  });
});
