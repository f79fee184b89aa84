import { describe, expect, it } from 'vitest';
import { kernelEvents, kernelWindows } from '../../bench/usb-kernel-log.js';

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
