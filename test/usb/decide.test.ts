import { describe, expect, it } from 'vitest';
import { decideUsb, decideBlockDevice, serialText, type DecideContext } from '../../agent/usb/decide.js';
import { parseDescriptors, descriptorHash, type UsbDeviceInfo, type UsbInterfaceInfo } from '../../agent/usb/observe.js';
import { usbEventData } from '../../agent/usb/events.js';
import { defaultUsbPolicy, usbPolicyErrors, usbExceptionErrors, type UsbException, type UsbPolicy } from '../../protocol/policy-usb.js';

const AGENT = 'agent-1';
const NOW = new Date('2026-11-21T10:00:00.000Z');
const iface = (number: number, cls: number, sub = 0, proto = 0, alt = 0): UsbInterfaceInfo => ({ number, alt, class: cls, subclass: sub, protocol: proto });

function dev(p: Partial<UsbDeviceInfo> & { interfaces: UsbInterfaceInfo[] }): UsbDeviceInfo {
  return {
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
    product: Buffer.from('Cruzer'),
    serial: Buffer.from('SN123'),
    descriptorHash: 'a'.repeat(64),
    authorized: false,
    ...p,
  };
}
const ctx = (p: Partial<DecideContext> = {}): DecideContext => ({ agentId: AGENT, now: NOW, exceptions: [], others: [], ...p });
const policy = (p: Partial<UsbPolicy> = {}): UsbPolicy => ({ ...defaultUsbPolicy(), ...p });
const exc = (p: Partial<UsbException> = {}): UsbException => ({
  id: 'ux-1',
  agentId: AGENT,
  vendorId: '0781',
  productId: '5581',
  serial: 'SN123',
  access: 'allow',
  grantedAt: '2026-11-21T09:00:00.000Z',
  expiresAt: '2026-11-21T11:00:00.000Z',
  grantedBy: 'admin',
  reason: 'test',
  ...p,
});

describe('usb decision table (default policy)', () => {
  const cases: { name: string; ifs: UsbInterfaceInfo[]; authorize: boolean; allowed: number[]; event: string; rule: string; partial?: boolean }[] = [
    { name: 'keyboard (HID boot)', ifs: [iface(0, 0x03, 1, 1)], authorize: true, allowed: [0], event: 'usb.allowed', rule: 'class:03' },
    { name: 'keyboard+mouse composite', ifs: [iface(0, 0x03, 1, 1), iface(1, 0x03, 1, 2)], authorize: true, allowed: [0, 1], event: 'usb.allowed', rule: 'class:03' },
    { name: 'hub', ifs: [iface(0, 0x09)], authorize: true, allowed: [0], event: 'usb.allowed', rule: 'class:09' },
    { name: 'smart-card reader', ifs: [iface(0, 0x0b)], authorize: true, allowed: [0], event: 'usb.allowed', rule: 'class:0b' },
    { name: 'mass storage stick', ifs: [iface(0, 0x08, 6, 0x50)], authorize: false, allowed: [], event: 'usb.blocked', rule: 'class:08' },
    { name: 'UAS stick (two alt settings)', ifs: [iface(0, 0x08, 6, 0x50), iface(0, 0x08, 6, 0x62, 1)], authorize: false, allowed: [], event: 'usb.blocked', rule: 'class:08' },
    { name: 'MTP phone', ifs: [iface(0, 0x06, 1, 1)], authorize: false, allowed: [], event: 'usb.blocked', rule: 'class:06' },
    { name: 'CDC ethernet (usb-net)', ifs: [iface(0, 0x02, 6), iface(1, 0x0a)], authorize: false, allowed: [], event: 'usb.blocked', rule: 'class:02' },
    { name: 'RNDIS tethering (e0)', ifs: [iface(0, 0xe0, 1, 3), iface(1, 0x0a)], authorize: false, allowed: [], event: 'usb.blocked', rule: 'class:e0' },
    { name: 'RNDIS over Misc (ef/04)', ifs: [iface(0, 0xef, 4, 1), iface(1, 0x0a)], authorize: false, allowed: [], event: 'usb.blocked', rule: 'class:ef/04' },
    { name: 'vendor specific (ADB)', ifs: [iface(0, 0xff, 0x42, 1)], authorize: false, allowed: [], event: 'usb.blocked', rule: 'class:ff' },
    { name: 'audio headset: class 01 allowed (sound only, no files)', ifs: [iface(0, 0x01, 1), iface(1, 0x01, 2), iface(2, 0x03, 0, 0)], authorize: true, allowed: [0, 1, 2], event: 'usb.allowed', rule: 'class:01' },
    { name: 'printer: class 07 blocked (an export channel)', ifs: [iface(0, 0x07, 1, 2)], authorize: false, allowed: [], event: 'usb.blocked', rule: 'class:07' },
    { name: 'webcam (video 0e): no rule names it, default block', ifs: [iface(0, 0x0e, 1), iface(1, 0x0e, 2)], authorize: false, allowed: [], event: 'usb.blocked', rule: 'default' },
    { name: 'composite keyboard with storage gets only HID', ifs: [iface(0, 0x03, 1, 1), iface(1, 0x08, 6, 0x50)], authorize: true, allowed: [0], event: 'usb.blocked', rule: 'class:08', partial: true },
    { name: 'keyboard whose alt setting is storage: interface blocked', ifs: [iface(0, 0x03, 1, 1), iface(0, 0x08, 6, 0x50, 1)], authorize: false, allowed: [], event: 'usb.blocked', rule: 'class:08' },
    { name: 'no interfaces at all', ifs: [], authorize: false, allowed: [], event: 'usb.blocked', rule: 'no-interfaces' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decideUsb(policy(), dev({ interfaces: c.ifs }), ctx());
      expect(d.authorizeDevice).toBe(c.authorize);
      expect(d.interfaces.filter((i) => i.allow).map((i) => i.number)).toEqual(c.allowed);
      expect(d.eventType).toBe(c.event);
      expect(d.rule).toBe(c.rule);
      expect(d.partial).toBe(c.partial ?? false);
      expect(d.readonly).toBe(false);
    });
  }
  it('defaultVerdict allow lets unknown classes through but explicit blocks stay', () => {
    const p = policy({ defaultVerdict: 'allow' });
    expect(decideUsb(p, dev({ interfaces: [iface(0, 0x01)] }), ctx()).authorizeDevice).toBe(true);
    expect(decideUsb(p, dev({ interfaces: [iface(0, 0x08)] }), ctx()).authorizeDevice).toBe(false);
  });
  it('a subclass/protocol rule narrows; first match wins', () => {
    const p = policy({ classRules: [{ class: '08', subclass: '06', protocol: '50', verdict: 'allow' }, ...defaultUsbPolicy().classRules] });
    expect(decideUsb(p, dev({ interfaces: [iface(0, 0x08, 6, 0x50)] }), ctx()).rule).toBe('class:08/06/50');
    expect(decideUsb(p, dev({ interfaces: [iface(0, 0x08, 6, 0x62)] }), ctx()).authorizeDevice).toBe(false);
  });
});

describe('registered media', () => {
  const stick = [iface(0, 0x08, 6, 0x50)];
  const reg = (p: Partial<UsbPolicy['registered'][number]> = {}) => policy({ registered: [{ id: 'stick-1', vendorId: '0781', productId: '5581', serial: 'SN123', access: 'allow', ...p }] });
  it('allow: VID:PID:serial opens the storage interface', () => {
    const d = decideUsb(reg(), dev({ interfaces: stick }), ctx());
    expect([d.authorizeDevice, d.eventType, d.rule, d.readonly]).toEqual([true, 'usb.allowed', 'registered:stick-1', false]);
  });
  it('readonly: opens it read-only', () => {
    const d = decideUsb(reg({ access: 'readonly' }), dev({ interfaces: stick }), ctx());
    expect([d.authorizeDevice, d.eventType, d.readonly]).toEqual([true, 'usb.readonly', true]);
  });
  it('wrong serial, wrong PID, uppercase rule ids are matched exactly/normalised', () => {
    expect(decideUsb(reg(), dev({ interfaces: stick, serial: Buffer.from('SN124') }), ctx()).authorizeDevice).toBe(false);
    expect(decideUsb(reg(), dev({ interfaces: stick, productId: '5582' }), ctx()).authorizeDevice).toBe(false);
    expect(decideUsb(reg(), dev({ interfaces: stick, serial: Buffer.from('SN123 ') }), ctx()).authorizeDevice).toBe(false);
  });
  it('device without serial (absent or empty) never matches a registration', () => {
    expect(decideUsb(reg(), dev({ interfaces: stick, serial: null }), ctx()).authorizeDevice).toBe(false);
    expect(decideUsb(reg(), dev({ interfaces: stick, serial: Buffer.alloc(0) }), ctx()).authorizeDevice).toBe(false);
  });
  it('descriptor hash pins the registration: a clone with the same serial but other descriptors is blocked', () => {
    const p = reg({ descriptorHash: 'b'.repeat(64) });
    expect(decideUsb(p, dev({ interfaces: stick, descriptorHash: 'b'.repeat(64) }), ctx()).authorizeDevice).toBe(true);
    expect(decideUsb(p, dev({ interfaces: stick, descriptorHash: 'a'.repeat(64) }), ctx()).authorizeDevice).toBe(false);
  });
  it('cloned serial: two devices present with the same VID:PID:serial get no registration', () => {
    const d = decideUsb(reg(), dev({ interfaces: stick, path: '1-2' }), ctx({ others: [{ path: '1-1', vendorId: '0781', productId: '5581', serial: Buffer.from('SN123') }] }));
    expect(d.authorizeDevice).toBe(false);
    expect(d.note).toMatch(/clone-suspected/);
    // the device itself in the "others" list is not a clone of itself
    expect(decideUsb(reg(), dev({ interfaces: stick }), ctx({ others: [{ path: '1-1', vendorId: '0781', productId: '5581', serial: Buffer.from('SN123') }] })).authorizeDevice).toBe(true);
  });
  it('a registered stick that also offers a network interface gets only storage', () => {
    const d = decideUsb(reg(), dev({ interfaces: [iface(0, 0x08, 6, 0x50), iface(1, 0x02, 6), iface(2, 0x0a)] }), ctx());
    expect(d.interfaces.map((i) => i.allow)).toEqual([true, false, false]);
    expect([d.partial, d.eventType]).toEqual([true, 'usb.blocked']);
  });
});

describe('time-limited exceptions (judged by the console clock)', () => {
  const stick = [iface(0, 0x08, 6, 0x50)];
  it('valid exception opens every interface and is reported as exception_used', () => {
    const d = decideUsb(policy(), dev({ interfaces: [...stick, iface(1, 0xff)] }), ctx({ exceptions: [exc()] }));
    expect([d.authorizeDevice, d.partial, d.eventType, d.rule, d.exceptionId]).toEqual([true, false, 'usb.exception_used', 'exception:ux-1', 'ux-1']);
  });
  it('expired by the console clock: blocked, whatever the terminal clock says', () => {
    const d = decideUsb(policy(), dev({ interfaces: stick }), ctx({ now: new Date('2026-11-21T11:00:00.000Z'), exceptions: [exc()] }));
    expect(d.authorizeDevice).toBe(false);
  });
  it('bound to one terminal', () => {
    expect(decideUsb(policy(), dev({ interfaces: stick }), ctx({ exceptions: [exc({ agentId: 'other' })] })).authorizeDevice).toBe(false);
  });
  it('bound to one device; serial null means any device with that VID:PID (incl. no serial)', () => {
    expect(decideUsb(policy(), dev({ interfaces: stick, serial: Buffer.from('X') }), ctx({ exceptions: [exc()] })).authorizeDevice).toBe(false);
    expect(decideUsb(policy(), dev({ interfaces: stick, serial: null }), ctx({ exceptions: [exc({ serial: null })] })).authorizeDevice).toBe(true);
  });
  it('readonly exception', () => {
    const d = decideUsb(policy(), dev({ interfaces: stick }), ctx({ exceptions: [exc({ access: 'readonly' })] }));
    expect([d.readonly, d.eventType]).toEqual([true, 'usb.exception_used']);
  });
  it('a grant dated in the future (clock trouble) is ignored', () => {
    expect(decideUsb(policy(), dev({ interfaces: stick }), ctx({ exceptions: [exc({ grantedAt: '2026-11-22T00:00:00.000Z', expiresAt: '2026-11-23T00:00:00.000Z' })] })).authorizeDevice).toBe(false);
  });
  it('survives re-plug: the decision depends on identity, not on the port', () => {
    expect(decideUsb(policy(), dev({ interfaces: stick, path: '3-4.2', devnum: 9 }), ctx({ exceptions: [exc()] })).authorizeDevice).toBe(true);
  });
  it('cloned serial present twice: the exception is not used', () => {
    expect(decideUsb(policy(), dev({ interfaces: stick }), ctx({ exceptions: [exc()], others: [{ path: '2-1', vendorId: '0781', productId: '5581', serial: Buffer.from('SN123') }] })).authorizeDevice).toBe(false);
  });
});

describe('hostile descriptor strings', () => {
  const hostile: [string, Buffer][] = [
    ['control characters / ANSI escapes', Buffer.from('Evil\x1b[2J\x07\r\nFAKE LOG LINE\x00')],
    ['4 KB string', Buffer.alloc(4096, 0x41)],
    ['HTML', Buffer.from('<script>alert(1)</script><img src=x onerror=alert(1)>')],
    ['invalid UTF-8', Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0x28, 0xff])],
  ];
  for (const [name, bytes] of hostile) {
    it(name, () => {
      const d = dev({ interfaces: [iface(0, 0x08)], manufacturer: bytes, product: bytes, serial: bytes });
      const dec = decideUsb(policy(), d, ctx());
      expect(dec.authorizeDevice).toBe(false);
      const data = usbEventData(d, dec, 'enforce');
      for (const k of ['manufacturer', 'product', 'serial'] as const) {
        const s = data[k] as string;
        expect(s).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
        expect(Array.from(s).length).toBeLessThanOrEqual(257);
        expect(s.isWellFormed()).toBe(true);
      }
      expect(Buffer.byteLength(JSON.stringify(data))).toBeLessThan(32 * 1024);
    });
  }
  it('a registration cannot be matched by a serial that only displays the same', () => {
    const p = policy({ registered: [{ id: 'r', vendorId: '0781', productId: '5581', serial: 'SN123', access: 'allow' }] });
    expect(decideUsb(p, dev({ interfaces: [iface(0, 8)], serial: Buffer.from('SN123\x00') }), ctx()).authorizeDevice).toBe(false);
    expect(serialText(Buffer.from([0xff]))).toBe('\ufffd');
  });
});

describe('descriptor parser', () => {
  const devDesc = Buffer.from([18, 1, 0x00, 0x02, 0, 0, 0, 64, 0x81, 0x07, 0x81, 0x55, 0x00, 0x01, 1, 2, 3, 1]);
  const cfg = Buffer.from([9, 2, 32, 0, 1, 1, 0, 0x80, 50]);
  const intf = (n: number, c: number, s: number, p: number) => Buffer.from([9, 4, n, 0, 2, c, s, p, 0]);
  const ep = Buffer.from([7, 5, 0x81, 2, 0, 2, 0]);
  it('reads ids and every interface', () => {
    const p = parseDescriptors(Buffer.concat([devDesc, cfg, intf(0, 3, 1, 1), ep, intf(1, 8, 6, 0x50), ep, ep]))!;
    expect([p.vendorId, p.productId, p.bcdDevice, p.malformed]).toEqual(['0781', '5581', '0100', false]);
    expect(p.interfaces.map((i) => [i.number, i.class])).toEqual([[0, 3], [1, 8]]);
  });
  it('zero bLength or truncated tail stops (no infinite loop), marked malformed', () => {
    const p = parseDescriptors(Buffer.concat([devDesc, cfg, intf(0, 8, 6, 0x50), Buffer.from([0, 4, 0, 0])]))!;
    expect(p.malformed).toBe(true);
    expect(p.interfaces).toHaveLength(1);
    expect(parseDescriptors(Buffer.concat([devDesc, Buffer.from([200, 4, 0])]))!.malformed).toBe(true);
  });
  it('not a device descriptor → null', () => {
    expect(parseDescriptors(Buffer.alloc(10))).toBeNull();
    expect(parseDescriptors(Buffer.alloc(64))).toBeNull();
  });
  it('hash is sha256 of the raw bytes', () => {
    expect(descriptorHash(devDesc)).toMatch(/^[0-9a-f]{64}$/);
    expect(descriptorHash(Buffer.alloc(0))).toBe('');
  });
});

describe('policy section validation', () => {
  it('default is valid and strict', () => {
    expect(usbPolicyErrors(defaultUsbPolicy())).toEqual([]);
    expect(defaultUsbPolicy().defaultVerdict).toBe('block');
  });
  it('every error names its path; unknown keys are errors', () => {
    const bad = { ...defaultUsbPolicy(), extra: 1, classRules: [{ class: '8', verdict: 'maybe' }], registered: [{ id: 'a', vendorId: 'XYZ', productId: '0001', serial: '', access: 'rw' }, { id: 'a', vendorId: '0001', productId: '0001', serial: 's', access: 'allow', descriptorHash: 'no' }] };
    const e = usbPolicyErrors(bad, 'policy.usb');
    expect(e).toEqual(
      expect.arrayContaining([
        'policy.usb.extra: unknown setting',
        'policy.usb.classRules[0].class: must be two lowercase hex digits',
        'policy.usb.classRules[0].verdict: must be one of allow, block',
        'policy.usb.registered[0].vendorId: must be four lowercase hex digits',
        'policy.usb.registered[0].serial: must be a non-empty serial number',
        'policy.usb.registered[0].access: must be one of allow, readonly',
        'policy.usb.registered[1].id: duplicate "a"',
        'policy.usb.registered[1].descriptorHash: must be a lowercase sha256 hex digest',
      ]),
    );
  });
  it('exceptions from the console are checked', () => {
    expect(usbExceptionErrors(exc())).toEqual([]);
    expect(usbExceptionErrors({ ...exc(), expiresAt: 'soon', vendorId: 'zz' }).length).toBe(2);
  });
  it('optical and SD readers follow their own settings', () => {
    expect(decideBlockDevice(policy(), 'optical')).toEqual({ access: 'block', rule: 'optical:block' });
    expect(decideBlockDevice(policy({ sdCard: 'readonly' }), 'sdcard')).toEqual({ access: 'readonly', rule: 'sdcard:readonly' });
  });
});
