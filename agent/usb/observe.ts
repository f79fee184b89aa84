/**
 * What the USB capability observes, independent of platform: a device as its descriptors
 * describe it, and the parser for the raw descriptor bytes (the sysfs `descriptors` file on
 * Linux). Pure code: no I/O. A de-authorized device has no active configuration, so interface
 * classes come from these raw bytes (as USBGuard does), never from libusb.
 */
import { createHash } from 'node:crypto';

export interface UsbInterfaceInfo {
  number: number;
  alt: number;
  class: number;
  subclass: number;
  protocol: number;
}

/**
 * One device as a platform observes it. Fields a platform cannot know are null, never made up:
 * Windows has no bus/device numbers, no raw descriptor bytes (so no descriptorHash) and no
 * bcdDevice in the registry's Enum\USB tree; a rule that names a descriptorHash then never matches.
 */
export interface UsbDeviceInfo {
  /** The platform's stable id: Linux kernel name = bus and port path ("1-1", "2-3.4"); Windows device instance id. */
  path: string;
  /** Kernel bus and device numbers; null where the platform has none (Windows) or sysfs did not say. */
  busnum: number | null;
  devnum: number | null;
  vendorId: string; // 4 lowercase hex
  productId: string;
  /** 4 lowercase hex; null where the platform does not expose it (Windows). */
  bcdDevice: string | null;
  deviceClass: number;
  deviceSubclass: number;
  deviceProtocol: number;
  /** Raw strings exactly as the device sent them (attacker-controlled: sanitise before display). */
  manufacturer: Buffer | null;
  product: Buffer | null;
  serial: Buffer | null;
  /** Union over every configuration the device offers. */
  interfaces: UsbInterfaceInfo[];
  /** sha256 hex of the raw descriptors; '' when unreadable on Linux; null where the platform has no raw descriptors (Windows). */
  descriptorHash: string | null;
  /** Whether the OS currently lets the device work (Linux: sysfs `authorized`; Windows: a driver is installed and started). */
  authorized: boolean;
}

export interface ParsedDescriptors {
  vendorId: string;
  productId: string;
  bcdDevice: string;
  deviceClass: number;
  deviceSubclass: number;
  deviceProtocol: number;
  interfaces: UsbInterfaceInfo[];
  /** Set when the bytes were not a well-formed descriptor chain (the parse stopped there). */
  malformed: boolean;
}

const hex4 = (n: number) => n.toString(16).padStart(4, '0');

/**
 * Parses a device descriptor followed by configuration descriptor sets. Bounded by the buffer:
 * a zero or overlong bLength ends the parse (marked malformed) instead of looping.
 */
export function parseDescriptors(buf: Buffer): ParsedDescriptors | null {
  if (buf.length < 18 || buf[0] !== 18 || buf[1] !== 1) return null;
  const out: ParsedDescriptors = {
    vendorId: hex4(buf.readUInt16LE(8)),
    productId: hex4(buf.readUInt16LE(10)),
    bcdDevice: hex4(buf.readUInt16LE(12)),
    deviceClass: buf[4]!,
    deviceSubclass: buf[5]!,
    deviceProtocol: buf[6]!,
    interfaces: [],
    malformed: false,
  };
  const seen = new Set<string>();
  let off = 18;
  while (off < buf.length) {
    const len = buf[off]!;
    const type = buf[off + 1];
    if (len < 2 || off + len > buf.length || type === undefined) {
      out.malformed = true;
      break;
    }
    if (type === 4 && len >= 9) {
      const i: UsbInterfaceInfo = { number: buf[off + 2]!, alt: buf[off + 3]!, class: buf[off + 5]!, subclass: buf[off + 6]!, protocol: buf[off + 7]! };
      const key = `${i.number}/${i.alt}/${i.class}/${i.subclass}/${i.protocol}`;
      if (!seen.has(key)) {
        seen.add(key);
        out.interfaces.push(i);
      }
    }
    off += len;
  }
  return out;
}

export function descriptorHash(buf: Buffer): string {
  return buf.length ? createHash('sha256').update(buf).digest('hex') : '';
}

/** Reads the raw bytes of a sysfs string attribute: the kernel appends a newline. */
export function stripNewline(b: Buffer | null): Buffer | null {
  if (b === null) return null;
  return b.length && b[b.length - 1] === 0x0a ? b.subarray(0, b.length - 1) : b;
}

export const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/** "08", "ef/04/01" style label used in events and rules. */
export function interfaceLabel(i: Pick<UsbInterfaceInfo, 'class' | 'subclass' | 'protocol'>): string {
  return `${hex2(i.class)}/${hex2(i.subclass)}/${hex2(i.protocol)}`;
}
