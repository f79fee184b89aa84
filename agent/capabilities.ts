/** The capabilities the agent service runs, in start order. */
import type { Capability } from './capability.js';
import { createMfaCapability } from './mfa/index.js';
import { createSoftwareCapability } from './software/index.js';
import { createUsbCapability } from './usb/index.js';

export function createCapabilities(): Capability[] {
  return [createMfaCapability(), createSoftwareCapability(), createUsbCapability()];
}
