/**
 * The notices the capabilities raise, built from what they decided (pure): which decisions tell
 * the user anything, the subject as the user knows it, and the key that makes a notice once-only.
 */
import type { Notice } from '../../protocol/notice.js';
import { safeText } from '../../protocol/text.js';
import type { UsbDecision } from '../usb/decide.js';
import type { UsbDeviceInfo } from '../usb/observe.js';

/** How long one program's notice stands for its user: the same program started again within it tells nothing new. */
export const SOFTWARE_NOTICE_WINDOW_MS = 10 * 60_000;

type UsbSubjectSource = Pick<UsbDeviceInfo, 'path' | 'busnum' | 'devnum' | 'vendorId' | 'productId' | 'manufacturer' | 'product'>;

/** The device as its user knows it: manufacturer and product, else the USB ids. */
export function usbSubject(d: Pick<UsbDeviceInfo, 'vendorId' | 'productId' | 'manufacturer' | 'product'>): string {
  const name = [safeText(d.manufacturer, 64), safeText(d.product, 64)].filter((s) => s.trim()).join(' ').trim();
  return name || `USB ${d.vendorId}:${d.productId}`;
}

/**
 * The notice for one USB decision, or null when it tells the user nothing (allowed, an exception
 * in use, a composite device whose blocked part is the only change). One per device per plug:
 * the key is the port with the bus's device number, which the kernel assigns anew on each plug.
 */
export function usbNotice(d: UsbSubjectSource, dec: Pick<UsbDecision, 'eventType'>, o: { user: string | null; monitor: boolean; ref?: string | undefined }): Notice | null {
  const kind = dec.eventType === 'usb.blocked' ? 'usb_blocked' : dec.eventType === 'usb.readonly' ? 'usb_readonly' : null;
  if (!kind) return null;
  return {
    kind,
    user: o.user ?? '',
    subject: usbSubject(d),
    key: `usb|${d.path}|${d.busnum}|${d.devnum}`,
    ...(o.ref ? { ref: o.ref } : {}),
    ...(o.monitor ? { monitor: true } : {}),
  };
}

/** The program's file name (what the user started), from its path on either OS. */
export function programName(path: string): string {
  const base = path.split(/[\\/]/).filter(Boolean).pop() ?? '';
  return safeText(base || path, 120);
}

/**
 * The notice for an unauthorized program: stopped (enforced), would-be-stopped (monitor: shown
 * only if the policy asks), or reported (enforce mode but not killed, e.g. a protected process).
 * Keyed per user and program per SOFTWARE_NOTICE_WINDOW_MS, so a program restarted in a loop
 * tells once.
 */
export function softwareNotice(o: { user: string | null; uid: number | null; path: string; sha256: string; enforce: boolean; monitor: boolean; nowMs: number }): Notice {
  const kind = o.enforce || o.monitor ? 'software_stopped' : 'software_reported';
  return {
    kind,
    user: o.user ?? '',
    subject: programName(o.path),
    key: `proc|${o.uid ?? '-'}|${o.sha256 || o.path}|${Math.floor(o.nowMs / SOFTWARE_NOTICE_WINDOW_MS)}`,
    ...(o.monitor ? { monitor: true } : {}),
  };
}
