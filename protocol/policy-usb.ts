import { isObject, oneOfErrors, unknownKeys } from './validate.js';

/** Removable-media section of the signed policy (issue: removable-media export). */
export interface UsbPolicy {
  /** `monitor` reports what would be blocked and changes nothing. */
  mode: 'enforce' | 'monitor';
}

export function defaultUsbPolicy(): UsbPolicy {
  return { mode: 'enforce' };
}

export function usbPolicyErrors(x: unknown, where = 'usb'): string[] {
  if (!isObject(x)) return [`${where}: must be an object`];
  return [...unknownKeys(x, ['mode'], where), ...oneOfErrors(x.mode, `${where}.mode`, ['enforce', 'monitor'] as const)];
}
