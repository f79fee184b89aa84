/**
 * Device model rules (issue 18), decision and validation: a model opens only the interface
 * classes it names, never storage / MTP / communications / network, in the documented order
 * exception → registration (storage) → model → class rules → default.
 */
import { describe, expect, it } from 'vitest';
import { decideUsb, findModel, modelOpens, type DecideContext } from '../../agent/usb/decide.js';
import type { UsbDeviceInfo, UsbInterfaceInfo } from '../../agent/usb/observe.js';
import { usbEventData } from '../../agent/usb/events.js';
import { readEventData } from '../../protocol/event-data.js';
import { defaultUsbPolicy, usbModelCatalogue, usbPolicyErrors, type UsbException, type UsbModelRule, type UsbPolicy } from '../../protocol/policy-usb.js';

const AGENT = 'agent-1';
const NOW = new Date('2026-11-21T10:00:00.000Z');
const HASH = 'c'.repeat(64);
const iface = (number: number, cls: number, sub = 0, proto = 0, alt = 0): UsbInterfaceInfo => ({ number, alt, class: cls, subclass: sub, protocol: proto });

/** A Sony PaSoRi RC-S380/S as it enumerates: one vendor-specific interface. */
function reader(p: Partial<UsbDeviceInfo> = {}): UsbDeviceInfo {
  return {
    path: '1-2',
    busnum: 1,
    devnum: 3,
    vendorId: '054c',
    productId: '06c1',
    bcdDevice: '0111',
    deviceClass: 0xff,
    deviceSubclass: 0,
    deviceProtocol: 0,
    manufacturer: Buffer.from('SONY'),
    product: Buffer.from('RC-S380/S'),
    serial: Buffer.from('0123456'),
    interfaces: [iface(0, 0xff)],
    descriptorHash: HASH,
    authorized: false,
    ...p,
  };
}
const ctx = (p: Partial<DecideContext> = {}): DecideContext => ({ agentId: AGENT, now: NOW, exceptions: [], others: [], ...p });
const model = (p: Partial<UsbModelRule> = {}): UsbModelRule => ({ id: 'rcs380', vendorId: '054c', productId: '06c1', interfaces: ['ff'], enabled: true, ...p });
const withModels = (models: UsbModelRule[], p: Partial<UsbPolicy> = {}): UsbPolicy => ({ ...defaultUsbPolicy(), models, ...p });
const allowedNumbers = (d: ReturnType<typeof decideUsb>) => d.interfaces.filter((i) => i.allow).map((i) => i.number);

describe('a reader model rule opens its named classes only', () => {
  const cases: { name: string; ifs: UsbInterfaceInfo[]; allowed: number[]; authorize: boolean; rule: string; event: string; partial?: boolean }[] = [
    { name: 'the reader: ff opened by the model', ifs: [iface(0, 0xff)], allowed: [0], authorize: true, rule: 'model:rcs380', event: 'usb.allowed' },
    { name: 'reader VID:PID + mass storage: only ff', ifs: [iface(0, 0xff), iface(1, 0x08, 6, 0x50)], allowed: [0], authorize: true, rule: 'class:08', event: 'usb.blocked', partial: true },
    { name: 'reader VID:PID + MTP 06: only ff', ifs: [iface(0, 0xff), iface(1, 0x06, 1, 1)], allowed: [0], authorize: true, rule: 'class:06', event: 'usb.blocked', partial: true },
    { name: 'reader VID:PID + CDC 02/0a: only ff', ifs: [iface(0, 0xff), iface(1, 0x02, 2, 1), iface(2, 0x0a)], allowed: [0], authorize: true, rule: 'class:02', event: 'usb.blocked', partial: true },
    { name: 'reader VID:PID + RNDIS e0: only ff', ifs: [iface(0, 0xff), iface(1, 0xe0, 1, 3), iface(2, 0x0a)], allowed: [0], authorize: true, rule: 'class:e0', event: 'usb.blocked', partial: true },
    { name: 'reader VID:PID + RNDIS over Misc ef/04: only ff', ifs: [iface(0, 0xff), iface(1, 0xef, 4, 1), iface(2, 0x0a)], allowed: [0], authorize: true, rule: 'class:ef/04', event: 'usb.blocked', partial: true },
    { name: 'reader VID:PID + HID: ff by the model, HID by its class rule', ifs: [iface(0, 0xff), iface(1, 0x03)], allowed: [0, 1], authorize: true, rule: 'model:rcs380', event: 'usb.allowed' },
    { name: 'a stick spoofing the reader VID:PID (08 only) gets nothing', ifs: [iface(0, 0x08, 6, 0x50)], allowed: [], authorize: false, rule: 'class:08', event: 'usb.blocked' },
    { name: 'spoofing stick with UAS alt setting gets nothing', ifs: [iface(0, 0x08, 6, 0x50), iface(0, 0x08, 6, 0x62, 1)], allowed: [], authorize: false, rule: 'class:08', event: 'usb.blocked' },
    { name: 'ff interface whose alt setting is storage: the interface stays shut', ifs: [iface(0, 0xff), iface(0, 0x08, 6, 0x50, 1)], allowed: [], authorize: false, rule: 'class:08', event: 'usb.blocked' },
    // Fails on the lead's first version (all alt settings had to come from the model, else the class
    // rules judged every one, ff included): each alt setting goes through the order on its own.
    { name: 'one interface, alt 0 ff (model) and alt 1 HID (class rule): open', ifs: [iface(0, 0xff), iface(0, 0x03, 0, 0, 1)], allowed: [0], authorize: true, rule: 'model:rcs380', event: 'usb.allowed' },
    { name: 'a printer interface the rule does not name stays blocked', ifs: [iface(0, 0xff), iface(1, 0x07, 1, 2)], allowed: [0], authorize: true, rule: 'class:07', event: 'usb.blocked', partial: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decideUsb(withModels([model()]), reader({ interfaces: c.ifs }), ctx());
      expect(allowedNumbers(d)).toEqual(c.allowed);
      expect(d.authorizeDevice).toBe(c.authorize);
      expect(d.rule).toBe(c.rule);
      expect(d.eventType).toBe(c.event);
      expect(d.partial).toBe(c.partial ?? false);
      expect(d.readonly).toBe(false);
    });
  }

  it('the default policy (catalogue entries disabled) blocks the reader as vendor specific', () => {
    const d = decideUsb(defaultUsbPolicy(), reader(), ctx());
    expect(d).toMatchObject({ authorizeDevice: false, rule: 'class:ff', eventType: 'usb.blocked', note: null });
  });

  it('the catalogue ships both RC-S380 variants disabled, each naming ff only', () => {
    const cat = usbModelCatalogue();
    expect(cat.map((m) => [m.id, m.vendorId, m.productId, m.interfaces, m.enabled])).toEqual([
      ['sony-rc-s380-s', '054c', '06c1', ['ff'], false],
      ['sony-rc-s380-p', '054c', '06c3', ['ff'], false],
    ]);
    expect(usbPolicyErrors({ ...defaultUsbPolicy(), models: cat })).toEqual([]);
  });

  it('enabling a catalogue entry (one click) opens that variant only', () => {
    const models = usbModelCatalogue().map((m) => (m.id === 'sony-rc-s380-s' ? { ...m, enabled: true } : m));
    expect(decideUsb(withModels(models), reader(), ctx()).rule).toBe('model:sony-rc-s380-s');
    expect(decideUsb(withModels(models), reader({ productId: '06c3' }), ctx()).rule).toBe('class:ff');
  });

  it('a disabled rule matches nothing', () => {
    expect(findModel(withModels([model({ enabled: false })]), reader())).toBeNull();
    expect(decideUsb(withModels([model({ enabled: false })]), reader(), ctx()).authorizeDevice).toBe(false);
  });

  it('other VID or PID: no match', () => {
    expect(findModel(withModels([model()]), reader({ vendorId: '054d' }))).toBeNull();
    expect(findModel(withModels([model()]), reader({ productId: '06c2' }))).toBeNull();
  });

  it('uppercase ids in a rule are normalised (the device side is always lowercase)', () => {
    expect(findModel(withModels([model({ vendorId: '054C', productId: '06C1' })]), reader())?.id).toBe('rcs380');
  });

  it('a stick spoofing the reader is reported with a note naming the model that did not apply', () => {
    const d = decideUsb(withModels([model()]), reader({ interfaces: [iface(0, 0x08, 6, 0x50)] }), ctx());
    expect(d.note).toMatch(/^model-not-applicable: rcs380 /);
    const data = usbEventData(reader({ interfaces: [iface(0, 0x08, 6, 0x50)] }), d, 'enforce');
    expect(readEventData('usb.blocked', data)).not.toBeNull();
    expect(data).toMatchObject({ rule: 'class:08', interfaceClasses: ['08'] });
  });

  it('the event of an opened reader names the model rule and passes its declaration', () => {
    const d = decideUsb(withModels([model()]), reader(), ctx());
    const data = usbEventData(reader(), d, 'enforce');
    expect(data.rule).toBe('model:rcs380');
    expect(readEventData('usb.allowed', data)).not.toBeNull();
  });
});

describe('patterns: class / subclass / protocol', () => {
  const cases: [string, UsbInterfaceInfo, boolean][] = [
    ['ff', iface(0, 0xff, 0x12, 0x34), true],
    ['ff/12', iface(0, 0xff, 0x12, 0x34), true],
    ['ff/12', iface(0, 0xff, 0x13, 0x34), false],
    ['ff/12/34', iface(0, 0xff, 0x12, 0x34), true],
    ['ff/12/35', iface(0, 0xff, 0x12, 0x34), false],
    ['07/01/02', iface(0, 0x07, 1, 2), true],
    ['07/01/02', iface(0, 0x07, 1, 1), false],
    ['07', iface(0, 0xff), false],
    // Never an export class, even if a tampered rule names it (validation refuses it too).
    ['08', iface(0, 0x08, 6, 0x50), false],
    ['06', iface(0, 0x06, 1, 1), false],
    ['02', iface(0, 0x02, 2, 1), false],
    ['0a', iface(0, 0x0a), false],
    ['e0', iface(0, 0xe0, 1, 3), false],
    ['ef/04', iface(0, 0xef, 4, 1), false],
    ['ef', iface(0, 0xef, 4, 1), false],
    ['ef/01', iface(0, 0xef, 1, 1), false], // ActiveSync / Palm sync
    ['fe/02', iface(0, 0xfe, 2, 0), false], // IrDA bridge
    ['ef/02', iface(0, 0xef, 2, 1), true],
    // Malformed patterns (a policy that never passed validation) match nothing.
    ['', iface(0, 0xff), false],
    ['zz', iface(0, 0xff), false],
    ['ff/', iface(0, 0xff), false],
  ];
  for (const [p, i, want] of cases) it(`${JSON.stringify(p)} on ${i.class.toString(16)}/${i.subclass.toString(16)}/${i.protocol.toString(16)} → ${want}`, () => expect(modelOpens(model({ interfaces: [p] }), i)).toBe(want));

  it('a subclass-narrow rule leaves other alt settings to the class rules (here: blocked ff)', () => {
    const d = decideUsb(withModels([model({ interfaces: ['ff/01'] })]), reader({ interfaces: [iface(0, 0xff, 1), iface(0, 0xff, 2, 0, 1)] }), ctx());
    expect(d).toMatchObject({ authorizeDevice: false, rule: 'class:ff' });
  });

  it('a label printer model opens its 07 interface and nothing else', () => {
    const printer = reader({ vendorId: '04f9', productId: '2042', interfaces: [iface(0, 0x07, 1, 2), iface(1, 0x08, 6, 0x50)] });
    const d = decideUsb(withModels([model({ id: 'ql-700', vendorId: '04f9', productId: '2042', interfaces: ['07'] })]), printer, ctx());
    expect(d.interfaces.map((i) => [i.number, i.allow, i.rule])).toEqual([
      [0, true, 'model:ql-700'],
      [1, false, 'class:08'],
    ]);
  });
});

describe('serial- and descriptor-bound model rules', () => {
  it('serial-bound: only that unit', () => {
    const p = withModels([model({ serial: '0123456' })]);
    expect(decideUsb(p, reader(), ctx()).rule).toBe('model:rcs380');
    expect(decideUsb(p, reader({ serial: Buffer.from('0123457') }), ctx()).rule).toBe('class:ff');
    expect(decideUsb(p, reader({ serial: null }), ctx()).rule).toBe('class:ff');
    expect(decideUsb(p, reader({ serial: Buffer.alloc(0) }), ctx()).rule).toBe('class:ff');
    expect(decideUsb(p, reader({ serial: Buffer.from('0123456 ') }), ctx()).rule).toBe('class:ff'); // exact, no trimming
  });

  it('descriptor-bound: only devices whose descriptors hash so; Windows (null hash) never matches', () => {
    const p = withModels([model({ descriptorHash: HASH })]);
    expect(decideUsb(p, reader(), ctx()).rule).toBe('model:rcs380');
    expect(decideUsb(p, reader({ descriptorHash: 'd'.repeat(64) }), ctx()).rule).toBe('class:ff');
    expect(decideUsb(p, reader({ descriptorHash: '' }), ctx()).rule).toBe('class:ff');
    expect(decideUsb(p, reader({ descriptorHash: null }), ctx()).rule).toBe('class:ff');
    expect(decideUsb(withModels([model({ descriptorHash: HASH.toUpperCase() })]), reader(), ctx()).rule).toBe('model:rcs380');
  });

  it('a clone of a serial-bound model gets nothing from it, and is said to be a clone', () => {
    const p = withModels([model({ serial: '0123456' })]);
    const other = { path: '1-3', vendorId: '054c', productId: '06c1', serial: Buffer.from('0123456') };
    const d = decideUsb(p, reader(), ctx({ others: [other] }));
    expect(d).toMatchObject({ authorizeDevice: false, rule: 'class:ff' });
    expect(d.note).toMatch(/^clone-suspected/);
  });

  it('a suspected clone of a serial-bound model gets no later VID:PID-wide model either (stricter than first-match: fail closed)', () => {
    const p = withModels([model({ id: 'unit-a', serial: '0123456' }), model({ id: 'any-unit' })]);
    const other = { path: '1-3', vendorId: '054c', productId: '06c1', serial: Buffer.from('0123456') };
    expect(decideUsb(p, reader(), ctx({ others: [other] }))).toMatchObject({ authorizeDevice: false, rule: 'class:ff' });
  });

  it('a model without serial is about the model, not one unit: two readers of it both work', () => {
    const other = { path: '1-3', vendorId: '054c', productId: '06c1', serial: Buffer.from('0123456') };
    expect(decideUsb(withModels([model()]), reader(), ctx({ others: [other] })).rule).toBe('model:rcs380');
  });
});

describe('order: exceptions, registrations, models, class rules', () => {
  const exc = (p: Partial<UsbException> = {}): UsbException => ({
    id: 'ux-9',
    agentId: AGENT,
    vendorId: '054c',
    productId: '06c1',
    serial: '0123456',
    access: 'allow',
    grantedAt: '2026-11-21T09:00:00.000Z',
    expiresAt: '2026-11-21T11:00:00.000Z',
    grantedBy: 'admin',
    reason: 'test',
    ...p,
  });
  const composite = reader({ interfaces: [iface(0, 0xff), iface(1, 0x08, 6, 0x50)] });

  it('an exception beats the model: every interface, reported as the exception', () => {
    const d = decideUsb(withModels([model()]), composite, ctx({ exceptions: [exc()] }));
    expect(d).toMatchObject({ authorizeDevice: true, rule: 'exception:ux-9', eventType: 'usb.exception_used', partial: false });
    expect(d.interfaces.map((i) => i.rule)).toEqual(['exception:ux-9', 'exception:ux-9']);
  });

  it('a registered device also covered by a model: storage through the registration, ff through the model', () => {
    const p = withModels([model()], { registered: [{ id: 'reg-7', vendorId: '054c', productId: '06c1', serial: '0123456', access: 'readonly' }] });
    const d = decideUsb(p, composite, ctx());
    expect(d.interfaces.map((i) => [i.number, i.allow, i.rule])).toEqual([
      [0, true, 'model:rcs380'],
      [1, true, 'registered:reg-7'],
    ]);
    expect(d).toMatchObject({ authorizeDevice: true, partial: false, readonly: true, eventType: 'usb.readonly', rule: 'registered:reg-7', note: null });
  });

  it('a registered stick of a VID:PID a model also names: storage through the registration, no note', () => {
    const p = withModels([model()], { registered: [{ id: 'reg-8', vendorId: '054c', productId: '06c1', serial: '0123456', access: 'allow' }] });
    const d = decideUsb(p, reader({ interfaces: [iface(0, 0x08, 6, 0x50)] }), ctx());
    expect(d).toMatchObject({ authorizeDevice: true, rule: 'registered:reg-8', eventType: 'usb.allowed', note: null });
  });

  it('a registration never opens the ff interface and a model never the storage one', () => {
    const regOnly = withModels([], { registered: [{ id: 'reg-7', vendorId: '054c', productId: '06c1', serial: '0123456', access: 'allow' }] });
    expect(decideUsb(regOnly, composite, ctx()).interfaces.map((i) => [i.allow, i.rule])).toEqual([
      [false, 'class:ff'],
      [true, 'registered:reg-7'],
    ]);
    expect(decideUsb(withModels([model()]), composite, ctx()).interfaces.map((i) => [i.allow, i.rule])).toEqual([
      [true, 'model:rcs380'],
      [false, 'class:08'],
    ]);
  });

  it('the first enabled model wins; disabled ones are skipped', () => {
    const p = withModels([model({ id: 'off', enabled: false }), model({ id: 'first', interfaces: ['ff/01'] }), model({ id: 'second', interfaces: ['ff'] })]);
    // first matches the device (VID:PID) and names ff/01 only: the second is never consulted.
    expect(decideUsb(p, reader(), ctx()).rule).toBe('class:ff');
    expect(decideUsb(p, reader({ interfaces: [iface(0, 0xff, 1)] }), ctx()).rule).toBe('model:first');
  });

  it('a serial-bound model of another unit does not hide a later VID:PID model', () => {
    const p = withModels([model({ id: 'unit-a', serial: 'OTHER' }), model({ id: 'any-unit' })]);
    expect(decideUsb(p, reader(), ctx()).rule).toBe('model:any-unit');
  });

  it('an explicit class rule allowing ff is still reached when no model matches', () => {
    const p: UsbPolicy = { ...defaultUsbPolicy(), classRules: [{ class: 'ff', verdict: 'allow' }], models: [model({ vendorId: '1234' })] };
    expect(decideUsb(p, reader(), ctx()).rule).toBe('class:ff');
  });

  it('policies without models (signed before model rules) decide as before', () => {
    const { models: _drop, ...old } = defaultUsbPolicy();
    expect(decideUsb(old as UsbPolicy, reader(), ctx()).rule).toBe('class:ff');
  });
});

describe('hostile input', () => {
  it('1000 models, the match last: found; bounded by the validator', () => {
    const many = Array.from({ length: 999 }, (_, i) => model({ id: `m${i}`, vendorId: 'ffff', productId: i.toString(16).padStart(4, '0') }));
    const p = withModels([...many, model({ id: 'last' })]);
    expect(usbPolicyErrors(p)).toEqual([]);
    expect(decideUsb(p, reader(), ctx()).rule).toBe('model:last');
  });

  it('a device with 2^8 interfaces of ff, each opened (no quadratic blow-up, no crash)', () => {
    const ifs = Array.from({ length: 256 }, (_, n) => iface(n, 0xff));
    const d = decideUsb(withModels([model()]), reader({ interfaces: ifs }), ctx());
    expect(d.interfaces).toHaveLength(256);
    expect(d.interfaces.every((i) => i.allow)).toBe(true);
  });

  it('attacker-controlled strings never take part in matching a model without serial', () => {
    const evil = reader({ manufacturer: Buffer.from('<script>alert(1)</script>'), product: Buffer.from('054c:06c1'), serial: Buffer.from('\u0000\uffff') });
    expect(decideUsb(withModels([model()]), evil, ctx()).rule).toBe('model:rcs380');
    // Kept as data (the console escapes on output); controls made visible, raw serial as hex.
    const data = usbEventData(evil, decideUsb(withModels([model()]), evil, ctx()), 'enforce');
    expect(data).toMatchObject({ rule: 'model:rcs380', manufacturer: '<script>alert(1)</script>', serialHex: Buffer.from('\u0000\uffff').toString('hex') });
    expect(String(data.serial)).toContain('\\x00');
    expect(readEventData('usb.allowed', data)).not.toBeNull();
  });
});

describe('policy validation of models', () => {
  const base = () => ({ ...defaultUsbPolicy(), models: [] as unknown[] });
  const errs = (models: unknown) => usbPolicyErrors({ ...base(), models });

  it('refuses every export class a model rule could name', () => {
    for (const p of ['08', '08/06', '08/06/50', '06', '06/01/01', '02', '02/02', '0a', 'e0', 'e0/01/03', 'ef', 'ef/04', 'ef/04/01', 'ef/01', 'ef/01/01', 'fe', 'fe/02', 'fe/02/00']) {
      const e = errs([model({ interfaces: [p] })]);
      expect(e, p).toEqual([expect.stringMatching(/^usb\.models\[0\]\.interfaces\[0\]: .* never opens it/)]);
    }
  });

  it('accepts vendor-specific, printer, audio, video and misc patterns with a named subclass', () => {
    expect(errs([model({ interfaces: ['ff', 'ff/01', 'ff/01/02', '07', '07/01/02', '01', '0e', 'ef/02', 'fe/01'] })])).toEqual([]);
  });

  it('refuses bad patterns, naming the path', () => {
    for (const p of ['FF', 'f', 'fff', 'ff/', 'ff/1', 'ff/01/02/03', 'ff:*:*', '*', ' ff', 'ff\n', '', 255, null, {}]) {
      const e = errs([model({ interfaces: [p as string] })]);
      expect(e.length, JSON.stringify(p)).toBeGreaterThan(0);
      expect(e[0]).toMatch(/^usb\.models\[0\]\.interfaces\[0\]: /);
    }
  });

  it('refuses an empty or oversized interface list', () => {
    expect(errs([model({ interfaces: [] })])).toEqual(['usb.models[0].interfaces: must name 1 to 16 interface classes']);
    expect(errs([model({ interfaces: Array(17).fill('ff') })])).toEqual(['usb.models[0].interfaces: must name 1 to 16 interface classes']);
    expect(errs([{ ...model(), interfaces: 'ff' }])).toEqual(['usb.models[0].interfaces: must name 1 to 16 interface classes']);
  });

  it('duplicate ids, bad ids and ids of absurd length', () => {
    expect(errs([model(), model()])).toEqual(['usb.models[1].id: duplicate "rcs380"']);
    expect(errs([model({ id: '' })])[0]).toMatch(/^usb\.models\[0\]\.id: /);
    expect(errs([model({ id: 'x'.repeat(65) })])[0]).toMatch(/^usb\.models\[0\]\.id: /);
    expect(errs([model({ id: '../../etc' })])[0]).toMatch(/^usb\.models\[0\]\.id: /);
    expect(errs([model({ id: '<img src=x>' })])[0]).toMatch(/^usb\.models\[0\]\.id: /);
  });

  it('1000 models pass, 1001 are refused', () => {
    const list = (n: number) => Array.from({ length: n }, (_, i) => model({ id: `m${i}` }));
    expect(errs(list(1000))).toEqual([]);
    expect(errs(list(1001))).toEqual(['usb.models: must be a list of at most 1000 models']);
  });

  it('absurd values are refused with their path', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ vendorId: '54c' }, /^usb\.models\[0\]\.vendorId: /],
      [{ vendorId: 2 ** 53 }, /^usb\.models\[0\]\.vendorId: /],
      [{ productId: 'GGGG' }, /^usb\.models\[0\]\.productId: /],
      [{ serial: '' }, /^usb\.models\[0\]\.serial: /],
      [{ serial: ' ' }, /^usb\.models\[0\]\.serial: /],
      [{ serial: 'x'.repeat(256) }, /^usb\.models\[0\]\.serial: /],
      [{ descriptorHash: 'A'.repeat(64) }, /^usb\.models\[0\]\.descriptorHash: /],
      [{ descriptorHash: 'a'.repeat(63) }, /^usb\.models\[0\]\.descriptorHash: /],
      [{ enabled: 'true' }, /^usb\.models\[0\]\.enabled: /],
      [{ enabled: 1 }, /^usb\.models\[0\]\.enabled: /],
      [{ label: 'x'.repeat(201) }, /^usb\.models\[0\]\.label: /],
      [{ comment: 'x'.repeat(201) }, /^usb\.models\[0\]\.comment: /],
      [{ verdict: 'allow' }, /^usb\.models\[0\]\.verdict: unknown/],
      [{ expiresAt: '9999-12-31T23:59:59Z' }, /^usb\.models\[0\]\.expiresAt: unknown/],
    ];
    for (const [patch, re] of cases) {
      const e = errs([{ ...model(), ...patch }]);
      expect(e.some((x) => re.test(x)), `${JSON.stringify(patch)} → ${JSON.stringify(e)}`).toBe(true);
    }
  });

  it('not a list, or a list of non-objects', () => {
    expect(errs('ff')).toEqual(['usb.models: must be a list of at most 1000 models']);
    expect(errs({ length: 1 })).toEqual(['usb.models: must be a list of at most 1000 models']);
    expect(errs([null, 7, 'x'])).toEqual(['usb.models[0]: must be an object', 'usb.models[1]: must be an object', 'usb.models[2]: must be an object']);
  });

  it('models absent is valid (older policies); models: null is not', () => {
    const { models: _drop, ...old } = defaultUsbPolicy();
    expect(usbPolicyErrors(old)).toEqual([]);
    expect(usbPolicyErrors({ ...old, models: null })).toEqual(['usb.models: must be a list of at most 1000 models']);
  });
});
