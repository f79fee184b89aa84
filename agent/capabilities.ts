/** The capabilities the agent service runs, in start order. */
import type { Capability } from './capability.js';

export function createCapabilities(): Capability[] {
  return [];
}
