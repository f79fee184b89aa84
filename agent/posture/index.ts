/**
 * Terminal posture (issue 16): lifecycle in capability.ts, pure readers in probe.ts, the platform
 * behind platform.ts (linux/, windows/), chosen in agent/platform.ts.
 */
import type { Capability } from '../capability.js';
import { posturePlatform } from '../platform.js';
import { PostureCapability } from './capability.js';

export { PostureCapability } from './capability.js';

export function createPostureCapability(): Capability {
  return new PostureCapability(posturePlatform());
}
