import { describe, expect, it } from 'vitest';
import { ENUM_USB, listEnumUsb, mapEnumDevice, serialFromInstance, type EnumInstance } from '../../agent/usb/windows/devices.js';
import { decideUsb } from '../../agent/usb/decide.js';
import { usbEventData } from '../../agent/usb/events.js';
import { eventDataErrors } from '../../protocol/event-data.js';
import { defaultUsbPolicy } from '../../protocol/policy-usb.js';
import { MemoryRegistry, type RegValue, type WindowsRegistry } from '../../agent/windows/registry.js';

const sz = (name: string, data: string): RegValue => ({ name, type: 'REG_SZ', data });
const multi = (name: string, ...data: string[]): RegValue => ({ name, type: 'REG_MULTI_SZ', data });
const dw = (name: string, data: number): RegValue => ({ name, type: 'REG_DWORD', data });

const STICK: EnumInstance = {
  deviceKey: 'VID_0781&PID_5567',
  instance: '4C530001231120115142',
  values: [
    sz('DeviceDesc', '@usbstor.inf,%genericbulkonly.devicedesc%;USB Mass Storage Device'),
    multi('HardwareID', 'USB\\VID_0781&PID_5567&REV_0126', 'USB\\VID_0781&PID_5567'),
    multi('CompatibleIDs', 'USB\\Class_08&SubClass_06&Prot_50', 'USB\\Class_08&SubClass_06', 'USB\\Class_08'),
    sz('Service', 'USBSTOR'),
    sz('Driver', '{36fc9e60-c465-11cf-8056-444553540000}\\0011'),
    sz('Mfg', '@usbstor.inf,%generic.mfg%;Compatible USB storage device'),
    dw('ConfigFlags', 0),
  ],
};

describe('mapEnumDevice', () => {
  it('a driven stick with a serial', () => {
    expect(mapEnumDevice(STICK)).toEqual({
      path: 'USB\\VID_0781&PID_5567\\4C530001231120115142',
      busnum: null,
      devnum: null,
      vendorId: '0781',
      productId: '5567',
      bcdDevice: '0126',
      deviceClass: 8,
      deviceSubclass: 6,
      deviceProtocol: 0x50,
      manufacturer: Buffer.from('Compatible USB storage device'),
      product: Buffer.from('USB Mass Storage Device'),
      serial: Buffer.from('4C530001231120115142'),
      interfaces: [{ number: 0, alt: 0, class: 8, subclass: 6, protocol: 0x50 }],
      descriptorHash: null,
      authorized: true,
    });
  });
  it.each<[string, RegValue[], boolean]>([
    ['refused by policy: no driver, FAILEDINSTALL', [dw('ConfigFlags', 0x40)], false],
    ['no driver, REINSTALL only', [dw('ConfigFlags', 0x20)], false],
    ['driver but disabled', [sz('Driver', 'x'), dw('ConfigFlags', 0x1)], false],
    ['driver and failed install flag', [sz('Service', 'USBSTOR'), dw('ConfigFlags', 0x40)], false],
    ['driver, no ConfigFlags', [sz('Driver', 'x')], true],
    ['ConfigFlags of the wrong type is ignored, driver decides', [sz('Driver', 'x'), sz('ConfigFlags', '0x40')], true],
  ])('authorized: %s', (_n, extra, want) => {
    const base = STICK.values.filter((v) => !['Driver', 'Service', 'ConfigFlags'].includes(v.name));
    expect(mapEnumDevice({ ...STICK, values: [...base, ...extra] })!.authorized).toBe(want);
  });
  it('a composite keyboard with storage: interfaces from its function nodes (ParentIdPrefix)', () => {
    const parent: EnumInstance = {
      deviceKey: 'VID_1234&PID_ABCD',
      instance: 'SER1',
      values: [multi('CompatibleIDs', 'USB\\DevClass_00&SubClass_00&Prot_00', 'USB\\DevClass_00&SubClass_00', 'USB\\DevClass_00', 'USB\\COMPOSITE'), sz('ParentIdPrefix', '7&2f5d0d0&0'), sz('Service', 'usbccgp')],
    };
    const f0: EnumInstance = { deviceKey: 'VID_1234&PID_ABCD&MI_00', instance: '7&2f5d0d0&0&0000', values: [multi('CompatibleIDs', 'USB\\Class_03&SubClass_01&Prot_01', 'USB\\Class_03')] };
    const f1: EnumInstance = { deviceKey: 'VID_1234&PID_ABCD&MI_01', instance: '7&2f5d0d0&0&0001', values: [multi('CompatibleIDs', 'USB\\Class_08&SubClass_06&Prot_50')] };
    const other: EnumInstance = { deviceKey: 'VID_9999&PID_ABCD&MI_02', instance: '7&2f5d0d0&0&0002', values: [multi('CompatibleIDs', 'USB\\Class_03&SubClass_00&Prot_00')] };
    const d = mapEnumDevice(parent, [f0, f1, other])!;
    expect(d.interfaces).toEqual([
      { number: 0, alt: 0, class: 3, subclass: 1, protocol: 1 },
      { number: 1, alt: 0, class: 8, subclass: 6, protocol: 0x50 },
    ]);
    // decideUsb judges it as on Linux: HID allowed, storage blocked → partial, usb.blocked.
    const dec = decideUsb(defaultUsbPolicy(), d, { agentId: 'a', now: new Date(), exceptions: [], others: [] });
    expect(dec.partial).toBe(true);
    expect(dec.eventType).toBe('usb.blocked');
  });
  it.each<[string, EnumInstance]>([
    ['not a VID/PID key', { ...STICK, deviceKey: 'ROOT_HUB30' }],
    ['a function node on its own', { ...STICK, deviceKey: 'VID_0781&PID_5567&MI_00' }],
    ['VID with junk', { ...STICK, deviceKey: 'VID_07G1&PID_5567' }],
    ['empty instance', { ...STICK, instance: '' }],
    ['instance with a backslash', { ...STICK, instance: 'a\\b' }],
  ])('not a device: %s', (_n, i) => expect(mapEnumDevice(i)).toBeNull());
  it.each<[string, RegValue[]]>([
    ['values of wrong types', [dw('HardwareID', 1), dw('CompatibleIDs', 2), dw('DeviceDesc', 3), multi('Mfg', 'a', 'b')]],
    ['junk class ids', [multi('CompatibleIDs', 'USB\\Class_8&SubClass_06', 'USB\\Class_ZZ&SubClass_00&Prot_00', 'USB\\Class_08&SubClass_06&Prot_50\r\nx')]],
    ['no values at all', []],
  ])('hostile or missing values never throw and never invent classes: %s', (_n, values) => {
    const d = mapEnumDevice({ ...STICK, values })!;
    expect(d.interfaces).toEqual([]);
    expect(d.authorized).toBe(false);
    expect(d.bcdDevice).toBeNull();
  });
  it('display text is bounded and kept as data', () => {
    const d = mapEnumDevice({ ...STICK, values: [sz('DeviceDesc', '\u001b[31m' + 'x'.repeat(10_000)), sz('Mfg', '@a.inf,%b%;c;d')] })!;
    expect(d.product!.length).toBe(512);
    expect(d.manufacturer!.toString()).toBe('d');
  });
  it.each([
    ['4C530001231120115142', '4C530001231120115142'],
    ['5&1a2b3c4d&0&2', null],
    ['A B', null],
    ['A,B', null],
    ['ÄB', null],
    ['x'.repeat(127), null],
    ['AB\u0007', null],
  ])('serial from instance %j → %j', (inst, want) => expect(serialFromInstance(inst)).toBe(want));
});

describe('events from Windows devices: the same usb.* data as on Linux, valid against the catalogue', () => {
  it.each<[string, EnumInstance]>([
    ['a driven stick', STICK],
    ['a refused stick without serial, hostile description', { deviceKey: 'VID_0781&PID_5567', instance: '5&1a2b&0&2', values: [sz('DeviceDesc', '\u001b]0;pwn\u0007' + 'é'.repeat(600)), multi('CompatibleIDs', 'USB\\Class_08&SubClass_06&Prot_50')] }],
  ])('%s', (_n, inst) => {
    const d = mapEnumDevice(inst)!;
    const dec = decideUsb(defaultUsbPolicy(), d, { agentId: 'a', now: new Date(), exceptions: [], others: [] });
    const data = usbEventData(d, dec, 'enforce');
    expect(eventDataErrors(dec.eventType, data)).toEqual([]);
    expect(data.port).toBe(d.path);
    expect(data.busnum).toBeNull();
    expect(data.descriptorHash).toBe('');
    expect(data.serialHex).toBe(d.serial ? d.serial.toString('hex') : null);
    expect(data.product).not.toMatch(/[\u0000-\u001f]/);
  });
});

describe('listEnumUsb (against the in-memory registry)', () => {
  it('lists devices, skips junk keys, bounded', async () => {
    const m = new MemoryRegistry();
    for (const v of STICK.values) await m.add(`${ENUM_USB}\\${STICK.deviceKey}\\${STICK.instance}`, v);
    await m.add(`${ENUM_USB}\\ROOT_HUB30\\4&1&0`, sz('Service', 'USBHUB3'));
    await m.add(`${ENUM_USB}\\VID_1111&PID_2222\\5&aa&0&3`, multi('CompatibleIDs', 'USB\\Class_E0&SubClass_01&Prot_03'));
    const r = await listEnumUsb(m);
    expect(r.errors).toEqual([]);
    expect(r.devices.map((d) => [d.path, d.serial?.toString() ?? null, d.authorized])).toEqual([
      ['USB\\VID_0781&PID_5567\\4C530001231120115142', '4C530001231120115142', true],
      ['USB\\VID_1111&PID_2222\\5&aa&0&3', null, false],
    ]);
  });
  it('key by key (a registry without queryTree): an unreadable key is reported, the rest listed', async () => {
    const m = new MemoryRegistry();
    for (const v of STICK.values) await m.add(`${ENUM_USB}\\${STICK.deviceKey}\\${STICK.instance}`, v);
    await m.add(`${ENUM_USB}\\VID_1111&PID_2222\\X1`, sz('Service', 'x'));
    m.failWhen = (o) => o.op === 'query' && o.key.includes('VID_1111');
    const keyByKey: WindowsRegistry = { query: (k) => m.query(k), add: (k, v) => m.add(k, v), addKey: (k) => m.addKey(k), delete: (k, n) => m.delete(k, n) };
    const r = await listEnumUsb(keyByKey);
    expect(r.devices).toHaveLength(1);
    expect(r.errors).toHaveLength(1);
  });
  it('whole tree in one query: the same devices, one registry read', async () => {
    const m = new MemoryRegistry();
    for (const v of STICK.values) await m.add(`${ENUM_USB}\\${STICK.deviceKey}\\${STICK.instance}`, v);
    await m.add(`${ENUM_USB}\\${STICK.deviceKey}\\${STICK.instance}\\Device Parameters`, sz('SymbolicName', 'x'));
    await m.add(`${ENUM_USB}\\VID_1111&PID_2222\\5&aa&0&3`, multi('CompatibleIDs', 'USB\\Class_E0&SubClass_01&Prot_03'));
    m.ops.length = 0;
    const r = await listEnumUsb(m);
    expect(m.ops).toEqual([{ op: 'query', key: ENUM_USB }]);
    expect(r.devices.map((d) => d.path)).toEqual(['USB\\VID_0781&PID_5567\\4C530001231120115142', 'USB\\VID_1111&PID_2222\\5&aa&0&3']);
  });
  it('whole tree unreadable: reported, nothing listed', async () => {
    const m = new MemoryRegistry();
    await m.addKey(ENUM_USB);
    m.failWhen = (o) => o.op === 'query';
    const r = await listEnumUsb(m);
    expect(r).toEqual({ devices: [], errors: [expect.stringMatching(/injected failure/)] });
  });
  it('no Enum\\USB key: nothing, no error', async () => {
    expect(await listEnumUsb(new MemoryRegistry())).toEqual({ devices: [], errors: [] });
  });
});
