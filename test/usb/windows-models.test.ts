/**
 * Model rules (issue 18) on Windows: what the plan writes for each, what it notes, and what the
 * platform reports per device. The mechanism facts the plan relies on are in plan.ts's header
 * (layered evaluation: instance IDs > device IDs > setup classes, Prevent before Allow in a layer).
 */
import { describe, expect, it } from 'vitest';
import { defaultUsbPolicy, usbModelCatalogue, type RegisteredMedia, type UsbException, type UsbModelRule, type UsbPolicy } from '../../protocol/policy-usb.js';
import { RESTRICTIONS, RSA_ROOT, SD_STORAGE_ID, SETUP_CLASS, patternDenied, planRegistry, type PlanNote, type RegistryPlan } from '../../agent/usb/windows/plan.js';
import { classDenied, compositeOnWindows, stricterOnWindows, WindowsUsbPlatform } from '../../agent/usb/windows/platform.js';
import { ENUM_USB } from '../../agent/usb/windows/devices.js';
import { decideUsb } from '../../agent/usb/decide.js';
import type { UsbDeviceInfo, UsbInterfaceInfo } from '../../agent/usb/observe.js';
import { MemoryRegistry } from '../../agent/windows/registry.js';

const NOW = new Date('2026-11-30T00:00:00Z');
const AGENT = 'agent-1';
const DISKS = `${RSA_ROOT}\\{53f5630d-b6bf-11d0-94f2-00a0c91efb8b}`;
const CDDVD = `${RSA_ROOT}\\{53f56308-b6bf-11d0-94f2-00a0c91efb8b}`;
const WPD1 = `${RSA_ROOT}\\{6AC27878-A6FA-4155-BA85-F98F491D4F33}`;
const READER_ID = 'USB\\VID_054C&PID_06C1\\0123ABCD';

const model = (over: Partial<UsbModelRule> = {}): UsbModelRule => ({ id: 'reader', vendorId: '054c', productId: '06c1', serial: '0123ABCD', interfaces: ['ff'], enabled: true, ...over });
const serialLess = (over: Partial<UsbModelRule> = {}): UsbModelRule => {
  const m = model(over);
  delete m.serial;
  return m;
};
const stick = (over: Partial<RegisteredMedia> = {}): RegisteredMedia => ({ id: 'stick-1', vendorId: '0781', productId: '5567', serial: 'S1', access: 'allow', ...over });
const exc = (over: Partial<UsbException> = {}): UsbException => ({
  id: 'ex1',
  agentId: AGENT,
  vendorId: '0951',
  productId: '1666',
  serial: 'AB12',
  access: 'allow',
  grantedAt: '2026-11-29T23:00:00Z',
  expiresAt: '2026-11-30T01:00:00Z',
  grantedBy: 'admin',
  reason: 'r',
  ...over,
});
const policy = (over: Partial<UsbPolicy> = {}): UsbPolicy => ({ ...defaultUsbPolicy(), ...over });
const plan = (p: UsbPolicy, exceptions: UsbException[] = [], monitor = false) => planRegistry({ policy: p, exceptions, monitor, now: NOW, agentId: AGENT });
const valuesOf = (pl: RegistryPlan, key: string) => Object.fromEntries(pl.keys.find((k) => k.key === key)!.values.map((v) => [v.name, v.data]));
const codes = (n: PlanNote[]) => n.map((x) => `${x.code} ${x.subject}`);
const DEFAULT = plan(defaultUsbPolicy());
const ALL_DENIED = { Deny_Read: 1, Deny_Write: 1, Deny_Execute: 1 };

describe('audio and printers under the default class rules (the default changed: 01 allowed, 07 an explicit block)', () => {
  it('a headset works: USB\\Class_01 is not denied; built-in sound untouched (Media / AudioEndpoint never denied)', () => {
    expect(DEFAULT.denyDeviceIds).not.toContain('USB\\Class_01');
    expect(DEFAULT.denyClasses).toEqual([SETUP_CLASS.wpd]);
    expect(JSON.stringify(DEFAULT.keys)).not.toContain(SETUP_CLASS.media);
    expect(JSON.stringify(DEFAULT.keys)).not.toContain(SETUP_CLASS.audioEndpoint);
  });
  it('a USB printer does not install: USB\\Class_07 denied by its own rule; network printers untouched (Printer / PrintQueue never denied)', () => {
    expect(DEFAULT.denyDeviceIds).toContain('USB\\Class_07');
    expect(JSON.stringify(DEFAULT.keys)).not.toContain(SETUP_CLASS.printer);
    expect(JSON.stringify(DEFAULT.keys)).not.toContain(SETUP_CLASS.printQueue);
  });
  it.each<[string, Partial<UsbPolicy>, { audio: boolean; printer: boolean; video: boolean }]>([
    ['default', {}, { audio: false, printer: true, video: true }],
    // The printer rule is explicit: it holds even where everything unnamed is allowed.
    ['defaultVerdict allow', { defaultVerdict: 'allow' }, { audio: false, printer: true, video: false }],
    ['audio closed by a rule before the default ones', { classRules: [{ class: '01', verdict: 'block' }, ...defaultUsbPolicy().classRules] }, { audio: true, printer: true, video: true }],
    ['printers opened as a class (not recommended)', { classRules: [{ class: '07', verdict: 'allow' }, ...defaultUsbPolicy().classRules] }, { audio: false, printer: false, video: true }],
  ])('%s', (_n, over, denied) => {
    const pl = plan(policy(over));
    expect(pl.denyDeviceIds.includes('USB\\Class_01')).toBe(denied.audio);
    expect(pl.denyDeviceIds.includes('USB\\Class_07')).toBe(denied.printer);
    expect(pl.denyDeviceIds.includes('USB\\Class_0E')).toBe(denied.video);
    expect(pl.notes).toEqual([]);
  });
});

describe('model rule → exact registry values', () => {
  type Case = [name: string, p: Partial<UsbPolicy>, exceptions: UsbException[], allow: string[], notes: string[]];
  const cases: Case[] = [
    ['catalogue as shipped (disabled): nothing', { models: usbModelCatalogue() }, [], [], []],
    ['a disabled serial-bound rule: nothing', { models: [model({ enabled: false })] }, [], [], []],
    ['serial-bound: its instance ID, as a registration', { models: [model()] }, [], [READER_ID], []],
    ['catalogue enabled (no serial): not opened, noted', { models: usbModelCatalogue().map((m) => ({ ...m, enabled: true })) }, [], [], ['model-needs-serial model:sony-rc-s380-s', 'model-needs-serial model:sony-rc-s380-p']],
    ['descriptor hash: Windows cannot check it, noted', { models: [model({ descriptorHash: 'a'.repeat(64) })] }, [], [], ['descriptor-hash-unenforceable model:reader']],
    ['serial Windows does not use (space)', { models: [model({ serial: 'AB CD' })] }, [], [], ['serial-not-instance-id model:reader']],
    ['hostile serial naming another key', { models: [model({ serial: 'X\\..\\..\\Run' })] }, [], [], ['serial-not-instance-id model:reader']],
    ['hostile serial forging a reg line', { models: [model({ serial: 'A\r\n    1    REG_SZ    USB\\VID_0781&PID_5567\\S1' })] }, [], [], ['serial-not-instance-id model:reader']],
    ['first of two rules for the same unit: one entry', { models: [model(), model({ id: 'again', interfaces: ['ff/01'] })] }, [], [READER_ID], []],
    // Storage open elsewhere: a stick copying the reader's VID:PID and serial would get it (never open storage).
    ['a writable registered stick opens disks: withheld', { models: [model()], registered: [stick()] }, [], ['USB\\VID_0781&PID_5567\\S1'], ['model-would-open-storage model:reader']],
    ['a read-only registered stick opens disks for reading: withheld', { models: [model()], registered: [stick({ access: 'readonly' })] }, [], ['USB\\VID_0781&PID_5567\\S1'], ['model-would-open-storage model:reader']],
    ['an exception in force opens disks and WPD: withheld', { models: [model()] }, [exc()], ['USB\\VID_0951&PID_1666\\AB12'], ['model-would-open-storage model:reader']],
    ['read-only CD/DVD: withheld', { models: [model()], optical: 'readonly' }, [], [], ['model-would-open-storage model:reader']],
    ['read-only SD cards (Removable Disks class): withheld', { models: [model()], sdCard: 'readonly' }, [], [], ['model-would-open-storage model:reader']],
    ['phones allowed by class (WPD open): withheld', { models: [model()], classRules: [{ class: '06', verdict: 'allow' }, ...defaultUsbPolicy().classRules] }, [], [], ['model-would-open-storage model:reader']],
    ['an expired exception opens nothing: written', { models: [model()] }, [exc({ expiresAt: '2026-11-29T23:30:00Z' })], [READER_ID], []],
    // Classes Windows does not deny need nothing.
    ['a headset model (01, allowed by class), no serial: nothing, no note', { models: [serialLess({ interfaces: ['01'] })] }, [], [], []],
    ['a keyboard-and-reader model names 03 and ff: needs the allow for ff', { models: [model({ interfaces: ['03', 'ff'] })] }, [], [READER_ID], []],
    ['a label printer model (07/01/02), serial-bound', { models: [model({ id: 'printer', vendorId: '04b8', productId: '0e28', serial: 'X5ZK012345', interfaces: ['07/01/02'] })] }, [], ['USB\\VID_04B8&PID_0E28\\X5ZK012345'], []],
    ['a printer model without serial: noted', { models: [serialLess({ id: 'printer', interfaces: ['07'] })] }, [], [], ['model-needs-serial model:printer']],
    ['narrowed pattern inside a denied class (ff/01): the class deny covers it', { models: [model({ interfaces: ['ff/01/02'] })] }, [], [READER_ID], []],
    // Hostile rules that slipped past validation never open anything.
    ['hostile: storage class named (08)', { models: [model({ interfaces: ['08'] })] }, [], [], []],
    ['hostile: MTP, CDC, wireless, RNDIS, bare ef', { models: [model({ interfaces: ['06', '02', '0a', 'e0', 'ef/04', 'ef'] })] }, [], [], []],
    ['hostile: junk patterns', { models: [model({ interfaces: ['FF', 'ff/', '../ff', 'f', 'ff/01/02/03', ''] })] }, [], [], []],
    ['hostile: upper-case / junk VID:PID', { models: [model({ vendorId: '054C' }), model({ id: 'b', productId: '06c1\\x' })] }, [], [], []],
  ];
  it.each(cases)('%s', (_n, over, exceptions, allow, notes) => {
    const pl = plan(policy(over), exceptions);
    expect(pl.allowInstanceIds).toEqual(allow);
    expect(valuesOf(pl, `${RESTRICTIONS}\\AllowInstanceIDs`)).toEqual(Object.fromEntries(allow.map((a, i) => [String(i + 1), a])));
    expect(valuesOf(pl, RESTRICTIONS).AllowInstanceIDs).toBe(allow.length ? 1 : undefined);
    expect(codes(pl.notes).filter((c) => c.startsWith('model') || c.includes(' model:'))).toEqual(notes);
    // Never an AllowDeviceIDs: it would lose to the class deny in its own layer (and open nothing).
    expect(JSON.stringify(pl.keys)).not.toMatch(/AllowDeviceIDs/i);
    // The deny side is never touched by a model rule.
    expect(pl.denyDeviceIds).toEqual(plan(policy({ ...over, models: [] }), exceptions).denyDeviceIds);
    expect(pl.denyClasses).toEqual(plan(policy({ ...over, models: [] }), exceptions).denyClasses);
  });
  it('a model rule changes nothing but its allow entry and flag (the spoofing stick stays denied)', () => {
    const pl = plan(policy({ models: [model()] }));
    const strip = (p: RegistryPlan) => p.keys.filter((k) => !k.key.endsWith('\\AllowInstanceIDs') && k.key !== RESTRICTIONS);
    expect(strip(pl)).toEqual(strip(DEFAULT));
    // A stick with the reader's VID:PID: storage class, SD and WPD denied; every removable class fully denied.
    expect(pl.denyDeviceIds).toEqual(expect.arrayContaining(['USB\\Class_08', 'USB\\Class_06', 'USB\\Class_FF', SD_STORAGE_ID]));
    expect(pl.denyClasses).toEqual([SETUP_CLASS.wpd]);
    expect(valuesOf(pl, DISKS)).toEqual(ALL_DENIED);
    expect(valuesOf(pl, CDDVD)).toEqual({ Deny_Read: 1, Deny_Write: 1 });
    expect(valuesOf(pl, WPD1)).toEqual({ Deny_Read: 1, Deny_Write: 1 });
    // Only the named unit is allowed: another serial of the same model is an instance ID not listed.
    expect(pl.allowInstanceIds).toEqual([READER_ID]);
  });
  it('monitor: nothing written, as for every rule', () => {
    const pl = plan(policy({ models: [model()] }), [], true);
    expect(pl.allowInstanceIds).toEqual([]);
    for (const k of pl.keys) expect(k.values).toEqual([]);
  });
  it('a thousand serial-bound rules: a thousand entries, numbered 1..1000, nothing else', () => {
    const models = Array.from({ length: 1000 }, (_, i) => model({ id: `m${i}`, serial: `SN${String(i).padStart(5, '0')}` }));
    const pl = plan(policy({ models }));
    const list = pl.keys.find((k) => k.key === `${RESTRICTIONS}\\AllowInstanceIDs`)!.values;
    expect(list).toHaveLength(1000);
    expect(list.map((v) => v.name)).toEqual(Array.from({ length: 1000 }, (_, i) => String(i + 1)));
    expect(list.every((v) => v.type === 'REG_SZ' && /^USB\\VID_054C&PID_06C1\\SN\d{5}$/.test(String(v.data)))).toBe(true);
  });
  it('notes name the rule and say it in Japanese first, English too', () => {
    const pl = plan(policy({ models: [serialLess()] }));
    expect(pl.notes[0]!.ja).toContain('遮断のまま');
    expect(pl.notes[0]!.en).toContain('stays blocked');
    expect(pl.notes[0]!.ja).toContain('model:reader');
  });
});

describe('patternDenied', () => {
  const ids = ['USB\\Class_FF', 'USB\\Class_EF&SubClass_04', 'USB\\Class_E0&SubClass_01&Prot_03', 'USB\\Class_07'];
  it.each<[string, readonly string[], boolean]>([
    ['ff', ids, true],
    ['ff/01/02', ids, true],
    ['07/01/02', ids, true],
    ['03', ids, false],
    ['ef/02', ids, false], // only ef/04 is denied
    ['ef/04/01', ['USB\\Class_EF&SubClass_04'], false], // an export class: never a reason to allow
    ['dc/01', ['USB\\Class_DC&SubClass_01&Prot_05'], true], // a protocol inside the subclass is denied
    ['dc/01/01', ['USB\\Class_DC&SubClass_01&Prot_05'], false],
    ['ff', ['usb\\class_ff'], true], // Windows compares case-insensitively
    ['FF', ids, false],
    ['08', ['USB\\Class_08'], false],
  ])('%s in %j → %s', (p, list, want) => expect(patternDenied(p, list)).toBe(want));
});

// ---- per device: what Windows gives less than the decision --------------------------------------

const iface = (number: number, cls: number, subclass = 0, protocol = 0): UsbInterfaceInfo => ({ number, alt: 0, class: cls, subclass, protocol });
const device = (over: Partial<UsbDeviceInfo> = {}): UsbDeviceInfo => ({
  path: READER_ID,
  busnum: null,
  devnum: null,
  vendorId: '054c',
  productId: '06c1',
  bcdDevice: null,
  deviceClass: 0,
  deviceSubclass: 0,
  deviceProtocol: 0,
  manufacturer: null,
  product: null,
  serial: Buffer.from('0123ABCD', 'latin1'),
  interfaces: [iface(0, 0xff, 0xff, 0xff)],
  descriptorHash: null,
  authorized: true,
  ...over,
});
const ctx = { agentId: AGENT, now: NOW, exceptions: [], others: [] };

describe('stricterOnWindows for model rules', () => {
  it.each<[string, UsbPolicy, Partial<UsbDeviceInfo>, { event: string; stricter: boolean }]>([
    ['single-function reader, serial-bound rule written: exact', policy({ models: [model()] }), {}, { event: 'usb.allowed', stricter: false }],
    ['same reader, the rule has no serial: opened on Linux only → stricter', policy({ models: [serialLess()] }), {}, { event: 'usb.allowed', stricter: true }],
    ['same reader, rule withheld (a registered stick opens disks) → stricter', policy({ models: [model()], registered: [stick()] }), {}, { event: 'usb.allowed', stricter: true }],
    ['reader with no serial at a port (Windows-made instance ID) → stricter', policy({ models: [serialLess()] }), { path: 'USB\\VID_054C&PID_06C1\\5&1a2b3c4d&0&2', serial: null }, { event: 'usb.allowed', stricter: true }],
    // Composite: the parent's instance ID does not cover its functions; the ff function stays denied by class.
    ['composite HID + ff reader, serial-bound rule written → stricter', policy({ models: [model()] }), { interfaces: [iface(0, 0x03, 1, 1), iface(1, 0xff)] }, { event: 'usb.allowed', stricter: true }],
    // IAD composite too.
    ['IAD composite (ef/02/01) → stricter', policy({ models: [model()] }), { deviceClass: 0xef, deviceSubclass: 2, deviceProtocol: 1, interfaces: [iface(0, 0xff), iface(1, 0xff, 1)] }, { event: 'usb.allowed', stricter: true }],
    // bDeviceClass ff with two interfaces: Windows makes one node, which the instance ID opens.
    ['vendor device class ff, two interfaces: one node, exact', policy({ models: [model()] }), { deviceClass: 0xff, interfaces: [iface(0, 0xff), iface(1, 0xff, 1)] }, { event: 'usb.allowed', stricter: false }],
    // A model naming a class Windows does not deny: nothing needed, nothing stricter.
    ['headset model (01) without serial: open by class on Windows too', policy({ models: [serialLess({ interfaces: ['01'] })] }), { interfaces: [iface(0, 0x01, 1), iface(1, 0x01, 2)], serial: null }, { event: 'usb.allowed', stricter: false }],
    // The spoofing stick: blocked as decided (a model never opens storage), nothing to report.
    ['stick spoofing the reader (same VID:PID:serial, class 08): blocked as decided', policy({ models: [model()] }), { interfaces: [iface(0, 0x08, 6, 0x50)] }, { event: 'usb.blocked', stricter: false }],
    ['composite spoof (ff + storage): ff opened on Linux; Windows gives the function nothing → stricter', policy({ models: [model()] }), { interfaces: [iface(0, 0xff), iface(1, 0x08, 6, 0x50)] }, { event: 'usb.blocked', stricter: true }],
    ['rule disabled: blocked as decided', policy({ models: [model({ enabled: false })] }), {}, { event: 'usb.blocked', stricter: false }],
  ])('%s', (_n, p, over, want) => {
    const d = device(over);
    const dec = decideUsb(p, d, ctx);
    expect(dec.eventType).toBe(want.event);
    expect(stricterOnWindows(d, dec, plan(p))).toBe(want.stricter);
  });
  it.each<[string, boolean]>([
    ['ff/ff/ff', true],
    ['03/01/01', false],
    ['ef/04/01', true],
    ['ef/02/01', true], // no class rule for ef itself: the default (block) denies USB\Class_EF whole
    ['01/02/00', false], // audio, allowed by the default
    ['FF/FF/FF', true],
    ['junk', true], // unknown: assume denied (what is reported is the stricter side)
  ])('classDenied(%s) under the default plan → %s', (label, want) => expect(classDenied(label, DEFAULT.denyDeviceIds)).toBe(want));
  it.each<[string, Partial<UsbDeviceInfo>, boolean]>([
    ['one interface', {}, false],
    ['two interfaces, class 00', { interfaces: [iface(0, 3), iface(1, 0xff)] }, true],
    ['two alt settings of one interface', { interfaces: [iface(0, 0xff), { ...iface(0, 0xff), alt: 1 }] }, false],
    ['class e0, three interfaces (Bluetooth: one node)', { deviceClass: 0xe0, interfaces: [iface(0, 0xe0), iface(1, 0xe0), iface(2, 0xfe)] }, false],
  ])('compositeOnWindows: %s → %s', (_n, over, want) => expect(compositeOnWindows(device(over))).toBe(want));
});

describe('the platform end to end (memory registry): a reader enumerated in Enum\\USB', () => {
  it('enforced by policy with the serial-bound rule; stricter once the rule loses its serial', async () => {
    const reg = new MemoryRegistry();
    await reg.add(`${ENUM_USB}\\VID_054C&PID_06C1\\0123ABCD`, { name: 'CompatibleIDs', type: 'REG_MULTI_SZ', data: ['USB\\Class_FF&SubClass_FF&Prot_FF', 'USB\\Class_FF&SubClass_FF', 'USB\\Class_FF'] });
    const p = new WindowsUsbPlatform({ registry: reg, setTimer: () => () => {} });
    const input = (pol: UsbPolicy) => ({ policy: pol, exceptions: [], monitor: false, monitorOnly: false, now: NOW, agentId: AGENT, onStricter: (n: { code: string }[]) => seen.push(n.map((x) => x.code)) });
    const seen: string[][] = [];
    const withSerial = policy({ models: [model()] });
    await p.applyPolicy(input(withSerial));
    expect(Object.values((await reg.query(`${RESTRICTIONS}\\AllowInstanceIDs`))!.values.map((v) => v.data))).toEqual([READER_ID]);
    const d = p.readDevice((await p.listDevicePaths())[0]!)!;
    expect(d.interfaces).toEqual([iface(0, 0xff, 0xff, 0xff)]);
    const dec = decideUsb(withSerial, d, ctx);
    expect(dec.rule).toBe('model:reader');
    expect((await p.enforceDevice(d, dec, { first: true, monitor: false })).enforcedBy).toBe('policy');
    const noSerial = policy({ models: [serialLess()] });
    await p.applyPolicy(input(noSerial));
    expect((await reg.query(`${RESTRICTIONS}\\AllowInstanceIDs`))?.values ?? []).toEqual([]);
    expect((await p.enforceDevice(d, decideUsb(noSerial, d, ctx), { first: true, monitor: false })).enforcedBy).toBe('stricter');
    expect(seen).toEqual([[], ['model-needs-serial']]);
  });
});
