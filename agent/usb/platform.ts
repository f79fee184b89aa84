/**
 * The seam between the USB capability (lifecycle, decisions, events: agent/usb/capability.ts) and
 * one platform's device control. Two shapes of enforcement fit behind it:
 * - Linux (linux/platform.ts) is per-device: the kernel holds every new device without a driver
 *   (authorized_default=0) and the agent authorizes the interfaces each decision allows.
 * - Windows (windows/) is declarative: the policy, the registered media and the exceptions become
 *   registry values (Removable Storage Access Deny_*, DeviceInstall\Restrictions AllowInstanceIDs)
 *   that Windows itself enforces, also while the agent is stopped. applyPolicy() re-writes them
 *   whenever any of those change; per device the agent only observes and reports.
 * The capability records every decision (ctx.emit, durable) before it calls into the platform.
 */
import type { UsbException, UsbPolicy } from '../../protocol/policy-usb.js';
import type { BlockKind, UsbDecision } from './decide.js';
import type { UsbDeviceInfo } from './observe.js';

/** What a platform call did, for logs, traces and tests. Errors are logged, never thrown. */
export interface UsbEnforceResult {
  /** Writes done ("/bus/usb/devices/1-1/authorized=1", "reg add …"), in order. */
  wrote: string[];
  errors: string[];
  /** CLOCK_MONOTONIC ms when the first write was issued (bench/usb: the decision reaching the OS). */
  firstWriteMs?: number;
  /**
   * Set by declarative platforms: the device needed no action of the agent because the policy in
   * the OS already enforces the decision ('policy'), or enforces it more strictly than decided
   * ('stricter': e.g. Windows' Removable Storage Access is class-wide, so one stick cannot be
   * writable while another is read-only). Never loosened to match: the platform says why in
   * `errors`, which the capability logs (the decision itself was recorded before this call).
   */
  enforcedBy?: 'agent' | 'policy' | 'stricter';
}

export const emptyResult = (): UsbEnforceResult => ({ wrote: [], errors: [] });

/** Everything the platform needs to turn the policy into OS settings. */
export interface UsbPolicyInput {
  policy: UsbPolicy;
  /** This terminal's valid-looking exceptions (expiry is judged against `now`). */
  exceptions: readonly UsbException[];
  /** Policy mode 'monitor' or an agent enrolled with --monitor: report, block nothing. */
  monitor: boolean;
  /** Enrolled with --monitor: change nothing at all on this machine (not even opening). */
  monitorOnly: boolean;
  /** The console's clock (exceptions start and end on it, not on the terminal's). */
  now: Date;
  agentId: string;
  /**
   * A declarative platform calls this with what it will enforce more strictly than the policy says
   * (Windows' class-wide read-only, …), BEFORE writing, on every application including its own
   * re-application at an exception's expiry: the capability reports it (usb.enforced_stricter).
   */
  onStricter?: (notes: StricterNote[]) => void;
}

/** One thing a platform enforces more strictly than the policy says, in Japanese and English. */
export interface StricterNote {
  code: string;
  subject: string;
  ja: string;
  en: string;
}

/** What the platform noticed. The capability decides what to do with it. */
export type UsbChange =
  /** One device just appeared (Linux: the kernel's `add` uevent); judged at once, without a full listing. */
  | { kind: 'added'; path: string; seenMs?: number }
  /** Something changed somewhere (interfaces bound, disks created, a device removed): list again. */
  | { kind: 'rescan' }
  /** A device was attached: list again, and ask the console for exceptions (one may just have been granted). */
  | { kind: 'attached' };

/**
 * A built-in drive or card reader not on USB (Linux: sr*, SD mmcblk*). Optional for a platform:
 * Windows covers optical drives with the class-wide registry policy instead.
 */
export interface BuiltinMedium {
  /** Stable name for events and de-duplication: "sr0", "mmcblk0". */
  name: string;
  kind: BlockKind;
  /** Changes when the medium behind the name changes (re-reported then). */
  identity: string;
  partitions: string[];
}

/** A drive whose driver the platform took away under `block`, to give back when allowed again. Opaque to the capability. */
export interface UnboundMedium {
  kind: BlockKind;
}

export interface BuiltinMediaControl {
  list(): BuiltinMedium[];
  setAccess(m: BuiltinMedium, access: 'readonly' | 'allow'): Promise<UsbEnforceResult>;
  /** Takes the medium away (Linux: unbinds sr/mmcblk); `unbound` is what rebind() needs later. */
  unbind(m: BuiltinMedium): UsbEnforceResult & { unbound?: UnboundMedium };
  rebind(u: UnboundMedium): UsbEnforceResult;
  /** Checks an entry read back from the state file (it is trusted with a sysfs write later). */
  isUnbound(x: unknown): x is UnboundMedium;
}

export interface UsbPlatform {
  /** 'linux', 'windows', or 'none' (no device control on this platform: observe nothing, change nothing). */
  readonly name: string;
  /** Set when this platform controls nothing (no implementation yet): the capability logs it and stays idle. */
  readonly unavailable?: string;
  /**
   * Called at start, on every new policy and whenever the exceptions change. Linux: closes the
   * root hubs (unless monitoring). Windows: writes the registry from policy + media + exceptions.
   */
  applyPolicy(input: UsbPolicyInput): Promise<UsbEnforceResult>;
  /**
   * Stable ids of the devices present now (Linux: kernel names "1-1"; Windows: device instance
   * ids). Synchronous where the platform can: the capability forgets absent devices before it
   * yields, so a device judged meanwhile is not lost.
   */
  listDevicePaths(): string[] | Promise<string[]>;
  /** One device; null when it vanished meanwhile. */
  readDevice(path: string): UsbDeviceInfo | null | Promise<UsbDeviceInfo | null>;
  /** Starts watching for changes; returns the stop function. Failures are logged, never fatal. */
  watch(onChange: (c: UsbChange) => void, log: (m: string) => void): () => Promise<void>;
  /**
   * Makes the OS match one device's decision. `first`: the decision is new for this device (a
   * re-application after a rescan is false). Declarative platforms return enforcedBy 'policy' or
   * 'stricter' and change nothing per device. Never called under monitorOnly.
   */
  enforceDevice(device: UsbDeviceInfo, decision: UsbDecision, o: { first: boolean; monitor: boolean }): Promise<UsbEnforceResult>;
  /** Devices not present any more: per-device leftovers (Linux: read-only markers) are removed. */
  forget(present: ReadonlySet<string>): void;
  /** Read-only media: disks appear a while after the device is allowed; keep them read-only as they come. */
  keepReadonly?(path: string): Promise<UsbEnforceResult>;
  builtinMedia?: BuiltinMediaControl;
  /** The logged-in user for events (null when nobody or unknown). */
  currentUser(): string | null;
}

/** A platform without device control (an OS the agent has no enforcer for): the capability logs a warning and stays idle. */
export function noUsbPlatform(name: string, unavailable: string): UsbPlatform {
  return {
    name,
    unavailable,
    applyPolicy: async () => emptyResult(),
    listDevicePaths: () => [],
    readDevice: () => null,
    watch: () => async () => undefined,
    enforceDevice: async () => emptyResult(),
    forget: () => undefined,
    currentUser: () => null,
  };
}
