/** What a platform gives the posture capability: the control readings only it can make. */
import type { PostureControlReport } from '../../protocol/posture.js';
import type { ScreenLockPolicy } from '../../protocol/policy-screen-lock.js';

export interface PostureInputs {
  usbMode: string; // what the agent runs: policy usb.mode, 'monitor' when enrolled monitor-only
  screenLock: ScreenLockPolicy;
}

export interface PosturePlatform {
  readonly name: string; // 'linux' | 'windows' | …, the document's `platform`
  /** Reads the platform controls (usb_*, mfa_*, screen_lock); software and health come from the agent itself. */
  read(inputs: PostureInputs): Promise<PostureControlReport[]>;
  /**
   * Puts the screen-lock maximum in place where the platform can (GNOME: dconf keyfile + lock, then
   * `dconf update`). Returns the files it would write and a function that writes them, or null when
   * nothing is to change: the capability records the event first, then calls `apply`.
   */
  screenLockPlan?(policy: ScreenLockPolicy): { files: string[]; apply(): void } | null;
}

export function noPosturePlatform(name: string): PosturePlatform {
  return { name, read: async () => [] };
}
