/**
 * The removable-media capability: observe (udev hotplug via node-usb, plus a sysfs rescan) →
 * decide (decide.ts, pure) → enforce (linux/enforcer.ts) → report (usb.* events, written to the
 * outbox before the kernel is told anything).
 */
import { createRequire } from 'node:module';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentContext, Capability, NewEvent } from '../capability.js';
import type { PolicyDocument } from '../../protocol/policy.js';
import { defaultUsbPolicy, usbExceptionErrors, type UsbException, type UsbPolicy } from '../../protocol/policy-usb.js';
import { safeText } from '../../protocol/text.js';
import { decideBlockDevice, decideUsb, type UsbDecision } from './decide.js';
import { hex2, type UsbDeviceInfo } from './observe.js';
import { LinuxUsbEnforcer, monoMs, type EnforceResult, type EnforcerOptions, type UnboundDevice } from './linux/enforcer.js';
import { watchKernelUevents } from './linux/uevents.js';
import { builtinRemovableKind, DEVICE_RE, listBlockDevices, listDevicePaths, readUsbDevice } from './linux/sysfs.js';
import { loggedInUser } from './linux/user.js';

export interface UsbCapabilityOptions extends EnforcerOptions {
  /** Fallback rescan period (missed hotplug events, exception expiry). */
  rescanMs?: number;
  /** Use node-usb's udev hotplug (needs systemd-udevd). */
  hotplug?: boolean;
  /** Source of kernel uevents (default `udevadm monitor --kernel`); injectable for tests. */
  watchUevents?: typeof watchKernelUevents;
  utmpPaths?: string[];
  /** Appends one JSON line per decision with monotonic timestamps (bench/usb). */
  traceFile?: string;
}

interface Known {
  key: string; // identity + decision: a change re-reports
  decision: UsbDecision;
  identity: DeviceIdentity; // for clone detection when one device is judged on its own
}

type DeviceIdentity = Pick<UsbDeviceInfo, 'path' | 'vendorId' | 'productId' | 'serial'>;
const identityOf = (d: UsbDeviceInfo): DeviceIdentity => ({ path: d.path, vendorId: d.vendorId, productId: d.productId, serial: d.serial });

const EXCEPTIONS_FILE = 'usb-exceptions.json';
/** Built-in drives and card readers whose driver the agent unbound, to bind again when allowed. */
const UNBOUND_FILE = 'usb-unbound.json';

const NAME = /^[\w:.-]{1,64}$/; // bus, driver and device names as sysfs has them; nothing that climbs out of /sys/bus
function isUnboundDevice(x: unknown): x is UnboundDevice {
  const u = x as Partial<UnboundDevice> | null;
  return !!u && (u.kind === 'optical' || u.kind === 'sdcard') && [u.bus, u.driver, u.id].every((v) => typeof v === 'string' && NAME.test(v) && v !== '..' && v !== '.');
}

/** Lets pending I/O (a hot-plug uevent) run between devices: a new device waits for one device's work, not a whole scan. */
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

/**
 * CLOCK_MONOTONIC milestones of one decision, in ms, for bench/usb: the kernel event as udevadm saw
 * it, start, descriptors read, decided, reported (durable), first sysfs write issued, done.
 */
type TraceMarks = Partial<Record<'ueventSeen' | 'read' | 'decided' | 'reported' | 'firstWrite' | 'done', number>> & { start: number };

/** Event data for one USB decision; every device string goes through safeText. */
export function usbEventData(d: UsbDeviceInfo, dec: UsbDecision, mode: string): Record<string, unknown> {
  return {
    kind: 'usb',
    mode,
    port: d.path,
    busnum: d.busnum,
    devnum: d.devnum,
    vendorId: d.vendorId,
    productId: d.productId,
    bcdDevice: d.bcdDevice,
    deviceClass: hex2(d.deviceClass & 0xff),
    interfaceClasses: [...new Set(d.interfaces.map((i) => hex2(i.class & 0xff)))],
    interfaces: dec.interfaces,
    manufacturer: safeText(d.manufacturer),
    product: safeText(d.product),
    serial: safeText(d.serial, 128),
    descriptorHash: d.descriptorHash,
    rule: dec.rule,
    partial: dec.partial,
    readonly: dec.readonly,
    exceptionId: dec.exceptionId,
    ...(dec.note ? { note: dec.note } : {}),
  };
}

export class UsbCapability implements Capability {
  readonly name = 'usb';
  private ctx: AgentContext | null = null;
  private policy: UsbPolicy = defaultUsbPolicy();
  private enforcer: LinuxUsbEnforcer;
  private known = new Map<string, Known>();
  private blockSeen = new Map<string, string>();
  private exceptions: UsbException[] = [];
  private unbound: UnboundDevice[] = [];
  private timers: NodeJS.Timeout[] = [];
  private pollTimer: NodeJS.Timeout | null = null;
  private scanning: Promise<void> = Promise.resolve();
  private scanQueued = false;
  private stopped = false;
  private hotplugStop: (() => Promise<void>) | null = null;
  private ueventStop: (() => void) | null = null;
  private roWatch = new Map<string, number>(); // path → watch-until (ms)

  constructor(private readonly opts: UsbCapabilityOptions = {}) {
    this.enforcer = new LinuxUsbEnforcer(opts);
  }

  private get monitor(): boolean {
    return this.policy.mode === 'monitor' || (this.ctx?.monitorOnly ?? false);
  }

  async start(ctx: AgentContext, policy: PolicyDocument): Promise<void> {
    this.ctx = ctx;
    this.policy = policy.usb ?? defaultUsbPolicy();
    this.exceptions = this.loadExceptions();
    this.unbound = this.loadUnbound();
    if (process.platform !== 'linux') {
      ctx.log('warn', 'usb: no enforcer for this platform');
      return;
    }
    if (!this.monitor) this.reportEnforce(this.enforcer.closeRootHubs());
    // Devices already present are judged now (USBGuard's PresentDevicePolicy).
    await this.scan();
    this.ueventStop = (this.opts.watchUevents ?? watchKernelUevents)(
      (e) => {
        const name = e.devpath.slice(e.devpath.lastIndexOf('/') + 1);
        if (e.subsystem === 'usb' && e.action === 'add' && DEVICE_RE.test(name)) this.judgeAdded(name, e.seenMs);
        else if (e.action === 'add' || e.action === 'bind' || e.action === 'change') this.requestScan();
      },
      (m) => ctx.log('warn', m),
    );
    this.startHotplug();
    const rescan = this.opts.rescanMs ?? 1000;
    this.timers.push(setInterval(() => this.requestScan(), rescan));
    this.scheduleExceptionPoll();
    void this.refreshExceptions().then((c) => c && this.requestScan());
  }

  /** (Re)starts polling the console for exceptions at the policy's period. */
  private scheduleExceptionPoll(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = setInterval(() => void this.refreshExceptions().then((c) => c && this.requestScan()), this.policy.exceptionPollSeconds * 1000);
  }

  async applyPolicy(policy: PolicyDocument): Promise<void> {
    const before = this.monitor;
    const pollBefore = this.policy.exceptionPollSeconds;
    this.policy = policy.usb ?? defaultUsbPolicy();
    if (this.pollTimer && this.policy.exceptionPollSeconds !== pollBefore) this.scheduleExceptionPoll();
    if (before && !this.monitor) this.reportEnforce(this.enforcer.closeRootHubs());
    this.known.clear(); // every device is judged again under the new policy
    this.blockSeen.clear();
    this.requestScan();
    await this.scanning;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.hotplugStop) await this.hotplugStop().catch(() => undefined);
    this.ueventStop?.();
    await this.scanning;
    // Root hubs stay at authorized_default=0: with the agent gone, new devices get no driver.
  }

  private reportEnforce(r: { errors: string[] }): void {
    for (const e of r.errors) this.ctx?.log('warn', `usb: ${e}`);
  }

  private startHotplug(): void {
    if (this.opts.hotplug === false) return;
    try {
      const require = createRequire(import.meta.url);
      const native = require('usb/index.js') as {
        Emitter: new () => { addAttach(cb: (d: unknown) => void): Promise<void>; removeAttach(): Promise<void> };
      };
      const em = new native.Emitter();
      em.addAttach(() => {
        this.requestScan();
        void this.refreshExceptions().then((changed) => changed && this.requestScan());
      }).catch((e: unknown) => this.ctx?.log('warn', `usb: hotplug unavailable (${(e as Error).message}); sysfs rescan only`));
      this.hotplugStop = () => em.removeAttach();
    } catch (e) {
      this.ctx?.log('warn', `usb: node-usb hotplug unavailable (${(e as Error).message}); sysfs rescan only`);
    }
  }

  /** Coalesces scan requests: at most one running and one queued. */
  requestScan(): void {
    if (this.stopped || this.scanQueued) return;
    this.scanQueued = true;
    this.scanning = this.scanning.then(async () => {
      this.scanQueued = false;
      try {
        await this.scan();
      } catch (e) {
        this.ctx?.log('error', `usb: scan failed: ${(e as Error).message}`);
      }
    });
  }

  /**
   * Hot-plug fast path: the device the kernel just added is judged at once, without listing the
   * whole bus first (the known devices stand in for it in clone detection). What follows from the
   * decision (interfaces bound, disks created) arrives as uevents of its own and gets a full pass.
   */
  private judgeAdded(path: string, ueventSeenMs?: number): void {
    const ctx = this.ctx;
    if (!ctx || this.stopped) return;
    const marks: TraceMarks = { ...(ueventSeenMs !== undefined ? { ueventSeen: ueventSeenMs } : {}), start: monoMs() };
    const d = readUsbDevice(this.enforcer.sysRoot, path);
    if (d) {
      marks.read = monoMs();
      const others = [...this.known.values()].map((k) => k.identity).filter((o) => o.path !== path);
      others.push(identityOf(d));
      this.judge(d, ctx.console.consoleNow(), others, marks).catch((e: unknown) => ctx.log('error', `usb: ${path}: ${(e as Error).message}`));
    } else this.requestScan(); // not readable yet: the full pass will find it
  }

  async scan(): Promise<void> {
    const ctx = this.ctx;
    if (!ctx) return;
    const sysRoot = this.enforcer.sysRoot;
    // Forget unplugged devices before yielding: a device the fast path judges meanwhile is not in
    // this listing and must not be forgotten (it would be reported twice, its read-only marker lost).
    const present = new Set(listDevicePaths(sysRoot));
    for (const p of [...this.known.keys()]) if (!present.has(p)) this.known.delete(p);
    this.enforcer.pruneMarkers(present);
    const devices: UsbDeviceInfo[] = [];
    for (const p of present) {
      const d = readUsbDevice(sysRoot, p);
      if (d) devices.push(d);
      await nextTurn();
    }
    const now = ctx.console.consoleNow();
    const others = devices.map(identityOf);
    // Parents before children (hubs first), so a hub's downstream devices exist when judged.
    devices.sort((a, b) => a.path.length - b.path.length || a.path.localeCompare(b.path));
    for (const d of devices) {
      await this.judge(d, now, others);
      await nextTurn();
    }
    if (!this.monitor) await this.keepReadonly(present);
    await this.scanBlockDevices();
  }

  /**
   * Decides one device, reports it when new or changed (durably, before sysfs is touched) and makes
   * sysfs match. Everything up to the sysfs writes is synchronous, so the fast path and a running
   * scan cannot report the same device twice.
   */
  private async judge(d: UsbDeviceInfo, now: Date, others: readonly DeviceIdentity[], marks: TraceMarks = { start: monoMs() }): Promise<void> {
    const ctx = this.ctx!;
    const dec = decideUsb(this.policy, d, { agentId: ctx.agentId, now, exceptions: this.exceptions, others });
    marks.decided = monoMs();
    const key = [d.vendorId, d.productId, d.serial?.toString('hex') ?? '', d.descriptorHash, d.devnum, JSON.stringify(dec.interfaces), dec.readonly, dec.eventType].join('|');
    const prev = this.known.get(d.path);
    const isNew = !prev || prev.key !== key;
    if (isNew) {
      this.known.set(d.path, { key, decision: dec, identity: identityOf(d) });
      this.report(d, dec);
      marks.reported = monoMs();
    }
    if (this.monitor) {
      if (!ctx.monitorOnly && isNew) this.reportEnforce(this.enforcer.openDevice(d.path));
      return;
    }
    const r = await this.enforcer.apply(d.path, dec, isNew);
    this.reportEnforce(r);
    if (isNew && dec.readonly) this.roWatch.set(d.path, Date.now() + 20_000);
    if (isNew) this.trace(d, dec, marks, r);
  }

  /** Read-only media: disks appear a while after the interface binds; set them ro as they come. */
  private async keepReadonly(present: Set<string>): Promise<void> {
    for (const [path, k] of this.known) if (k.decision.readonly) await this.enforcer.setReadonlyDisks(path).then((r) => this.reportEnforce(r));
    for (const [path, until] of this.roWatch) {
      if (!present.has(path) || Date.now() > until) this.roWatch.delete(path);
    }
    if (this.roWatch.size && !this.stopped) setTimeout(() => this.requestScan(), 100).unref();
  }

  /** Built-in optical drives and SD/MMC readers (USB ones are covered by USB authorization). */
  private async scanBlockDevices(): Promise<void> {
    const ctx = this.ctx!;
    this.rebindAllowed();
    const seen = new Set<string>();
    for (const b of listBlockDevices(this.enforcer.sysRoot)) {
      const kind = builtinRemovableKind(this.enforcer.sysRoot, b);
      if (!kind) continue;
      seen.add(b.name);
      const v = decideBlockDevice(this.policy, kind);
      const key = `${b.devicePath}|${v.access}`;
      if (this.blockSeen.get(b.name) === key) continue;
      this.blockSeen.set(b.name, key);
      const type: NewEvent['type'] = v.access === 'allow' ? 'usb.allowed' : v.access === 'readonly' ? 'usb.readonly' : this.monitor ? 'usb.would_block' : 'usb.blocked';
      ctx.emit({ type, user: loggedInUser(this.opts.utmpPaths), data: { kind, mode: this.policy.mode, device: b.name, rule: v.rule, partitions: b.partitions } });
      if (this.monitor) {
        // Monitor lets everything through, including the read-only start the udev rule gives media.
        if (!ctx.monitorOnly) this.reportEnforce(await this.enforcer.setBlockDeviceAccess(b, 'allow'));
        continue;
      }
      if (v.access !== 'block') {
        this.reportEnforce(await this.enforcer.setBlockDeviceAccess(b, v.access));
        continue;
      }
      const r = this.enforcer.unbindBlockDevice(b, kind);
      this.reportEnforce(r);
      if (r.unbound) {
        this.unbound.push(r.unbound);
        this.saveUnbound();
      }
    }
    for (const n of [...this.blockSeen.keys()]) if (!seen.has(n)) this.blockSeen.delete(n);
  }

  /** Drives and card readers taken away earlier come back once the policy allows their kind (or only monitors). */
  private rebindAllowed(): void {
    const keep = this.unbound.filter((u) => !this.monitor && decideBlockDevice(this.policy, u.kind).access === 'block');
    if (keep.length === this.unbound.length) return;
    for (const u of this.unbound) if (!keep.includes(u)) this.reportEnforce(this.enforcer.rebind(u));
    this.unbound = keep;
    this.saveUnbound();
  }

  private saveUnbound(): void {
    const file = join(this.ctx!.stateDir, UNBOUND_FILE);
    try {
      writeFileSync(file + '.tmp', JSON.stringify(this.unbound), { mode: 0o600 });
      renameSync(file + '.tmp', file);
    } catch (e) {
      this.ctx!.log('warn', `usb: cannot record unbound drives: ${(e as Error).message}`);
    }
  }

  private loadUnbound(): UnboundDevice[] {
    try {
      const x = JSON.parse(readFileSync(join(this.ctx!.stateDir, UNBOUND_FILE), 'utf8')) as unknown;
      return Array.isArray(x) ? x.filter(isUnboundDevice) : [];
    } catch {
      return [];
    }
  }

  private report(d: UsbDeviceInfo, dec: UsbDecision): void {
    const type: NewEvent['type'] = this.monitor && dec.eventType === 'usb.blocked' ? 'usb.would_block' : dec.eventType;
    this.ctx!.emit({ type, user: loggedInUser(this.opts.utmpPaths), data: usbEventData(d, dec, this.policy.mode) });
  }

  private trace(d: UsbDeviceInfo, dec: UsbDecision, marks: TraceMarks, r: EnforceResult): void {
    const file = this.opts.traceFile ?? process.env.SEKIMORI_USB_TRACE;
    if (!file) return;
    if (r.firstWriteMs !== undefined) marks.firstWrite = r.firstWriteMs;
    marks.done = monoMs();
    const line = { path: d.path, vendorId: d.vendorId, productId: d.productId, event: dec.eventType, mono: marks, wrote: r.wrote };
    try {
      writeFileSync(file, JSON.stringify(line) + '\n', { flag: 'a' });
    } catch {
      // tracing is best effort
    }
  }

  private loadExceptions(): UsbException[] {
    try {
      const x = JSON.parse(readFileSync(join(this.ctx!.stateDir, EXCEPTIONS_FILE), 'utf8')) as unknown;
      return Array.isArray(x) ? x.filter((e): e is UsbException => usbExceptionErrors(e).length === 0) : [];
    } catch {
      return [];
    }
  }

  /** Fetches this terminal's grants; keeps the cache when the console is unreachable. Returns whether they changed. */
  async refreshExceptions(): Promise<boolean> {
    const ctx = this.ctx;
    if (!ctx || this.stopped) return false;
    try {
      const reply = await ctx.console.request('GET', '/api/agent/usb/exceptions', undefined, 5000);
      if (reply.status !== 200) return false;
      const body = reply.body as { exceptions?: unknown };
      if (!Array.isArray(body?.exceptions)) return false;
      const list = body.exceptions.filter((e): e is UsbException => usbExceptionErrors(e).length === 0 && (e as UsbException).agentId === ctx.agentId);
      const changed = JSON.stringify(list) !== JSON.stringify(this.exceptions);
      if (changed) {
        this.exceptions = list;
        const file = join(ctx.stateDir, EXCEPTIONS_FILE);
        writeFileSync(file + '.tmp', JSON.stringify(list), { mode: 0o600 });
        renameSync(file + '.tmp', file);
      }
      return changed;
    } catch {
      return false;
    }
  }
}

/**
 * SEKIMORI_USB_SYSROOT points the enforcer at another sysfs tree (test harnesses on a developer's
 * machine must never change the real USB bus); unset on terminals.
 */
export function createUsbCapability(opts: UsbCapabilityOptions = {}): Capability {
  const sysRoot = opts.sysRoot ?? process.env.SEKIMORI_USB_SYSROOT;
  return new UsbCapability({ ...opts, ...(sysRoot ? { sysRoot } : {}) });
}
