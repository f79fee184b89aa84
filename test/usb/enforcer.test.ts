/**
 * The Linux enforcer against a fake sysfs tree in a temp dir (the host's real /sys is never
 * written): root hubs closed, per-interface authorization, composite devices, read-only media.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decideUsb } from '../../agent/usb/decide.js';
import { LinuxUsbEnforcer } from '../../agent/usb/linux/enforcer.js';
import { listDevicePaths, readUsbDevice, usbPathOfBlock } from '../../agent/usb/linux/sysfs.js';
import { parseUtmp } from '../../agent/usb/linux/user.js';
import { FakeSysfs } from './fake-sysfs.js';
import { defaultUsbPolicy } from '../../protocol/policy-usb.js';

let fake: FakeSysfs;
let sys = '';
const usbDir = () => fake.usbDir();
const addRootHub = (n: number) => fake.addRootHub(n);
const addDevice: FakeSysfs['addDevice'] = (...a) => fake.addDevice(...a);
const addInterface: FakeSysfs['addInterface'] = (...a) => fake.addInterface(...a);
const addDisk: FakeSysfs['addDisk'] = (...a) => fake.addDisk(...a);

const attr = (...p: string[]) => readFileSync(join(usbDir(), ...p), 'utf8').trim();
const ctx = { agentId: 'a', now: new Date(), exceptions: [], others: [] };

beforeEach(() => {
  fake = new FakeSysfs();
  sys = fake.sys;
  addRootHub(1);
  addRootHub(2);
});
afterEach(() => rmSync(join(sys, '..'), { recursive: true, force: true }));

describe('LinuxUsbEnforcer on a fake sysfs', () => {
  it('closes every root hub: interfaces default first, then devices', () => {
    const e = new LinuxUsbEnforcer({ sysRoot: sys });
    const r = e.closeRootHubs();
    expect(r.errors).toEqual([]);
    for (const h of ['usb1', 'usb2']) {
      expect(attr(h, 'authorized_default')).toBe('0');
      expect(attr(h, 'interface_authorized_default')).toBe('0');
    }
    expect(r.wrote[0]).toMatch(/interface_authorized_default=0$/);
    expect(e.closeRootHubs().wrote).toEqual([]); // idempotent
  });

  it('reads devices from descriptors even when de-authorized (no interface dirs)', () => {
    addDevice('1-1', 0x46f4, 0x0001, [[0, 8, 6, 0x50]], { configured: false, serial: Buffer.from('S1') });
    expect(listDevicePaths(sys)).toEqual(['1-1']);
    const d = readUsbDevice(sys, '1-1')!;
    expect(d).toMatchObject({ vendorId: '46f4', productId: '0001', authorized: false, busnum: 1 });
    expect(d.serial!.toString()).toBe('S1');
    expect(d.interfaces.map((i) => i.class)).toEqual([8]);
  });

  it('present storage stick is cut off (authorized=0)', async () => {
    addDevice('1-1', 0x46f4, 0x0001, [[0, 8, 6, 0x50]], { configured: true });
    const e = new LinuxUsbEnforcer({ sysRoot: sys });
    const d = readUsbDevice(sys, '1-1')!;
    const r = await e.apply('1-1', decideUsb(defaultUsbPolicy(), d, ctx));
    expect(attr('1-1', 'authorized')).toBe('0');
    expect(r.wrote).toEqual(['/bus/usb/devices/1-1/authorized=0']);
  });

  it('composite keyboard+storage, not yet authorized: device on, HID interface on and probed, storage stays off', async () => {
    addDevice('1-2', 0x1234, 0x5678, [[0, 3, 1, 1], [1, 8, 6, 0x50]], { configured: false });
    const e = new LinuxUsbEnforcer({ sysRoot: sys });
    const dec = decideUsb(defaultUsbPolicy(), readUsbDevice(sys, '1-2')!, ctx);
    expect(dec.partial).toBe(true);
    // Simulate the kernel: authorizing the device creates interfaces with the bus default (0).
    const devAuth = join(usbDir(), '1-2', 'authorized');
    const p = e.apply('1-2', dec);
    // apply() writes authorized=1 synchronously before it looks for interfaces; the fake kernel has none yet,
    // so create them now and run apply again, as the rescan does.
    await p;
    expect(readFileSync(devAuth, 'utf8')).toBe('1');
    addInterface('1-2', 0, 3, 1, 1, false);
    addInterface('1-2', 1, 8, 6, 0x50, false);
    const r = await e.apply('1-2', dec);
    expect(attr('1-2:1.0', 'authorized')).toBe('1');
    expect(attr('1-2:1.1', 'authorized')).toBe('0');
    expect(r.wrote).toContain('/bus/usb/drivers_probe=1-2:1.0');
  });

  it('composite already bound (root hub was open): the storage interface is de-authorized', async () => {
    addDevice('1-3', 0x1234, 0x5678, [[0, 3, 1, 1], [1, 8, 6, 0x50]], { configured: true });
    const e = new LinuxUsbEnforcer({ sysRoot: sys });
    await e.apply('1-3', decideUsb(defaultUsbPolicy(), readUsbDevice(sys, '1-3')!, ctx));
    expect(attr('1-3', 'authorized')).toBe('1');
    expect(attr('1-3:1.0', 'authorized')).toBe('1');
    expect(attr('1-3:1.1', 'authorized')).toBe('0');
  });

  it('readonly media: marker first, then blockdev --setro on the disk and every partition', async () => {
    addDevice('1-4', 0x46f4, 0x0001, [[0, 8, 6, 0x50]], { configured: true, ifaceAuthorized: false, serial: Buffer.from('RO') });
    addDisk('1-4', '1-4:1.0', 'sdb', ['sdb1', 'sdb2']);
    const calls: string[] = [];
    const markers = join(sys, '..', 'run/ro');
    const e = new LinuxUsbEnforcer({ sysRoot: sys, devRoot: '/dev', readonlyMarkerDir: markers, setReadonly: async (n) => void calls.push(n) });
    const policy = { ...defaultUsbPolicy(), registered: [{ id: 'r', vendorId: '46f4', productId: '0001', serial: 'RO', access: 'readonly' as const }] };
    const dec = decideUsb(policy, readUsbDevice(sys, '1-4')!, ctx);
    expect(dec.readonly).toBe(true);
    await e.apply('1-4', dec);
    expect(existsSync(join(markers, '1-4'))).toBe(true);
    expect(calls).toEqual(['/dev/sdb', '/dev/sdb1', '/dev/sdb2']);
    e.pruneMarkers(new Set());
    expect(existsSync(join(markers, '1-4'))).toBe(false);
  });

  it('maps block devices to their USB device; built-in ones are not USB', () => {
    expect(usbPathOfBlock('/sys/devices/pci0000:00/0000:00:04.0/usb1/1-4/1-4.2/1-4.2:1.0/host0/target0:0:0/0:0:0:0/block/sdb')).toBe('1-4.2');
    expect(usbPathOfBlock('/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sr0')).toBeNull();
  });
});

describe('logged-in user from utmp', () => {
  const rec = (type: number, user: string, line: string, t: number) => {
    const b = Buffer.alloc(384);
    b.writeInt16LE(type, 0);
    b.write(line, 8);
    b.write(user, 44);
    b.writeInt32LE(t, 340);
    return b;
  };
  it('reads USER_PROCESS records, ignores others and a truncated tail', () => {
    const buf = Buffer.concat([rec(2, 'reboot', '~', 1), rec(7, 'tanaka', 'tty1', 100), rec(8, 'dead', 'pts/1', 50), Buffer.alloc(100)]);
    expect(parseUtmp(buf)).toEqual([{ user: 'tanaka', line: 'tty1', time: 100 }]);
    expect(parseUtmp(Buffer.alloc(0))).toEqual([]);
  });
});
