/**
 * The USB capability on a fake sysfs. Hot-plug fast path: a kernel `add` uevent for a device gets
 * that device judged, reported and written within the uevent callback (no bus listing first), with
 * the devices already known standing in for the bus in clone detection. Built-in drives and card
 * readers: unbound under `block`, bound again when a later policy allows them. The real kernel is
 * exercised by the QEMU tier; this pins down the capability's own logic.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentContext, NewEvent } from '../../agent/capability.js';
import { UsbCapability } from '../../agent/usb/capability.js';
import { LinuxUsbPlatform } from '../../agent/usb/linux/platform.js';
import type { Uevent } from '../../agent/usb/linux/uevents.js';
import { builtinPolicy, type PolicyDocument } from '../../protocol/policy.js';
import { defaultUsbPolicy } from '../../protocol/policy-usb.js';
import { FakeSysfs } from './fake-sysfs.js';

const STORAGE: [number, number, number, number] = [0, 0x08, 0x06, 0x50];
const KEYBOARD: [number, number, number, number] = [0, 0x03, 0x01, 0x01];

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
    console: {
      request: () => Promise.reject(new Error('offline')),
      consoleNow: () => new Date(),
      reachable: () => false,
    },
    local: { route: () => undefined, socketPath: join(stateDir, 'agent.sock') },
  };
}

describe.skipIf(process.platform !== 'linux')('USB hot-plug fast path', () => {
  let cap: UsbCapability | null = null;
  const dirs: string[] = [];
  afterEach(async () => {
    await cap?.stop();
    cap = null;
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  async function start(fs: FakeSysfs, policy: PolicyDocument, state = mkdtempSync(join(tmpdir(), 'sekimori-usbcap-'))) {
    dirs.push(state, join(fs.sys, '..'));
    const emitted: NewEvent[] = [];
    const blockdev: string[] = [];
    let deliver: ((e: Uevent) => void) | null = null;
    cap = new UsbCapability({
      platform: new LinuxUsbPlatform({
        sysRoot: fs.sys,
        hotplug: false,
        readonlyMarkerDir: join(state, 'markers'),
        setReadonly: async (n) => void blockdev.push(`setro ${n}`),
        setWritable: async (n) => void blockdev.push(`setrw ${n}`),
        devRoot: '/dev',
        watchUevents: (onEvent) => {
          deliver = onEvent;
          return () => undefined;
        },
      }),
      rescanMs: 3_600_000, // only the uevent can judge the new device during the test
    });
    await cap.start(fakeContext(state, emitted), policy);
    expect(deliver).not.toBeNull();
    return { emitted, state, blockdev, uevent: (e: Uevent) => deliver!(e) };
  }

  const authorized = (fs: FakeSysfs, path: string) => readFileSync(join(fs.usbDir(), path, 'authorized'), 'utf8').trim();
  const add = (path: string): Uevent => ({ action: 'add', subsystem: 'usb', devpath: `/devices/pci0000:00/0000:00:04.0/usb1/${path}` });

  it('a keyboard added is authorized before the uevent callback returns', async () => {
    const fs = new FakeSysfs();
    fs.addRootHub(1);
    const { emitted, uevent } = await start(fs, builtinPolicy());
    fs.addDevice('1-1', 0x046d, 0xc31c, [KEYBOARD], { configured: false });
    uevent(add('1-1'));
    expect(authorized(fs, '1-1')).toBe('1');
    expect(emitted.map((e) => e.type)).toEqual(['usb.allowed']);
    expect(emitted[0]!.data).toMatchObject({ port: '1-1', vendorId: '046d', interfaceClasses: ['03'] });
  });

  it('a storage device added is reported blocked at once and stays unauthorized', async () => {
    const fs = new FakeSysfs();
    fs.addRootHub(1);
    const { emitted, uevent } = await start(fs, builtinPolicy());
    fs.addDevice('1-2', 0x0781, 0x5567, [STORAGE], { configured: false, serial: Buffer.from('S1') });
    uevent(add('1-2'));
    expect(emitted.map((e) => e.type)).toEqual(['usb.blocked']);
    expect(emitted[0]!.data).toMatchObject({ port: '1-2', rule: 'class:08', serial: 'S1' });
    expect(authorized(fs, '1-2')).toBe('0');
  });

  it('interface events and repeated adds do not report the same device twice', async () => {
    const fs = new FakeSysfs();
    fs.addRootHub(1);
    const { emitted, uevent } = await start(fs, builtinPolicy());
    fs.addDevice('1-2', 0x0781, 0x5567, [STORAGE], { configured: false, serial: Buffer.from('S1') });
    uevent(add('1-2'));
    uevent(add('1-2'));
    uevent({ action: 'add', subsystem: 'usb', devpath: '/devices/pci0000:00/0000:00:04.0/usb1/1-2/1-2:1.0' });
    await cap!.scan();
    expect(emitted.map((e) => e.type)).toEqual(['usb.blocked']);
  });

  it('a registered serial already present elsewhere marks the added one as a clone (known devices stand in for the bus)', async () => {
    const fs = new FakeSysfs();
    fs.addRootHub(1);
    fs.addDevice('1-3', 0x0781, 0x5567, [STORAGE], { configured: false, serial: Buffer.from('REG-1') });
    const policy: PolicyDocument = {
      ...builtinPolicy(),
      usb: { ...defaultUsbPolicy(), registered: [{ id: 'reg-1', vendorId: '0781', productId: '5567', serial: 'REG-1', access: 'allow', label: 'registered' }] },
    };
    const { emitted, uevent } = await start(fs, policy);
    expect(emitted.map((e) => e.type)).toEqual(['usb.allowed']); // the original, judged at start
    fs.addDevice('1-4', 0x0781, 0x5567, [STORAGE], { configured: false, serial: Buffer.from('REG-1'), devnum: 6 });
    uevent(add('1-4'));
    expect(emitted.map((e) => e.type)).toEqual(['usb.allowed', 'usb.blocked']);
    expect(emitted[1]!.data).toMatchObject({ port: '1-4', note: expect.stringMatching(/^clone-suspected/) });
    expect(authorized(fs, '1-4')).toBe('0');
  });

  it('a device judged by the fast path while a scan is under way is not forgotten and reported again', async () => {
    const fs = new FakeSysfs();
    fs.addRootHub(1);
    for (const [i, port] of ['1-1', '1-2', '1-3'].entries()) fs.addDevice(port, 0x046d, 0xc310 + i, [KEYBOARD], { configured: true });
    const { emitted, uevent } = await start(fs, builtinPolicy());
    expect(emitted).toHaveLength(3);
    const scanning = cap!.scan(); // yields between devices
    fs.addDevice('1-9', 0x046d, 0xc31c, [KEYBOARD], { configured: false });
    uevent(add('1-9'));
    await scanning;
    await cap!.scan();
    expect(emitted.filter((e) => e.data.port === '1-9').map((e) => e.type)).toEqual(['usb.allowed']);
  });

  it('an add for a device that vanished meanwhile is ignored', async () => {
    const fs = new FakeSysfs();
    fs.addRootHub(1);
    const { emitted, uevent } = await start(fs, builtinPolicy());
    uevent(add('1-9'));
    expect(emitted).toEqual([]);
  });

  const withBlockPolicy = (optical: 'allow' | 'readonly' | 'block', sdCard: 'allow' | 'readonly' | 'block'): PolicyDocument => ({ ...builtinPolicy(), usb: { ...defaultUsbPolicy(), optical, sdCard } });

  it('built-in drives under block are unbound from their driver and recorded; a later policy binds them again', async () => {
    const fs = new FakeSysfs();
    fs.addRootHub(1);
    fs.addBuiltinDisk('scsi', '0:0:0:0', 'sr', 'sr0');
    fs.addBuiltinDisk('mmc', 'mmc0:4567', 'mmcblk', 'mmcblk0');
    const { emitted, state } = await start(fs, builtinPolicy()); // strict default: both blocked
    const byDevice = <T extends Record<string, unknown>>(xs: T[], key: string) => [...xs].sort((a, b) => String(a[key]).localeCompare(String(b[key])));
    expect(byDevice(emitted.map((e) => ({ type: e.type, device: e.data.device, rule: e.data.rule })), 'device')).toEqual([
      { type: 'usb.blocked', device: 'mmcblk0', rule: 'sdcard:block' },
      { type: 'usb.blocked', device: 'sr0', rule: 'optical:block' },
    ]);
    expect(readFileSync(join(fs.sys, 'bus/scsi/drivers/sr/unbind'), 'utf8')).toBe('0:0:0:0');
    expect(readFileSync(join(fs.sys, 'bus/mmc/drivers/mmcblk/unbind'), 'utf8')).toBe('mmc0:4567');
    expect(byDevice(JSON.parse(readFileSync(join(state, 'usb-unbound.json'), 'utf8')) as Record<string, unknown>[], 'kind')).toEqual([
      { kind: 'optical', bus: 'scsi', driver: 'sr', id: '0:0:0:0' },
      { kind: 'sdcard', bus: 'mmc', driver: 'mmcblk', id: 'mmc0:4567' },
    ]);
    // the kernel took the disks away; a restarted agent still knows what it unbound
    fs.removeBuiltinDisk('sr0');
    fs.removeBuiltinDisk('mmcblk0');
    await cap!.stop();
    const again = await start(fs, builtinPolicy(), state);
    expect(again.emitted).toEqual([]);
    await cap!.applyPolicy(withBlockPolicy('block', 'readonly'));
    expect(readFileSync(join(fs.sys, 'bus/mmc/drivers/mmcblk/bind'), 'utf8')).toBe('mmc0:4567');
    expect(readFileSync(join(fs.sys, 'bus/scsi/drivers/sr/bind'), 'utf8')).toBe('');
    expect(JSON.parse(readFileSync(join(state, 'usb-unbound.json'), 'utf8'))).toEqual([{ kind: 'optical', bus: 'scsi', driver: 'sr', id: '0:0:0:0' }]);
  });

  it('an SD card the udev rule started read-only is made writable where policy allows, kept read-only where it says readonly', async () => {
    for (const [access, expected] of [['allow', ['setrw /dev/mmcblk0']], ['readonly', []]] as const) {
      const fs = new FakeSysfs();
      fs.addRootHub(1);
      fs.addBuiltinDisk('mmc', 'mmc0:4567', 'mmcblk', 'mmcblk0');
      writeFileSync(join(fs.sys, 'block/mmcblk0/ro'), '1\n'); // as the udev rule leaves it
      const { emitted, blockdev } = await start(fs, withBlockPolicy('block', access));
      expect(emitted.map((e) => [e.type, e.data.rule])).toEqual([[access === 'allow' ? 'usb.allowed' : 'usb.readonly', `sdcard:${access}`]]);
      expect(blockdev).toEqual(expected);
      await cap!.stop();
      cap = null;
    }
  });

  it('an eMMC chip (mmcblk, card type MMC: often the system disk) is never taken for an SD card', async () => {
    const fs = new FakeSysfs();
    fs.addRootHub(1);
    fs.addBuiltinDisk('mmc', 'mmc0:0001', 'mmcblk', 'mmcblk0', 'MMC');
    const { emitted } = await start(fs, builtinPolicy());
    expect(emitted).toEqual([]);
    expect(readFileSync(join(fs.sys, 'bus/mmc/drivers/mmcblk/unbind'), 'utf8')).toBe('');
  });

  it('a tampered unbound record cannot make the agent write outside /sys/bus/<bus>/drivers', async () => {
    const fs = new FakeSysfs();
    fs.addRootHub(1);
    fs.addBuiltinDisk('mmc', 'mmc0:4567', 'mmcblk', 'mmcblk0');
    fs.removeBuiltinDisk('mmcblk0'); // unbound earlier
    const state = mkdtempSync(join(tmpdir(), 'sekimori-usbcap-'));
    const hostile = [
      { kind: 'sdcard', bus: '..', driver: '..', id: 'x' },
      { kind: 'sdcard', bus: 'mmc/../..', driver: 'mmcblk', id: 'y' },
    ];
    writeFileSync(join(state, 'usb-unbound.json'), JSON.stringify([...hostile, { kind: 'sdcard', bus: 'mmc', driver: 'mmcblk', id: 'mmc0:4567' }]));
    await start(fs, withBlockPolicy('allow', 'allow'), state);
    expect(readFileSync(join(fs.sys, 'bus/mmc/drivers/mmcblk/bind'), 'utf8')).toBe('mmc0:4567'); // the honest record
    expect(existsSync(join(fs.sys, 'bind'))).toBe(false); // bus/../drivers/../bind
    expect(existsSync(join(fs.sys, 'drivers/mmcblk/bind'))).toBe(false); // bus/mmc/../../drivers/…
    expect(JSON.parse(readFileSync(join(state, 'usb-unbound.json'), 'utf8'))).toEqual([]);
  });
});
