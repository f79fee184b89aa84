/**
 * The removable-media capability: lifecycle in capability.ts, events in events.ts, console sync in
 * sync.ts, state files in state.ts, the pure decision in decide.ts, the platform behind
 * platform.ts (linux/, windows/), chosen in agent/platform.ts.
 */
import type { Capability } from '../capability.js';
import { usbPlatform, type UsbPlatformOptions } from '../platform.js';
import { UsbCapability } from './capability.js';

export { UsbCapability, type UsbCapabilityOptions } from './capability.js';
export { usbEventData } from './events.js';

export interface CreateUsbOptions extends UsbPlatformOptions {
  rescanMs?: number;
  traceFile?: string;
}

export function createUsbCapability(opts: CreateUsbOptions = {}): Capability {
  const { rescanMs, traceFile, ...platformOpts } = opts;
  return new UsbCapability({ platform: usbPlatform(platformOpts), ...(rescanMs !== undefined ? { rescanMs } : {}), ...(traceFile !== undefined ? { traceFile } : {}) });
}
