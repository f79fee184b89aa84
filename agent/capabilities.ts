/** The capabilities the agent service runs, in start order: which ones is chosen in agent/platform.ts. */
import type { Capability } from './capability.js';
import { createMfaCapability } from './mfa/index.js';
import { createPostureCapability } from './posture/index.js';
import { capabilityNames, type CapabilityName } from './platform.js';
import { createSoftwareCapability } from './software/index.js';
import { createUsbCapability } from './usb/index.js';

/** stateDir: the agent's state folder (a platform may keep files there, e.g. Windows' batched reg import). */
const FACTORIES: Record<CapabilityName, (stateDir?: string) => Capability> = {
  mfa: () => createMfaCapability(),
  software: () => createSoftwareCapability(),
  usb: (stateDir) => createUsbCapability(stateDir ? { stateDir } : {}),
  posture: () => createPostureCapability(),
};

export function createCapabilities(names: readonly CapabilityName[] = capabilityNames(), stateDir?: string): Capability[] {
  return names.map((n) => FACTORIES[n](stateDir));
}
