/**
 * What the USB capability reports: the event type and data for a decision. Pure: every device
 * string goes through safeText for display; the raw serial travels as hex (the matching key).
 */
import type { UsbBlockDeviceEventData, UsbDeviceEventData } from '../../protocol/event-data.js';
import { safeText } from '../../protocol/text.js';
import type { UsbPolicy } from '../../protocol/policy-usb.js';
import type { BlockKind, UsbDecision } from './decide.js';
import { hex2, type UsbDeviceInfo } from './observe.js';

export type UsbReportType = 'usb.allowed' | 'usb.readonly' | 'usb.blocked' | 'usb.would_block' | 'usb.exception_used';

/** Monitoring reports what would have been blocked as usb.would_block. */
export function usbEventType(dec: Pick<UsbDecision, 'eventType'>, monitor: boolean): UsbReportType {
  return monitor && dec.eventType === 'usb.blocked' ? 'usb.would_block' : dec.eventType;
}

/**
 * Event data for one USB decision. Display strings go through safeText; the raw serial travels
 * as hex (serialHex), the key exceptions match on. Fields the platform cannot know are '' in the
 * event (the declared shape has no null for them).
 */
export function usbEventData(d: UsbDeviceInfo, dec: UsbDecision, mode: string): UsbDeviceEventData {
  return {
    kind: 'usb',
    mode,
    port: d.path,
    busnum: d.busnum,
    devnum: d.devnum,
    vendorId: d.vendorId,
    productId: d.productId,
    bcdDevice: d.bcdDevice ?? '',
    deviceClass: hex2(d.deviceClass & 0xff),
    interfaceClasses: [...new Set(d.interfaces.map((i) => hex2(i.class & 0xff)))],
    interfaces: dec.interfaces,
    manufacturer: safeText(d.manufacturer),
    product: safeText(d.product),
    serial: safeText(d.serial, 128),
    serialHex: d.serial?.toString('hex') ?? null,
    descriptorHash: d.descriptorHash ?? '',
    rule: dec.rule,
    partial: dec.partial,
    readonly: dec.readonly,
    exceptionId: dec.exceptionId,
    ...(dec.note ? { note: dec.note } : {}),
  };
}

/** A built-in drive or card reader's verdict as an event type. */
export function builtinEventType(access: 'allow' | 'readonly' | 'block', monitor: boolean): UsbReportType {
  return access === 'allow' ? 'usb.allowed' : access === 'readonly' ? 'usb.readonly' : monitor ? 'usb.would_block' : 'usb.blocked';
}

export function builtinEventData(kind: BlockKind, mode: UsbPolicy['mode'], device: string, rule: string, partitions: string[]): UsbBlockDeviceEventData {
  return { kind, mode, device, rule, partitions };
}
