/**
 * USBメモリ 読み取り専用 as a class rule (the setting the policy form offers), through the real
 * Linux enforcer on a fake sysfs tree (the host's /sys is never written): the stick's interface
 * is authorized and its disk and partitions get blockdev --setro after the read-only marker,
 * exactly as for a read-only registration.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decideUsb } from '../../agent/usb/decide.js';
import { LinuxUsbEnforcer } from '../../agent/usb/linux/enforcer.js';
import { readUsbDevice } from '../../agent/usb/linux/sysfs.js';
import { defaultUsbPolicy, type UsbPolicy } from '../../protocol/policy-usb.js';
import { FakeSysfs } from '../usb/fake-sysfs.js';

let fake: FakeSysfs | null = null;
afterEach(() => {
  if (fake) rmSync(join(fake.sys, '..'), { recursive: true, force: true });
  fake = null;
});

const readonlyStorage = (): UsbPolicy => ({ ...defaultUsbPolicy(), classRules: defaultUsbPolicy().classRules.map((r) => (r.class === '08' ? { ...r, verdict: 'readonly' as const } : r)) });

describe('class 08 read-only on the Linux enforcer (fake sysfs)', () => {
  it('the stick opens, marker first, then --setro on the disk and every partition', async () => {
    fake = new FakeSysfs();
    fake.addRootHub(1);
    fake.addDevice('1-4', 0x0781, 0x5581, [[0, 8, 6, 0x50]], { configured: true, ifaceAuthorized: false, serial: Buffer.from('ANY-STICK') });
    fake.addDisk('1-4', '1-4:1.0', 'sdb', ['sdb1']);
    const calls: string[] = [];
    const markers = join(fake.sys, '..', 'run/ro');
    const e = new LinuxUsbEnforcer({ sysRoot: fake.sys, devRoot: '/dev', readonlyMarkerDir: markers, setReadonly: async (n) => void calls.push(n) });
    const dec = decideUsb(readonlyStorage(), readUsbDevice(fake.sys, '1-4')!, { agentId: 'a', now: new Date('2026-11-30T00:00:00Z'), exceptions: [], others: [] });
    expect(dec).toMatchObject({ authorizeDevice: true, readonly: true, eventType: 'usb.readonly', rule: 'class:08' });
    await e.apply('1-4', dec);
    expect(existsSync(join(markers, '1-4'))).toBe(true);
    expect(calls).toEqual(['/dev/sdb', '/dev/sdb1']);
    expect(readFileSync(join(fake.usbDir(), '1-4:1.0', 'authorized'), 'utf8').trim()).toBe('1');
  });

  it('with the default (block) the same stick stays closed and nothing is set read-only', async () => {
    fake = new FakeSysfs();
    fake.addRootHub(1);
    fake.addDevice('1-4', 0x0781, 0x5581, [[0, 8, 6, 0x50]], { configured: true, ifaceAuthorized: false, serial: Buffer.from('ANY-STICK') });
    const calls: string[] = [];
    const e = new LinuxUsbEnforcer({ sysRoot: fake.sys, devRoot: '/dev', readonlyMarkerDir: join(fake.sys, '..', 'run/ro'), setReadonly: async (n) => void calls.push(n) });
    const dec = decideUsb(defaultUsbPolicy(), readUsbDevice(fake.sys, '1-4')!, { agentId: 'a', now: new Date('2026-11-30T00:00:00Z'), exceptions: [], others: [] });
    expect(dec).toMatchObject({ authorizeDevice: false, eventType: 'usb.blocked' });
    await e.apply('1-4', dec);
    expect(calls).toEqual([]);
  });
});
