/** The pure part of the device inventory: sightings from events, and the policy changes made from a row. */
import { describe, expect, it } from 'vitest';
import { readEventData } from '../../protocol/event-data.js';
import { defaultUsbPolicy, usbModelCatalogue, usbPolicyErrors, type UsbPolicy } from '../../protocol/policy-usb.js';
import {
  catalogueStates,
  interfaceLabels,
  modelInterfacesOf,
  modelRefusal,
  parseDeviceQuery,
  proposeCatalogueEnable,
  proposeModelRule,
  proposeRegistration,
  registrationRefusal,
  registrationSerial,
  sightingOf,
} from '../../console/usb/devices.js';
import { RC_S380, STICK, usbData, type DeviceSpecT } from './devices-fixtures.js';

const TS = '2026-11-30T01:00:00.000Z';
const sighting = (d: DeviceSpecT, type = 'usb.blocked', agent = 'agent-a') => {
  const data = readEventData('usb.blocked', usbData(d));
  if (!data) throw new Error('fixture does not match the declaration');
  const s = sightingOf(agent, type, data, 'tanaka', TS, 7);
  if (!s) throw new Error('no sighting');
  return s;
};

/** Every key of the USB section except `models` is unchanged, and the result is a valid section. */
function onlyModelsChanged(before: UsbPolicy, after: UsbPolicy): void {
  expect(usbPolicyErrors(after)).toEqual([]);
  const { models: _a, ...restA } = before;
  const { models: _b, ...restB } = after;
  expect(restB).toEqual(restA);
}

describe('sightingOf', () => {
  it('takes the uploader as the terminal, the raw serial as the key, and keeps names as display text', () => {
    const s = sighting({ ...STICK, manufacturer: '<script>alert(1)</script>', product: 'x\u0007y' });
    expect(s).toMatchObject({ agentId: 'agent-a', vendorId: '0781', productId: '5581', serialHex: Buffer.from('4C530001').toString('hex'), interfaces: ['08/06/50'], type: 'usb.blocked', rid: 7, ts: TS });
    expect(s.manufacturer).toBe('<script>alert(1)</script>'); // kept as data; the page escapes it
    expect(s.product).toBe('x\\x07y'); // control characters never reach a page or a CSV as themselves
  });
  it.each([
    ['a built-in drive', 'usb.blocked', { kind: 'optical', mode: 'enforce', device: 'sr0', rule: 'optical:block', partitions: [] }],
    ['not a device event type', 'usb.enforced_stricter', usbData(STICK)],
  ])('is null for %s', (_n, type, data) => {
    expect(sightingOf('a', type, data as never, null, TS, 1)).toBeNull();
  });
  it('has no serial key for a device without serial, and for an agent that sent none', () => {
    expect(sighting(RC_S380).serialHex).toBe('');
    const { serialHex: _s, ...legacy } = usbData(STICK);
    expect(sightingOf('a', 'usb.allowed', { ...(legacy as object), serialHex: null } as never, null, TS, 1)!.serialHex).toBe('');
  });
  it('keeps at most 64 well-formed interface labels (hostile lists are cut, junk dropped)', () => {
    const many = Array.from({ length: 256 }, (_, i) => ({ number: i, classes: [`${(i % 256).toString(16).padStart(2, '0')}/00/00`, '<b>', 'ff/ff/ff/ff'], allow: false, rule: 'x' }));
    const labels = interfaceLabels({ interfaces: many, interfaceClasses: [] });
    expect(labels.length).toBe(64);
    expect(labels.every((l) => /^[0-9a-f]{2}\/00\/00$/.test(l))).toBe(true);
    expect(interfaceLabels({ interfaces: [], interfaceClasses: ['ff', '0', 'zz'] })).toEqual(['ff']);
  });
});

describe('allow this model', () => {
  it.each([
    ['RC-S380 (vendor specific)', ['ff/ff/ff'], ['ff'], []],
    ['reader + mass storage (spoofed composite)', ['ff/00/00', '08/06/50'], ['ff'], ['08']],
    ['label printer', ['07/01/02'], ['07'], []],
    ['headset (audio + HID)', ['01/01/00', '01/02/00', '03/00/00'], ['01', '03'], []],
    ['phone: MTP + CDC + RNDIS', ['06/01/01', '02/02/01', '0a/00/00', 'ef/04/01', 'e0/01/03'], [], ['02', '06', '0a', 'e0', 'ef/04']],
    ['misc with subclass', ['ef/02/01'], ['ef/02'], []],
    ['ef without subclass (legacy class list)', ['ef'], [], ['ef']],
  ])('%s: opens %j, drops %j', (_n, labels, open, dropped) => {
    expect(modelInterfacesOf(labels)).toEqual({ open, dropped });
  });

  it('enables the disabled catalogue entry of an RC-S380 instead of adding a second rule', () => {
    const usb = defaultUsbPolicy();
    const p = proposeModelRule(usb, sighting(RC_S380));
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(p.ruleId).toBe('sony-rc-s380-s');
    const rule = p.usb.models!.find((m) => m.id === 'sony-rc-s380-s')!;
    expect(rule).toMatchObject({ vendorId: '054c', productId: '06c1', interfaces: ['ff'], enabled: true });
    expect(p.usb.models!.length).toBe(usb.models!.length);
    expect(p.usb.models!.find((m) => m.id === 'sony-rc-s380-p')!.enabled).toBe(false);
    onlyModelsChanged(usb, p.usb);
  });

  it('adds a new rule (label from the device, escaped later) for a model the policy does not name; the policy validator accepts it', () => {
    const usb: UsbPolicy = { ...defaultUsbPolicy(), models: undefined };
    const p = proposeModelRule(usb, sighting({ vendorId: '04f9', productId: '2042', manufacturer: 'Brother', product: '<img src=x onerror=alert(1)>', interfaces: ['07/01/02', '08/06/50'] }));
    expect(p.ok && p.usb.models).toEqual([{ id: 'model-04f9-2042', vendorId: '04f9', productId: '2042', interfaces: ['07'], enabled: true, label: 'Brother <img src=x onerror=alert(1)>' }]);
    if (p.ok) onlyModelsChanged(usb, p.usb);
  });

  it('never widens a rule into export classes, and a second click changes nothing', () => {
    const usb = defaultUsbPolicy();
    const first = proposeModelRule(usb, sighting({ ...RC_S380, interfaces: ['ff/ff/ff', '08/06/50'] }));
    if (!first.ok) throw new Error('refused');
    const second = proposeModelRule(first.usb, sighting(RC_S380));
    expect(second.ok && second.usb).toEqual(first.usb);
  });

  it.each([
    ['storage only', ['08/06/50'], 'only-export'],
    ['phone', ['06/01/01', '02/02/01', 'ef/04/01'], 'only-export'],
    ['no interfaces', [], 'no-interfaces'],
    ['17 classes', Array.from({ length: 17 }, (_, i) => `${(0x10 + i).toString(16)}/00/00`), 'too-many'],
  ])('refuses %s and says why (Japanese and English)', (_n, labels, code) => {
    const s = sighting({ ...STICK, interfaces: labels.length ? labels : ['08/06/50'] });
    const dev = { ...s, interfaces: labels };
    const p = proposeModelRule(defaultUsbPolicy(), dev);
    expect(p.ok).toBe(false);
    if (!p.ok) {
      expect(p.refusal.code).toBe(code);
      expect(p.refusal.ja.length).toBeGreaterThan(5);
      expect(p.refusal.en.length).toBeGreaterThan(5);
    }
    expect(modelRefusal(dev)?.code).toBe(code);
  });
});

describe('register this stick', () => {
  it('adds VID:PID:serial pinned to the descriptor hash, with the chosen access and label; nothing else changes', () => {
    const usb = defaultUsbPolicy();
    const p = proposeRegistration(usb, sighting(STICK), 'readonly', '総務課 USB 1');
    if (!p.ok) throw new Error(p.refusal.en);
    expect(p.usb.registered).toEqual([{ id: p.ruleId, vendorId: '0781', productId: '5581', serial: '4C530001', descriptorHash: 'a'.repeat(64), access: 'readonly', label: '総務課 USB 1' }]);
    expect(usbPolicyErrors(p.usb)).toEqual([]);
    const { registered: _a, ...restA } = usb;
    const { registered: _b, ...restB } = p.usb;
    expect(restB).toEqual(restA);
    // The same stick again: updated in place, not doubled.
    const again = proposeRegistration(p.usb, sighting(STICK), 'allow', '');
    expect(again.ok && again.usb.registered.map((r) => [r.id, r.access])).toEqual([[p.ruleId, 'allow']]);
  });
  it.each([
    ['no serial', { ...STICK, serial: null }, 'no-serial'],
    ['no storage interface', RC_S380, 'no-storage'],
  ])('refuses a device with %s', (_n, d, code) => {
    const p = proposeRegistration(defaultUsbPolicy(), sighting(d), 'allow', '');
    expect(!p.ok && p.refusal.code).toBe(code);
    expect(registrationRefusal(sighting(d))?.code).toBe(code);
  });
  it.each([
    ['invalid UTF-8', 'ff00', false],
    ['control character', Buffer.from('A\u0001B').toString('hex'), false],
    ['only spaces', '2020', false],
    ['plain text', Buffer.from('4C530001').toString('hex'), true],
    ['Japanese text', Buffer.from('シリアル').toString('hex'), true],
  ])('a serial as %s is registrable: %s', (_n, hex, ok) => {
    expect('serial' in registrationSerial(hex)).toBe(ok);
  });
});

describe('catalogue', () => {
  it('lists each ready-made entry with its state, and enabling adds or enables exactly that entry', () => {
    const usb = defaultUsbPolicy();
    expect(catalogueStates(usb).map((c) => [c.entry.id, c.state])).toEqual(usbModelCatalogue().map((e) => [e.id, 'disabled']));
    const p = proposeCatalogueEnable(usb, 'sony-rc-s380-p');
    if (!p.ok) throw new Error('refused');
    expect(catalogueStates(p.usb).map((c) => c.state)).toEqual(['disabled', 'enabled']);
    onlyModelsChanged(usb, p.usb);
    const none: UsbPolicy = { ...usb, models: undefined };
    const added = proposeCatalogueEnable(none, 'sony-rc-s380-s');
    expect(added.ok && added.usb.models).toEqual([{ ...usbModelCatalogue()[0]!, enabled: true }]);
    expect(catalogueStates(none).every((c) => c.state === 'absent')).toBe(true);
    expect(proposeCatalogueEnable(usb, '__proto__').ok).toBe(false);
  });
});

describe('parseDeviceQuery', () => {
  const parse = (q: string) => parseDeviceQuery((k) => new URLSearchParams(q).get(k));
  it.each([
    ['', { text: undefined, terminal: undefined, verdict: undefined, before: undefined }],
    ['q=054c:06c1&verdict=usb.blocked', { text: '054c:06c1', verdict: 'usb.blocked' }],
    ['before=2026-11-30T01:00:00.000Z~9007199254740991', { before: { lastSeen: '2026-11-30T01:00:00.000Z', id: 9007199254740991 } }],
  ])('%s', (q, want) => {
    const p = parse(q);
    expect('query' in p && p.query).toMatchObject(want);
  });
  it.each(['verdict=usb.enforced_stricter', 'verdict=%3Cscript%3E', 'before=9999~1', 'before=2026-11-30T01:00:00.000Z~99999999999999999', 'q=' + 'x'.repeat(201), 'terminal=' + 'a'.repeat(65)])(
    'refuses %s',
    (q) => {
      expect('error' in parse(q)).toBe(true);
    },
  );
});

describe('devices list (CLI line)', () => {
  it('shows every terminal-supplied field through safeText: no control character reaches the terminal', async () => {
    const { deviceLine } = await import('../../console/usb/devices-cli.js');
    const line = deviceLine(
      { id: 1, agentId: 'a'.repeat(36), vendorId: '054c', productId: '06c1', serialHex: 'ff'.repeat(40), descriptorHash: '', serial: 'S\u001b[2J', manufacturer: 'SONY\r\nFAKE', product: 'RC-S380', interfaces: ['ff/ff/ff'], lastType: 'usb.blocked', lastRule: 'class:ff', lastUser: null, lastRid: 1, firstSeen: TS, lastSeen: TS, seen: 2 },
      'pc\u0007-01',
    );
    expect(line.endsWith('\n')).toBe(true);
    expect(line.slice(0, -1)).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    expect(line).toContain('054c:06c1');
    expect(line).toContain('#' + 'ff'.repeat(16) + '…');
    expect(line).toContain('×2');
  });
});
