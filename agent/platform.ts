/**
 * The one place that looks at process.platform: which capabilities run, which platform
 * implementation each gets, and where the local API listens. Everything else in agent/ receives
 * what this file chose, so a Windows implementation slots in here and nowhere else.
 */
import { createHash } from 'node:crypto';
import { join, win32 } from 'node:path';
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

/** The agent's local API on Windows: a named pipe (pipes live in their own namespace, not in the state folder). */
export const WINDOWS_PIPE = '\\\\.\\pipe\\sekimori-agent';

/** Where an agent keeps its state unless --state says otherwise. */
export function defaultStateDir(os: AgentOs = agentOs(), env: NodeJS.ProcessEnv = process.env): string {
  if (os === 'windows') return win32.join(env.ProgramData ?? env.PROGRAMDATA ?? 'C:\\ProgramData', 'Sekimori', 'agent');
  return '/var/lib/sekimori-agent';
}

/**
 * Where the root-only local API listens. Linux: STATE/agent.sock (unchanged). Windows: the named
 * pipe \\.\pipe\sekimori-agent for the default state folder, and one named after a hash of the
 * folder for any other, so agents with different --state folders still run side by side. The
 * pipe gets Windows' default DACL (full control for SYSTEM, Administrators and the creator; read
 * only for Everyone, which cannot send a request), and Node creates it with
 * FILE_FLAG_FIRST_PIPE_INSTANCE, so a pipe someone else made first makes listen fail instead of
 * being shared.
 */
export function localEndpoint(stateDir: string, os: AgentOs = agentOs(), env: NodeJS.ProcessEnv = process.env): string {
  if (os !== 'windows') return join(stateDir, 'agent.sock');
  const dir = win32.resolve(stateDir).toLowerCase();
  if (dir === win32.resolve(defaultStateDir(os, env)).toLowerCase()) return WINDOWS_PIPE;
  return `${WINDOWS_PIPE}-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`;
}

/** Whether the endpoint is a Windows named pipe (no chmod, no unlink of a stale socket). */
export const isNamedPipe = (endpoint: string): boolean => /^\\\\[.?]\\pipe\\/i.test(endpoint);

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
