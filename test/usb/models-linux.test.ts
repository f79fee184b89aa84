/**
 * Issue 18 on the real Linux agent code (UsbCapability + LinuxUsbPlatform + enforcer) over a fake
 * sysfs whose `descriptors` files hold real devices' bytes (test/fixtures/usb/descriptors.ts): a
 * Sony RC-S380 (マイナンバーカード reader), a CCID reader, a USB headset, a printer, a Sony-VID reader
 * that also offers storage, and a stick spoofing the RC-S380's VID:PID. The default policy judges
 * each; enabling the catalogue's reader model, applied to the running capability, opens the
 * RC-S380 and its ff interface and changes nothing else. The kernel's part (interface directories
 * appearing once a device is authorized) is played by the test, as the kernel does it with
 * interface_authorized_default=0: directories with authorized=0.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync, mkdtempSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentContext, NewEvent } from '../../agent/capability.js';
import { UsbCapability } from '../../agent/usb/capability.js';
import { LinuxUsbPlatform } from '../../agent/usb/linux/platform.js';
import { readUsbDevice } from '../../agent/usb/linux/sysfs.js';
import { descriptorHash, parseDescriptors } from '../../agent/usb/observe.js';
import { builtinPolicy, type PolicyDocument } from '../../protocol/policy.js';
import { defaultUsbPolicy, usbModelCatalogue, usbPolicyErrors } from '../../protocol/policy-usb.js';
import { device, config, intf, endpoint, REAL_DEVICES } from '../fixtures/usb/descriptors.js';
import { FakeSysfs } from './fake-sysfs.js';

type Fixture = (typeof REAL_DEVICES)[keyof typeof REAL_DEVICES];

/** A stick that claims to be the RC-S380/P: the reader's device descriptor, one mass-storage interface. */
const SPOOF = {
  bytes: Buffer.from([
    ...device({ bcdUSB: 0x0200, cls: 0, sub: 0, proto: 0, maxPacket0: 64, vid: 0x054c, pid: 0x06c3, bcdDevice: 0x0111, iManufacturer: 1, iProduct: 2, iSerial: 3, numConfigurations: 1 }),
    ...config({ numInterfaces: 1, value: 1, iConfiguration: 0, attributes: 0x80, maxPowerMa: 100 }, intf(0, 0, 2, 0x08, 0x06, 0x50, 0), endpoint(0x81, 2, 512, 0), endpoint(0x02, 2, 512, 0)),
  ]),
  vid: 0x054c,
  pid: 0x06c3,
  serial: 'RCS380-0001',
  product: 'RC-S380/P',
  interfaces: [[0, 0, 0x08, 0x06, 0x50]],
} as const;

const PORTS = { rcs380: '1-1', ccid: '1-2', headset: '1-3', printer: '1-4', nfcPro: '1-5', spoof: '1-6' } as const;
type Name = keyof typeof PORTS;
const FIXTURES: Record<Name, Fixture | typeof SPOOF> = { ...REAL_DEVICES, spoof: SPOOF };

function fakeContext(stateDir: string, emitted: NewEvent[]): AgentContext {
  return {
    agentId: 'agent-under-test',
    stateDir,
    monitorOnly: false,
    emit: (e) => {
      emitted.push(e);
      return {} as ReturnType<AgentContext['emit']>;
    },
    log: () => undefined,
    console: { request: () => Promise.reject(new Error('offline')), consoleNow: () => new Date('2026-11-30T03:00:00Z'), reachable: () => false },
    local: { route: () => undefined, socketPath: join(stateDir, 'agent.sock') },
  };
}

/** Plugs a fixture the way the kernel shows a device it held back: descriptors, ids, strings, authorized=0. */
function plug(fs: FakeSysfs, name: Name, devnum: number): void {
  const f = FIXTURES[name];
  const path = PORTS[name];
  fs.addDevice(path, f.vid, f.pid, [], { configured: false, devnum, ...(f.serial ? { serial: Buffer.from(f.serial) } : {}) });
  const dir = join(fs.usbDir(), path);
  writeFileSync(join(dir, 'descriptors'), f.bytes);
  writeFileSync(join(dir, 'product'), `${f.product}\n`);
}

/** What the kernel does once a device is authorized with interface_authorized_default=0: one directory per interface (active alt 0), authorized=0. */
function kernelConfigures(fs: FakeSysfs, name: Name): void {
  const path = PORTS[name];
  for (const [n, alt, c, s, p] of FIXTURES[name].interfaces) if (alt === 0) fs.addInterface(path, n, c, s, p, false);
}

/** Every sysfs `authorized` value under the USB tree, by device/interface name. */
function authorizedMap(fs: FakeSysfs): Record<string, string> {
  const out: Record<string, string> = {};
  const root = fs.real('usb1');
  const walk = (dir: string, depth: number) => {
    if (depth > 4) return;
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (lstatSync(p).isDirectory()) walk(p, depth + 1);
      else if (e === 'authorized') out[relative(root, dir).split('/').pop() || 'usb1'] = readFileSync(p, 'utf8').trim();
    }
  };
  walk(root, 0);
  return out;
}

const byPort = (events: NewEvent[]) => Object.fromEntries(events.map((e) => [e.data.port as string, { type: e.type, rule: e.data.rule, classes: e.data.interfaceClasses, note: e.data.note ?? null }]));

describe('fixtures: the parser reads what each source dump shows', () => {
  for (const [name, f] of Object.entries(FIXTURES)) {
    it(`${name}: ${f.vid.toString(16).padStart(4, '0')}:${f.pid.toString(16).padStart(4, '0')}`, () => {
      const p = parseDescriptors(f.bytes)!;
      expect(p.malformed).toBe(false);
      expect(p.vendorId).toBe(f.vid.toString(16).padStart(4, '0'));
      expect(p.productId).toBe(f.pid.toString(16).padStart(4, '0'));
      expect(p.interfaces.map((i) => [i.number, i.alt, i.class, i.subclass, i.protocol])).toEqual(f.interfaces);
      // wTotalLength of the (first) configuration ends exactly where the bytes end.
      expect(18 + f.bytes.readUInt16LE(18 + 2)).toBe(f.bytes.length);
    });
  }
  it('the RC-S380 is vendor-specific at device level too (bDeviceClass 255)', () => {
    expect(parseDescriptors(REAL_DEVICES.rcs380.bytes)!.deviceClass).toBe(0xff);
  });
});

describe.skipIf(process.platform !== 'linux')('model rules on the Linux agent, fake sysfs with real descriptors', () => {
  let cap: UsbCapability | null = null;
  const dirs: string[] = [];
  afterEach(async () => {
    await cap?.stop();
    cap = null;
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('default policy: RC-S380 blocked, CCID and headset allowed, printer blocked; enabling the reader model opens the RC-S380 and its ff interface only', async () => {
    const fs = new FakeSysfs();
    fs.addRootHub(1);
    const state = mkdtempSync(join(tmpdir(), 'sekimori-models-'));
    dirs.push(state, join(fs.sys, '..'));
    (Object.keys(PORTS) as Name[]).forEach((n, i) => plug(fs, n, 10 + i));
    const emitted: NewEvent[] = [];
    cap = new UsbCapability({
      platform: new LinuxUsbPlatform({ sysRoot: fs.sys, hotplug: false, readonlyMarkerDir: join(state, 'markers'), setReadonly: async () => undefined, watchUevents: () => () => undefined }),
      rescanMs: 3_600_000, // the test drives every scan
    });
    await cap.start(fakeContext(state, emitted), builtinPolicy());

    // Judged as the default policy says, the event naming the deciding rule.
    expect(byPort(emitted)).toEqual({
      '1-1': { type: 'usb.blocked', rule: 'class:ff', classes: ['ff'], note: null },
      '1-2': { type: 'usb.allowed', rule: 'class:0b', classes: ['0b'], note: null },
      '1-3': { type: 'usb.allowed', rule: 'class:01', classes: ['01', '03'], note: null },
      '1-4': { type: 'usb.blocked', rule: 'class:07', classes: ['07'], note: null },
      '1-5': { type: 'usb.blocked', rule: 'class:08', classes: ['03', '08'], note: null }, // HID opened, storage not
      '1-6': { type: 'usb.blocked', rule: 'class:08', classes: ['08'], note: null },
    });
    const auth = (p: string) => readFileSync(join(fs.usbDir(), p, 'authorized'), 'utf8').trim();
    expect(Object.values(PORTS).map(auth)).toEqual(['0', '1', '1', '0', '1', '0']);

    // The kernel creates the authorized devices' interfaces (all held back); the next pass opens the allowed ones.
    for (const n of ['ccid', 'headset', 'nfcPro'] as const) kernelConfigures(fs, n);
    await cap.scan();
    const before = authorizedMap(fs);
    expect(before).toMatchObject({ '1-2:1.0': '1', '1-3:1.0': '1', '1-3:1.1': '1', '1-3:1.2': '1', '1-3:1.3': '1', '1-5:1.0': '1', '1-5:1.1': '0' });
    expect(Object.keys(before).filter((k) => k.startsWith('1-1') || k.startsWith('1-4') || k.startsWith('1-6'))).toEqual(['1-1', '1-4', '1-6']); // no interfaces: never authorized

    // One click: the catalogue's RC-S380/P entry enabled, signed as a new version, applied to the running agent.
    const usb = { ...defaultUsbPolicy(), models: usbModelCatalogue().map((m) => (m.id === 'sony-rc-s380-p' ? { ...m, enabled: true } : m)) };
    expect(usbPolicyErrors(usb)).toEqual([]);
    const v2: PolicyDocument = { ...builtinPolicy(), version: 2, usb };
    const firstRound = emitted.length;
    await cap.applyPolicy(v2);
    const after = byPort(emitted.slice(firstRound));
    expect(after['1-1']).toEqual({ type: 'usb.allowed', rule: 'model:sony-rc-s380-p', classes: ['ff'], note: null });
    // Everyone else: the same verdict and rule as before; the spoofing stick is told why the model did not help.
    const same = byPort(emitted.slice(0, firstRound));
    for (const p of ['1-2', '1-3', '1-4', '1-5']) expect(after[p], p).toEqual(same[p]);
    expect(after['1-6']).toMatchObject({ type: 'usb.blocked', rule: 'class:08' });
    expect(String(after['1-6']!.note)).toMatch(/^model-not-applicable: sony-rc-s380-p /);
    expect(auth('1-1')).toBe('1');

    // The kernel creates the reader's interface (held back); the agent authorizes it and asks for a driver.
    kernelConfigures(fs, 'rcs380');
    await cap.scan();
    expect(readFileSync(join(fs.sys, 'bus/usb/drivers_probe'), 'utf8')).toBe('1-1:1.0');
    const final = authorizedMap(fs);
    const changed = Object.keys({ ...before, ...final }).filter((k) => before[k] !== final[k]);
    expect(changed.sort()).toEqual(['1-1', '1-1:1.0']);
    expect(final['1-1:1.0']).toBe('1');
    expect(final['1-6']).toBe('0');
    expect(final['1-5:1.1']).toBe('0');

    // What the agent read is the real devices: the hash of the bytes the kernel would show.
    expect(readUsbDevice(fs.sys, '1-1')!.descriptorHash).toBe(descriptorHash(REAL_DEVICES.rcs380.bytes));
  });

  it('a descriptor-bound reader model opens the real RC-S380 but not the spoofing stick nor a clone with other descriptors', async () => {
    const fs = new FakeSysfs();
    fs.addRootHub(1);
    const state = mkdtempSync(join(tmpdir(), 'sekimori-models-'));
    dirs.push(state, join(fs.sys, '..'));
    plug(fs, 'rcs380', 10);
    plug(fs, 'spoof', 11);
    const emitted: NewEvent[] = [];
    const usb = { ...defaultUsbPolicy(), models: [{ id: 'this-reader', vendorId: '054c', productId: '06c3', descriptorHash: descriptorHash(REAL_DEVICES.rcs380.bytes), interfaces: ['ff'], enabled: true }] };
    expect(usbPolicyErrors(usb)).toEqual([]);
    cap = new UsbCapability({
      platform: new LinuxUsbPlatform({ sysRoot: fs.sys, hotplug: false, readonlyMarkerDir: join(state, 'markers'), watchUevents: () => () => undefined }),
      rescanMs: 3_600_000,
    });
    await cap.start(fakeContext(state, emitted), { ...builtinPolicy(), version: 3, usb });
    expect(byPort(emitted)).toMatchObject({ '1-1': { type: 'usb.allowed', rule: 'model:this-reader' }, '1-6': { type: 'usb.blocked', rule: 'class:08' } });
  });
});
