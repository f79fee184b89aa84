import { describe, expect, it } from 'vitest';
import { kernelEvents, kernelWindows, presences, windowsOf, type WatchLine } from '../../bench/usb-guest-logs.js';

const HC = '/devices/pci0000:00/0000:00:04.0/usb2';
const log = [
  `KERNEL[10.000100] add      ${HC}/2-3 (usb)`,
  `KERNEL[13.000000] remove   ${HC}/2-3 (usb)`,
  `KERNEL[20.000000] add      ${HC}/2-3 (usb)`,
  `KERNEL[20.300000] add      ${HC}/2-3/2-3:1.0 (usb)`,
  `KERNEL[20.310000] bind     ${HC}/2-3/2-3:1.0 (usb)`,
  `KERNEL[21.400000] add      ${HC}/2-3/2-3:1.0/host0/target0:0:0/0:0:0:0/block/sda (block)`,
  `KERNEL[21.400100] add      ${HC}/2-3/2-3:1.0/host0/target0:0:0/0:0:0:0/block/sda/sda1 (block)`,
  `KERNEL[22.000000] bind     ${HC}/2-4/2-4:1.0 (usb)`,
].join('\n');

describe('driver windows in the kernel uevent log (bench/usb, QEMU tier)', () => {
  const evs = kernelEvents(log);
  it('parses timestamps in ms, actions, paths and subsystems', () => {
    expect(evs[0]).toEqual({ t: 10000.1, action: 'add', devpath: `${HC}/2-3`, subsystem: 'usb' });
    expect(evs).toHaveLength(8);
  });
  it('a device that was never configured has no window', () => {
    expect(kernelWindows(evs, '2-3', 11_000)).toEqual([]);
  });
  it('a later device on the same port is judged on its own presence: bind and disks are windows', () => {
    expect(kernelWindows(evs, '2-3', 20_100).map((e) => `${e.action} ${e.subsystem} ${e.devpath.split('/').pop()}`)).toEqual(['bind usb 2-3:1.0', 'add block sda', 'add block sda1']);
  });
  it('another port is not counted', () => {
    expect(kernelWindows(evs, '2-3', Infinity).some((e) => e.devpath.includes('2-4'))).toBe(false);
  });
  it('no add of the path: nothing to judge', () => {
    expect(kernelWindows(evs, '1-1', Infinity)).toEqual([]);
  });
});

describe('driver windows in the sysfs watcher timeline (per presence: ports are reused)', () => {
  const w: WatchLine[] = [
    { t: 1, kind: 'start' },
    { t: 10, kind: 'dev', name: '2-3', value: '0', serial: 'SEKI-B1', id: '46f4:0001' },
    { t: 3000, kind: 'dev-gone', name: '2-3' },
    { t: 4000, kind: 'dev', name: '2-3', value: '1', serial: '42', id: '0627:0001' },
    { t: 4100, kind: 'iface', name: '2-3:1.0', value: 'usbhid' },
    { t: 5000, kind: 'dev', name: '2-4', value: '1', serial: 'SEKI-REG-1', id: '46f4:0001' },
    { t: 5100, kind: 'iface', name: '2-4:1.0', value: 'usb-storage' },
    { t: 6200, kind: 'block', name: 'sda', value: '2-4' },
  ];
  const ps = presences(w);
  it('splits the log into presences, the last one open to the end', () => {
    expect(ps.map((p) => [p.path, p.serial, p.from, p.to])).toEqual([
      ['2-3', 'SEKI-B1', 1, 2],
      ['2-3', '42', 3, 8],
      ['2-4', 'SEKI-REG-1', 5, 8],
    ]);
  });
  it('a keyboard bound later on the same port is not a window of the stick before it', () => {
    expect(windowsOf(w, ps[0]!)).toEqual([]);
    expect(windowsOf(w, ps[1]!).map((l) => l.value)).toEqual(['usbhid']);
  });
  it('a driver and a disk under an allowed stick are seen', () => {
    expect(windowsOf(w, ps[2]!).map((l) => l.kind)).toEqual(['iface', 'block']);
  });
});
