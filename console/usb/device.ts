/**
 * How an exception names a device: "VID:PID[:SERIAL]" or "VID:PID#SERIAL_HEX", its matching key
 * (the raw serial as hex) and its display text. Pure: shared by the store, the CLI and the page.
 */
import { safeText } from '../../protocol/text.js';
import { parseDuration } from '../module.js';

/** A duration of at most 30 days (an exception is temporary by design), in milliseconds. */
export function exceptionDuration(s: string): number | null {
  const ms = parseDuration(s);
  return ms !== null && ms > 0 && ms <= 30 * 86_400_000 ? ms : null;
}

/** A device as an exception names it: the matching key (serialHex) and the text people read (serial). */
export interface DeviceSpec {
  vendorId: string;
  productId: string;
  /** Display text (safeText for a serial given as bytes); null = no serial: any device with this VID:PID. */
  serial: string | null;
  /** Raw serial bytes, lowercase hex; null when serial is null. */
  serialHex: string | null;
}

const SERIAL_HEX_MAX = 2048;

/**
 * "VID:PID[:SERIAL]" (hex ids; the serial is text and may itself contain colons) or
 * "VID:PID#HEX" (the serial as its raw bytes in hex: what "grant from this event" fills in, so a
 * serial with control characters, invalid UTF-8 or more than 128 characters matches too). A text
 * serial's key is its UTF-8 bytes, which is how the agent reads a serial.
 */
export function parseDeviceSpec(s: string): DeviceSpec | null {
  const h = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})#([0-9a-fA-F]+)$/.exec(s);
  if (h) {
    const hex = h[3]!.toLowerCase();
    if (hex.length % 2 !== 0 || hex.length > SERIAL_HEX_MAX) return null;
    const text = safeText(Buffer.from(hex, 'hex'), 128);
    return { vendorId: h[1]!.toLowerCase(), productId: h[2]!.toLowerCase(), serial: /\S/.test(text) ? text : '#' + hex.slice(0, 64), serialHex: hex };
  }
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{4})(?::(.+))?$/.exec(s);
  if (!m) return null;
  const serial = m[3] ?? null;
  if (serial !== null && (serial.length > 255 || !/\S/.test(serial))) return null;
  return { vendorId: m[1]!.toLowerCase(), productId: m[2]!.toLowerCase(), serial, serialHex: serial === null ? null : Buffer.from(serial, 'utf8').toString('hex') };
}

/** The spec that names exactly this device again (the hex form when the text would not). */
export function deviceSpecOf(x: { vendorId: string; productId: string; serial: string | null; serialHex?: string | null | undefined }): string {
  const base = `${x.vendorId}:${x.productId}`;
  if (typeof x.serialHex === 'string') {
    const text = Buffer.from(x.serialHex, 'hex').toString('utf8');
    // Text only when it reads back as the same bytes, shows as itself, and survives the form's trim().
    const plain = text.length <= 255 && text === text.trim() && text !== '' && Buffer.from(text, 'utf8').toString('hex') === x.serialHex && !/[#\u0000-\u001f\u007f-\u009f]/.test(text);
    return plain ? `${base}:${text}` : `${base}#${x.serialHex}`;
  }
  return x.serial === null ? base : `${base}:${x.serial}`;
}

/** The wire form of a stored key: an old row (text, no hex) keeps the old shape so the agent compares text. */
export function serialHexOf(serial: string | null, serialHex: string | null): { serialHex?: string | null } {
  if (serialHex !== null) return { serialHex };
  return serial === null ? { serialHex: null } : {};
}
