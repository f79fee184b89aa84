/** The capabilities the agent service runs, in start order: which ones is chosen in agent/platform.ts. */
import type { Capability } from './capability.js';
import { createMfaCapability } from './mfa/index.js';
import { capabilityNames, type CapabilityName } from './platform.js';
import { createSoftwareCapability } from './software/index.js';
import { createUsbCapability } from './usb/index.js';

const FACTORIES: Record<CapabilityName, () => Capability> = {
  mfa: createMfaCapability,
  software: createSoftwareCapability,
  usb: createUsbCapability,
};

export function createCapabilities(names: readonly CapabilityName[] = capabilityNames()): Capability[] {
  return names.map((n) => FACTORIES[n]());
}
