/**
 * Windows device control behind the USB platform seam (../platform.ts). Declarative: applyPolicy
 * turns policy + exceptions into registry values (plan.ts) that Windows enforces itself, also while
 * the agent is stopped, and writes them fail-closed (enforcer.ts). Per device the agent only observes
 * (devices.ts, Enum\USB) and reports; enforceDevice changes nothing and says whether Windows enforces
 * the decision as decided ('policy') or more strictly ('stricter').
 *
 * Exceptions end on the console's clock: applyPolicy remembers the offset between the console's
 * clock (input.now) and the local one, and re-applies itself when the next exception expires.
 */
import type { UsbDecision } from '../decide.js';
import type { UsbDeviceInfo } from '../observe.js';
import { emptyResult, type UsbChange, type UsbEnforceResult, type UsbPlatform, type UsbPolicyInput } from '../platform.js';
import { RegExeRegistry, type WindowsRegistry } from '../../windows/registry.js';
import { activeExceptions, planRegistry, type RegistryPlan } from './plan.js';
import { applyRegistryPlan } from './enforcer.js';
import { listEnumUsb } from './devices.js';

export interface WindowsUsbOptions {
  registry?: WindowsRegistry;
  /** For the default reg.exe registry: a folder only SYSTEM/Administrators write (the state folder), for batched reg import. */
  importDir?: string;
  /** Enum\USB poll period (the registry has no change notification reachable without native code). */
  pollMs?: number;
  /** Local clock in ms (tests). */
  localNow?: () => number;
  /** Timer (tests): returns a cancel function. */
  setTimer?: (fn: () => void, ms: number) => () => void;
}

/** Re-checks at least hourly even if the next expiry is further away (clock offsets change). */
const MAX_TIMER_MS = 60 * 60_000;

export class WindowsUsbPlatform implements UsbPlatform {
  readonly name = 'windows';
  private readonly reg: WindowsRegistry;
  private readonly localNow: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => () => void;
  private lastInput: UsbPolicyInput | null = null;
  private offsetMs = 0;
  private cancelExpiry: (() => void) | null = null;
  private devices = new Map<string, UsbDeviceInfo>();
  private listing: Promise<Set<string>> | null = null;
  private listed = false;
  private applying: Promise<UsbEnforceResult> = Promise.resolve(emptyResult());
  /** The plan last written (for enforceDevice and for reporting its notes). */
  lastPlan: RegistryPlan | null = null;

  constructor(private readonly opts: WindowsUsbOptions = {}) {
    this.reg = opts.registry ?? new RegExeRegistry(opts.importDir ? { importDir: opts.importDir } : {});
    this.localNow = opts.localNow ?? Date.now;
    this.setTimer =
      opts.setTimer ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref?.();
        return () => clearTimeout(t);
      });
  }

  /** The console's clock as last learnt from applyPolicy. */
  consoleNow(): Date {
    return new Date(this.localNow() + this.offsetMs);
  }

  applyPolicy(input: UsbPolicyInput): Promise<UsbEnforceResult> {
    // One application at a time: a policy change and an expiry cannot interleave their writes.
    const run = this.applying.then(() => this.applyNow(input));
    this.applying = run.catch(() => emptyResult());
    return run;
  }

  private async applyNow(input: UsbPolicyInput): Promise<UsbEnforceResult> {
    this.lastInput = input;
    this.offsetMs = input.now.getTime() - this.localNow();
    if (input.monitorOnly) return emptyResult(); // enrolled --monitor: change nothing on this machine
    const present = [...this.devices.values()].map((d) => ({ instanceId: d.path, vendorId: d.vendorId, productId: d.productId }));
    const plan = planRegistry(input, present);
    // Reported before anything is written (the capability records it durably).
    input.onStricter?.(plan.notes.map((n) => ({ code: n.code, subject: n.subject, ja: n.ja, en: n.en })));
    const r = await applyRegistryPlan(this.reg, plan.keys);
    this.lastPlan = plan;
    for (const n of plan.notes) r.errors.push(`usb.windows stricter (${n.code}) ${n.subject}: ${n.ja} / ${n.en}`);
    this.scheduleExpiry(input);
    return r;
  }

  /** Re-applies when the next exception in force expires (console clock). */
  private scheduleExpiry(input: UsbPolicyInput): void {
    this.cancelExpiry?.();
    this.cancelExpiry = null;
    const now = input.now.getTime();
    const next = Math.min(...activeExceptions(input.exceptions, input.agentId, input.now).map((e) => Date.parse(e.expiresAt)));
    if (!Number.isFinite(next)) return;
    const delay = Math.min(Math.max(next - now, 0) + 1, MAX_TIMER_MS);
    this.cancelExpiry = this.setTimer(() => {
      this.cancelExpiry = null;
      const last = this.lastInput;
      if (last) void this.applyPolicy({ ...last, now: this.consoleNow() });
    }, delay);
  }

  /** Reads Enum\USB once (callers share a listing in flight) and keeps it as the device cache. */
  private refresh(log?: (m: string) => void): Promise<Set<string>> {
    this.listing ??= listEnumUsb(this.reg)
      .then((r) => {
        for (const e of r.errors) log?.(`usb: ${e}`);
        this.devices = new Map(r.devices.map((d) => [d.path, d]));
        this.listed = true;
        return new Set(this.devices.keys());
      })
      .finally(() => {
        this.listing = null;
      });
    return this.listing;
  }

  /**
   * From the cache the watch poll keeps (the capability asks every second; a listing costs a reg.exe
   * run per key): only the first call reads the registry itself.
   */
  async listDevicePaths(): Promise<string[]> {
    if (!this.listed) await this.refresh();
    return [...this.devices.keys()];
  }

  readDevice(path: string): UsbDeviceInfo | null {
    return this.devices.get(path) ?? null;
  }

  watch(onChange: (c: UsbChange) => void, log: (m: string) => void): () => Promise<void> {
    let stopped = false;
    let known: Set<string> | null = this.listed ? new Set(this.devices.keys()) : null;
    const tick = async () => {
      if (stopped) return;
      try {
        const now = await this.refresh(log);
        if (known && [...now].some((p) => !known!.has(p))) onChange({ kind: 'attached' });
        else if (known && (now.size !== known.size || [...known].some((p) => !now.has(p)))) onChange({ kind: 'rescan' });
        known = now;
      } catch (e) {
        log(`usb: Enum\\USB listing failed: ${(e as Error).message}`);
      }
    };
    const timer = setInterval(() => void tick(), this.opts.pollMs ?? 5000);
    timer.unref?.();
    void tick();
    return async () => {
      stopped = true;
      clearInterval(timer);
    };
  }

  /** Nothing to do per device; says whether Windows enforces the decision exactly or more strictly. */
  async enforceDevice(device: UsbDeviceInfo, decision: UsbDecision, o: { first: boolean; monitor: boolean }): Promise<UsbEnforceResult> {
    const r = emptyResult();
    if (o.monitor) return r;
    r.enforcedBy = stricterOnWindows(device, decision, this.lastPlan) ? 'stricter' : 'policy';
    return r;
  }

  forget(): void {}

  currentUser(): string | null {
    return null; // the interactive user is not in the registry reliably; events carry none (as a service)
  }
}

/**
 * Whether Windows, under this plan, gives the device less than the decision: storage interfaces
 * allowed by a registration or exception the plan could not express, or writable where the
 * class-wide Deny_Write makes every removable disk read-only; or interfaces a model rule opened whose
 * class the plan denies, unless the device is a single-function one allowed by its instance ID (a
 * composite device's functions keep their class deny: the parent's instance ID does not cover them).
 */
export function stricterOnWindows(device: UsbDeviceInfo, decision: UsbDecision, plan: RegistryPlan | null): boolean {
  if (!plan || !decision.authorizeDevice) return false;
  const opened = decision.rule.startsWith('registered:') || decision.rule.startsWith('exception:') || !!decision.exceptionId;
  const allowedById = plan.allowInstanceIds.some((id) => id.toLowerCase() === device.path.toLowerCase());
  if (opened && !allowedById) return true;
  const byModel = decision.interfaces.filter((i) => i.allow && i.rule.startsWith('model:'));
  if (byModel.some((i) => i.classes.some((c) => classDenied(c, plan.denyDeviceIds))) && (!allowedById || compositeOnWindows(device))) return true;
  const storage = decision.interfaces.some((i) => i.allow && i.classes.some((c) => c.startsWith('08/')));
  const disks = plan.keys.find((k) => /\{53f5630d-b6bf-11d0-94f2-00a0c91efb8b\}$/i.test(k.key));
  const denyWrite = !!disks?.values.some((v) => v.name === 'Deny_Write');
  return storage && !decision.readonly && denyWrite;
}

/** Whether a "cc/ss/pp" interface matches an entry of the deny list (Windows compares case-insensitively). */
export function classDenied(label: string, denyIds: readonly string[]): boolean {
  const m = /^([0-9a-f]{2})\/([0-9a-f]{2})\/([0-9a-f]{2})$/i.exec(label);
  if (!m) return true; // not a class we can name: assume Windows denies it (stricter is what we report)
  const [c, s, p] = [m[1]!, m[2]!, m[3]!].map((x) => x.toUpperCase());
  const ids = new Set([`USB\\CLASS_${c}`, `USB\\CLASS_${c}&SUBCLASS_${s}`, `USB\\CLASS_${c}&SUBCLASS_${s}&PROT_${p}`]);
  return denyIds.some((d) => ids.has(d.toUpperCase()));
}

/**
 * Windows loads the generic parent (usbccgp) and makes one node per function when the device class is
 * 00 (or the IAD triple ef/02/01) and there is more than one interface (Microsoft: USB common class
 * generic parent driver). Otherwise the device is one node.
 */
export function compositeOnWindows(d: Pick<UsbDeviceInfo, 'deviceClass' | 'deviceSubclass' | 'deviceProtocol' | 'interfaces'>): boolean {
  const numbers = new Set(d.interfaces.map((i) => i.number));
  if (numbers.size < 2) return false;
  return d.deviceClass === 0 || (d.deviceClass === 0xef && d.deviceSubclass === 0x02 && d.deviceProtocol === 0x01);
}

export function createWindowsUsbPlatform(opts: WindowsUsbOptions = {}): UsbPlatform {
  return new WindowsUsbPlatform(opts);
}
