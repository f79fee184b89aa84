/**
 * The unauthorized-software capability: lifecycle in capability.ts, events in events.ts, console
 * sync in sync.ts, state files in state.ts, the pure decision in decide.ts, the platform behind
 * platform.ts (linux/, windows/), chosen in agent/platform.ts.
 */
import type { Capability } from '../capability.js';
import { softwarePlatform, type SoftwarePlatformOptions } from '../platform.js';
import { SoftwareCapability } from './capability.js';

export { SoftwareCapability, type SoftwareStats } from './capability.js';

export function createSoftwareCapability(opts: SoftwarePlatformOptions = {}): Capability {
  return new SoftwareCapability(softwarePlatform(opts));
}
