import { describe, expect, it } from 'vitest';
import { parseUeventLine } from '../../agent/usb/linux/uevents.js';

describe('kernel uevent lines (udevadm monitor --kernel)', () => {
  it.each([
    ['KERNEL[12.345678] add      /devices/pci0000:00/0000:00:04.0/usb1/1-1 (usb)', { action: 'add', devpath: '/devices/pci0000:00/0000:00:04.0/usb1/1-1', subsystem: 'usb', seenMs: 12345.678 }],
    ['KERNEL[12.400000] bind     /devices/pci0000:00/0000:00:04.0/usb1/1-1/1-1:1.0 (usb)', { action: 'bind', devpath: '/devices/pci0000:00/0000:00:04.0/usb1/1-1/1-1:1.0', subsystem: 'usb', seenMs: 12400 }],
    ['KERNEL[99.1] add      /devices/virtual/block/loop0 (block)', { action: 'add', devpath: '/devices/virtual/block/loop0', subsystem: 'block', seenMs: 99100 }],
  ])('%s', (line, expected) => {
    expect(parseUeventLine(line)).toEqual(expected);
  });
  it.each(['monitor will print the received events for:', 'UDEV  [12.3] add /devices/x (usb)', '', 'KERNEL[x] add /y (usb)'])('ignores %j', (line) => {
    expect(parseUeventLine(line)).toBeNull();
  });
});
