/**
 * The removable-media capability's lifecycle: observe (the platform's listing and change watch)
 * → decide (decide.ts, pure) → report (usb.* events, written to the outbox before the OS is told
 * anything) → enforce (the platform: per device on Linux, declaratively on Windows).
 */
import type { AgentContext, Capability } from '../capability.js';
import type { PolicyDocument } from '../../protocol/policy.js';
import { defaultUsbPolicy, type UsbException, type UsbPolicy } from '../../protocol/policy-usb.js';
import { decideBlockDevice, decideUsb, type UsbDecision } from './decide.js';
import { builtinEventData, builtinEventType, usbEventData, usbEventType } from './events.js';
import type { UsbDeviceInfo } from './observe.js';
import type { StricterNote, UnboundMedium, UsbChange, UsbPlatform } from './platform.js';
import { UsbState } from './state.js';
import { usbNotice } from '../notify/notices.js';
import { ApplyDesk } from './apply.js';
import { fetchExceptions, sameExceptions } from './sync.js';
import { createFileLog, type FileLogControl } from './filelog/index.js';
import { monoMs, writeTrace, type TraceMarks } from './trace.js';

export interface UsbCapabilityOptions {
  /** The platform's device control (agent/platform.ts chooses it). */
  platform: UsbPlatform;
  /** Fallback rescan period (missed hotplug events, exception expiry). */
  rescanMs?: number;
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

/** Lets pending I/O (a hot-plug uevent) run between devices: a new device waits for one device's work, not a whole scan. */
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

export class UsbCapability implements Capability {
  readonly name = 'usb';
  readonly platform: UsbPlatform;
  private ctx: AgentContext | null = null;
  private state: UsbState | null = null;
  private policy: UsbPolicy = defaultUsbPolicy();
  private known = new Map<string, Known>();
  private blockSeen = new Map<string, string>();
  private exceptions: UsbException[] = [];
  private unbound: UnboundMedium[] = [];
  private timers: NodeJS.Timeout[] = [];
  private pollTimer: NodeJS.Timeout | null = null;
  private scanning: Promise<void> = Promise.resolve();
  private scanQueued = false;
  private stopped = false;
  private watchStop: (() => Promise<void>) | null = null;
  private roWatch = new Map<string, number>(); // path → watch-until (ms)
  private policyVersion = 0;
  private stricterReported = ''; // notes last reported: re-applying the same policy reports nothing new
  private fileLog: FileLogControl | null = null; // 持ち出しログ: files written to usable media
  /** 申請: refs of devices blocked on this plug, applications awaiting the console's decision (apply.ts). */
  desk: ApplyDesk | null = null;

  constructor(private readonly opts: UsbCapabilityOptions) {
    this.platform = opts.platform;
  }

  private get monitor(): boolean {
    return this.policy.mode === 'monitor' || (this.ctx?.monitorOnly ?? false);
  }

  async start(ctx: AgentContext, policy: PolicyDocument): Promise<void> {
    this.ctx = ctx;
    this.state = new UsbState(ctx.stateDir);
    this.policy = policy.usb ?? defaultUsbPolicy();
    this.policyVersion = policy.version;
    this.exceptions = this.state.loadExceptions();
    this.desk = new ApplyDesk(ctx);
    this.desk.register();
    const media = this.platform.builtinMedia;
    this.unbound = media ? this.state.loadUnbound(media.isUnbound) : [];
    if (this.platform.unavailable) {
      ctx.log('warn', `usb: ${this.platform.unavailable}`);
      return;
    }
    this.fileLog = createFileLog(this.platform, ctx, () => (this.monitor ? 'monitor' : this.policy.mode));
    await this.applyToPlatform();
    // Devices already present are judged now (USBGuard's PresentDevicePolicy).
    await this.scan();
    this.watchStop = this.platform.watch(
      (c) => this.onChange(c),
      (m) => ctx.log('warn', m),
    );
    const rescan = this.opts.rescanMs ?? 1000;
    this.timers.push(setInterval(() => this.requestScan(), rescan));
    this.scheduleExceptionPoll();
    void this.refreshExceptions().then((c) => c && this.requestScan());
  }

  private onChange(c: UsbChange): void {
    if (c.kind === 'added') return this.judgeAdded(c.path, c.seenMs);
    this.requestScan();
    if (c.kind === 'attached') void this.refreshExceptions().then((changed) => changed && this.requestScan());
  }

  /** Policy, exceptions and mode as the platform's standing settings (Linux: root hubs closed; Windows: the registry). */
  private async applyToPlatform(): Promise<void> {
    const ctx = this.ctx;
    if (!ctx || ctx.monitorOnly) return;
    const r = await this.platform.applyPolicy({
      policy: this.policy,
      exceptions: this.exceptions,
      monitor: this.monitor,
      monitorOnly: ctx.monitorOnly,
      now: ctx.console.consoleNow(),
      agentId: ctx.agentId,
      onStricter: (notes) => this.reportStricter(notes),
    });
    this.reportEnforce(r);
  }

  /**
   * What the platform enforces more strictly than the policy says is reported, not only logged:
   * once per policy/exception change that yields notes (the same notes again report nothing).
   * Exception expiry re-applied by the platform itself comes through here too.
   */
  private reportStricter(notes: StricterNote[]): void {
    if (!this.ctx || this.stopped) return;
    const key = notes.length ? JSON.stringify([this.policyVersion, notes]) : '';
    if (key === this.stricterReported) return;
    this.stricterReported = key;
    if (!notes.length) return;
    this.ctx!.emit({ type: 'usb.enforced_stricter', data: { platform: this.platform.name, policyVersion: this.policyVersion, notes } });
  }

  /** (Re)starts polling the console for exceptions at the policy's period. */
  private scheduleExceptionPoll(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = setInterval(() => void this.refreshExceptions().then((c) => c && this.requestScan()), this.policy.exceptionPollSeconds * 1000);
  }

  async applyPolicy(policy: PolicyDocument): Promise<void> {
    const pollBefore = this.policy.exceptionPollSeconds;
    this.policy = policy.usb ?? defaultUsbPolicy();
    this.policyVersion = policy.version;
    if (this.platform.unavailable) return;
    if (this.pollTimer && this.policy.exceptionPollSeconds !== pollBefore) this.scheduleExceptionPoll();
    await this.applyToPlatform();
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
    if (this.watchStop) await this.watchStop().catch(() => undefined);
    await this.scanning;
    await this.fileLog?.stop();
    // The platform's standing settings stay (Linux: authorized_default=0): with the agent gone, new devices get no driver.
  }

  private reportEnforce(r: { errors: string[] }): void {
    for (const e of r.errors) this.ctx?.log('warn', `usb: ${e}`);
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
   * Hot-plug fast path: the device the OS just added is judged at once, without listing the
   * whole bus first (the known devices stand in for it in clone detection). What follows from the
   * decision (interfaces bound, disks created) arrives as changes of its own and gets a full pass.
   */
  private judgeAdded(path: string, ueventSeenMs?: number): void {
    const ctx = this.ctx;
    if (!ctx || this.stopped) return;
    const marks: TraceMarks = { ...(ueventSeenMs !== undefined ? { ueventSeen: ueventSeenMs } : {}), start: monoMs() };
    const judgeRead = (d: UsbDeviceInfo | null) => {
      if (!d) return this.requestScan(); // not readable yet: the full pass will find it
      marks.read = monoMs();
      const others = [...this.known.values()].map((k) => k.identity).filter((o) => o.path !== path);
      others.push(identityOf(d));
      this.judge(d, ctx.console.consoleNow(), others, marks).catch((e: unknown) => ctx.log('error', `usb: ${path}: ${(e as Error).message}`));
    };
    const read = this.platform.readDevice(path);
    if (read instanceof Promise) read.then(judgeRead, (e: unknown) => ctx.log('error', `usb: ${path}: ${(e as Error).message}`));
    else judgeRead(read);
  }

  async scan(): Promise<void> {
    const ctx = this.ctx;
    if (!ctx) return;
    // Forget unplugged devices before yielding: a device the fast path judges meanwhile is not in
    // this listing and must not be forgotten (it would be reported twice, its read-only marker lost).
    const listed = this.platform.listDevicePaths();
    const present = new Set(listed instanceof Promise ? await listed : listed);
    for (const p of [...this.known.keys()]) if (!present.has(p)) this.known.delete(p);
    this.platform.forget(present);
    this.fileLog?.forget(present);
    const devices: UsbDeviceInfo[] = [];
    for (const p of present) {
      const d = await this.platform.readDevice(p);
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
    await this.scanBuiltinMedia();
    await this.fileLog?.refresh();
  }

  /**
   * Decides one device, reports it when new or changed (durably, before the OS is touched) and
   * makes the OS match. Everything up to the platform call is synchronous, so the fast path and a
   * running scan cannot report the same device twice.
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
      this.fileLog?.judged(d, dec, this.monitor);
    }
    if (this.monitor) {
      if (!ctx.monitorOnly && isNew) this.reportEnforce(await this.platform.enforceDevice(d, dec, { first: true, monitor: true }));
      return;
    }
    const r = await this.platform.enforceDevice(d, dec, { first: isNew, monitor: false });
    this.reportEnforce(r);
    if (isNew && dec.readonly) this.roWatch.set(d.path, Date.now() + 20_000);
    if (isNew) writeTrace(this.opts.traceFile ?? process.env.SEKIMORI_USB_TRACE, d, dec, marks, r);
  }

  /** Read-only media: disks appear a while after the interface binds; set them ro as they come. */
  private async keepReadonly(present: Set<string>): Promise<void> {
    const keep = this.platform.keepReadonly?.bind(this.platform);
    if (!keep) return;
    for (const [path, k] of this.known) if (k.decision.readonly) this.reportEnforce(await keep(path));
    for (const [path, until] of this.roWatch) {
      if (!present.has(path) || Date.now() > until) this.roWatch.delete(path);
    }
    if (this.roWatch.size && !this.stopped) setTimeout(() => this.requestScan(), 100).unref();
  }

  /** Built-in optical drives and SD/MMC readers (USB ones are covered by USB authorization). */
  private async scanBuiltinMedia(): Promise<void> {
    const ctx = this.ctx!;
    const media = this.platform.builtinMedia;
    if (!media) return;
    this.rebindAllowed();
    const seen = new Set<string>();
    for (const m of media.list()) {
      seen.add(m.name);
      const v = decideBlockDevice(this.policy, m.kind);
      const key = `${m.identity}|${v.access}`;
      if (this.blockSeen.get(m.name) === key) continue;
      this.blockSeen.set(m.name, key);
      ctx.emit({ type: builtinEventType(v.access, this.monitor), user: this.platform.currentUser(), data: builtinEventData(m.kind, this.policy.mode, m.name, v.rule, m.partitions) });
      if (this.monitor) {
        // Monitor lets everything through, including the read-only start the udev rule gives media.
        if (!ctx.monitorOnly) this.reportEnforce(await media.setAccess(m, 'allow'));
        continue;
      }
      if (v.access !== 'block') {
        this.reportEnforce(await media.setAccess(m, v.access));
        continue;
      }
      const r = media.unbind(m);
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
    const media = this.platform.builtinMedia;
    if (!media) return;
    const keep = this.unbound.filter((u) => !this.monitor && decideBlockDevice(this.policy, u.kind).access === 'block');
    if (keep.length === this.unbound.length) return;
    for (const u of this.unbound) if (!keep.includes(u)) this.reportEnforce(media.rebind(u));
    this.unbound = keep;
    this.saveUnbound();
  }

  private saveUnbound(): void {
    try {
      this.state!.saveUnbound(this.unbound);
    } catch (e) {
      this.ctx!.log('warn', `usb: cannot record unbound drives: ${(e as Error).message}`);
    }
  }

  private report(d: UsbDeviceInfo, dec: UsbDecision): void {
    // A device blocked on this plug gets its 申請番号 before anyone is told (desk.refAt(d.path) for the notice).
    if (dec.eventType === 'usb.blocked' && !this.monitor) {
      const ref = this.desk?.remember(d);
      if (ref) this.ctx!.log('info', `usb: ${d.path} blocked; 申請番号 ${ref} (sekimori-agent apply ${ref} --reason …)`);
    }
    this.ctx!.emit({ type: usbEventType(dec, this.monitor), user: this.platform.currentUser(), data: usbEventData(d, dec, this.policy.mode) });
    // The notice at the terminal (issue 15), after the event: once per plug, deferred by the notifier.
    const notice = this.ctx!.notify && usbNotice(d, dec, { user: this.platform.currentUser(), monitor: this.monitor, ref: this.desk?.refAt(d.path) });
    if (notice) this.ctx!.notify?.(notice);
  }

  /** Fetches this terminal's grants; keeps the cache when the console is unreachable. Returns whether they changed. */
  async refreshExceptions(): Promise<boolean> {
    const ctx = this.ctx;
    if (!ctx || this.stopped) return false;
    void this.desk?.poll(); // decisions on applications travel with the exception poll
    const list = await fetchExceptions(ctx.console, ctx.agentId);
    if (list === null || sameExceptions(list, this.exceptions)) return false;
    this.exceptions = list;
    try {
      this.state!.saveExceptions(list);
    } catch (e) {
      ctx.log('warn', `usb: cannot record exceptions: ${(e as Error).message}`);
      return false;
    }
    // A declarative platform (Windows) carries exceptions in its standing settings: re-apply them.
    await this.applyToPlatform();
    return true;
  }
}
