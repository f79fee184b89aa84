/**
 * Reading USB devices and block devices from sysfs. The root is a parameter (default /sys) so
 * unit tests run against a fake tree in a temp dir; nothing here ever writes.
 */
import { readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { descriptorHash, parseDescriptors, stripNewline, type UsbDeviceInfo, type UsbInterfaceInfo } from '../observe.js';

/** Device names: "1-1", "3-2.4.1"; root hubs "usb1"; interfaces "1-1:1.0". */
export const DEVICE_RE = /^\d+-\d+(\.\d+)*$/;
export const ROOT_HUB_RE = /^usb\d+$/;
export const INTERFACE_RE = /^(\d+-\d+(?:\.\d+)*):(\d+)\.(\d+)$/;

/** sysfs string attributes are at most a page; device strings are far shorter in any honest device. */
const MAX_ATTR = 8192;

export function readRaw(path: string): Buffer | null {
  try {
    const b = readFileSync(path);
    return b.length > MAX_ATTR ? b.subarray(0, MAX_ATTR) : b;
  } catch {
    return null;
  }
}

export function readText(path: string): string | null {
  const b = readRaw(path);
  return b === null ? null : b.toString('latin1').trim();
}

function readHex(path: string): number {
  const t = readText(path);
  const n = t === null ? NaN : parseInt(t, 16);
  return Number.isFinite(n) ? n : -1;
}

function readInt(path: string): number | null {
  const t = readText(path);
  const n = t === null ? NaN : parseInt(t, 10);
  return Number.isFinite(n) ? n : null;
}

export function usbDevicesDir(sysRoot: string): string {
  return join(sysRoot, 'bus', 'usb', 'devices');
}

export function listUsbEntries(sysRoot: string): string[] {
  try {
    return readdirSync(usbDevicesDir(sysRoot));
  } catch {
    return [];
  }
}

export function listRootHubs(sysRoot: string): string[] {
  return listUsbEntries(sysRoot).filter((n) => ROOT_HUB_RE.test(n));
}

export function listDevicePaths(sysRoot: string): string[] {
  return listUsbEntries(sysRoot).filter((n) => DEVICE_RE.test(n));
}

export function listInterfaceNames(sysRoot: string, path: string): string[] {
  return listUsbEntries(sysRoot).filter((n) => n.startsWith(path + ':') && INTERFACE_RE.test(n));
}

/** Interfaces as sysfs shows them now (only exists while the device is authorized/configured). */
export function readInterfaceDirs(sysRoot: string, path: string): (UsbInterfaceInfo & { name: string; authorized: boolean; driver: string | null })[] {
  const dir = usbDevicesDir(sysRoot);
  return listInterfaceNames(sysRoot, path).map((name) => {
    const p = join(dir, name);
    let driver: string | null = null;
    try {
      driver = readlinkSync(join(p, 'driver')).split('/').pop() ?? null;
    } catch {
      driver = null;
    }
    return {
      name,
      number: readHex(join(p, 'bInterfaceNumber')),
      alt: readInt(join(p, 'bAlternateSetting')) ?? 0,
      class: readHex(join(p, 'bInterfaceClass')),
      subclass: readHex(join(p, 'bInterfaceSubClass')),
      protocol: readHex(join(p, 'bInterfaceProtocol')),
      authorized: readText(join(p, 'authorized')) !== '0',
      driver,
    };
  });
}

/** Reads one device; null when it vanished meanwhile or is not a USB device directory. */
export function readUsbDevice(sysRoot: string, path: string): UsbDeviceInfo | null {
  const p = join(usbDevicesDir(sysRoot), path);
  const raw = readRaw(join(p, 'descriptors'));
  const vendor = readText(join(p, 'idVendor'));
  if (vendor === null && raw === null) return null;
  const parsed = raw ? parseDescriptors(raw) : null;
  // Interfaces: from the raw descriptors (valid even when de-authorized), plus whatever sysfs shows.
  const interfaces: UsbInterfaceInfo[] = parsed ? [...parsed.interfaces] : [];
  for (const i of readInterfaceDirs(sysRoot, path)) {
    if (!interfaces.some((x) => x.number === i.number && x.alt === i.alt && x.class === i.class && x.subclass === i.subclass && x.protocol === i.protocol))
      interfaces.push({ number: i.number, alt: i.alt, class: i.class, subclass: i.subclass, protocol: i.protocol });
  }
  const norm = (s: string | null | undefined, fallback: string) => (s && /^[0-9a-fA-F]{4}$/.test(s) ? s.toLowerCase() : fallback);
  return {
    path,
    busnum: readInt(join(p, 'busnum')),
    devnum: readInt(join(p, 'devnum')),
    vendorId: norm(vendor, parsed?.vendorId ?? '0000'),
    productId: norm(readText(join(p, 'idProduct')), parsed?.productId ?? '0000'),
    bcdDevice: norm(readText(join(p, 'bcdDevice')), parsed?.bcdDevice ?? '0000'),
    deviceClass: parsed?.deviceClass ?? readHex(join(p, 'bDeviceClass')),
    deviceSubclass: parsed?.deviceSubclass ?? readHex(join(p, 'bDeviceSubClass')),
    deviceProtocol: parsed?.deviceProtocol ?? readHex(join(p, 'bDeviceProtocol')),
    manufacturer: stripNewline(readRaw(join(p, 'manufacturer'))),
    product: stripNewline(readRaw(join(p, 'product'))),
    serial: stripNewline(readRaw(join(p, 'serial'))),
    interfaces,
    descriptorHash: raw ? descriptorHash(raw) : '',
    authorized: readText(join(p, 'authorized')) !== '0',
  };
}

export interface BlockDeviceInfo {
  name: string; // sda, sr0, mmcblk0
  /** Resolved sysfs path of the block device (…/1-1/1-1:1.0/host0/…/block/sda). */
  devicePath: string;
  partitions: string[];
  readonly: boolean;
}

export function listBlockDevices(sysRoot: string): BlockDeviceInfo[] {
  const dir = join(sysRoot, 'block');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: BlockDeviceInfo[] = [];
  for (const name of names) {
    let devicePath: string;
    try {
      // One realpath(3) call: the JS realpathSync lstat()s every component, and this runs every rescan.
      devicePath = realpathSync.native(join(dir, name));
    } catch {
      continue;
    }
    // loop, zram, dm-*, md*: never a removable medium, USB or built in.
    if (devicePath.includes('/devices/virtual/')) continue;
    let partitions: string[] = [];
    try {
      partitions = readdirSync(join(dir, name)).filter((n) => n.startsWith(name) && n !== name);
    } catch {
      partitions = [];
    }
    out.push({ name, devicePath, partitions, readonly: readText(join(dir, name, 'ro')) === '1' });
  }
  return out;
}

/** The USB device (kernel name) a block device hangs under, or null when it is not on USB. */
export function usbPathOfBlock(devicePath: string): string | null {
  let found: string | null = null;
  for (const seg of devicePath.split('/')) if (DEVICE_RE.test(seg)) found = seg; // deepest USB device wins
  return found;
}

/**
 * What kind of removable medium a non-USB block device is: an optical drive (sr*), an SD card
 * (mmcblk* whose card reports type "SD"), or null. An eMMC chip is also mmcblk* (type "MMC") and
 * is often the terminal's own system disk: never treat it as a card.
 */
export function builtinRemovableKind(sysRoot: string, b: BlockDeviceInfo): 'optical' | 'sdcard' | null {
  if (usbPathOfBlock(b.devicePath) !== null) return null; // USB media are judged as USB devices
  if (/^sr\d+$/.test(b.name)) return 'optical';
  if (/^mmcblk\d+$/.test(b.name) && readText(join(sysRoot, 'block', b.name, 'device', 'type')) === 'SD') return 'sdcard';
  return null;
}
