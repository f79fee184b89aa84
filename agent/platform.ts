/**
 * The one place that looks at process.platform: which capabilities run, which platform
 * implementation each gets, and where the local API listens. Everything else in agent/ receives
 * what this file chose, so a Windows implementation slots in here and nowhere else.
 */
import { join } from 'node:path';
import { LinuxSoftwarePlatform, type LinuxSoftwareOptions } from './software/linux/platform.js';
import { unavailableSoftwarePlatform, type SoftwarePlatform } from './software/platform.js';
import { LinuxUsbPlatform, type LinuxUsbOptions } from './usb/linux/platform.js';
import { noUsbPlatform, type UsbPlatform } from './usb/platform.js';

export type AgentOs = 'linux' | 'windows' | 'other';

export function agentOs(platform: NodeJS.Platform = process.platform): AgentOs {
  return platform === 'linux' ? 'linux' : platform === 'win32' ? 'windows' : 'other';
}

export type CapabilityName = 'mfa' | 'software' | 'usb';

/**
 * Capabilities per OS, in start order. MFA on Linux is the PAM module asking the agent; on
 * Windows the privacyIDEA Credential Provider asks the console directly, so no agent capability.
 */
export function capabilityNames(os: AgentOs = agentOs()): CapabilityName[] {
  switch (os) {
    case 'linux':
      return ['mfa', 'software', 'usb'];
    case 'windows':
      return ['software', 'usb'];
    default:
      // Fail closed where nothing can be enforced: the agent still reports (heartbeat, events).
      return ['software', 'usb'];
  }
}

/** Windows named pipes live in their own namespace; one per agent state folder so agents can run side by side. */
export const WINDOWS_PIPE = '\\\\.\\pipe\\sekimori-agent';

/**
 * Where the root-only local API listens. Linux: STATE/agent.sock (unchanged). Windows: the named
 * pipe \\.\pipe\sekimori-agent; SEKIMORI_AGENT_PIPE names another (tests running several agents).
 */
export function localEndpoint(stateDir: string, os: AgentOs = agentOs(), env: NodeJS.ProcessEnv = process.env): string {
  if (os === 'windows') {
    const p = env.SEKIMORI_AGENT_PIPE;
    return p && /^\\\\\.\\pipe\\[\w.-]{1,200}$/.test(p) ? p : WINDOWS_PIPE;
  }
  return join(stateDir, 'agent.sock');
}

/** Whether the endpoint is a Windows named pipe (no chmod, no unlink of a stale socket). */
export const isNamedPipe = (endpoint: string): boolean => endpoint.startsWith('\\\\.\\pipe\\') || endpoint.startsWith('\\\\?\\pipe\\');

export type UsbPlatformOptions = LinuxUsbOptions;

/**
 * The USB platform for this OS. SEKIMORI_USB_SYSROOT points the Linux enforcer at another sysfs
 * tree (test harnesses on a developer's machine must never change the real USB bus); unset on
 * terminals.
 */
export function usbPlatform(opts: UsbPlatformOptions = {}, os: AgentOs = agentOs(), env: NodeJS.ProcessEnv = process.env): UsbPlatform {
  switch (os) {
    case 'linux': {
      const sysRoot = opts.sysRoot ?? env.SEKIMORI_USB_SYSROOT;
      return new LinuxUsbPlatform({ ...opts, ...(sysRoot ? { sysRoot } : {}) });
    }
    case 'windows':
      // NOT YET: agent/usb/windows/ (registry device control) is being written; the lead wires it here.
      return noUsbPlatform('windows', 'Windows device control not wired yet (agent/usb/windows): devices are not controlled by the agent');
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
      // NOT YET: agent/software/windows/ (process list, Uninstall keys, taskkill) is being written; the lead wires it here.
      return unavailableSoftwarePlatform('windows', 'Windows software control not wired yet (agent/software/windows): nothing is watched');
    default:
      return unavailableSoftwarePlatform(os, `no software control for platform ${process.platform}`);
  }
}
