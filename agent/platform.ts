/**
 * The one place that picks per OS: which capabilities run and which platform implementation each
 * gets (the OS itself, and the facts that need no implementation — state folder, local API
 * endpoint — are in os.ts, light enough for every CLI command to import). Everything else in
 * agent/ receives what this file chose, so a Windows implementation slots in here and nowhere else.
 */
import { agentOs, type AgentOs } from './os.js';
import { LinuxSoftwarePlatform, type LinuxSoftwareOptions } from './software/linux/platform.js';
import { unavailableSoftwarePlatform, type SoftwarePlatform } from './software/platform.js';
import { LinuxUsbPlatform, type LinuxUsbOptions } from './usb/linux/platform.js';
import { noUsbPlatform, type UsbPlatform } from './usb/platform.js';
import { createWindowsSoftwarePlatform } from './software/windows/platform.js';
import { createWindowsUsbPlatform } from './usb/windows/platform.js';
import { LinuxNoticeDelivery } from './notify/linux/delivery.js';
import type { NoticeDelivery } from './notify/notifier.js';
import { WindowsNoticeDelivery } from './notify/windows/delivery.js';
import { LinuxPosturePlatform } from './posture/linux/platform.js';
import { WindowsPosturePlatform } from './posture/windows/platform.js';
import { noPosturePlatform, type PosturePlatform } from './posture/platform.js';

export { agentOs, defaultStateDir, isNamedPipe, localEndpoint, WINDOWS_PIPE, type AgentOs } from './os.js';

export type CapabilityName = 'mfa' | 'software' | 'usb' | 'posture';

/**
 * Capabilities per OS, in start order. MFA on Linux is the PAM module asking the agent; on
 * Windows the privacyIDEA Credential Provider asks the console directly, so no agent capability.
 */
export function capabilityNames(os: AgentOs = agentOs()): CapabilityName[] {
  switch (os) {
    case 'linux':
      return ['mfa', 'software', 'usb', 'posture'];
    case 'windows':
      return ['software', 'usb', 'posture'];
    default:
      // Fail closed where nothing can be enforced: the agent still reports (heartbeat, events).
      return ['software', 'usb'];
  }
}

export interface UsbPlatformOptions extends LinuxUsbOptions {
  /** The agent's state folder (Windows: where batched registry imports are written, SYSTEM-only). */
  stateDir?: string;
}

/**
 * The USB platform for this OS. SEKIMORI_USB_SYSROOT points the Linux enforcer at another sysfs
 * tree (test harnesses on a developer's machine must never change the real USB bus); unset on
 * terminals.
 */
export function usbPlatform(opts: UsbPlatformOptions = {}, os: AgentOs = agentOs(), env: NodeJS.ProcessEnv = process.env): UsbPlatform {
  switch (os) {
    case 'linux': {
      const { stateDir: _unused, ...linux } = opts;
      const sysRoot = linux.sysRoot ?? env.SEKIMORI_USB_SYSROOT;
      return new LinuxUsbPlatform({ ...linux, ...(sysRoot ? { sysRoot } : {}) });
    }
    case 'windows':
      // Batched `reg import` files go to the state folder (SYSTEM and Administrators only).
      return createWindowsUsbPlatform(opts.stateDir ? { importDir: opts.stateDir } : {});
    default:
      return noUsbPlatform(os, `no device control for platform ${process.platform}`);
  }
}

export type SoftwarePlatformOptions = LinuxSoftwareOptions;

/** The software platform for this OS. */
export function softwarePlatform(opts: SoftwarePlatformOptions = {}, os: AgentOs = agentOs()): SoftwarePlatform {
  switch (os) {
    case 'linux':
      return new LinuxSoftwarePlatform(opts);
    case 'windows':
      return createWindowsSoftwarePlatform();
    default:
      return unavailableSoftwarePlatform(os, `no software control for platform ${process.platform}`);
  }
}

/** The posture readings for this OS (issue 16); SEKIMORI_USB_SYSROOT as for USB, SEKIMORI_POSTURE_ROOT for the file tree (tests). */
export function posturePlatform(os: AgentOs = agentOs(), env: NodeJS.ProcessEnv = process.env): PosturePlatform {
  if (os === 'linux') return new LinuxPosturePlatform({ ...(env.SEKIMORI_USB_SYSROOT ? { sysRoot: env.SEKIMORI_USB_SYSROOT } : {}), ...(env.SEKIMORI_POSTURE_ROOT ? { root: env.SEKIMORI_POSTURE_ROOT } : {}) });
  if (os === 'windows') return new WindowsPosturePlatform();
  return noPosturePlatform(os);
}

/** Where desktop notices go on this OS (agent/notify/); null where there is nothing to show them on. */
export function noticeDelivery(os: AgentOs = agentOs()): NoticeDelivery | null {
  return os === 'linux' ? new LinuxNoticeDelivery() : os === 'windows' ? new WindowsNoticeDelivery() : null;
}
